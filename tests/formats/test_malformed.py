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
]


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def _run_case(case: Case, tmp_path: Path, capsys):
    root = tmp_path / "in"
    root.mkdir()
    path = case.build(root)
    before = _hashes(root)
    if case.manifest is not None:
        manifest = tmp_path / "batch.toml"
        manifest.write_text(f'{case.manifest}\n[[exports]]\nannotator = "a"\npath = "{path}"\n{case.export_keys}\n')
        argv = ["run", "--manifest", manifest, "--format", "json", *case.args]
    else:
        argv = ["run", f"a={path}", "--format", "json", *case.args]
    code, out, err = run_cli(argv, capsys)
    assert _hashes(root) == before, "an input file was modified"
    return path, code, out, err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_export(case, tmp_path, capsys):
    path, code, out, err = _run_case(case, tmp_path, capsys)
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
    section, index, obj_id = case.where
    assert found["file"] == str(path)
    assert found["where"].startswith(f"{section}[{index}]")
    assert (found["index"], found["id"]) == (index, obj_id)
    assert found["severity"] == case.severity
    assert found["annotator"] == "a"
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
