"""Label Studio JSON export: a list of tasks, each with one annotation per annotator.

Each task's ``annotations[]`` entry (``completions[]`` in Label Studio before 1.0) is one annotator's
work on the task's image; ``completed_by`` names the annotator: the user's ``email`` when the export
carries user details (a dict), else ``user_<id>`` (the manifest option ``annotators = {"1" = "alice"}``
renames ids). Annotations with ``was_cancelled`` are left out (one ``FMT013`` info finding per
annotator). Predictions and drafts are not read.

Regions (``result[]`` items) that are areas become objects:

- ``polygonlabels`` / ``polygon``: ``points`` in percent of ``original_width`` x ``original_height``,
  scaled to pixels (``x * width / 100``).
- ``rectanglelabels`` / ``rectangle``: ``x``, ``y`` (top-left corner), ``width``, ``height`` in percent,
  turned ``rotation`` degrees clockwise about the top-left corner, as Label Studio draws it; a
  4-point polygon with ``attributes["shape"] = "rectangle"``.
- ``ellipselabels`` / ``ellipse``: centre ``x``, ``y`` and ``radiusX``, ``radiusY`` in percent, an
  inscribed polygon within 0.25 px.
- ``brushlabels`` / ``brush`` with ``format = "rle"``: Label Studio's bit-packed RLE of the RGBA canvas,
  decoded by a numba kernel (:mod:`qa.formats._ls_rle`) and re-encoded as COCO RLE.

The category is the region's label (the first, when a region carries several; a warning says so);
``from_name`` (the labelling control) is kept in ``attributes["from_name"]`` so projects with several
controls stay distinguishable. Per-region classifications (``choices``, ``textarea``, ``number``,
``rating`` results sharing the region's ``id``) go into ``attributes[<their from_name>]``; an
``occluded`` control becomes the boolean ``occluded`` flag. Keypoints, relations and whole-image
classifications are not areas (``FMT012`` info findings).

The image key comes from ``data.image`` (or the ``image_field`` option, or the only string in
``data``): Label Studio's upload prefix is stripped (``/data/upload/3/8a1b2c3d-name.jpg`` ->
``name.jpg``), local-storage URLs keep their ``?d=`` path, and other URLs keep their file name.

References
----------
Label Studio documentation, "Export annotations and data" (JSON format) and the tag pages
``PolygonLabels``, ``RectangleLabels``, ``BrushLabels``, ``EllipseLabels`` (result parameters).
Reference code: HumanSignal/label-studio-converter ``label_studio_converter/converter.py``
(``convert_to_coco``) and ``brush.py``.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from qa.errors import InputError
from qa.formats._document import close_document, open_document
from qa.formats._findings import finding
from qa.formats._geometry import box_polygon, ellipse_polygon, finite_number, polygon_problem
from qa.formats._json import sniff_json
from qa.formats._safe import normalise_name, size_problem, unsafe_reason
from qa.formats._tally import SkipTally
from qa.formats._units import KEEP
from qa.formats.coco import _show, normalise_attributes
from qa.model import Category, Export, Image, Limits, Object, Source

NAME = "label_studio"

_UPLOAD_HASH = re.compile(r"^[0-9a-f]{8}-(?=.)")
_KINDS = {
    "polygonlabels": "polygon", "polygon": "polygon",
    "rectanglelabels": "rectangle", "rectangle": "rectangle",
    "ellipselabels": "ellipse", "ellipse": "ellipse",
    "brushlabels": "brush", "brush": "brush",
}
_LABEL_KEYS = ("polygonlabels", "rectanglelabels", "ellipselabels", "brushlabels", "labels")
_CLASSIFICATIONS = {"choices", "textarea", "number", "rating", "taxonomy", "datetime"}
_NOT_AREAS = {
    "keypointlabels": "keypoints are not areas",
    "keypoint": "keypoints are not areas",
    "relation": "relations are not areas",
    "polylinelabels": "polylines are not areas",
    "classification": "classifications of the whole image are not compared",
}


def sniff(path: Path) -> bool:
    """Whether ``path`` is a Label Studio JSON export: a list of tasks with ``data`` and annotations."""
    doc = sniff_json(path)
    if not isinstance(doc, list) or not doc or not isinstance(doc[0], dict):
        return False
    first = doc[0]
    return isinstance(first.get("data"), dict) and ("annotations" in first or "completions" in first)


def image_key(ref: str) -> str:
    """The image key for a Label Studio ``data.image`` value.

    Examples
    --------
    >>> image_key("/data/upload/3/8a1b2c3d-name.jpg")
    'name.jpg'
    >>> image_key("/data/local-files/?d=dataset/frames/0001.png")
    'dataset/frames/0001.png'
    >>> image_key("https://example.com/media/cat%201.jpg?token=x")
    'cat 1.jpg'
    >>> image_key("s3://bucket/dir/a.png")
    'a.png'
    >>> image_key("images/a.jpg")
    'images/a.jpg'
    """
    ref = str(ref).strip()
    parts = urlsplit(ref)
    if "d" in parse_qs(parts.query) and parts.path.rstrip("/").endswith("local-files"):
        return normalise_name(parse_qs(parts.query)["d"][0]).lstrip("/")
    if parts.scheme and parts.scheme not in ("file",) and len(parts.scheme) > 1:
        return PurePosixPath(unquote(parts.path)).name
    path = unquote(parts.path) if parts.scheme == "file" else ref
    if path.startswith("/data/upload/") or path.startswith("data/upload/"):
        return _UPLOAD_HASH.sub("", PurePosixPath(path).name)
    return normalise_name(path).lstrip("/")


def _annotator(raw, names: dict) -> str | None:
    """The annotator named by ``completed_by``: a user id, a user object, or nothing ("");
    None when it is none of these (a list, a number that is not an integer, an object whose ``id`` is)."""
    if isinstance(raw, dict):
        user_id = raw.get("id")
        if not (user_id is None or isinstance(user_id, str) or (isinstance(user_id, int)
                                                                 and not isinstance(user_id, bool))):
            return None
        if str(user_id) in names:
            return str(names[str(user_id)])
        if raw.get("email"):
            return str(raw["email"])
        full = " ".join(str(raw.get(k) or "") for k in ("first_name", "last_name")).strip()
        if full:
            return full
        return f"user_{user_id}" if user_id is not None else ""
    if raw is None or isinstance(raw, bool):
        return ""
    if not isinstance(raw, (int, str)):
        return None
    if str(raw) in names:
        return str(names[str(raw)])
    return f"user_{raw}"


_number = finite_number


def _image_ref(data: dict, field: str | None):
    if field is not None:
        return data.get(field), f"data.{field}"
    if "image" in data:
        return data["image"], "data.image"
    strings = [(k, v) for k, v in data.items() if isinstance(v, str)]
    if len(strings) == 1:
        return strings[0][1], f"data.{strings[0][0]}"
    return None, "data.image"


def _task_size(annotations) -> tuple | None:
    for annotation in annotations:
        if not isinstance(annotation, dict) or not isinstance(annotation.get("result"), list):
            continue
        for item in annotation["result"]:
            if isinstance(item, dict) and "original_width" in item and "original_height" in item:
                return item["original_width"], item["original_height"]
    return None


class _Reader:
    """Reads tasks one at a time into one export per annotator (also run on a chunk's tasks,
    :mod:`qa.formats._index`); ``units`` as in :mod:`qa.formats._units`."""

    def __init__(self, path: Path, limits: Limits, options: dict, units=KEEP):
        self.units = units
        self.path = path
        self.file = str(path)
        self.limits = limits
        self.names = {str(k): v for k, v in dict(options.get("annotators") or {}).items()}
        self.image_field = options.get("image_field")
        self.exports: dict[str, Export] = {}
        self.file_findings: list = []
        self.tally = SkipTally()
        self.cancelled = SkipTally()
        self.cancelled_by: dict[str, int] = {}

    def export(self, annotator: str) -> Export:
        if annotator not in self.exports:
            self.exports[annotator] = Export(annotator=annotator, path=self.path, format=NAME)
            self.units.adopt(self.exports[annotator], annotator)
        return self.exports[annotator]

    def task(self, ti: int, task) -> None:
        task_src = Source(self.file, ti, task.get("id") if isinstance(task, dict) else None, "task")
        if not isinstance(task, dict):
            self.file_findings.append(finding("FMT011", f"task is a {type(task).__name__}, expected an object",
                                              task_src))
            return
        data = task.get("data")
        annotations = task.get("annotations", task.get("completions", []))
        if not isinstance(data, dict):
            self.file_findings.append(finding("FMT011", "task has no 'data' object; task left out", task_src))
            return
        if not isinstance(annotations, list):
            self.file_findings.append(finding("FMT011", "task 'annotations' is not a list; task left out",
                                              task_src))
            return
        ref, where = _image_ref(data, self.image_field)
        if not isinstance(ref, str) or not ref.strip():
            self.file_findings.append(finding(
                "FMT011", f"task has no image reference in {where}; pass the manifest option image_field",
                task_src))
            return
        key = image_key(ref)
        reason = unsafe_reason(key)
        if reason:
            self.file_findings.append(finding("FMT007", f"{reason}; task left out", task_src))
            return
        size = _task_size(annotations)
        if size is None:
            if any(isinstance(a, dict) and not a.get("was_cancelled") for a in annotations):
                self.file_findings.append(finding(
                    "FMT014", f"no region of task's image {key!r} gives original_width/original_height, "
                    "so its size is unknown; task left out", task_src, image=key))
            return
        problem = size_problem(size[0], size[1], self.limits)
        if problem:
            code = "FMT008" if "exceeds" in problem else "FMT011"
            self.file_findings.append(finding(code, f"{problem}; task left out", task_src, image=key))
            return
        width, height = int(size[0]), int(size[1])
        seen: set[str] = set()
        for ai, annotation in enumerate(annotations):
            src = Source(self.file, ai, annotation.get("id") if isinstance(annotation, dict) else None,
                         f"task[{ti}].annotations")
            if not isinstance(annotation, dict):
                self.file_findings.append(finding("FMT011", "annotation is not an object", src, image=key))
                continue
            name = _annotator(annotation.get("completed_by"), self.names)
            if name is None:
                self.file_findings.append(finding(
                    "FMT011", f"completed_by {_show(annotation.get('completed_by'))} is not a user id or a user "
                    "object; annotation left out", src, image=key))
                continue
            if annotation.get("was_cancelled"):
                self.cancelled.add("FMT013", "cancelled", src, key)
                self.cancelled_by[name or "unnamed"] = self.cancelled_by.get(name or "unnamed", 0) + 1
                continue
            export = self.export(name)
            if name in seen or key in export.images:
                export.findings.append(finding(
                    "FMT005", f"a second annotation of image {key!r} by {name or 'the same annotator'}; "
                    "the first is kept", src, image=key))
                continue
            seen.add(name)
            export.images[key] = Image(key=key, file_name=ref, width=width, height=height, path=None,
                                       source=task_src)
            self.units.touch(export, key)
            self.result(export, annotation.get("result"), ti, ai, key, width, height, src)

    def result(self, export: Export, result, ti, ai, key, width, height, annotation_src) -> None:
        if result is None:
            return
        if not isinstance(result, list):
            export.findings.append(finding("FMT011", "annotation 'result' is not a list", annotation_src,
                                           image=key))
            return
        section = f"task[{ti}].annotations[{ai}].result"
        groups: dict = {}
        for k, item in enumerate(result):
            src = Source(self.file, k, item.get("id") if isinstance(item, dict) else None, section)
            if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
                export.findings.append(finding("FMT011", "result item needs a 'value' object", src, image=key))
                continue
            group_id = item.get("id", f"#{k}")
            groups.setdefault(group_id, []).append((k, item, src))
        for items in groups.values():
            self.region(export, items, key, width, height)

    def region(self, export: Export, items, key, width, height) -> None:
        geometry = None
        labels = None
        extra: dict = {}
        for k, item, src in items:
            kind = str(item.get("type", "")).lower()
            value = item["value"]
            if kind in _KINDS or (kind == "labels" and geometry is None and _geometry_kind(value)):
                if geometry is None:
                    geometry = (k, item, src, _KINDS.get(kind) or _geometry_kind(value))
            elif kind in _CLASSIFICATIONS:
                extra[str(item.get("from_name", kind))] = _classification(value, kind)
            elif kind != "labels":
                self.tally.add("FMT012", kind or "untyped", src, key)
            for label_key in _LABEL_KEYS:
                if isinstance(value.get(label_key), list) and labels is None:
                    labels = value[label_key]
        if geometry is None:
            if extra:  # classifications of the whole image
                k, item, src = items[0]
                self.tally.add("FMT012", "classification", src, key)
            return
        k, item, src, kind = geometry
        if not labels or not isinstance(labels[0], str) or not labels[0].strip():
            export.findings.append(finding("FMT004", f"{kind} region has no label; left out", src, image=key))
            return
        category = labels[0].strip()
        if len(labels) > 1:
            export.findings.append(finding("FMT014", f"region carries {len(labels)} labels "
                                           f"({', '.join(map(repr, labels))}); the first is used", src,
                                           image=key))
        rw, rh = item.get("original_width", width), item.get("original_height", height)
        if (rw, rh) != (width, height):
            export.findings.append(finding("FMT003", f"region's original size {rw}x{rh} differs from the "
                                           f"image's {width}x{height}; left out", src, image=key))
            return
        attributes = {"from_name": item.get("from_name"), "shape": kind}
        if item.get("origin") is not None:
            attributes["origin"] = item["origin"]
        if len(labels) > 1:
            attributes["labels"] = list(labels)
        rotation = item["value"].get("rotation", 0) or 0
        if _number(rotation) and rotation:
            attributes["rotation"] = float(rotation)
        for name, value in extra.items():
            if name.lower() in ("occluded", "occlusion") and isinstance(value, (str, bool)):
                flag = value if isinstance(value, bool) else value.strip().lower() in (
                    "occluded", "true", "yes", "1")
                attributes["occluded"] = flag
                if name != "occluded":
                    attributes[name] = value
            else:
                attributes[name] = value
        attributes = normalise_attributes(attributes)
        common = dict(annotator=export.annotator, image=key, category=category, source=src,
                      attributes=attributes)
        value = item["value"]
        if kind == "brush":
            rle, problem = _brush(value, height, width)
            if problem:
                code = "FMT003" if "expected height" in problem else "FMT002"
                export.findings.append(finding(code, problem, src, image=key))
                return
            export.objects.append(Object(kind="rle", rle=rle, **common))
        else:
            points, problem = _polygon(kind, value, width, height)
            if problem:
                export.findings.append(finding("FMT001", problem, src, image=key))
                return
            export.objects.append(Object(kind="polygon", polygons=(points,), **common))
        export.categories.setdefault(category, Category(name=category))

    def exports_list(self) -> list[Export]:
        exports = list(self.exports.values()) or [Export(annotator="", path=self.path, format=NAME)]
        exports[0].findings[:0] = self.file_findings
        exports[0].findings.extend(self.tally.findings(_NOT_AREAS, noun="region"))
        by = ", ".join(f"{name} {n}" for name, n in sorted(self.cancelled_by.items()))
        exports[0].findings.extend(self.cancelled.findings({"cancelled": f"was_cancelled is set ({by})"},
                                                           noun="annotation"))
        return exports


def _geometry_kind(value: dict) -> str | None:
    if "points" in value:
        return "polygon"
    if "rle" in value:
        return "brush"
    if "radiusX" in value:
        return "ellipse"
    if all(k in value for k in ("x", "y", "width", "height")):
        return "rectangle"
    return None


def _classification(value: dict, kind: str):
    raw = value.get(kind if kind != "textarea" else "text", value)
    if isinstance(raw, list) and len(raw) == 1:
        return raw[0]
    return raw


def _polygon(kind: str, value: dict, width: int, height: int):
    with np.errstate(over="ignore", invalid="ignore"):  # 1e306 percent: huge or infinite, reported as FMT001
        return _scaled_polygon(kind, value, width, height)


def _scaled_polygon(kind: str, value: dict, width: int, height: int):
    sx, sy = width / 100.0, height / 100.0
    if kind == "polygon":
        points = value.get("points")
        if not isinstance(points, list) or not all(
                isinstance(p, list) and len(p) == 2 and all(_number(v) for v in p) for p in points):
            return None, "polygon 'points' must be a list of [x, y] percentages"
        arr = np.array(points, dtype=np.float64).reshape(-1, 2) * (sx, sy)
        return arr, polygon_problem(arr)
    if kind == "rectangle":
        coords = [value.get(k) for k in ("x", "y", "width", "height")]
        if not all(_number(v) for v in coords) or coords[2] <= 0 or coords[3] <= 0:
            return None, "rectangle needs numeric 'x', 'y' and positive 'width', 'height'"
        rotation = value.get("rotation", 0) or 0
        if not _number(rotation):
            return None, "rectangle 'rotation' is not a number"
        x0, y0 = coords[0] * sx, coords[1] * sy
        arr = box_polygon(x0, y0, x0 + coords[2] * sx, y0 + coords[3] * sy, rotation=float(rotation),
                          pivot=(x0, y0))
        return arr, None
    coords = [value.get(k) for k in ("x", "y", "radiusX", "radiusY")]
    if not all(_number(v) for v in coords) or coords[2] <= 0 or coords[3] <= 0:
        return None, "ellipse needs numeric 'x', 'y' and positive 'radiusX', 'radiusY'"
    rotation = value.get("rotation", 0) or 0
    if not _number(rotation):
        return None, "ellipse 'rotation' is not a number"
    arr = ellipse_polygon(coords[0] * sx, coords[1] * sy, coords[2] * sx, coords[3] * sy,
                          rotation=float(rotation))
    return arr, None


def _brush(value: dict, height: int, width: int):
    from qa.formats._ls_rle import decode_mask, to_coco_rle

    fmt = value.get("format", "rle")
    if fmt != "rle" or not isinstance(value.get("rle"), list):
        return None, f"brush region needs format 'rle' and an 'rle' byte list (format is {fmt!r})"
    mask, problem = decode_mask(value["rle"], height, width)
    if problem:
        return None, problem
    return to_coco_rle(mask), None


def read(path: Path, *, limits: Limits, options: dict, units=KEEP) -> list[Export]:
    """Read a Label Studio JSON export; see the module docstring. ``units``: whether objects are kept or
    recorded for an index (:mod:`qa.formats._units`; the file is then streamed, a task at a time).

    Parameters
    ----------
    path : pathlib.Path
        The ``.json`` export (a list of tasks).
    limits : Limits
        Size bounds for the images' ``original_width`` x ``original_height``.
    options : dict
        ``annotators``: ``{user id: name}`` to rename ``completed_by`` ids; ``image_field``: the
        ``data`` key holding the image (default ``image``).

    Returns
    -------
    list of Export
        One per annotator found in ``completed_by``.

    Raises
    ------
    InputError
        When the file is not JSON (with line and column) or its top level is not a list.
    """
    document = open_document(path, streamed=units.recording)
    try:
        if document.kind != "list":
            raise InputError(f"top level is a JSON {document.kind}, expected a list of tasks "
                             "(Label Studio JSON export)", path=path)
        reader = _Reader(path, limits, options, units)
        for ti, span, task in document.items():
            units.begin(ti, span)
            reader.task(ti, task)
            units.end()
        exports = reader.exports_list()
        units.finish()
        return exports
    finally:
        close_document(document)
