"""CVAT for images 1.1 XML: task, job and project exports.

The file is streamed (``iterparse``), one ``<image>`` at a time, so memory does not grow with the task.
What is read, per shape inside ``<image id name width height>``:

- ``<polygon points="x,y;x,y;...">``: a polygon, vertices as written.
- ``<box xtl ytl xbr ybr rotation>``: a 4-point polygon of its corners, turned ``rotation`` degrees
  clockwise about the box centre (CVAT's convention); ``attributes["shape"] = "box"``.
- ``<ellipse cx cy rx ry rotation>``: an inscribed polygon within 0.25 px of the ellipse.
- ``<mask rle left top width height>``: CVAT's run lengths over the mask's box (row-major, starting
  with background) placed in the image and re-encoded as a COCO RLE of the image size.
- ``<polyline>``, ``<points>``, ``<cuboid>``, ``<skeleton>`` and ``<tag>`` are not areas: they are
  counted and reported once per kind as info findings (``FMT012``) and left out.

CVAT has no multi-part polygon: the parts of one object (a car split by a pole, a building behind a tree)
are shapes that share a ``group_id``. Polygon shapes (polygon, box, ellipse) of one image with the same
non-zero ``group_id`` and label are read as one object with several polygon parts (:func:`merge_groups`), as
CVAT's COCO export (datumaro's ``find_instances``) writes each group as one annotation; the first shape
gives the object its source and attributes, and ``attributes["shapes"]`` counts the shapes joined. Shapes
of another label in the group stay objects of their own.

Per shape, ``occluded`` (bool), ``z_order`` (int), ``group_id`` (as ``group``, int), ``source``
(``manual``, ``semi-auto``, ...), ``rotation`` and every ``<attribute name=...>`` go into
``Object.attributes``. Custom attributes are typed from the label's declaration in ``<meta>``:
``checkbox`` -> bool, ``number`` -> int or float, ``text``/``select``/``radio`` -> str. A custom
attribute whose name collides with one of the keys above is kept as ``"attribute:<name>"``.

Images of a project export carry a ``subset``; their key is ``<subset>/<name>`` because a project may
hold the same file name in several subsets. A ``<track>`` means a "CVAT for video" export, which is
refused with a hint.

References
----------
CVAT documentation, "CVAT for images 1.1" format (docs.cvat.ai, Formats > CVAT).
Reference code: openvinotoolkit/datumaro ``datumaro/plugins/coco_format/converter.py``
(``_InstancesConverter.find_instances`` and ``find_instance_parts``: one COCO annotation per group).
Reference code: cvat-ai/cvat ``cvat/apps/dataset_manager/formats/cvat.py`` (``dump_as_cvat_annotation``
writes masks as ``rle``, ``left``, ``top``, ``width``, ``height``); cvat-ai/cvat#5828 (the mask RLE is
row-major over the box, starting with a background run).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from qa.errors import InputError
from qa.formats._findings import finding
from qa.formats._geometry import bounds_problem, box_polygon, ellipse_polygon, polygon_problem
from qa.formats._safe import normalise_name, resolve_inside, size_problem, unsafe_reason
from qa.formats._tally import SkipTally
from qa.formats._units import KEEP
from qa.formats._xml import declaration, iterparse_spans, read_head, sniff_root
from qa.model import Category, Export, Image, Limits, Object, Source

NAME = "cvat"

_AREAS = {"polygon", "box", "ellipse", "mask"}
_NOT_AREAS = {
    "polyline": "polylines are not areas",
    "points": "points are not areas",
    "cuboid": "cuboids are not read",
    "skeleton": "skeletons are keypoints, not areas",
    "tag": "tags label the whole image",
}
_BUILTIN_KEYS = {"occluded", "z_order", "group", "source", "shape", "rotation"}


def sniff(path: Path) -> bool:
    """Whether ``path`` is a CVAT XML file: root ``<annotations>`` with a ``<version>`` or ``<meta>``."""
    if not path.is_file() or path.suffix.lower() != ".xml":
        return False
    root, head = sniff_root(path)
    return root == "annotations" and (b"<version>" in head or b"<meta>" in head or b"<image" in head)


def _float(elem, key: str):
    raw = elem.get(key)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _int(raw):
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:  # also a string of more than 4300 digits
        try:
            value = float(raw)
        except ValueError:
            return None
        return int(value) if value.is_integer() else None


def _points(raw: str | None):
    """``"x,y;x,y"`` as an ``(n, 2)`` array, or an error message."""
    if raw is None or not raw.strip():
        return None, "shape has no 'points'"
    try:
        pairs = [p.split(",") for p in raw.strip().strip(";").split(";")]
        if any(len(p) != 2 for p in pairs):
            return None, "'points' must be 'x,y' pairs separated by ';'"
        arr = np.array(pairs, dtype=np.float64)
    except ValueError:
        return None, "'points' holds a value that is not a number"
    return arr.reshape(-1, 2), None


def _typed(value: str, input_type: str | None):
    """A custom attribute's text as the type its declaration gives, or (text, problem)."""
    if input_type == "checkbox":
        low = value.strip().lower()
        if low in ("true", "1", "yes"):
            return True, None
        if low in ("false", "0", "no", ""):
            return False, None
        return value, f"checkbox value {value!r} is neither true nor false; kept as text"
    if input_type == "number":
        text = value.strip()
        try:
            return int(text), None
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return value, f"number value {value!r} is not a number; kept as text"
        return number, None
    return value, None


def _read_meta(meta) -> dict[str, dict[str, str]]:
    """Declared labels and, for each, its attributes' input types."""
    labels: dict[str, dict[str, str]] = {}
    for label in meta.iter("label"):
        name_el = label.find("name")
        if name_el is None or name_el.text is None:
            continue
        specs = {}
        for attribute in label.iter("attribute"):
            a_name = attribute.findtext("name")
            if a_name:
                specs[a_name.strip()] = (attribute.findtext("input_type") or "").strip()
        labels.setdefault(name_el.text.strip(), {}).update(specs)
    return labels


def _image_path(folder: Path, name: str, subset: str | None) -> Path | None:
    candidates = ([f"images/{subset}/{name}"] if subset else []) + [f"images/{name}", name]
    for candidate in candidates:
        found = resolve_inside(folder, candidate)
        if found is not None and found.is_file():
            return found
    return None


def _mask_rle(shape, image: Image):
    """A CVAT ``<mask>`` as a COCO RLE of the image size, or (None, (code, message))."""
    from qa.formats._crop_rle import crop_to_coco_rle

    box = [_int(shape.get(k)) for k in ("left", "top", "width", "height")]
    if any(v is None for v in box):
        return None, ("FMT011", "mask needs integer 'left', 'top', 'width' and 'height'")
    left, top, w, h = box
    if w <= 0 or h <= 0:
        return None, ("FMT002", f"mask box {w}x{h} is empty")
    if left < 0 or top < 0 or left + w > image.width or top + h > image.height:
        return None, ("FMT003", f"mask box {w}x{h} at ({left}, {top}) reaches outside the "
                                f"{image.width}x{image.height} image")
    raw = shape.get("rle")
    if raw is None:
        return None, ("FMT011", "mask has no 'rle'")
    try:
        runs = np.array([t for t in raw.replace(" ", "").split(",") if t != ""], dtype=np.int64)
    except (ValueError, OverflowError):
        return None, ("FMT002", "mask 'rle' holds a value that is not an integer")
    if (runs < 0).any():
        return None, ("FMT002", "mask 'rle' holds a negative run")
    total = int(runs.sum())
    if total != w * h:
        return None, ("FMT002", f"mask runs sum to {total}, expected width x height = {w}x{h} = {w * h}")
    values = (np.arange(len(runs)) & 1).astype(np.uint8)
    crop = np.repeat(values, runs).reshape(h, w)
    return crop_to_coco_rle(crop, left, top, image.height, image.width), None


_COUNTED = ("polygon", "box", "ellipse", "mask")
"""The shapes whose running counts (their ``Source.index``) a chunk's reader starts from."""


class _Reader:
    """State of one file being read: declared labels, counters, findings. Also reads a chunk's
    ``<image>`` elements again (:mod:`qa.formats._index`), from the state the index noted for each."""

    def __init__(self, path: Path, limits: Limits, units=KEEP):
        self.path = path
        self.file = str(path)
        self.limits = limits
        self.units = units
        self.export = Export(annotator="", path=path, format=NAME)
        units.adopt(self.export, "")
        self.labels: dict[str, dict[str, str]] | None = None
        self.metas: list = [None]   # the labels after each <meta> (the first: none yet)
        self.tag_counts: dict[str, int] = {}
        self.image_index = 0
        self.tally = SkipTally()

    def state(self) -> tuple:
        """What :meth:`image` reads of the file so far: image index, shape counts, which <meta>."""
        return (self.image_index, *(self.tag_counts.get(t, 0) for t in _COUNTED), len(self.metas) - 1)

    def restore(self, state) -> None:
        self.image_index = int(state[0])
        self.tag_counts = {t: int(n) for t, n in zip(_COUNTED, state[1:1 + len(_COUNTED)])}
        self.labels = self.metas[int(state[-1])]

    def add(self, f) -> None:
        self.export.findings.append(f)

    def meta(self, elem) -> None:
        labels = _read_meta(elem)
        self.labels = labels or None
        self.metas.append(self.labels)
        for name in labels:
            self.export.categories.setdefault(name, Category(name=name))

    def image(self, elem) -> None:
        index = self.image_index
        self.image_index += 1
        src = Source(self.file, index, elem.get("id"), "image")
        name = elem.get("name")
        if not name:
            self.add(finding("FMT011", "image has no 'name'; image and its shapes left out", src))
            self._skip_shapes(elem)
            return
        reason = unsafe_reason(name)
        if reason:
            self.add(finding("FMT007", f"{reason}; image and its shapes left out", src))
            self._skip_shapes(elem)
            return
        width, height = _int(elem.get("width")), _int(elem.get("height"))
        problem = size_problem(width if width is not None else elem.get("width"),
                               height if height is not None else elem.get("height"), self.limits)
        subset = elem.get("subset") or None
        key = normalise_name(f"{subset}/{name}" if subset else name)
        if problem:
            code = "FMT008" if "exceeds" in problem else "FMT011"
            self.add(finding(code, f"{problem}; image and its shapes left out", src, image=key))
            self._skip_shapes(elem)
            return
        if key in self.export.images:
            self.add(finding("FMT005", f"image {key!r} appears twice; the first is kept", src, image=key))
            self._skip_shapes(elem)
            return
        image = Image(key=key, file_name=name, width=width, height=height,
                      path=_image_path(self.path.parent, name, subset), source=src)
        self.export.images[key] = image
        self.units.touch(self.export, key)
        first = len(self.export.objects)
        for shape in elem:
            self.shape(shape, image)
        self.export.objects[first:] = merge_groups(self.export.objects[first:])

    def _skip_shapes(self, elem) -> None:
        for shape in elem:
            self._next_source(shape.tag)

    def _next_source(self, tag: str) -> Source:
        k = self.tag_counts.get(tag, 0)
        self.tag_counts[tag] = k + 1
        return Source(self.file, k, None, tag)

    def shape(self, shape, image: Image) -> None:
        tag = shape.tag
        src = self._next_source(tag)
        if tag not in _AREAS:
            self.tally.add("FMT012", tag, src, image.key)
            return
        label = (shape.get("label") or "").strip()
        if not label:
            self._bad("FMT004", f"{tag} has no label; left out", src, image)
            return
        if self.labels is not None and label not in self.labels:
            self._bad("FMT004", f"label {label!r} is not declared in <meta>; {tag} left out", src, image)
            return
        attributes = self._attributes(shape, label, tag, src, image)
        common = dict(annotator="", image=image.key, category=label, source=src, attributes=attributes)
        if tag == "mask":
            rle, problem = _mask_rle(shape, image)
            if problem:
                self._bad(problem[0], problem[1], src, image)
                return
            self.export.objects.append(Object(kind="rle", rle=rle, **common))
            self.export.categories.setdefault(label, Category(name=label))
            return
        if tag == "polygon":
            points, problem = _points(shape.get("points"))
        elif tag == "box":
            coords = [_float(shape, k) for k in ("xtl", "ytl", "xbr", "ybr")]
            if any(v is None for v in coords):
                points, problem = None, "box needs numeric 'xtl', 'ytl', 'xbr' and 'ybr'"
            elif coords[2] <= coords[0] or coords[3] <= coords[1]:
                points, problem = None, (f"box has no area (xtl={coords[0]:g}, ytl={coords[1]:g}, "
                                         f"xbr={coords[2]:g}, ybr={coords[3]:g})")
            else:
                points = box_polygon(*coords, rotation=attributes.get("rotation", 0.0))
                problem = None
        else:  # ellipse
            coords = [_float(shape, k) for k in ("cx", "cy", "rx", "ry")]
            if any(v is None for v in coords) or coords[2] <= 0 or coords[3] <= 0:
                points, problem = None, "ellipse needs numeric 'cx', 'cy' and positive 'rx', 'ry'"
            else:
                points = ellipse_polygon(*coords, rotation=attributes.get("rotation", 0.0))
                problem = None
        if problem is None:
            problem = polygon_problem(points) or bounds_problem((points,), image.width, image.height, what=tag)
        if problem:  # checked before a group joins the shapes, so the finding names this shape
            self._bad("FMT001", problem, src, image)
            return
        self.export.objects.append(Object(kind="polygon", polygons=(points,), **common))
        self.export.categories.setdefault(label, Category(name=label))

    def _bad(self, code: str, message: str, src: Source, image: Image) -> None:
        self.add(finding(code, f"{message} (image {image.key!r})", src, image=image.key))

    def _attributes(self, shape, label: str, tag: str, src: Source, image: Image) -> dict:
        attributes: dict = {"shape": tag}
        occluded = shape.get("occluded")
        if occluded is not None:  # a value that is not 0/1 (true/false) stays text: FMT016 (qa.formats._bounds)
            attributes["occluded"] = {"1": True, "true": True, "yes": True, "0": False, "false": False,
                                      "no": False}.get(occluded.strip().lower(), occluded)
        for key, out in (("z_order", "z_order"), ("group_id", "group")):
            raw = shape.get(key)
            if raw is not None:
                value = _int(raw)
                attributes[out] = value if value is not None else raw
        if shape.get("source") is not None:
            attributes["source"] = shape.get("source")
        rotation = _float(shape, "rotation")
        if rotation:
            attributes["rotation"] = rotation
        specs = (self.labels or {}).get(label, {})
        for attribute in shape.findall("attribute"):
            name = attribute.get("name")
            if not name:
                continue
            value, problem = _typed(attribute.text or "", specs.get(name))
            if problem:
                self._bad("FMT014", f"attribute {name!r}: {problem}", src, image)
            attributes[f"attribute:{name}" if name in _BUILTIN_KEYS else name] = value
        return attributes


def merge_groups(objects: list[Object]) -> list[Object]:
    """One image's objects with the polygon shapes of one group and label joined into one object.

    The first shape of each group and label becomes the object: it keeps its source, attributes and
    place in the list, takes the other shapes' outlines as further polygon parts, and records the
    number of shapes joined in ``attributes["shapes"]``. Group 0 (or none) means no group; masks and
    shapes of other labels in the group stay objects of their own.

    Examples
    --------
    >>> from qa.model import Source
    >>> part = lambda x, g: Object(annotator="", image="a", category="wall", kind="polygon",
    ...     source=Source("f", x, None, "polygon"), polygons=(np.array([[x, 0], [x + 1, 0], [x, 1]]),),
    ...     attributes={"group": g})
    >>> [(o.source.index, len(o.polygons)) for o in merge_groups([part(0, 5), part(1, 0), part(2, 5)])]
    [(0, 2), (1, 1)]
    """
    out: list[Object] = []
    leaders: dict[tuple, Object] = {}
    for obj in objects:
        group = obj.attributes.get("group")
        if obj.kind != "polygon" or not isinstance(group, int) or group == 0:
            out.append(obj)
            continue
        leader = leaders.get((group, obj.category))
        if leader is None:
            leaders[(group, obj.category)] = obj
            out.append(obj)
            continue
        leader.polygons = (*leader.polygons, *obj.polygons)
        leader.attributes["shapes"] = leader.attributes.get("shapes", 1) + 1
    return out


def read(path: Path, *, limits: Limits, options: dict, units=KEEP) -> list[Export]:
    """Read one CVAT for images XML file; see the module docstring.

    Parameters
    ----------
    path : pathlib.Path
        The XML file.
    limits : Limits
        Size bounds for declared images.
    options : dict
        Unused.
    units : optional
        Whether objects are kept or recorded for an index (:mod:`qa.formats._units`; each ``<image>``
        is one unit).

    Returns
    -------
    list of Export
        One export; CVAT files do not name their annotator.

    Raises
    ------
    InputError
        When the file is not well-formed XML (with line and column), declares a DTD, has another root
        element, or is a CVAT for video export.
    """
    if units.recording:
        prolog = declaration(read_head(path, 4096))
        if prolog is None:
            raise NotStreamable("an XML file that is not UTF-8 (or ASCII-compatible) is read whole")
        units.remember("prolog", prolog)
    reader = _Reader(path, limits, units)
    root = None
    depth = 0
    for event, elem, span in iterparse_spans(path):
        if event == "start":
            depth += 1
            if root is None:
                root = elem
                if elem.tag != "annotations":
                    raise InputError(f"root element is <{elem.tag}>, expected <annotations> "
                                     "(CVAT for images 1.1)", path=path)
            continue
        depth -= 1
        if depth != 1:
            continue
        if elem.tag == "version":
            version = (elem.text or "").strip()
            if version not in ("1.1", "1.0"):
                reader.add(finding("FMT014", f"CVAT format version {version!r}, expected 1.1; read as 1.1",
                                   Source(reader.file, None, None, "version")))
        elif elem.tag == "meta":
            reader.meta(elem)
        elif elem.tag == "image":
            units.begin(reader.image_index, span, reader.state())
            reader.image(elem)
            units.end()
        elif elem.tag == "track":
            raise InputError("holds <track> elements: this is a 'CVAT for video' export; export the task "
                             "as 'CVAT for images 1.1'", path=path)
        root.clear()
    reader.export.findings.extend(reader.tally.findings(_NOT_AREAS))
    units.remember("metas", reader.metas)
    units.finish()
    return [reader.export]


class NotStreamable(Exception):
    """The export cannot be read a unit at a time (it is loaded whole instead)."""
