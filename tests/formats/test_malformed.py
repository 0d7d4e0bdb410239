"""The malformed-export corpus: every case gets its documented outcome through ``qa run``.

Each case builds one broken export in ``tmp_path`` and runs ``qa.cli.main``. A file that cannot be
read ends the run with exit code 2 and exactly one line on stderr naming the file; a bad object in a
readable file is reported (file, list index, id) and the run goes on with exit code 0. The table in
``docs/input-errors.md`` lists the same cases with the same outcomes; a test keeps the two in step.
Inputs are hashed before and after each run: they are never modified.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from common import run_cli, write_json
from PIL import Image as PILImage

from qa.errors import InputError
from qa.formats._safe import open_png_checked, png_size
from qa.model import Limits

DOCS = Path(__file__).resolve().parents[2] / "docs" / "input-errors.md"

# --- base exports -------------------------------------------------------------------------------------

SQUARE = [1.0, 1.0, 5.0, 1.0, 5.0, 4.0, 1.0, 4.0]


def coco_doc() -> dict:
    """A valid COCO export: two 8x6 images, one category, one good object, then the object under test."""
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 6},
                   {"id": 2, "file_name": "b.jpg", "width": 8, "height": 6}],
        "categories": [{"id": 1, "name": "car"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [SQUARE]},
            {"id": 11, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [SQUARE]},
        ],
    }


def _ids_png(path: Path, ids: np.ndarray) -> Path:
    ids = np.asarray(ids, dtype=np.uint32)
    rgb = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(rgb, "RGB").save(path)
    return path


PAN_IDS = np.array([[0, 1, 1, 0, 0, 0],
                    [0, 1, 1, 0, 2, 2],
                    [0, 0, 0, 0, 2, 2],
                    [0, 0, 0, 0, 0, 0]])


def panoptic_doc() -> dict:
    """A valid COCO panoptic export: one 6x4 image with segments 1 (car) and 2 (road)."""
    return {
        "images": [{"id": 1, "file_name": "p.jpg", "width": 6, "height": 4}],
        "categories": [{"id": 1, "name": "car", "isthing": 1}, {"id": 2, "name": "road", "isthing": 0}],
        "annotations": [{"image_id": 1, "file_name": "p.png", "segments_info": [
            {"id": 1, "category_id": 1, "area": 4, "bbox": [1, 0, 2, 2], "iscrowd": 0},
            {"id": 2, "category_id": 2, "area": 4, "bbox": [4, 1, 2, 2], "iscrowd": 0}]}],
    }


def write_coco(root: Path, change: Callable[[dict], None]) -> Path:
    doc = coco_doc()
    change(doc)
    return write_json(root / "export.json", doc)


def write_panoptic(root: Path, change: Callable[[dict], None] = lambda d: None, *, ids=PAN_IDS) -> Path:
    doc = panoptic_doc()
    change(doc)
    _ids_png(root / "export" / "p.png", ids)
    return write_json(root / "export.json", doc)


# --- the cases ----------------------------------------------------------------------------------------

@dataclass
class Case:
    """One malformed export and its documented outcome.

    ``build(root)`` writes the export under ``root`` and returns its path. For ``exit=2``, ``message``
    is a piece of the single stderr line. For ``exit=0``, the finding ``code``/``severity`` is expected
    at ``where`` (section, index, id), and ``objects`` good objects still load.
    """

    id: str
    build: Callable[[Path], Path]
    exit: int
    message: str = ""
    code: str | None = None
    severity: str = "error"
    where: tuple | None = None
    objects: int | None = None
    args: list = field(default_factory=list)
    manifest: str | None = None  # run through a manifest: its top-level lines
    export_keys: str = ""  # and extra keys of its [[exports]] table
    file: str | None = None  # the file the finding names, relative to the case's folder (default: the export)
    annotator: str = "a"  # the finding's annotator (Label Studio names its own: a/user_1)


def _set(path, value):
    """A change that sets ``doc[path...] = value``."""
    def change(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _delete(key):
    return lambda doc: doc.pop(key)


def _raw(text: str | bytes, name="export.json"):
    def build(root: Path) -> Path:
        path = root / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        return path
    return build


def _coco(change):
    return lambda root: write_coco(root, change)


def _panoptic(change=lambda d: None, ids=PAN_IDS):
    return lambda root: write_panoptic(root, change, ids=ids)


def _seg(value):
    return _coco(_set(["annotations", 1, "segmentation"], value))


def _ann(key, value):
    return _coco(_set(["annotations", 1, key], value))


def _image(key, value):
    return _coco(_set(["images", 1, key], value))


def _second_image_object(doc):
    doc["annotations"][1]["image_id"] = 2


def _image_then(key, value):
    def change(doc):
        _second_image_object(doc)
        doc["images"][1][key] = value
    return _coco(change)


def _replace_png(content: bytes | Callable[[bytes], bytes]):
    def build(root):
        path = write_panoptic(root)
        png = root / "export" / "p.png"
        png.write_bytes(content(png.read_bytes()) if callable(content) else content)
        return path
    return build


def _png_symlink_outside(root):
    path = write_panoptic(root, _set(["annotations", 0, "file_name"], "link.png"))
    outside = _ids_png(root / "outside" / "real.png", PAN_IDS)
    os.symlink(outside, root / "export" / "link.png")
    return path


def _png_missing(root):
    path = write_panoptic(root)
    (root / "export" / "p.png").unlink()
    return path


def _gray_png(root):
    path = write_panoptic(root)
    PILImage.fromarray(PAN_IDS.astype(np.uint8), "L").save(root / "export" / "p.png")
    return path


def _deeply_nested(root):
    path = root / "export.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    return path


# --- CVAT, LabelMe, Label Studio, label maps: one good object, then the one under test ------------------

GOOD_POLYGON = '<polygon label="car" occluded="0" points="10,10;30,10;30,30;10,30" z_order="0"/>'


def cvat_text(shape: str, *, prolog: str = '<?xml version="1.0" encoding="utf-8"?>') -> str:
    """A CVAT for images 1.1 file: one 64x48 image with a good polygon, then ``shape``."""
    return (f'{prolog}\n<annotations><version>1.1</version>\n'
            f'<image id="0" name="a.png" width="64" height="48">\n{GOOD_POLYGON}\n{shape}\n</image>\n'
            '</annotations>\n')


def _cvat(shape: str, **kw):
    return _raw(cvat_text(shape, **kw), "export.xml")


def _cvat_doctype_after_long_comment(root):
    """A DTD after a comment longer than any prolog a text scanner would read (1 MB)."""
    prolog = ('<?xml version="1.0" encoding="utf-8"?>\n<!--' + "x" * (1 << 20) + '-->\n'
              '<!DOCTYPE annotations [<!ENTITY e "car">]>')
    return _cvat(GOOD_POLYGON.replace('"car"', '"&e;"'), prolog=prolog)(root)


def labelme_doc(shape: dict) -> dict:
    """A labelme JSON: one 64x48 image with a good polygon, then ``shape``."""
    good = {"label": "car", "points": [[10, 10], [30, 10], [30, 30], [10, 30]], "group_id": None,
            "shape_type": "polygon", "flags": {}}
    return {"version": "5.2.1", "flags": {}, "shapes": [good, shape], "imagePath": "a.png", "imageData": None,
            "imageHeight": 48, "imageWidth": 64}


def _labelme(shape: dict):
    return lambda root: write_json(root / "export.json", labelme_doc(shape))


def _labelme_polygon(points, **extra):
    return _labelme({"label": "car", "points": points, "group_id": None, "shape_type": "polygon", "flags": {},
                     **extra})


def _labelme_symlink_outside(root):
    """A LabelMe folder whose b.json is a symbolic link to a file outside it."""
    folder = root / "export"
    write_json(folder / "a.json", labelme_doc({"label": "car", "points": [[1, 1], [5, 1], [5, 5]],
                                                "shape_type": "polygon"}))
    outside = write_json(root / "outside" / "b.json", dict(labelme_doc({"label": "bus", "points": [
        [1, 1], [9, 1], [9, 9]], "shape_type": "polygon"}), imagePath="b.png"))
    os.symlink(outside, folder / "b.json")
    return folder


def labelme_xml_text(obj: str, *, prolog: str = "") -> str:
    """A LabelMe XML file: one 64x48 image with a good polygon object, then ``obj``."""
    pts = "".join(f"<pt><x>{x}</x><y>{y}</y></pt>" for x, y in ((10, 10), (30, 10), (30, 30)))
    return (f"{prolog}<annotation><filename>a.png</filename><imagesize><nrows>48</nrows><ncols>64</ncols>"
            f"</imagesize><object><name>car</name><deleted>0</deleted><polygon>{pts}</polygon></object>"
            f"{obj}</annotation>\n")


def _labelme_xml(obj: str, **kw):
    return _raw(labelme_xml_text(obj, **kw), "export.xml")


def _xml_points(*points) -> str:
    pts = "".join(f"<pt><x>{x}</x><y>{y}</y></pt>" for x, y in points)
    return f"<object><name>car</name><deleted>0</deleted><polygon>{pts}</polygon></object>"


def label_studio_doc(region: dict | None = None, **annotation) -> list:
    """A Label Studio export: one task (a 64x48 image) annotated by user 1 with a good polygon region,
    then ``region``; ``annotation`` adds a second annotation of the task with these fields."""
    def polygon(rid, points):
        return {"id": rid, "type": "polygonlabels", "from_name": "label", "to_name": "image",
                "original_width": 64, "original_height": 48, "image_rotation": 0,
                "value": {"points": points, "polygonlabels": ["car"]}}

    result = [polygon("r1", [[10, 10], [40, 10], [40, 40]])]
    if region is not None:
        result.append(dict({"id": "r2", "from_name": "label", "to_name": "image", "original_width": 64,
                            "original_height": 48}, **region))
    annotations = [{"id": 5, "completed_by": 1, "was_cancelled": False, "result": result}]
    if annotation:
        annotations.append(dict({"id": 6, "was_cancelled": False, "result": [polygon("r9", [[1, 1], [9, 1], [9, 9]])]},
                                **annotation))
    return [{"id": 1, "data": {"image": "/data/upload/1/8a1b2c3d-a.png"}, "annotations": annotations}]


def _label_studio(region=None, **annotation):
    return lambda root: write_json(root / "export.json", label_studio_doc(region, **annotation))


def _fifo(root: Path, name: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def _labelmap_named_pipe(root):
    """A folder of label maps holding a named pipe called b.png (nothing ever writes to it)."""
    folder = root / "export"
    folder.mkdir()
    PILImage.fromarray(np.array([[0, 1, 1, 0], [0, 2, 2, 0]], np.uint8), "L").save(folder / "a.png")
    _fifo(folder, "b.png")
    return folder


def _png_named_pipe(root):
    path = write_panoptic(root)
    (root / "export" / "p.png").unlink()
    _fifo(root / "export", "p.png")
    return path


def _long_integer(where: str, digits: int):
    """The COCO base export with ``where`` (a JSON snippet of the second annotation) holding an integer
    of ``digits`` digits."""
    text = json.dumps(coco_doc())
    marker = '"id": 11'
    assert marker in text
    big = "9" * digits
    if where == "id":
        return _raw(text.replace(marker, f'"id": {big}'))
    return _raw(text.replace("[1.0, 1.0, 5.0, 1.0, 5.0, 4.0, 1.0, 4.0]]}]", f"[1.0, 1.0, {big}, 1.0, 5.0, 4.0]]}}]"))


ANN1 = ("annotations", 1, 11)
IMG1 = ("images", 1, 2)
SEG = ("annotations[0].segments_info", 1, 2)
PAN = ("annotations", 0, 1)

CASES = [
    # the file cannot be read: exit 2, one line
    Case("missing-file", lambda root: root / "nope.json", 2, "no such file or folder"),
    Case("invalid-json", _raw('{"images": [}'), 2, "invalid JSON at line 1 column 13"),
    Case("empty-file", _raw(""), 2, "invalid JSON at line 1 column 1"),
    Case("not-utf8", _raw(b'{"images": "\xff"}'), 2, "not UTF-8 text"),
    Case("json-too-deep", _deeply_nested, 2, "invalid JSON: nested too deeply"),
    Case("top-level-list", _raw("[1, 2]"), 2, "cannot tell the export format"),
    Case("top-level-list-coco", _raw("[1, 2]"), 2, "top level is a JSON list, expected an object",
         manifest="", export_keys='format = "coco"'),
    Case("missing-annotations", _coco(_delete("annotations")), 2, "missing top-level key 'annotations'"),
    Case("missing-categories", _coco(_delete("categories")), 2, "missing top-level key 'categories'"),
    Case("missing-images", _coco(_delete("images")), 2, "missing top-level key 'images'"),
    Case("images-not-a-list", _coco(_set(["images"], {"1": "a.jpg"})), 2,
         "top-level 'images' is dict, expected a list"),
    Case("unknown-format", _raw("hello", "export.txt"), 2, "cannot tell the export format"),
    Case("panoptic-annotations-not-a-list", _panoptic(_set(["annotations"], {"x": 1})), 2,
         "top-level 'annotations' is dict, expected a list", manifest="", export_keys='format = "coco_panoptic"'),
    # a bad object in a readable file: exit 0, reported with file, index and id
    Case("polygon-2-points", _seg([[0, 0, 4, 0]]), 0, code="FMT001", where=ANN1, objects=1,
         message="polygon part 0 has 2 points, at least 3 are needed"),
    Case("polygon-odd-coordinates", _seg([[0, 0, 4, 0, 4]]), 0, code="FMT001", where=ANN1, objects=1,
         message="odd number of coordinates (5)"),
    Case("polygon-nan", _raw(json.dumps(coco_doc()).replace("[1.0, 1.0, 5.0, 1.0, 5.0, 4.0, 1.0, 4.0]]}]",
                                                            "[1.0, NaN, 5.0, 1.0, 5.0, 4.0, 1.0, 4.0]]}]")),
         0, code="FMT001", where=ANN1, objects=1, message="NaN or infinite coordinate"),
    Case("polygon-infinity", _raw(json.dumps(coco_doc()).replace("[1.0, 1.0, 5.0, 1.0, 5.0, 4.0, 1.0, 4.0]]}]",
                                                                 "[1.0, 1.0, Infinity, 1.0, 5.0, 4.0]]}]")),
         0, code="FMT001", where=ANN1, objects=1, message="NaN or infinite coordinate"),
    Case("polygon-far-outside", _seg([[0, 0, 1e12, 0, 4, 4]]), 0, code="FMT001", where=ANN1, objects=1,
         message="farther outside the 8x6 image than its own size"),
    Case("polygon-not-numbers", _seg([[0, 0, "4", 0, 4, 4]]), 0, code="FMT001", where=ANN1, objects=1,
         message="holds a value that is not a number"),
    Case("polygon-flat-list", _seg(SQUARE), 0, code="FMT001", where=ANN1, objects=1,
         message="polygon part 0 is float, expected a list of numbers"),
    Case("segmentation-empty", _seg([]), 0, code="FMT001", where=ANN1, objects=1,
         message="segmentation is empty"),
    Case("segmentation-empty-beside-a-bbox", _coco(lambda d: d["annotations"][1].update(
        segmentation=[], bbox=[1, 1, 4, 3])), 0, code="FMT012", severity="info", where=ANN1, objects=1,
        message="1 box-only annotation skipped: a bbox without a segmentation is not compared"),
    Case("segmentation-wrong-type", _seg("x"), 0, code="FMT011", where=ANN1, objects=1,
         message="segmentation is a str"),
    Case("segmentation-missing", _coco(lambda d: d["annotations"][1].pop("segmentation")), 0, code="FMT011",
         where=ANN1, objects=1, message="no 'segmentation'; object left out"),
    Case("keypoints-only", _coco(lambda d: d["annotations"][1].update(keypoints=[2, 2, 2], num_keypoints=1)
                                 or d["annotations"][1].pop("segmentation")), 0, code="FMT012", severity="info",
         where=ANN1, objects=1, message="1 keypoint-only annotation skipped: keypoints without a segmentation"),
    Case("rle-counts-sum", _seg({"size": [6, 8], "counts": [3, 4, 5]}), 0, code="FMT002", where=ANN1, objects=1,
         message="RLE counts sum to 12, expected height x width = 48"),
    Case("rle-negative-count", _seg({"size": [6, 8], "counts": [50, -2]}), 0, code="FMT002", where=ANN1,
         objects=1, message="non-negative integers"),
    Case("rle-compressed-sum", _seg({"size": [6, 8], "counts": "52"}), 0, code="FMT002", where=ANN1, objects=1,
         message="RLE counts sum to 7"),
    Case("rle-compressed-garbage", _seg({"size": [6, 8], "counts": "\x7f\x7f"}), 0, code="FMT002", where=ANN1,
         objects=1, message="compressed RLE counts string is malformed"),
    Case("rle-size-differs", _seg({"size": [8, 6], "counts": [48]}), 0, code="FMT003", where=ANN1, objects=1,
         message="RLE size [8, 6] (height, width) differs from the image's [6, 8]"),
    Case("rle-no-size", _seg({"counts": [48]}), 0, code="FMT011", where=ANN1, objects=1,
         message="RLE needs 'size'"),
    Case("rle-counts-wrong-type", _seg({"size": [6, 8], "counts": 48}), 0, code="FMT011", where=ANN1, objects=1,
         message="'counts' must be a string or a list of integers"),
    Case("unknown-category", _ann("category_id", 99), 0, code="FMT004", where=ANN1, objects=1,
         message="category_id 99 is not in 'categories'"),
    Case("category-id-wrong-type", _ann("category_id", [1]), 0, code="FMT004", where=ANN1, objects=1,
         message="category_id [1] is not in 'categories'"),
    Case("dangling-image-id", _ann("image_id", 99), 0, code="FMT006", where=ANN1, objects=1,
         message="image_id 99 is not in 'images'"),
    Case("image-id-wrong-type", _ann("image_id", {"id": 1}), 0, code="FMT011", where=ANN1, objects=1,
         message="image_id {'id': 1} is not an integer"),
    Case("annotation-id-wrong-type", _ann("id", [11]), 0, code="FMT011", where=("annotations", 1, None),
         objects=1, message="annotation id [11] is not an integer"),
    Case("annotation-not-an-object", _coco(_set(["annotations", 1], "oops")), 0, code="FMT011",
         where=("annotations", 1, None), objects=1, message="annotation is a str, expected an object"),
    Case("iscrowd-wrong-type", _ann("iscrowd", "yes"), 0, code="FMT011", where=ANN1, objects=1,
         message="iscrowd 'yes' is not 0 or 1"),
    Case("duplicate-annotation-id", _ann("id", 10), 0, code="FMT005",
         where=("annotations", 1, 10), objects=2, message="annotation id 10 appears twice; both are kept"),
    Case("duplicate-image-id", _image("id", 1), 0, code="FMT005", where=("images", 1, 1), objects=2,
         message="image id 1 appears twice"),
    Case("duplicate-file-name", _image_then("file_name", "a.jpg"), 0, code="FMT005", where=IMG1, objects=1,
         message="file name 'a.jpg' appears twice"),
    Case("duplicate-category-id", _coco(lambda d: d["categories"].append({"id": 1, "name": "bus"})), 0,
         code="FMT005", where=("categories", 1, 1), objects=2, message="category id 1 appears twice"),
    Case("category-without-name", _coco(lambda d: d["categories"].append({"id": 2})), 0, code="FMT011",
         where=("categories", 1, None), objects=2, message="category needs an integer 'id' and a string 'name'"),
    Case("image-without-id", _image_then("id", None), 0, code="FMT011", where=("images", 1, None), objects=1,
         message="image needs an integer 'id'"),
    Case("image-width-wrong-type", _image_then("width", "8"), 0, code="FMT011", where=IMG1, objects=1,
         message="width '8' is not an integer"),
    Case("image-height-zero", _image_then("height", 0), 0, code="FMT011", where=IMG1, objects=1,
         message="height 0 is not positive"),
    Case("image-too-large", _image_then("width", 20_000_000), 0, code="FMT008", where=IMG1, objects=1,
         message="image size 20000000x6 (120000000 pixels) exceeds the limit of 100000000 pixels"),
    Case("image-above-max-pixels-option", _image_then("width", 9), 0, code="FMT008", where=IMG1, objects=1,
         message="exceeds the limit of 50 pixels", args=["--max-pixels", "50"]),
    Case("image-above-max-pixels-manifest", _image_then("width", 9), 0, code="FMT008", where=IMG1, objects=1,
         message="exceeds the limit of 50 pixels", manifest="max_pixels = 50"),
    Case("file-name-dot-dot", _image_then("file_name", "../../etc/passwd"), 0, code="FMT007", where=IMG1,
         objects=1, message="climbs out of the export's folder"),
    Case("file-name-absolute", _image_then("file_name", "/etc/passwd"), 0, code="FMT007", where=IMG1, objects=1,
         message="is an absolute path"),
    Case("file-name-windows-absolute", _image_then("file_name", "C:\\Windows\\x.png"), 0, code="FMT007",
         where=IMG1, objects=1, message="is an absolute path"),
    # COCO panoptic
    Case("png-missing", _png_missing, 0, code="FMT009", where=PAN, objects=0, message="p.png: file not found"),
    Case("png-not-a-png", _replace_png(b"GIF89a not a png at all, just text"), 0, code="FMT009", where=PAN,
         objects=0, message="not a PNG file"),
    Case("png-truncated", _replace_png(lambda data: data[:60]), 0, code="FMT009", where=PAN, objects=0,
         message="cannot decode image"),
    Case("png-gray", _gray_png, 0, code="FMT009", where=PAN, objects=0, message="has mode L, expected RGB"),
    Case("png-size-differs", _panoptic(_set(["images", 0, "width"], 7)), 0, code="FMT003", where=PAN, objects=0,
         message="PNG p.png is 6x4, the image is declared 7x4"),
    Case("png-id-not-in-segments-info", _panoptic(lambda d: d["annotations"][0]["segments_info"].pop()), 0,
         code="FMT010", severity="warning", where=PAN, objects=1,
         message="segment id 2 is in p.png but not in segments_info"),
    Case("segments-info-id-not-in-png", _panoptic(lambda d: d["annotations"][0]["segments_info"].append(
        {"id": 9, "category_id": 1, "area": 1, "bbox": [0, 0, 1, 1], "iscrowd": 0})), 0, code="FMT010",
        severity="warning", where=("annotations[0].segments_info", 2, 9), objects=2,
        message="segment id 9 is in segments_info but not in p.png"),
    Case("segment-unknown-category", _panoptic(_set(["annotations", 0, "segments_info", 1, "category_id"], 7)),
         0, code="FMT004", where=SEG, objects=1, message="category_id 7 is not in 'categories'"),
    Case("segment-duplicate-id", _panoptic(_set(["annotations", 0, "segments_info", 1, "id"], 1)), 0,
         code="FMT005", where=("annotations[0].segments_info", 1, 1), objects=1,
         message="segment id 1 appears twice in one image"),
    Case("segment-iscrowd-wrong-type", _panoptic(_set(["annotations", 0, "segments_info", 1, "iscrowd"], "no")),
         0, code="FMT011", where=SEG, objects=1, message="iscrowd 'no' is not 0 or 1"),
    Case("panoptic-dangling-image-id", _panoptic(_set(["annotations", 0, "image_id"], 5)), 0, code="FMT006",
         where=("annotations", 0, 5), objects=0, message="image_id 5 is not in 'images'"),
    Case("panoptic-no-segments-info", _panoptic(lambda d: d["annotations"].append(
        {"image_id": 1, "file_name": "q.png"})), 0, code="FMT011", where=("annotations", 1, 1), objects=2,
        message="needs an 'image_id', a 'file_name' and a 'segments_info' list"),
    Case("panoptic-image-twice", _panoptic(lambda d: d["annotations"].append(copy.deepcopy(d["annotations"][0]))),
         0, code="FMT005", where=("annotations", 1, 1), objects=2, message="image_id 1 has two annotations"),
    Case("png-file-name-dot-dot", _panoptic(_set(["annotations", 0, "file_name"], "../p.png")), 0, code="FMT007",
         where=PAN, objects=0, message="climbs out of the export's folder"),
    Case("png-file-name-absolute", _panoptic(_set(["annotations", 0, "file_name"], "/tmp/p.png")), 0,
         code="FMT007", where=PAN, objects=0, message="is an absolute path"),
    Case("png-symlink-outside", _png_symlink_outside, 0, code="FMT007", where=PAN, objects=0,
         message="PNG path leaves the PNG folder"),
    Case("png-named-pipe", _png_named_pipe, 0, code="FMT009", where=PAN, objects=0,
         message="p.png: not a regular file (a named pipe); only regular files are read"),
    # COCO: values that used to be accepted without a word, or stop the run
    Case("bbox-not-numbers", _raw(json.dumps(coco_doc()).replace('"segmentation": [[1.0, 1.0, 5.0, 1.0, 5.0, 4.0, '
                                                                 '1.0, 4.0]]}]', '"segmentation": [[1.0, 1.0, '
                                                                 '5.0, 1.0, 5.0, 4.0, 1.0, 4.0]], "bbox": ["a", '
                                                                 'NaN, 1, 1]}]')),
         0, code="FMT016", severity="warning", where=ANN1, objects=2,
         message="bbox ['a', nan, 1, 1] is not 4 finite numbers [x, y, width, height]; ignored"),
    Case("area-not-a-number", _ann("area", "12"), 0, code="FMT016", severity="warning", where=ANN1, objects=2,
         message="area '12' is not a finite number; ignored"),
    Case("attributes-a-list", _ann("attributes", ["occluded"]), 0, code="FMT016", severity="warning", where=ANN1,
         objects=2, message="attributes is a list, expected an object; ignored"),
    Case("attribute-z-order-text", _ann("attributes", {"z_order": "top"}), 0, code="FMT016", severity="warning",
         where=ANN1, objects=2, message="z_order 'top' is not an integer; ignored"),
    Case("attribute-z-order-out-of-range", _ann("attributes", {"z_order": 2 ** 40}), 0, code="FMT016",
         severity="warning", where=ANN1, objects=2,
         message="z_order 1099511627776 is outside the 32-bit integer range; ignored"),
    Case("attribute-occluded-maybe", _ann("attributes", {"occluded": "maybe"}), 0, code="FMT016",
         severity="warning", where=ANN1, objects=2, message="occluded 'maybe' is not a yes/no flag; ignored"),
    Case("category-name-twice", _coco(lambda d: d["categories"].append({"id": 2, "name": "car"})), 0,
         code="FMT014", severity="warning", where=("categories", 1, 2), objects=2,
         message="category name 'car' is also category id 1's; objects of both ids are read as 'car'"),
    Case("isthing-not-a-flag", _coco(_set(["categories", 0, "isthing"], "yes")), 0, code="FMT014",
         severity="warning", where=("categories", 0, 1), objects=2,
         message="isthing 'yes' is not 0 or 1; read as 1 (a thing)"),
    Case("integer-5000-digits", _long_integer("id", 5000), 0, code="FMT011", where=("annotations", 1, None),
         objects=1, message="annotation id inf is not an integer; object left out"),
    Case("coordinate-400-digits", _long_integer("coordinate", 400), 0, code="FMT001", where=ANN1, objects=1,
         message="polygon part 0 holds a NaN or infinite coordinate; object left out"),
    Case("coordinate-5000-digits", _long_integer("coordinate", 5000), 0, code="FMT001", where=ANN1, objects=1,
         message="polygon part 0 holds a NaN or infinite coordinate; object left out"),
    # CVAT
    Case("cvat-polygon-far-outside", _cvat('<polygon label="car" points="10,10;1e308,10;30,30;10,30"/>'), 0,
         code="FMT001", where=("polygon", 1, None), objects=1,
         message="polygon part 0 has the vertex (1e+308, 10), farther outside the 64x48 image than its own size"),
    Case("cvat-polygon-vertex-at-1e7", _cvat('<polygon label="car" points="10,10;1e7,10;30,30;10,30"/>'), 0,
         code="FMT001", where=("polygon", 1, None), objects=1,
         message="polygon part 0 has the vertex (1e+07, 10), farther outside the 64x48 image than its own size"),
    Case("cvat-box-far-outside", _cvat('<box label="car" xtl="1" ytl="1" xbr="1e308" ybr="9"/>'), 0, code="FMT001",
         where=("box", 0, None), objects=1, message="box has the vertex (1e+308, 1), farther outside the 64x48 image"),
    Case("cvat-ellipse-huge-radius", _cvat('<ellipse label="car" cx="10" cy="10" rx="1e308" ry="4"/>'), 0,
         code="FMT001", where=("ellipse", 0, None), objects=1,
         message="ellipse has the vertex (1e+308, 10), farther outside the 64x48 image than its own size"),
    Case("cvat-z-order-text", _cvat('<polygon label="car" points="1,1;9,1;9,9" z_order="top"/>'), 0, code="FMT016",
         severity="warning", where=("polygon", 1, None), objects=2, message="z_order 'top' is not an integer; ignored"),
    Case("cvat-occluded-maybe", _cvat('<polygon label="car" points="1,1;9,1;9,9" occluded="maybe"/>'), 0,
         code="FMT016", severity="warning", where=("polygon", 1, None), objects=2,
         message="occluded 'maybe' is not a yes/no flag; ignored"),
    Case("cvat-doctype-behind-comment", _raw(cvat_text(GOOD_POLYGON.replace('"car"', '"&e;"'), prolog=(
        '<!--> <annotations> --><!DOCTYPE annotations [<!ENTITY e "car">]>')), "export.xml"), 2,
         "XML with a DOCTYPE declaration is refused"),
    Case("cvat-doctype-after-long-comment", _cvat_doctype_after_long_comment, 2,
         "XML with a DOCTYPE declaration is refused", manifest="", export_keys='format = "cvat"'),
    Case("cvat-unknown-encoding", _cvat("", prolog='<?xml version="1.0" encoding="x-no-such-codec"?>'), 2,
         "the XML declaration names an unknown encoding"),
    # LabelMe
    Case("labelme-point-far-outside", _labelme_polygon([[10, 10], [1e308, 10], [30, 30]]), 0, code="FMT001",
         where=("shapes", 1, None), objects=1,
         message="polygon part 0 has the vertex (1e+308, 10), farther outside the 64x48 image than its own size"),
    Case("labelme-circle-huge-radius", _labelme({"label": "car", "points": [[10, 10], [1e300, 10]],
                                                 "shape_type": "circle"}), 0, code="FMT001",
         where=("shapes", 1, None), objects=1, message="circle has the vertex (1e+300, 10), farther outside"),
    Case("labelme-circle-infinite-radius", _labelme({"label": "car", "points": [[-1e308, 10], [1e308, 10]],
                                                     "shape_type": "circle"}), 0, code="FMT001",
         where=("shapes", 1, None), objects=1, message="holds a NaN or infinite coordinate"),
    Case("labelme-occluded-flag-text", _labelme_polygon([[1, 1], [9, 1], [9, 9]], flags={"occluded": "maybe"}), 0,
         code="FMT016", severity="warning", where=("shapes", 1, None), objects=2,
         message="occluded 'maybe' is not a yes/no flag; ignored"),
    Case("labelme-symlink-outside", _labelme_symlink_outside, 0, code="FMT007", where=None, file="export/b.json",
         objects=2, message="b.json resolves outside the export's folder; left out"),
    Case("labelme-xml-point-far-outside", _labelme_xml(_xml_points((10, 10), ("1e308", 10), (30, 30))), 0,
         code="FMT001", where=("object", 1, None), objects=1,
         message="polygon part 0 has the vertex (1e+308, 10), farther outside the 64x48 image than its own size"),
    Case("labelme-xml-doctype", _labelme_xml(_xml_points((1, 1), (9, 1), (9, 9)), prolog=(
        '<!DOCTYPE annotation [<!ENTITY e "car">]>')), 2, "XML with a DOCTYPE declaration is refused"),
    Case("labelme-xml-unknown-encoding", _labelme_xml("", prolog='<?xml version="1.0" encoding="x-no-such-codec"?>'),
         2, "the XML declaration names an unknown encoding"),
    # Label Studio
    Case("label-studio-point-far-outside", _label_studio({"type": "polygonlabels", "value": {
        "points": [[10, 10], [1e306, 10], [30, 30]], "polygonlabels": ["car"]}}), 0, code="FMT001",
         where=("task[0].annotations[0].result", 1, "r2"), objects=1, annotator="a/user_1",
         message="polygon part 0 has the vertex (6.4e+305, 4.8), farther outside the 64x48 image"),
    Case("label-studio-rectangle-far-outside", _label_studio({"type": "rectanglelabels", "value": {
        "x": 10, "y": 10, "width": 1e306, "height": 5, "rectanglelabels": ["car"]}}), 0, code="FMT001",
         where=("task[0].annotations[0].result", 1, "r2"), objects=1, annotator="a/user_1",
         message="rectangle has the vertex"),
    Case("label-studio-ellipse-huge-radius", _label_studio({"type": "ellipselabels", "value": {
        "x": 10, "y": 10, "radiusX": 1e306, "radiusY": 5, "ellipselabels": ["car"]}}), 0, code="FMT001",
         where=("task[0].annotations[0].result", 1, "r2"), objects=1, annotator="a/user_1",
         message="ellipse has the vertex"),
    Case("label-studio-brush-size-mismatch", _label_studio({"type": "brushlabels", "value": {
        "format": "rle", "rle": [0, 0, 0, 8, 56, 1, 0], "brushlabels": ["car"]}}), 0, code="FMT003",
         where=("task[0].annotations[0].result", 1, "r2"), objects=1, annotator="a/user_1",
         message="brush RLE holds 8 values, expected height x width x 4 = 48x64x4 = 12288"),
    Case("label-studio-completed-by-list", _label_studio(completed_by=[1, 2]), 0, code="FMT011",
         where=("task[0].annotations", 1, 6), objects=1, annotator="a/user_1",
         message="completed_by [1, 2] is not a user id or a user object; annotation left out"),
    # integers longer than Python converts, in each JSON format and in XML
    Case("labelme-coordinate-5000-digits", _raw(json.dumps(labelme_doc({
        "label": "car", "points": [[1, 1], [7, 1], [1, 7]], "shape_type": "polygon"})).replace(
        "[7, 1]", "[" + "7" * 5000 + ", 1]")), 0, code="FMT001", where=("shapes", 1, None), objects=1,
         message="polygon 'points' must be a list of [x, y] numbers"),
    Case("label-studio-coordinate-5000-digits", _raw(json.dumps(label_studio_doc({
        "type": "polygonlabels", "value": {"points": [[1, 1], [7, 1], [1, 7]], "polygonlabels": ["car"]}})).replace(
        "[7, 1]", "[" + "7" * 5000 + ", 1]")), 0, code="FMT001", where=("task[0].annotations[0].result", 1, "r2"),
         objects=1, annotator="a/user_1", message="polygon 'points' must be a list of [x, y] percentages"),
    Case("cvat-z-order-5000-digits", _cvat(f'<polygon label="car" points="1,1;9,1;9,9" z_order="{"9" * 5000}"/>'),
         0, code="FMT016", severity="warning", where=("polygon", 1, None), objects=2,
         message="is not an integer; ignored"),
    # label maps
    Case("labelmap-named-pipe", _labelmap_named_pipe, 0, code="FMT015", severity="warning", where=None,
         file="export/b.png", objects=3,
         message="b.png is not a regular file (a named pipe, socket or device); left out"),
]


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def _argv(case: Case, root: Path, path: Path) -> list[str]:
    if case.manifest is not None:
        manifest = root.parent / "batch.toml"
        manifest.write_text(f'{case.manifest}\n[[exports]]\nannotator = "a"\npath = "{path}"\n{case.export_keys}\n')
        return ["run", "--manifest", str(manifest), "--format", "json", *map(str, case.args)]
    return ["run", f"a={path}", "--format", "json", *map(str, case.args)]


# The corpus runs in one child process under an address-space limit and a time limit: a case that made
# the process grow without bound (a vertex at 1e308 once took 23 GB), crash or hang fails here, with the
# case named, instead of taking the machine with it.
MEMORY_LIMIT = 4 * 2 ** 30
"""Bytes of address space the process running the corpus may map: numba's compiler, duckdb and the
libraries map about 2.5 GB (of which about 0.3 GB is resident) once the first run has compiled."""
TIME_LIMIT = 300
"""Seconds the whole corpus may take (about 30 on two cores)."""
CASE_TIME_LIMIT = 60
"""Seconds one case may take (a hang, such as a read from a named pipe, ends the corpus run there)."""

_CHILD = r"""
import contextlib, io, json, os, resource, signal, sys, time, warnings
limit, case_seconds = int(sys.argv[2]), int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
warnings.simplefilter("error")  # as pytest's filterwarnings = error


class CaseTimeout(BaseException):
    pass


def _timeout(signum, frame):
    raise CaseTimeout


signal.signal(signal.SIGALRM, _timeout)
from qa.cli import main
with open(sys.argv[1], encoding="utf-8") as fh:
    jobs = [json.loads(line) for line in fh]
for job in jobs:
    os.environ["QA_DB"] = job["db"]
    print(json.dumps({"id": job["id"], "started": True}), flush=True)
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    signal.alarm(case_seconds)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(job["argv"])
    except CaseTimeout:
        print(f"case {job['id']} still running after {case_seconds} s", file=sys.stderr, flush=True)
        sys.exit(3)
    finally:
        signal.alarm(0)
    print(json.dumps({"id": job["id"], "code": code, "out": out.getvalue(), "err": err.getvalue(),
                      "seconds": time.perf_counter() - start}), flush=True)
"""


@dataclass
class CorpusRun:
    """What the child process did: per case its exit code, stdout, stderr and whether inputs changed."""

    results: dict
    returncode: int | None
    stderr: str
    seconds: float
    last_started: str | None

    def result(self, case: Case) -> dict:
        if case.id not in self.results:
            pytest.fail(f"the corpus process ended (exit {self.returncode}) before case {case.id} finished; "
                        f"last case started: {self.last_started}; stderr: {self.stderr[-2000:]}")
        return self.results[case.id]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> CorpusRun:
    """Build every case, run them all in one child process under the limits above, collect the outcomes."""
    import resource  # noqa: F401 - POSIX only: the child sets its limit with it
    import subprocess
    import sys
    import time

    base = tmp_path_factory.mktemp("corpus")
    jobs, cases = [], {}
    for case in CASES:
        root = base / case.id / "in"
        root.mkdir(parents=True)
        path = case.build(root)
        cases[case.id] = (root, path, _hashes(root))
        jobs.append({"id": case.id, "argv": _argv(case, root, path), "db": str(root.parent / "qa.duckdb")})
    plan = base / "jobs.jsonl"
    plan.write_text("".join(json.dumps(j) + "\n" for j in jobs), encoding="utf-8")
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(plan), str(MEMORY_LIMIT), str(CASE_TIME_LIMIT)],
                              capture_output=True, text=True, timeout=TIME_LIMIT, cwd=base)
        returncode, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        returncode = None
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = f"timed out after {TIME_LIMIT} s; " + (exc.stderr.decode() if isinstance(exc.stderr, bytes)
                                                         else (exc.stderr or ""))
    seconds = time.perf_counter() - start
    results, last = {}, None
    for line in stdout.splitlines():
        record = json.loads(line)
        if record.get("started"):
            last = record["id"]
            continue
        root, path, before = cases[record["id"]]
        record.update(path=str(path), root=str(root), unchanged=_hashes(root) == before)
        results[record["id"]] = record
    return CorpusRun(results, returncode, stderr, seconds, last)


def test_the_corpus_runs_under_memory_and_time_limits(corpus):
    """Every case finishes in one process limited to 4 GB of address space, 60 s per case and 300 s in
    all: no crash, no hang, no traceback, no internal error."""
    assert corpus.returncode == 0, (corpus.returncode, corpus.last_started, corpus.stderr[-2000:])
    assert set(corpus.results) == {c.id for c in CASES}
    for case_id, result in corpus.results.items():
        assert "Traceback" not in result["err"], (case_id, result["err"])
        assert "internal error" not in result["err"], (case_id, result["err"])
    assert corpus.seconds < TIME_LIMIT


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_export(case, corpus):
    result = corpus.result(case)
    path, code, out, err = Path(result["path"]), result["code"], result["out"], result["err"]
    assert result["unchanged"], "an input file was modified"
    assert "Traceback" not in err
    assert code == case.exit, err
    if case.exit == 2:
        assert out == ""
        lines = err.splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith(f"qa: error: {path}: "), lines[0]
        assert case.message in lines[0]
        return
    summary = json.loads(out)
    [export] = summary["annotators"]
    assert export["objects"] == case.objects
    matches = [f for f in summary["findings"] if f["code"] == case.code]
    assert len(matches) == 1, summary["findings"]
    [found] = matches
    assert found["file"] == str(Path(result["root"]) / case.file if case.file else path)
    if case.where is None:  # a finding about a whole file
        assert (found["where"], found["index"], found["id"]) == ("", None, None)
    else:
        section, index, obj_id = case.where
        assert found["where"].startswith(f"{section}[{index}]")
        assert (found["index"], found["id"]) == (index, obj_id)
    assert found["severity"] == case.severity
    assert found["annotator"] == case.annotator
    assert case.message in found["message"], found["message"]


@pytest.mark.parametrize("case", [c for c in CASES if c.id in ("polygon-2-points", "png-missing")],
                         ids=lambda c: c.id)
def test_text_output_names_file_index_and_id(case, tmp_path, capsys):
    root = tmp_path / "in"
    root.mkdir()
    path = case.build(root)
    code, out, err = run_cli(["run", f"a={path}"], capsys)
    assert code == 0
    section, index, obj_id = case.where
    line = next(line for line in out.splitlines() if case.code in line)
    assert line.startswith(f"{path}:{section}[{index}] id={obj_id}: [a] {case.code} ")
    errors, warnings = int(case.severity == "error"), int(case.severity == "warning")
    assert out.rstrip().splitlines()[-1] == (f"{errors} error{'s' * (errors != 1)}, "
                                             f"{warnings} warning{'s' * (warnings != 1)} in 1 export")


def test_debug_shows_the_exception(tmp_path):
    path = _raw("{")(tmp_path)
    from qa.cli import main

    with pytest.raises(InputError):
        main(["--debug", "run", f"a={path}"])


def test_documented_outcomes_match_the_corpus():
    """Every case has one row in docs/input-errors.md, with the outcome the test checks."""
    text = DOCS.read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*`([a-z0-9-]+)`\s*\|(.*)\|\s*$", line)
        if m:
            rows[m.group(1)] = [cell.strip() for cell in m.group(2).split("|")]
    assert set(rows) == {c.id for c in CASES}
    for case in CASES:
        outcome = rows[case.id][-1]
        if case.exit == 2:
            assert outcome.startswith("exit 2"), (case.id, outcome)
        else:
            assert outcome.startswith(f"exit 0, {case.code} {case.severity}"), (case.id, outcome)


# --- the PNG guards, directly ---------------------------------------------------------------------------

def test_png_header_is_checked_before_decoding(tmp_path):
    # a PNG header announcing 100000 x 100000 pixels, and nothing behind it
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + (100_000).to_bytes(4, "big") * 2
                     + b"\x08\x02\x00\x00\x00")
    assert png_size(bomb) == (100_000, 100_000)
    with pytest.raises(InputError, match="exceeds the limit of 100000000 pixels"):
        open_png_checked(bomb, Limits())


def test_png_above_pillow_bomb_limit_opens_when_allowed(tmp_path):
    # Pillow warns above 89 MP; our own bound replaces its guard, so no warning escapes
    path = tmp_path / "wide.png"
    PILImage.new("1", (4_000, 1_000)).save(path)
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 1_000_000  # Pillow's guard, scaled down: it warns above 1 MP and refuses above 2 MP
    try:
        with open_png_checked(path, Limits(max_pixels=5_000_000)) as image:
            assert image.size == (4_000, 1_000)
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    assert Image.MAX_IMAGE_PIXELS == saved
    with pytest.raises(InputError, match="exceeds the limit of 1000 pixels"):
        open_png_checked(path, Limits(max_pixels=1000))
