"""Format detection from content, the --input-format override, and the error when nothing matches."""

from __future__ import annotations

from pathlib import Path

import pytest
from common import run_cli

from qa.errors import InputError
from qa.formats import FORMATS, _MODULES, detect, load

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

REAL = [
    ("airo_mono_test_data/airo-dataset-tools/test/test_data/lego-battery-resized/original_annotations.xml", "cvat"),
    ("airo_mono_test_data/airo-dataset-tools/test/test_data/lego-battery-resized/annotations.json", "coco"),
    ("airo_mono_test_data/airo-dataset-tools/test/test_data/instances_val2017_small.json", "coco"),
    ("datumaro_format_fixtures/tests/assets/cvat_dataset/for_images/export_task/train.xml", "cvat"),
    ("datumaro_format_fixtures/tests/assets/cvat_dataset/for_images/export_project/annotations.xml", "cvat"),
    ("datumaro_format_fixtures/tests/assets/coco_dataset/coco_instances/annotations/instances_train.json", "coco"),
    ("datumaro_format_fixtures/tests/assets/coco_dataset/coco_panoptic/annotations/panoptic_train.json",
     "coco_panoptic"),
    ("label_studio_converter_tests/tests/data/test_export_yolo/data_polygons.json", "label_studio"),
    ("label_studio_converter_tests/tests/data/test_export_json_min/data.json", "label_studio"),
    ("shuffler_labelme_4annotators", "labelme"),
    ("shuffler_labelme_4annotators/w55-e04-objects1", "labelme"),
    ("shuffler_labelme_4annotators/w55-e04-objects1/000001404.xml", "labelme"),
]


@pytest.mark.parametrize("rel, expected", REAL, ids=[r[0].rsplit("/", 1)[-1] for r in REAL])
def test_real_exports_are_detected(shared_data, rel, expected):
    assert detect(shared_data / rel) == expected


@pytest.mark.parametrize("rel, expected", [
    ("cvat/shapes.xml", "cvat"), ("cvat/video.xml", "cvat"), ("label_studio/tasks.json", "label_studio"),
    ("labelme/json", "labelme"), ("labelme/xml", "labelme"), ("labelme/team", "labelme"),
    ("labelme/json/b.json", "labelme"),
])
def test_fixtures_are_detected(rel, expected):
    assert detect(FIXTURES / rel) == expected


def test_every_format_is_registered_once():
    assert FORMATS == ("coco_panoptic", "coco", "cvat", "label_studio", "labelme", "binary_masks", "labelmap")
    for name in FORMATS:
        assert _MODULES[name] == f"qa.formats.{name}"


@pytest.mark.parametrize("name, content", [
    ("notes.txt", "hello"),
    ("list.json", "[1, 2, 3]"),
    ("empty_list.json", "[]"),
    ("object.json", '{"shapes_but_not": []}'),
    ("voc.xml", "<annotation_set><object/></annotation_set>"),
    ("broken.xml", "<annotations"),
])
def test_unknown_content_is_one_clear_line(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError) as info:
        detect(path)
    message = str(info.value)
    assert message == (f"{path}: cannot tell the export format (known: {', '.join(FORMATS)}); "
                       "pass --input-format NAME or set 'format' in the manifest")


def test_sniffers_never_raise(tmp_path):
    import importlib

    odd = [tmp_path / "missing.json", tmp_path, tmp_path / "bin.xml", tmp_path / "bad.json"]
    (tmp_path / "bin.xml").write_bytes(b"\xff\xfe\x00<\x00a")
    (tmp_path / "bad.json").write_text("{")
    for module in _MODULES.values():
        sniff = importlib.import_module(module).sniff
        for path in odd:
            assert sniff(path) in (True, False)


def test_cli_unknown_format_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    code, out, err = run_cli(["run", f"a={path}"], capsys)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"qa: error: {path}: cannot tell the export format (known: "
                                        f"{', '.join(FORMATS)}); pass --input-format NAME or set "
                                        "'format' in the manifest"]


def test_cli_input_format_overrides_detection(capsys, tmp_path):
    # a LabelMe XML whose content is not recognised without the override (no .xml suffix)
    src = FIXTURES / "labelme" / "xml" / "img1.xml"
    path = tmp_path / "img1.labelme"
    path.write_bytes(src.read_bytes())
    with pytest.raises(InputError, match="cannot tell the export format"):
        detect(path)
    code, out, err = run_cli(["run", f"alice={path}", "--input-format", "labelme"], capsys)
    assert code == 0, err
    assert out.splitlines()[1].split()[:4] == ["alice", "labelme", "1", "2"]


def test_cli_input_format_applies_to_every_argument(capsys):
    cvat = FIXTURES / "cvat" / "shapes.xml"
    code, out, err = run_cli(["run", f"a={cvat}", f"b={FIXTURES / 'label_studio' / 'tasks.json'}",
                              "--input-format", "cvat"], capsys)
    assert code == 2
    assert "tasks.json: invalid XML at line 1 column 0" in err


def test_cli_unknown_input_format(capsys):
    code, out, err = run_cli(["run", f"a={FIXTURES / 'cvat' / 'shapes.xml'}", "--input-format", "voc"], capsys)
    assert code == 2
    assert err.strip() == f"qa: error: --input-format 'voc' is not one of: {', '.join(FORMATS)}"


def test_load_with_explicit_format_skips_detection():
    (export,) = load(FIXTURES / "cvat" / "shapes.xml", format="cvat")
    assert export.format == "cvat"
