"""CVAT for images 1.1 XML: real exports, a hand-written fixture with every shape, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from common import rle_to_mask, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from qa.engine._masks import polygons_to_rle
from qa.errors import InputError
from qa.formats import detect, load
from qa.formats._crop_rle import crop_to_coco_rle

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cvat"
AIRO = "airo_mono_test_data/airo-dataset-tools/test/test_data/lego-battery-resized/original_annotations.xml"
DATUMARO = "datumaro_format_fixtures/tests/assets/cvat_dataset/for_images"


def _codes(export):
    return [(f.code, f.source.where if f.source else None) for f in export.findings]


# --- real exports ---------------------------------------------------------------------------------

def test_airo_job_export(shared_data):
    path = shared_data / AIRO
    assert detect(path) == "cvat"
    (export,) = load(path, "airo")
    assert export.format == "cvat" and export.annotator == "airo"
    assert len(export.images) == 34
    assert all((im.width, im.height) == (4096, 2304) for im in export.images.values())
    assert all(im.path is not None and im.path.is_file() for im in export.images.values())
    # one semi-automatic battery.mask polygon per image; the 170 keypoints are not areas
    assert len(export.objects) == 34
    assert {o.category for o in export.objects} == {"battery.mask"}
    assert sorted({o.image for o in export.objects}) == sorted(export.images)
    assert set(export.categories) == {"battery.bbox", "battery.mask", "battery.button", "battery.top-left",
                                      "battery.top-right", "battery.center-front", "battery.center-back"}
    for obj in export.objects:  # every polygon in the file has occluded="0" z_order="0" source="semi-auto"
        assert obj.occluded is False and obj.z_order == 0
        assert obj.attributes["source"] == "semi-auto" and obj.attributes["shape"] == "polygon"
    (skipped,) = [f for f in export.findings if f.code == "FMT012"]
    assert skipped.severity == "info" and skipped.message.startswith("170 points shapes skipped")
    assert [f for f in export.findings if f.severity != "info"] == []


def test_airo_shapes_checked_by_hand(shared_data):
    (export,) = load(shared_data / AIRO)
    # line 154: <image id="5" name="IMG20231010093436.jpg">, its polygon has 87 vertices,
    # "2091.00,876.00;2071.00,874.00;..." ending "...;2113.00,903.00;2106.00,888.00"
    (obj,) = [o for o in export.objects if o.image == "IMG20231010093436.jpg"]
    poly = obj.polygons[0]
    assert poly.shape == (87, 2)
    assert poly[:2].tolist() == [[2091.0, 876.0], [2071.0, 874.0]]
    assert poly[-2:].tolist() == [[2113.0, 903.0], [2106.0, 888.0]]
    assert obj.source.section == "polygon" and obj.source.index == 5
    # image 0 (IMG20231010083824.jpg): 148 vertices starting at 1655,863
    first = export.objects[0]
    assert first.image == "IMG20231010083824.jpg"
    assert first.polygons[0].shape == (148, 2) and first.polygons[0][0].tolist() == [1655.0, 863.0]


def test_datumaro_task_export_all_attribute_types(shared_data):
    (export,) = load(shared_data / DATUMARO / "export_task" / "train.xml")
    assert {k: (im.width, im.height) for k, im in export.images.items()} == {"img0.jpg": (8, 8),
                                                                           "img1.jpg": (10, 10)}
    (box,) = export.objects  # the polygon of img1 has label="" and is reported
    assert box.category == "label1" and box.image == "img0.jpg"
    # <box xbr="4" xtl="0" ybr="4" ytl="2">: a 4-point polygon of its corners
    assert box.polygons[0].tolist() == [[0, 2], [4, 2], [4, 4], [0, 4]]
    assert box.attributes["shape"] == "box"
    assert box.occluded is True and box.z_order == 1
    # checkbox -> bool, radio -> str, text -> str (leading zeros kept), number -> float
    assert box.attributes["a1"] is True
    assert box.attributes["a2"] == "v3"
    assert box.attributes["a3"] == "0003"
    assert box.attributes["a4"] == 2.4 and isinstance(box.attributes["a4"], float)
    codes = _codes(export)
    assert ("FMT004", "polygon[0]") in codes
    assert ("FMT012", "polyline[0]") in codes and ("FMT012", "points[0]") in codes


def test_datumaro_project_export_keys_images_by_subset(shared_data):
    (export,) = load(shared_data / DATUMARO / "export_project" / "annotations.xml")
    assert sorted(export.images) == [f"{s}/img{i}.jpg" for s in ("Test", "Train", "Validation") for i in (0, 1)]
    boxes = [o for o in export.objects if o.attributes["shape"] == "box"]
    polygons = [o for o in export.objects if o.attributes["shape"] == "polygon"]
    assert len(boxes) == 3 and len(polygons) == 3
    assert {o.image for o in boxes} == {"Test/img0.jpg", "Train/img0.jpg", "Validation/img0.jpg"}
    for obj in boxes:
        assert obj.attributes["a1"] is True and obj.attributes["a4"] == 2.4 and obj.occluded is True
    for obj in polygons:
        assert obj.polygons[0].tolist() == [[1, 2], [3, 4], [6, 5]] and obj.z_order == 1
        assert "occluded" not in obj.attributes  # the project export writes no occluded for these
    skipped = {f.message.split(" skipped")[0] for f in export.findings if f.code == "FMT012"}
    assert skipped == {"3 polyline shapes", "3 points shapes"}


# --- hand-written fixture -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shapes():
    (export,) = load(FIXTURES / "shapes.xml", "alice")
    return export


def test_fixture_images_and_objects(shapes):
    assert list(shapes.images) == ["frames/a.png", "frames/b.png", "frames/empty.png"]
    kinds = [(o.image, o.category, o.attributes["shape"]) for o in shapes.objects]
    assert kinds == [("frames/a.png", "car", "polygon"), ("frames/a.png", "car", "box"),
                     ("frames/a.png", "road", "mask"), ("frames/a.png", "sign", "ellipse"),
                     ("frames/b.png", "car", "polygon")]
    assert all(o.annotator == "alice" for o in shapes.objects)


def test_fixture_attributes_of_every_type(shapes):
    polygon = shapes.objects[0]
    assert polygon.attributes == {
        "shape": "polygon", "occluded": True, "z_order": 2, "group": 3, "source": "manual",
        "parked": True, "color": "blue", "plate": "0042", "doors": 5, "speed": 12.5,
        "attribute:source": "camera 2",  # a custom attribute named like a built-in key
    }
    assert isinstance(polygon.attributes["doors"], int)
    box = shapes.objects[1]
    assert box.attributes["parked"] is False and box.attributes["doors"] == "many"
    (bad_number,) = [f for f in shapes.findings if f.code == "FMT014" and f.source.section == "box"]
    assert bad_number.severity == "warning" and "'many' is not a number" in bad_number.message


def test_fixture_rotated_box(shapes):
    # xtl=10 ytl=2 xbr=14 ybr=4 turned 90 degrees clockwise about its centre (12, 3)
    box = shapes.objects[1]
    assert box.attributes["rotation"] == 90.0
    np.testing.assert_allclose(box.polygons[0], [[13, 1], [13, 5], [11, 5], [11, 1]], atol=1e-12)


def test_fixture_mask_decoded_to_image_sized_rle(shapes):
    mask_obj = shapes.objects[2]
    assert mask_obj.kind == "rle" and mask_obj.rle["size"] == [10, 20]
    # rle="1, 2, 2, 3, 1, 1" over a 5x2 box at left=3 top=7: rows 01100 and 11101
    expected = np.zeros((10, 20), np.uint8)
    expected[7, 3:8] = [0, 1, 1, 0, 0]
    expected[8, 3:8] = [1, 1, 1, 0, 1]
    np.testing.assert_array_equal(rle_to_mask(mask_obj.rle), expected)


def test_fixture_ellipse(shapes):
    ellipse = shapes.objects[3]
    pts = ellipse.polygons[0]
    # vertices lie on the ellipse (x-16)^2/2^2 + (y-7)^2/1.5^2 = 1
    np.testing.assert_allclose(((pts[:, 0] - 16) / 2) ** 2 + ((pts[:, 1] - 7) / 1.5) ** 2, 1.0)
    assert ellipse.z_order == 3


def test_fixture_bad_objects_are_findings_with_file_and_index(shapes):
    got = {(f.code, f.source.where) for f in shapes.findings if f.severity == "error"}
    assert got == {
        ("FMT001", "polygon[1]"), ("FMT001", "polygon[2]"), ("FMT001", "box[1]"),
        ("FMT002", "mask[1]"), ("FMT003", "mask[2]"),
        ("FMT004", "polygon[3]"), ("FMT004", "polygon[4]"),
        ("FMT007", "image[2] id=2"), ("FMT008", "image[3] id=3"), ("FMT005", "image[4] id=4"),
        ("FMT011", "image[5] id=5"),
    }
    for f in shapes.findings:
        assert f.source.file.endswith("shapes.xml") and "\n" not in f.message
    by_where = {f.source.where: f.message for f in shapes.findings}
    assert by_where["mask[1]"].startswith("mask runs sum to 7, expected width x height = 3x3 = 9")
    assert "reaches outside the 20x10 image" in by_where["mask[2]"]
    assert "'truck' is not declared" in by_where["polygon[3]"]
    infos = sorted(f.message for f in shapes.findings if f.severity == "info")
    assert infos == ["1 points shape skipped: points are not areas",
                     "1 polyline shape skipped: polylines are not areas",
                     "1 tag shape skipped: tags label the whole image"]


# --- bad files ------------------------------------------------------------------------------------

def test_malformed_xml_is_one_line_with_line_and_column():
    with pytest.raises(InputError) as info:
        load(FIXTURES / "malformed.xml", format="cvat")
    message = str(info.value)
    assert message == f"{FIXTURES / 'malformed.xml'}: invalid XML at line 6 column 4: mismatched tag"


def test_doctype_and_entities_are_refused():
    assert detect(FIXTURES / "doctype.xml") == "cvat"
    with pytest.raises(InputError, match="DOCTYPE declaration is refused"):
        load(FIXTURES / "doctype.xml")


def test_video_export_is_refused_with_a_hint():
    with pytest.raises(InputError, match="CVAT for video.*CVAT for images 1.1"):
        load(FIXTURES / "video.xml")


def test_wrong_root_element(tmp_path):
    path = tmp_path / "other.xml"
    path.write_text("<dataset><image/></dataset>")
    with pytest.raises(InputError, match=r"root element is <dataset>, expected <annotations>"):
        load(path, format="cvat")


def test_cli_bad_xml_exits_2_with_one_line(capsys):
    code, out, err = run_cli(["run", f"alice={FIXTURES / 'malformed.xml'}"], capsys)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"qa: error: {FIXTURES / 'malformed.xml'}: invalid XML at line 6 column 4: mismatched tag"]


def test_bad_objects_do_not_stop_the_run(capsys):
    code, out, err = run_cli(["run", f"alice={FIXTURES / 'shapes.xml'}"], capsys)
    assert code == 0
    assert "shapes.xml:mask[1]: [alice] FMT002 mask runs sum to 7" in out
    assert out.strip().endswith("11 errors, 1 warning in 1 export")


# --- the crop kernel ------------------------------------------------------------------------------

def _dense_rle_mask(crop, left, top, height, width):
    full = np.zeros((height, width), np.uint8)
    full[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
    return full


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_crop_to_coco_rle_matches_a_dense_mask(data):
    height = data.draw(st.integers(1, 12))
    width = data.draw(st.integers(1, 12))
    hc = data.draw(st.integers(1, height))
    wc = data.draw(st.integers(1, width))
    top = data.draw(st.integers(0, height - hc))
    left = data.draw(st.integers(0, width - wc))
    bits = data.draw(st.lists(st.integers(0, 1), min_size=hc * wc, max_size=hc * wc))
    crop = np.array(bits, np.uint8).reshape(hc, wc)
    rle = crop_to_coco_rle(crop, left, top, height, width)
    assert rle["size"] == [height, width]
    dense = _dense_rle_mask(crop, left, top, height, width)
    np.testing.assert_array_equal(rle_to_mask(rle), dense)
    assert rle["counts"] == mask_utils.encode(np.asfortranarray(dense))["counts"]  # pycocotools' very bytes


@pytest.mark.parametrize("seed", range(3))
def test_crop_to_coco_rle_writes_the_bytes_pycocotools_writes_for_large_images(seed):
    # long runs and counts smaller than the one two before them: several 5-bit groups, negative deltas
    rng = np.random.default_rng(seed)
    height, width = 1500 + 700 * seed, 2300
    hc, wc = int(rng.integers(1, 400)), int(rng.integers(1, 400))
    top, left = int(rng.integers(0, height - hc)), int(rng.integers(0, width - wc))
    crop = (rng.random((hc, wc)) < (0.02, 0.5, 0.98)[seed]).astype(np.uint8)
    crop[: hc // 2, : wc // 3] = 1
    dense = _dense_rle_mask(crop, left, top, height, width)
    assert crop_to_coco_rle(crop, left, top, height, width) == mask_utils.encode(np.asfortranarray(dense))


def test_crop_to_coco_rle_refuses_a_box_outside_the_image():
    with pytest.raises(ValueError, match="does not lie inside"):
        crop_to_coco_rle(np.ones((2, 2)), 3, 0, 4, 4)


def test_box_polygon_rasterises_to_its_pixels(shapes):
    # the unrotated polygon 1..8 x 1..6 of image a covers pixels 1..7 x 1..5 in pycocotools' convention
    obj = shapes.objects[0]
    mask = rle_to_mask(polygons_to_rle(obj.polygons, 10, 20))
    assert mask.sum() == 7 * 5
    assert mask[1:6, 1:8].all()


GROUPED = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <image id="0" name="a.png" width="40" height="20">
    <polygon label="building" occluded="1" z_order="1" group_id="7" points="0,0;10,0;10,10;0,10"></polygon>
    <polygon label="person" z_order="2" group_id="7" points="12,0;16,0;16,8;12,8"></polygon>
    <polygon label="building" occluded="0" z_order="1" group_id="7" points="20,0;30,0;30,10;20,10"></polygon>
    <polygon label="building" points="32,0;36,0;36,4;32,4"></polygon>
    <polygon label="building" group_id="0" points="32,10;36,10;36,14;32,14"></polygon>
  </image>
  <image id="1" name="b.png" width="40" height="20">
    <polygon label="building" group_id="7" points="0,0;10,0;10,10;0,10"></polygon>
  </image>
</annotations>
"""


def test_shapes_of_one_group_and_label_are_one_object(tmp_path):
    """CVAT has no multi-part polygon: the parts of one object share a group_id (CVAT's COCO export, through
    datumaro, writes each group as one annotation). Parts of another label stay their own objects."""
    path = tmp_path / "grouped.xml"
    path.write_text(GROUPED)
    (export,) = load(path, "alice")
    got = [(o.image, o.category, len(o.polygons), o.attributes.get("group"), o.attributes.get("shapes"),
            o.source.index) for o in export.objects]
    assert got == [("a.png", "building", 2, 7, 2, 0), ("a.png", "person", 1, 7, None, 1),
                   ("a.png", "building", 1, None, None, 3), ("a.png", "building", 1, 0, None, 4),
                   ("b.png", "building", 1, 7, None, 5)]  # polygon[5] of the file
    merged = export.objects[0]
    np.testing.assert_array_equal(merged.polygons[1], [[20, 0], [30, 0], [30, 10], [20, 10]])
    assert merged.attributes["occluded"] is True and merged.attributes["z_order"] == 1  # the first shape's
    assert export.findings == []
