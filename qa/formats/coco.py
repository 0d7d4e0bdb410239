"""COCO instances: polygons, compressed and uncompressed RLE, crowd regions and CVAT attributes.

Also reads the multi-rater layout in which each copy of an image carries an ``annotator`` field: every
annotator named there becomes an export of its own.

The helpers :func:`read_categories` and :func:`read_images` are shared with the COCO panoptic loader.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from qa.errors import InputError
from qa.formats._document import Whole, check_members, close_document, open_document
from qa.formats._findings import finding
from qa.formats._geometry import finite_number
from qa.formats._json import sniff_json
from qa.formats._safe import normalise_name, size_problem, unsafe_reason
from qa.formats._tally import SkipTally
from qa.formats._units import KEEP
from qa.model import Category, Export, Image, Limits, Object, Source

NAME = "coco"

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


_TOP_LEVEL = ("images", "annotations", "categories")


def sniff(path: Path) -> bool:
    """A JSON object with at least two of COCO's top-level keys (so a broken COCO file gets COCO's errors)."""
    doc = sniff_json(path)
    return isinstance(doc, dict) and sum(key in doc for key in _TOP_LEVEL) >= 2


def _document(doc, path: Path) -> Whole:
    return doc if isinstance(doc, Whole) else Whole(doc, path)


def _require_list(doc, key: str, path: Path):
    """``(index, span, element)`` of the top-level list ``key`` (see :mod:`qa.formats._document`); an
    InputError when it is missing or not a list."""
    document = _document(doc, path)
    document.require_list(key)
    return document.items(key)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_id(value) -> bool:
    """Whether a value can be an id: an integer or a string (COCO uses integers; some tools write strings)."""
    return _is_int(value) or isinstance(value, str)


def _show(value, limit: int = 40) -> str:
    """A short repr of a value from an export, for a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def as_flag(value):
    """COCO's 0/1 flags (``iscrowd``, ``isthing``) as bool, or None when the value is not a flag.

    Examples
    --------
    >>> as_flag(1), as_flag(False), as_flag("1"), as_flag(2)
    (True, False, None, None)
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    return None


def _as_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def normalise_attributes(raw: dict) -> dict:
    """Copy free-form attributes, turning ``occluded``/``z_order``/``group`` into bool/int when they parse."""
    attributes = dict(raw)
    if "occluded" in attributes:
        flag = _as_bool(attributes["occluded"])
        if flag is not None:
            attributes["occluded"] = flag
    for key in ("z_order", "group", "group_id"):
        if key in attributes:
            try:
                value = int(attributes[key])
            except (TypeError, ValueError, OverflowError):
                continue  # kept as it is; a rule can report it
            del attributes[key]
            attributes["group" if key == "group_id" else key] = value
    return attributes


def read_categories(doc, path: Path, findings: list) -> dict[int, Category]:
    """Categories by their id in this file (``doc``: a parsed document or a :mod:`qa.formats._document`).
    Bad entries become findings and are left out."""
    out: dict[int, Category] = {}
    by_name: dict[str, tuple] = {}
    for index, _span, raw in _require_list(doc, "categories", path):
        src = Source(str(path), index, raw.get("id") if isinstance(raw, dict) else None, "categories")
        if not isinstance(raw, dict) or not _is_id(raw.get("id")) or not isinstance(raw.get("name"), str):
            findings.append(finding("FMT011", "category needs an integer 'id' and a string 'name'; left out",
                                    Source(str(path), index, None, "categories")))
            continue
        if raw["id"] in out:
            findings.append(finding("FMT005", f"category id {raw['id']} appears twice; the first is kept", src))
            continue
        name = raw["name"].strip()
        if name in by_name:
            first_id, category = by_name[name]
            findings.append(finding("FMT014", f"category name {name!r} is also category id {first_id!r}'s; "
                                              f"objects of both ids are read as {name!r}", src))
            out[raw["id"]] = category
            continue
        isthing = as_flag(raw.get("isthing", 1))
        if isthing is None:
            findings.append(finding("FMT014", f"isthing {_show(raw.get('isthing'))} is not 0 or 1; read as 1 "
                                              "(a thing)", src))
        out[raw["id"]] = Category(name=name, isthing=isthing is not False,
                                  supercategory=str(raw.get("supercategory", "") or ""))
        by_name[name] = (raw["id"], out[raw["id"]])
    return out


def read_images(doc, path: Path, limits: Limits, findings: list,
                declared: set | None = None) -> dict[int, tuple[Image, str]]:
    """Images by their id in this file, with the annotator each image copy names ("" when none).

    Rejected images (bad fields, unsafe names, sizes above the limit, duplicate ids) become findings
    and are left out, together with their annotations. ``declared`` receives every id an image of the
    list declares, kept or not.
    """
    out: dict[int, tuple[Image, str]] = {}
    for index, _span, raw in _require_list(doc, "images", path):
        image_id = raw.get("id") if isinstance(raw, dict) else None
        if declared is not None and _is_id(image_id):
            declared.add(image_id)
        src = Source(str(path), index, image_id if _is_id(image_id) else None, "images")
        if not isinstance(raw, dict) or not _is_id(image_id):
            findings.append(finding("FMT011", "image needs an integer 'id'; image and its annotations left out",
                                    src))
            continue
        name = raw.get("file_name")
        if not isinstance(name, str):
            findings.append(finding("FMT011", "image needs a string 'file_name'; image left out", src))
            continue
        reason = unsafe_reason(name)
        if reason:
            findings.append(finding("FMT007", f"{reason}; image and its annotations left out", src))
            continue
        problem = size_problem(raw.get("width"), raw.get("height"), limits)
        if problem:
            code = "FMT008" if "exceeds" in problem else "FMT011"
            findings.append(finding(code, f"{problem}; image and its annotations left out", src,
                                    image=normalise_name(name)))
            continue
        if image_id in out:
            findings.append(finding("FMT005", f"image id {image_id} appears twice; the first is kept", src))
            continue
        annotator = raw.get("annotator", "")
        key = sys.intern(normalise_name(name))  # one string per key, however many exports name it
        image = Image(key=key, file_name=name, width=int(raw["width"]), height=int(raw["height"]),
                      path=None, source=src)
        out[image_id] = (image, str(annotator) if annotator is not None else "")
    return out


_NUMBER_TYPES = frozenset((int, float))


def _polygons(segmentation: list):
    """(N, 2) arrays from COCO's flat lists, or an error message.

    Whether the vertices lie near enough to the image to be rasterised is checked for every format in
    one place (:mod:`qa.formats._bounds`).
    """
    parts = []
    for k, flat in enumerate(segmentation):
        if not isinstance(flat, list):
            return None, f"polygon part {k} is {type(flat).__name__}, expected a list of numbers"
        if len(flat) % 2:
            return None, f"polygon part {k} has an odd number of coordinates ({len(flat)})"
        if len(flat) < 6:
            return None, f"polygon part {k} has {len(flat) // 2} points, at least 3 are needed"
        if not set(map(type, flat)) <= _NUMBER_TYPES and not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
            return None, f"polygon part {k} holds a value that is not a number"
        try:
            arr = np.asarray(flat, dtype=np.float64)
        except OverflowError:  # an integer beyond the float range
            arr = None
        if arr is None or not np.isfinite(arr).all():
            return None, f"polygon part {k} holds a NaN or infinite coordinate"
        parts.append(arr.reshape(-1, 2))
    if not parts:
        return None, "segmentation is an empty list"
    return tuple(parts), None


def rle_problem(rle: dict, height: int, width: int):
    """Check a COCO RLE dict; return (compressed RLE, None) or (None, (code, message))."""
    from pycocotools import mask as mask_utils

    size = rle.get("size")
    counts = rle.get("counts")
    if (not isinstance(size, list) or len(size) != 2 or not all(_is_int(v) for v in size)):
        return None, ("FMT011", "RLE needs 'size' as [height, width]")
    h, w = size
    if (h, w) != (height, width):
        return None, ("FMT003", f"RLE size [{h}, {w}] (height, width) differs from the image's "
                                f"[{height}, {width}]")
    if isinstance(counts, list):
        if not all(_is_int(v) and v >= 0 for v in counts):
            return None, ("FMT002", "uncompressed RLE counts must be non-negative integers")
        total = int(sum(counts))
        if total != h * w:
            return None, ("FMT002", f"RLE counts sum to {total}, expected height x width = {h * w}")
        return mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w), None
    if isinstance(counts, (str, bytes)):
        from qa.formats._rle_counts import counts_runs  # numba: imported when an RLE is met

        text = counts.decode("ascii", "replace") if isinstance(counts, bytes) else counts
        runs = counts_runs(text)
        if runs is None or (runs < 0).any():
            return None, ("FMT002", "compressed RLE counts string is malformed")
        total = int(runs.sum())
        if total != h * w:
            return None, ("FMT002", f"RLE counts sum to {total}, expected height x width = {h * w}")
        return {"size": [h, w], "counts": text.encode("ascii")}, None
    return None, ("FMT011", "RLE 'counts' must be a string or a list of integers")


def _is_box(value) -> bool:
    """Whether ``value`` is 4 finite numbers (a COCO ``bbox``)."""
    return isinstance(value, list) and len(value) == 4 and all(finite_number(v) for v in value)


def declared_box(raw: dict, src: Source, image: str, findings: list):
    """The ``bbox`` ([x, y, w, h]) and ``area`` an annotation or segment declares, as floats or None.

    Both are optional; one that is present but not finite numbers (``["a", NaN]``, a string) is ignored
    with an ``FMT016`` warning, so the rules that compare them with the mask do not see it.
    """
    bbox = raw.get("bbox")
    if bbox is not None:
        if _is_box(bbox):
            bbox = tuple(float(v) for v in bbox)
        else:
            findings.append(finding("FMT016", f"bbox {_show(bbox)} is not 4 finite numbers [x, y, width, "
                                              "height]; ignored", src, image=image))
            bbox = None
    area = raw.get("area")
    if area is not None:
        if finite_number(area):
            area = float(area)
        else:
            findings.append(finding("FMT016", f"area {_show(area)} is not a finite number; ignored", src,
                                    image=image))
            area = None
    return bbox, area


def read(path: Path, *, limits: Limits, options: dict, units=KEEP) -> list[Export]:
    """Read a COCO instances export; ``units`` (:mod:`qa.formats._units`) says whether the objects are
    kept, or recorded for an index (the file is then streamed: each annotation is one unit)."""
    document = open_document(path, streamed=units.recording)
    try:
        return _read(document, path, limits, units)
    finally:
        close_document(document)


def _read(document, path: Path, limits: Limits, units) -> list[Export]:
    header = read_header(document, path, limits)
    units.remember("categories", header[0])
    exports, reader = open_exports(path, header, units)
    for index, span, raw in _require_list(document, "annotations", path):
        units.begin(index, span)
        reader.annotation(index, raw, units)
        units.end()
    check_members(document, ("images", "annotations", "categories"))
    reader.finish()
    units.finish()
    return list(exports.values())


def read_header(document, path: Path, limits: Limits) -> tuple:
    """What a COCO file says before its annotations: ``(categories, images, declared image ids, file
    findings)`` (see :func:`read_categories`, :func:`read_images`); an InputError when a top-level list
    is missing or mistyped. Also read by each piece of a streamed index (:mod:`qa.formats._index_pieces`)."""
    if document.kind != "dict":
        raise InputError(f"top level is a JSON {document.kind}, expected an object", path=path)
    file_findings: list = []
    categories = read_categories(document, path, file_findings)
    declared_image_ids: set = set()
    images = read_images(document, path, limits, file_findings, declared_image_ids)
    _document(document, path).require_list("annotations")
    return categories, images, declared_image_ids, file_findings


def open_exports(path: Path, header: tuple, units=KEEP) -> tuple[dict, "AnnotationReader"]:
    """The exports of a COCO file, one per annotator named in its images (``{name: Export}``, sorted by
    name), holding their images, categories and the file's findings, and the reader of its annotations."""
    categories, images, declared_image_ids, file_findings = header
    names = sorted({annotator for _, annotator in images.values()})
    exports = {a: Export(annotator=a, path=path, format=NAME) for a in names or [""]}
    for name, export in exports.items():
        units.adopt(export, name)
    first = exports[names[0] if names else ""]
    first.findings.extend(file_findings)
    for export in exports.values():
        export.categories = {c.name: c for c in categories.values()}
    for image, annotator in images.values():
        export = exports[annotator]
        if image.key in export.images:
            export.findings.append(finding(
                "FMT005", f"file name {image.file_name!r} appears twice for one annotator; the first is kept",
                image.source, image=image.key))
            continue
        export.images[image.key] = image
    return exports, AnnotationReader(path, categories, images, exports, first, declared_image_ids)


class SeenIds:
    """The annotation ids met so far, a bit per id for the small non-negative integers COCO uses (a
    million ids in 125 KB, where a Python set takes about 60 MB), a set for any other id.

    Examples
    --------
    >>> seen = SeenIds()
    >>> [seen.add(i) for i in (3, 5, 3, "a", "a", -1, 10 ** 12, 10 ** 12)]
    [True, True, False, True, False, True, True, False]
    """

    BITS = 1 << 31

    def __init__(self):
        self.bits = np.zeros(1 << 13, np.uint8)
        self.others: set = set()

    def add(self, value) -> bool:
        """Note ``value``; whether it was new."""
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < self.BITS:
            byte, bit = value >> 3, 1 << (value & 7)
            if byte >= len(self.bits):
                grown = np.zeros(max(2 * len(self.bits), byte + 1), np.uint8)
                grown[:len(self.bits)] = self.bits
                self.bits = grown
            if self.bits[byte] & bit:
                return False
            self.bits[byte] |= bit
            return True
        if value in self.others:
            return False
        self.others.add(value)
        return True


class AnnotationReader:
    """Reads COCO annotations one at a time into their exports: the loop body of :func:`read`, also run
    on the annotations of a chunk of images (:mod:`qa.formats._index`).

    ``images`` maps an image id to its image and the annotator of that copy; ``declared`` holds every
    image id the ``images`` list declares (kept or not); file-level findings go to ``first``'s export.
    """

    def __init__(self, path: Path, categories: dict, images: dict, exports: dict, first: Export,
                 declared: set):
        self.path = path
        self.categories = categories
        self.images = images
        self.exports = exports
        self.first = first
        self.declared = declared
        self.seen_ids = SeenIds()
        self.skipped: dict[str, tuple] = {}

    def annotation(self, index: int, raw, units=KEEP) -> None:
        path, first, categories = self.path, self.first, self.categories
        ann_id = raw.get("id") if isinstance(raw, dict) else None
        src = Source(str(path), index, ann_id if _is_id(ann_id) else None)
        if not isinstance(raw, dict):
            first.findings.append(finding("FMT011", f"annotation is a {type(raw).__name__}, expected an object; "
                                                    "left out", src))
            return
        if not _is_id(ann_id) and ann_id is not None:
            first.findings.append(finding("FMT011", f"annotation id {_show(ann_id)} is not an integer; "
                                                    "object left out", src))
            return
        image_id = raw.get("image_id")
        if not _is_id(image_id):
            first.findings.append(finding("FMT011", f"image_id {_show(image_id)} is not an integer; object left out",
                                          src))
            return
        entry = self.images.get(image_id)
        if entry is None:
            if image_id not in self.declared:
                first.findings.append(finding("FMT006", f"image_id {image_id!r} is not in 'images'; object left out",
                                              src))
            return  # the image itself was rejected and reported
        image, annotator = entry
        export = self.exports[annotator]
        if export.images.get(image.key) is not image:
            return  # a duplicate image copy that was left out
        units.touch(export, image.key)
        obj_findings = export.findings
        if ann_id is not None and self.duplicate(ann_id, export, index, image.key):
            obj_findings.append(finding("FMT005", f"annotation id {ann_id!r} appears twice; both are kept",
                                        src, image=image.key))
        category_id = raw.get("category_id")
        category = categories.get(category_id) if _is_id(category_id) else None
        if category is None:
            obj_findings.append(finding("FMT004", f"category_id {_show(category_id)} is not in 'categories'; "
                                                  "object left out", src, image=image.key))
            return
        iscrowd = as_flag(raw.get("iscrowd", 0))
        if iscrowd is None:
            obj_findings.append(finding("FMT011", f"iscrowd {_show(raw.get('iscrowd'))} is not 0 or 1; object left out",
                                        src, image=image.key))
            return
        segmentation = raw.get("segmentation")
        if segmentation is None or (isinstance(segmentation, list) and not segmentation):
            kind = "keypoint-only" if "keypoints" in raw else "box-only" if _is_box(raw.get("bbox")) else None
            if kind is not None:  # not an area: counted once per export, as CVAT points are
                self.skipped.setdefault(export.annotator, (export, SkipTally()))[1].add("FMT012", kind, src,
                                                                                         image.key)
            elif segmentation is None:
                obj_findings.append(finding("FMT011", "no 'segmentation'; object left out", src, image=image.key))
            else:
                obj_findings.append(finding("FMT001", "segmentation is empty; object left out", src,
                                            image=image.key))
            return
        attributes = raw.get("attributes", {})
        if not isinstance(attributes, dict):
            if attributes is not None:
                obj_findings.append(finding("FMT016", f"attributes is a {type(attributes).__name__}, expected an "
                                                      "object; ignored", src, image=image.key))
            attributes = {}
        attributes = normalise_attributes(attributes)
        for key in ("annotator", "track_id", "num_keypoints"):
            if key in raw and key not in attributes:
                attributes[key] = raw[key]
        bbox, area = declared_box(raw, src, image.key, obj_findings)
        common = dict(annotator=annotator, image=image.key, category=category.name, source=src,
                      iscrowd=iscrowd, bbox=bbox, area=area, attributes=attributes)
        if isinstance(segmentation, list):
            polygons, problem = _polygons(segmentation)
            if problem:
                obj_findings.append(finding("FMT001", f"{problem}; object left out", src, image=image.key))
                return
            export.objects.append(Object(kind="polygon", polygons=polygons, **common))
        elif isinstance(segmentation, dict):
            rle, problem = rle_problem(segmentation, image.height, image.width)
            if problem:
                obj_findings.append(finding(problem[0], f"{problem[1]}; object left out", src, image=image.key))
                return
            export.objects.append(Object(kind="rle", rle=rle, **common))
        else:
            obj_findings.append(finding("FMT011", f"segmentation is a {type(segmentation).__name__}, expected a "
                                                  "list of polygons or an RLE object; object left out",
                                        src, image=image.key))

    def duplicate(self, ann_id, export: Export, index: int, key: str) -> bool:
        """Whether annotation id ``ann_id`` (of annotation ``index``, on image ``key`` of ``export``) was
        met before in this file."""
        return not self.seen_ids.add(ann_id)

    def finish(self) -> None:
        """The skipped-annotation findings (FMT012), one per kind and export, after the others."""
        for export, tally in self.skipped.values():
            export.findings.extend(tally.findings(_NOT_AREAS, noun="annotation"))


_NOT_AREAS = {"keypoint-only": "keypoints without a segmentation are not an area",
              "box-only": "a bbox without a segmentation is not compared (draw the outline, or convert boxes "
                          "to polygons)"}
"""Why annotations without a segmentation are skipped (``FMT012``, one finding per kind and export)."""
