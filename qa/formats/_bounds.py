"""The one check every loaded object meets, whatever its format, before any later stage sees it.

Each reader turns its format's fields into :class:`~qa.model.Object` records and reports what it cannot
parse. :func:`check_export` then holds the objects of every export to the same bounds, so that a new
reader cannot forget one:

- a polygon's parts are ``(n, 2)`` arrays of at least 3 finite vertices, none farther outside the image
  than the image's own width or height (:func:`qa.formats._geometry.bounds_problem`: pycocotools'
  rasteriser walks every edge pixel by pixel, so one vertex at 1e308 would exhaust memory or crash
  it); otherwise the object is left out with an ``FMT001`` error;
- an RLE is of the image's size (``FMT003`` error otherwise);
- the normalised attributes are of their type: ``occluded`` a bool, ``z_order`` and ``group`` integers
  that fit the store's 32-bit columns. Another value is dropped with an ``FMT016`` warning (the object
  is kept, without that attribute).
"""

from __future__ import annotations

import numpy as np

from qa.formats._findings import finding
from qa.formats._geometry import bounds_problem, polygon_problem
from qa.model import Export, Image, Object

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
"""The range of ``z_order`` and ``group`` (INTEGER columns of the store)."""


def _show(value, limit: int = 40) -> str:
    """A short repr of a value from an export, for a one-line message."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10 ** 30:
        return f"an integer of {len(str(abs(value)))} digits" if abs(value) < 10 ** 4000 else "a huge integer"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def geometry_problem(obj: Object, image: Image) -> tuple[str, str] | None:
    """``(code, message)`` when ``obj``'s geometry cannot be used on ``image``, else None.

    Examples
    --------
    >>> from qa.model import Source
    >>> im = Image(key="a.png", file_name="a.png", width=64, height=48)
    >>> far = Object(annotator="", image="a.png", category="car", kind="polygon", source=Source("f", 0),
    ...              polygons=(np.array([[10.0, 10.0], [1e308, 10.0], [30.0, 30.0]]),))
    >>> geometry_problem(far, im)
    ('FMT001', 'polygon part 0 has the vertex (1e+308, 10), farther outside the 64x48 image than its own size')
    """
    if obj.kind == "polygon":
        parts = obj.polygons or ()
        if not parts:
            return "FMT001", "polygon has no parts"
        for k, part in enumerate(parts):
            arr = np.asarray(part)
            if arr.dtype.kind not in "iuf":
                return "FMT001", f"polygon part {k} holds a value that is not a number"
            problem = polygon_problem(arr.astype(np.float64, copy=False))
            if problem:
                return "FMT001", f"polygon part {k}: {problem}" if len(parts) > 1 else problem
        what = str(obj.attributes.get("shape") or "polygon") if len(parts) == 1 else "polygon"
        problem = bounds_problem(parts, image.width, image.height,
                                 what=what if what in ("box", "rectangle", "ellipse", "circle") else "polygon")
        return ("FMT001", problem) if problem else None
    if obj.kind == "rle":
        size = list(obj.rle.get("size", ())) if isinstance(obj.rle, dict) else []
        if size != [image.height, image.width]:
            return "FMT003", (f"RLE size {size} (height, width) differs from the image's "
                              f"[{image.height}, {image.width}]")
    return None


def attribute_problems(attributes: dict) -> list[str]:
    """Drop the normalised attributes that are not of their type from ``attributes``; say why.

    Examples
    --------
    >>> attrs = {"occluded": "maybe", "z_order": "top", "group": 2 ** 40, "colour": "red"}
    >>> attribute_problems(attrs)
    ["occluded 'maybe' is not a yes/no flag; ignored", "z_order 'top' is not an integer; ignored", 'group 1099511627776 is outside the 32-bit integer range; ignored']
    >>> attrs
    {'colour': 'red'}
    """
    problems = []
    value = attributes.get("occluded")
    if "occluded" in attributes and not isinstance(value, bool):
        if value is not None:
            problems.append(f"occluded {_show(value)} is not a yes/no flag; ignored")
        del attributes["occluded"]
    for key in ("z_order", "group"):
        if key not in attributes:
            continue
        value = attributes[key]
        if value is None:
            del attributes[key]
        elif isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            problems.append(f"{key} {_show(value)} is not an integer; ignored")
            del attributes[key]
        elif not INT32_MIN <= int(value) <= INT32_MAX:
            problems.append(f"{key} {_show(int(value))} is outside the 32-bit integer range; ignored")
            del attributes[key]
        else:
            attributes[key] = int(value)
    return problems


def _suspect_polygons(objects: list[Object], images: dict[str, Image]) -> set[int]:
    """Indices of the polygon objects that may break a bound, from one pass over every vertex of the
    objects (the others are within bounds; :func:`geometry_problem` says what is wrong with a suspect)."""
    suspects: set[int] = set()
    parts, owner, widths, heights = [], [], [], []
    for k, obj in enumerate(objects):
        if obj.kind != "polygon":
            continue
        image = images.get(obj.image)
        if image is None:
            continue
        polygons = obj.polygons or ()
        if not polygons or not all(isinstance(p, np.ndarray) and p.ndim == 2 and p.shape[1] == 2 and len(p) >= 3
                                   and p.dtype.kind in "iuf" for p in polygons):
            suspects.add(k)
            continue
        parts.extend(polygons)
        owner.extend([k] * len(polygons))
        widths.extend([image.width] * len(polygons))
        heights.extend([image.height] * len(polygons))
    if not parts:
        return suspects
    lengths = np.fromiter((len(p) for p in parts), np.int64, len(parts))
    xy = np.concatenate(parts).astype(np.float64, copy=False)
    w = np.repeat(np.asarray(widths, np.float64), lengths)
    h = np.repeat(np.asarray(heights, np.float64), lengths)
    x, y = xy[:, 0], xy[:, 1]
    bad = ~np.isfinite(xy).all(axis=1) | (x < -w) | (x > 2 * w) | (y < -h) | (y > 2 * h)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    part_bad = np.maximum.reduceat(bad.view(np.uint8), starts).astype(bool)
    suspects.update(np.asarray(owner, np.int64)[part_bad].tolist())
    return suspects


def check_objects(objects: list[Object], images: dict[str, Image]) -> tuple[list[Object], list]:
    """The objects that meet the bounds of the module docstring, and the findings on the others.

    Objects whose geometry is out of bounds are left out and reported (file, index and id from their
    source); attributes of the wrong type are dropped (in place) and reported. Objects of an image not in
    ``images`` are kept as they are (no later stage reads them). The vertices of all polygons are checked
    in one numpy pass; only an object that fails it is looked at on its own. Each object is judged on its
    own, so checking a list in parts gives the same objects and findings as checking it whole.
    """
    suspects = _suspect_polygons(objects, images)
    kept, findings = [], []
    for k, obj in enumerate(objects):
        image = images.get(obj.image)
        if image is None:
            kept.append(obj)
            continue
        problem = geometry_problem(obj, image) if (k in suspects or obj.kind == "rle") else None
        if problem is not None:
            code, message = problem
            findings.append(finding(code, f"{message}; object left out", obj.source, image=obj.image))
            continue
        if obj.attributes:
            for message in attribute_problems(obj.attributes):
                findings.append(finding("FMT016", message, obj.source, image=obj.image))
        kept.append(obj)
    return kept, findings


def check_export(export: Export) -> None:
    """Hold every object of ``export`` to the bounds of the module docstring, in place
    (:func:`check_objects`; the findings go after the export's own)."""
    export.objects, findings = check_objects(export.objects, export.images)
    export.findings.extend(findings)
