"""LabelMe: the JSON per image that the labelme desktop tool writes, and the older LabelMe XML.

An export is a file or a folder of files:

- a **labelme JSON** (``shapes``, ``imagePath``, ``imageHeight``, ``imageWidth``) per image.
  ``polygon`` shapes are read as written; ``rectangle`` (two corners) becomes a 4-point polygon,
  ``circle`` (centre and a point on the circle) an inscribed polygon within 0.25 px. ``line``,
  ``linestrip``, ``point`` and ``points`` are not areas (``FMT012`` info findings) and ``mask`` shapes
  are not read (a warning). ``group_id`` becomes ``group``, the shape's ``flags`` (for example
  ``{"occluded": true}``) and ``description`` go into the attributes. The image key is ``imagePath``
  relative to the JSON, or its file name when it leaves the export's folder (``../images/a.jpg``).
- a **LabelMe XML** (the MIT web tool's ``<annotation>``: ``<filename>``, ``<imagesize>``, and
  ``<object>`` with ``<name>``, ``<deleted>``, ``<occluded>``, ``<polygon><username>`` and
  ``<pt><x><y>``). Objects with ``deleted`` = 1 are left out (one ``FMT013`` info finding);
  ``occluded`` yes/no becomes a bool and ``username`` is kept in the attributes. The image key is
  ``<filename>``; ``<folder>`` (the LabelMe collection) is not part of it. Several files naming one
  image (one file per object) are merged.

Annotators: a file, or a folder holding LabelMe files, is one annotator (named on the command line or
after the folder). A folder whose files sit in subfolders gives one export per subfolder, named after
the single ``username`` found in it, else after the subfolder. The manifest option
``annotators = "username"`` instead splits whatever is read by ``<username>``.

References
----------
labelme (wkentaro/labelme) ``labelme/label_file.py`` (the JSON fields) and ``labelme/utils/shape.py``
(``shape_to_mask``: rectangles by two corners, circles by centre and a point on the circle).
B. C. Russell, A. Torralba, K. P. Murphy, W. T. Freeman, "LabelMe: a database and web-based tool for
image annotation", IJCV 77 (2008), doi:10.1007/s11263-007-0090-8; LabelMe toolbox ``LMread.m``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from qa.errors import InputError
from qa.formats._findings import finding
from qa.formats._geometry import box_polygon, ellipse_polygon, finite_number, polygon_problem
from qa.formats._json import read_json
from qa.formats._safe import normalise_name, resolve_inside, size_problem, unsafe_reason
from qa.formats._tally import SkipTally
from qa.formats._xml import parse, sniff_root, text
from qa.formats.coco import normalise_attributes
from qa.model import Category, Export, Image, Limits, Object, Source

NAME = "labelme"

_SNIFF_FILES = 20
_NOT_AREAS = {
    "line": "lines are not areas",
    "linestrip": "line strips are not areas",
    "point": "points are not areas",
    "points": "points are not areas",
    "deleted": "marked deleted in LabelMe",
}


def _is_labelme_json(path: Path) -> bool:
    try:
        doc = read_json(path)
    except InputError:
        return False
    return isinstance(doc, dict) and isinstance(doc.get("shapes"), list) and (
        "imagePath" in doc or "imageHeight" in doc)


def _is_labelme_file(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return sniff_root(path)[0] == "annotation"
    if suffix == ".json":
        return _is_labelme_json(path)
    return False


def _candidates(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".json", ".xml"))
    except OSError:
        return []


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def _folder_has_labelme(folder: Path) -> bool:
    return any(_is_labelme_file(p) for p in _candidates(folder)[:_SNIFF_FILES])


def sniff(path: Path) -> bool:
    """Whether ``path`` is a LabelMe file, a folder of them, or a folder of such folders."""
    if path.is_file():
        return _is_labelme_file(path)
    if not path.is_dir():
        return False
    if _folder_has_labelme(path):
        return True
    return any(_folder_has_labelme(sub) for sub in _subfolders(path)[:_SNIFF_FILES])


def _as_int(raw):
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return raw
    return int(value) if value.is_integer() else raw


class _Collector:
    """Images and objects read from the files of one export (before any split by username)."""

    def __init__(self, root: Path, limits: Limits):
        self.root = root
        self.limits = limits
        self.images: dict[str, Image] = {}
        self.objects: list[Object] = []
        self.findings: list = []
        self.tally = SkipTally()
        self.categories: dict[str, Category] = {}

    def image(self, key: str, file_name: str, width, height, src: Source, path: Path | None) -> Image | None:
        problem = size_problem(width, height, self.limits)
        if problem:
            code = "FMT008" if "exceeds" in problem else "FMT011"
            self.findings.append(finding(code, f"{problem}; file left out", src, image=key))
            return None
        width, height = int(width), int(height)
        known = self.images.get(key)
        if known is not None:
            if (known.width, known.height) != (width, height):
                self.findings.append(finding(
                    "FMT003", f"image {key!r} is {width}x{height} here but {known.width}x{known.height} in "
                    f"{known.source.file if known.source else 'another file'}; file left out", src, image=key))
                return None
            return known
        image = Image(key=key, file_name=file_name, width=width, height=height, path=path, source=src)
        self.images[key] = image
        return image

    def add(self, obj: Object) -> None:
        self.objects.append(obj)
        self.categories.setdefault(obj.category, Category(name=obj.category))

    # --- labelme JSON ---------------------------------------------------------------------------

    def read_json(self, path: Path) -> None:
        doc = read_json(path)
        file = str(path)
        src = Source(file, None, None, "")
        if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
            raise InputError("not a labelme JSON: expected an object with a 'shapes' list", path=path)
        ref = doc.get("imagePath")
        if not isinstance(ref, str) or not ref.strip():
            ref = path.with_suffix(".jpg").name
            self.findings.append(finding("FMT014", f"no 'imagePath'; the image is keyed as {ref!r}", src,
                                         image=ref))
        rel_dir = path.parent.relative_to(self.root) if path.parent != self.root else Path()
        joined = normalise_name(str(PurePosixPath(rel_dir.as_posix()) / ref.replace("\\", "/")))
        if unsafe_reason(joined) is None:
            key = normalise_name(joined).lstrip("./")
            on_disk = resolve_inside(self.root, key)
        else:
            key = PurePosixPath(normalise_name(ref)).name
            on_disk = None
        image = self.image(key, ref, doc.get("imageWidth"), doc.get("imageHeight"),
                           Source(file, None, None, "imageWidth"),
                           on_disk if on_disk is not None and on_disk.is_file() else None)
        if image is None:
            return
        for k, shape in enumerate(doc["shapes"]):
            self._shape(shape, Source(file, k, None, "shapes"), image)

    def _shape(self, shape, src: Source, image: Image) -> None:
        if not isinstance(shape, dict):
            self.findings.append(finding("FMT011", "shape is not an object", src, image=image.key))
            return
        kind = str(shape.get("shape_type") or "polygon").lower()
        if kind in _NOT_AREAS:
            self.tally.add("FMT012", kind, src, image.key)
            return
        if kind not in ("polygon", "rectangle", "circle"):
            reason = "mask shapes are not read" if kind == "mask" else f"unknown shape_type {kind!r}"
            self.findings.append(finding("FMT015", f"{reason}; shape left out", src, image=image.key))
            return
        label = shape.get("label")
        if not isinstance(label, str) or not label.strip():
            self.findings.append(finding("FMT004", f"{kind} has no label; left out", src, image=image.key))
            return
        points = shape.get("points")
        if not isinstance(points, list) or not all(
                isinstance(p, list) and len(p) == 2 and all(finite_number(v) for v in p) for p in points):
            self.findings.append(finding("FMT001", f"{kind} 'points' must be a list of [x, y] numbers", src,
                                         image=image.key))
            return
        arr = np.array(points, dtype=np.float64).reshape(-1, 2)
        problem = None
        if kind == "rectangle" and len(arr) == 2:
            (x0, y0), (x1, y1) = arr.min(axis=0), arr.max(axis=0)
            if x1 <= x0 or y1 <= y0:
                problem = "rectangle has no area"
            else:
                arr = box_polygon(x0, y0, x1, y1)
        elif kind == "circle":
            if len(arr) != 2:
                problem = f"circle needs 2 points (centre and a point on the circle), has {len(arr)}"
            else:
                with np.errstate(over="ignore"):  # points 1e308 apart: an infinite radius, reported below
                    r = float(np.hypot(*(arr[1] - arr[0])))
                if r <= 0:
                    problem = "circle has radius 0"
                else:
                    arr = ellipse_polygon(arr[0, 0], arr[0, 1], r, r)
        if problem is None:
            problem = polygon_problem(arr)
        if problem:
            self.findings.append(finding("FMT001", problem, src, image=image.key))
            return
        attributes: dict = {"shape": kind}
        flags = shape.get("flags")
        if isinstance(flags, dict):
            attributes.update({str(k): v for k, v in flags.items()})
        if shape.get("group_id") is not None:
            attributes["group"] = shape["group_id"]
        if isinstance(shape.get("description"), str) and shape["description"].strip():
            attributes["description"] = shape["description"]
        self.add(Object(annotator="", image=image.key, category=label.strip(), kind="polygon", source=src,
                        polygons=(arr,), attributes=normalise_attributes(attributes)))

    # --- LabelMe XML ----------------------------------------------------------------------------

    def read_xml(self, path: Path) -> None:
        root = parse(path)
        file = str(path)
        if root.tag != "annotation":
            raise InputError(f"root element is <{root.tag}>, expected <annotation> (LabelMe XML)", path=path)
        name = text(root, "filename")
        src = Source(file, None, None, "filename")
        if not name:
            self.findings.append(finding("FMT011", "no <filename>; file left out", src))
            return
        reason = unsafe_reason(name)
        if reason:
            self.findings.append(finding("FMT007", f"{reason}; file left out", src))
            return
        key = normalise_name(name)
        size = root.find("imagesize")
        width, height = text(size, "ncols"), text(size, "nrows")
        if not width or not height:
            self.findings.append(finding("FMT011", "no <imagesize> with <nrows> and <ncols>, so the image size "
                                         "is unknown; file left out", Source(file, None, None, "imagesize"),
                                         image=key))
            return
        on_disk = resolve_inside(path.parent, name)
        image = self.image(key, name, _as_int(width), _as_int(height), Source(file, None, None, "imagesize"),
                           on_disk if on_disk is not None and on_disk.is_file() else None)
        if image is None:
            return
        for k, obj in enumerate(root.findall("object")):
            self._xml_object(obj, Source(file, k, text(obj, "id") or None, "object"), image)

    def _xml_object(self, obj, src: Source, image: Image) -> None:
        if text(obj, "deleted") == "1":
            self.tally.add("FMT013", "deleted", src, image.key)
            return
        label = text(obj, "name")
        if not label:
            self.findings.append(finding("FMT004", "object has no <name>; left out", src, image=image.key))
            return
        polygon = obj.find("polygon")
        if polygon is None:
            what = "a <segm> mask, which is not read" if obj.find("segm") is not None else "no <polygon>"
            self.findings.append(finding("FMT015", f"object has {what}; left out", src, image=image.key))
            return
        coords = []
        for pt in polygon.findall("pt"):
            try:
                coords.append((float(text(pt, "x")), float(text(pt, "y"))))
            except ValueError:
                self.findings.append(finding("FMT001", "polygon point is not a number pair", src,
                                             image=image.key))
                return
        arr = np.array(coords, dtype=np.float64).reshape(-1, 2)
        problem = polygon_problem(arr)
        if problem:
            self.findings.append(finding("FMT001", problem, src, image=image.key))
            return
        attributes: dict = {"shape": "polygon"}
        occluded = text(obj, "occluded").lower()
        if occluded:
            attributes["occluded"] = occluded in ("yes", "1", "true")
        username = text(polygon, "username")
        if username:
            attributes["username"] = username
        free = text(obj, "attributes")
        if free:
            attributes["attributes"] = free
        if text(obj, "verified"):
            attributes["verified"] = text(obj, "verified") == "1"
        self.add(Object(annotator="", image=image.key, category=label, kind="polygon", source=src,
                        polygons=(arr,), attributes=attributes))

    # --- to exports -----------------------------------------------------------------------------

    def exports(self, path: Path, *, split_by_username: bool, name: str = "") -> list[Export]:
        findings = self.findings + self.tally.findings(_NOT_AREAS, nouns={"deleted": "object"})
        if not split_by_username:
            export = Export(annotator=name, path=path, format=NAME, images=dict(self.images),
                            categories=dict(self.categories), objects=list(self.objects), findings=findings)
            return [export]
        by_user: dict[str, Export] = {}
        for obj in self.objects:
            user = str(obj.attributes.get("username", ""))
            export = by_user.setdefault(user, Export(annotator=user, path=path, format=NAME))
            export.images.setdefault(obj.image, self.images[obj.image])
            export.categories.setdefault(obj.category, self.categories[obj.category])
            export.objects.append(obj)
        exports = list(by_user.values()) or [Export(annotator=name, path=path, format=NAME,
                                                    images=dict(self.images))]
        exports[0].findings.extend(findings)
        return exports


def _is_xml(path: Path) -> bool:
    """By suffix, or for other suffixes by content (the first non-blank byte is ``<``)."""
    suffix = path.suffix.lower()
    if suffix in (".xml", ".json"):
        return suffix == ".xml"
    from qa.formats._xml import read_head

    return read_head(path, 256).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def _read_files(files: list[Path], root: Path, limits: Limits, *, inside: bool = True) -> _Collector:
    """Read ``files``; with ``inside``, a file whose path resolves outside ``root`` (a symbolic link out of
    the export's folder) is left out with an ``FMT007`` error instead."""
    collector = _Collector(root, limits)
    for file in files:
        if inside and resolve_inside(root, file.name) is None:
            collector.findings.append(finding("FMT007", f"{file.name} resolves outside the export's folder; "
                                              "left out", Source(str(file))))
            continue
        if _is_xml(file):
            if sniff_root(file)[0] != "annotation":
                collector.findings.append(finding("FMT015", "not a LabelMe XML file (root is not "
                                                  "<annotation>); ignored", Source(str(file))))
                continue
            collector.read_xml(file)
        else:
            if not _is_labelme_json(file):
                read_json(file)  # raises InputError when the file is not JSON at all
                collector.findings.append(finding("FMT015", "not a labelme JSON file (no 'shapes' list); "
                                                  "ignored", Source(str(file))))
                continue
            collector.read_json(file)
    return collector


def _single_username(collector: _Collector) -> str:
    users = {str(o.attributes.get("username", "")) for o in collector.objects}
    return users.pop() if len(users) == 1 and "" not in users else ""


def read(path: Path, *, limits: Limits, options: dict) -> list[Export]:
    """Read a LabelMe file or folder; see the module docstring.

    Parameters
    ----------
    path : pathlib.Path
        A labelme JSON, a LabelMe XML, a folder of them, or a folder of such folders.
    limits : Limits
        Size bounds for the declared images.
    options : dict
        ``annotators``: ``"folder"`` (default) or ``"username"`` (split by ``<username>``).

    Returns
    -------
    list of Export
        One per annotator (see the module docstring).

    Raises
    ------
    InputError
        When a file is not valid JSON or XML (with line and column), or a folder holds no LabelMe file.
    """
    mode = options.get("annotators", "folder")
    if mode not in ("folder", "username"):
        raise InputError(f"option annotators={mode!r} is not 'folder' or 'username'", path=path)
    split = mode == "username"
    if path.is_file():  # a file given on the command line is read wherever it lives
        return _read_files([path], path.parent, limits, inside=False).exports(path, split_by_username=split)
    files = _candidates(path)
    subfolders = []
    if not any(_is_labelme_file(p) for p in files):
        subfolders = [sub for sub in _subfolders(path) if any(_is_labelme_file(p) for p in _candidates(sub))]
    if files and not subfolders:
        return _read_files(files, path, limits).exports(path, split_by_username=split)
    if not subfolders:
        raise InputError("holds no LabelMe .json or .xml files, directly or one folder down", path=path)
    outside = [sub for sub in subfolders if resolve_inside(path, sub.name) is None]
    subfolders = [sub for sub in subfolders if sub not in outside]
    if not subfolders:
        raise InputError(f"its LabelMe folders ({', '.join(sub.name for sub in outside)}) resolve outside it "
                         "through symbolic links; pass them as exports of their own", path=path)
    exports = []
    for sub in subfolders:
        collector = _read_files(_candidates(sub), sub, limits)
        name = "" if split else (_single_username(collector) or sub.name)
        exports.extend(collector.exports(sub, split_by_username=split, name=name))
    exports[0].findings[:0] = [finding("FMT007", f"folder {sub.name} resolves outside the export's folder; left "
                                          "out", Source(str(sub))) for sub in outside]
    names = [e.annotator for e in exports]
    if not split and len(set(names)) < len(names):
        for export in exports:  # two subfolders by one user: fall back to the folder names
            export.annotator = export.path.name
    return exports
