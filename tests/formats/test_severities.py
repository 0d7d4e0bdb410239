"""Every load-time finding has the one severity its code documents (``qa rules list``, docs/rules.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from qa.errors import InputError
from qa.formats import load
from qa.formats._findings import LOAD_CODES, finding
from qa.rules import _registry

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

REAL = [
    "airo_mono_test_data/airo-dataset-tools/test/test_data/instances_val2017_small.json",
    "airo_mono_test_data/airo-dataset-tools/test/test_data/lego-battery-resized/annotations.json",
    "airo_mono_test_data/airo-dataset-tools/test/test_data/lego-battery-resized/original_annotations.xml",
    "datumaro_format_fixtures/tests/assets/coco_dataset/coco_instances/annotations/instances_train.json",
    "datumaro_format_fixtures/tests/assets/cvat_dataset/for_images/export_task/train.xml",
    "label_studio_converter_tests/tests/data/test_export_yolo/data_polygons.json",
    "kalphacv_multirater_examples/test_annotation.json",
    "panopticapi_sample/sample_data/panoptic_examples.json",
    "shuffler_labelme_4annotators",
    "coco139_coconut_vs_coco/coco_val2017_partial_000000000139.json",
]


@pytest.mark.parametrize("code", sorted(LOAD_CODES))
def test_a_finding_takes_its_codes_severity(code):
    assert finding(code, "x").severity == _registry.get(code).severity


def test_no_loader_chooses_a_severity():
    for path in sorted((ROOT / "qa" / "formats").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "finding":
                assert not any(k.arg == "severity" for k in node.keywords), f"{path.name}:{node.lineno}"


def _check(exports) -> int:
    n = 0
    for export in exports:
        for f in export.findings:
            assert f.severity == _registry.get(f.code).severity, (export.path, f.code, f.severity, f.message)
            n += 1
    return n


def test_fixture_exports_report_documented_severities():
    n = 0
    for path in [FIXTURES / "cvat" / "shapes.xml", FIXTURES / "cvat" / "malformed.xml",
                 FIXTURES / "label_studio" / "tasks.json", FIXTURES / "label_studio" / "malformed.json",
                 FIXTURES / "labelme" / "json", FIXTURES / "labelme" / "xml", FIXTURES / "labelme" / "bad"]:
        try:
            n += _check(load(path, "a"))
        except InputError:
            continue
    assert n > 20  # the fixtures are full of findings: FMT001 ... FMT015


def test_real_exports_report_documented_severities(shared_data):
    n = sum(_check(load(shared_data / p, "a")) for p in REAL)
    assert n > 0


def test_keypoint_only_coco_annotations_are_one_info_like_cvat_points(shared_data):
    # airo's COCO conversion of the CVAT task: 34 keypoint-only annotations were 34 FMT011 lines
    folder = shared_data / "airo_mono_test_data/airo-dataset-tools/test/test_data/lego-battery-resized"
    [coco] = load(folder / "annotations.json", "a")
    [cvat] = load(folder / "original_annotations.xml", "a")
    assert [(f.code, f.severity) for f in coco.findings] == [("FMT012", "info")]
    assert coco.findings[0].message.startswith("34 keypoint-only annotations skipped")
    assert [(f.code, f.severity) for f in cvat.findings] == [("FMT012", "info")]
