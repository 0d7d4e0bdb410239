"""LabelMe JSON and XML: the shuffler four-annotator export, hand-written fixtures and bad input."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from common import rle_to_mask, run_cli

from qa.engine._masks import polygons_to_rle
from qa.errors import InputError
from qa.formats import detect, load

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "labelme"
SHUFFLER = "shuffler_labelme_4annotators"
USERS = {"w55-e04-objects1": "ecyou", "w55-e04-objects2": "mhsieh2", "w55-e04-objects3": "sngandhi",
         "w55-e04-objects4": "ylp"}


@pytest.fixture(scope="module")
def shuffler(shared_data):
    return {e.annotator: e for e in load(shared_data / SHUFFLER)}


def test_shuffler_is_four_annotators_of_the_same_20_images(shared_data, shuffler):
    assert detect(shared_data / SHUFFLER) == "labelme"
    assert list(shuffler) == ["ecyou", "mhsieh2", "sngandhi", "ylp"]  # named by their <username>
    for folder, user in USERS.items():
        assert shuffler[user].path.name == folder
    keys = [sorted(e.images) for e in shuffler.values()]
    assert all(k == keys[0] for k in keys) and len(keys[0]) == 20
    assert keys[0][0] == "000000084.jpg" and "000001404.jpg" in keys[0]
    for export in shuffler.values():
        assert all((im.width, im.height) == (64, 64) for im in export.images.values())
        assert len(export.objects) == 20  # one car per image once deleted objects are left out
        assert sorted(o.image for o in export.objects) == keys[0]
        assert {o.attributes["username"] for o in export.objects} == {export.annotator}


def test_shuffler_labels_and_deleted_objects(shuffler):
    assert set(shuffler["ecyou"].categories) == {"car"}  # its deleted "mirror" is gone
    assert set(shuffler["mhsieh2"].categories) == {"car", "truck"}
    assert set(shuffler["ylp"].categories) == {"car"}  # its "truck" on 000000084 is deleted
    raw = set(shuffler["sngandhi"].categories)
    assert "acar_618" in raw and "car_1404" in raw and len(raw) == 20 - 1  # car_276 twice
    deleted = {a: [f.message for f in e.findings if f.code == "FMT013"] for a, e in shuffler.items()}
    assert deleted == {
        "ecyou": ["4 deleted objects skipped: marked deleted in LabelMe (first one here)"],
        "mhsieh2": [],
        "sngandhi": ["4 deleted objects skipped: marked deleted in LabelMe (first one here)"],
        "ylp": ["1 deleted object skipped: marked deleted in LabelMe"],
    }
    assert all(f.severity == "info" for e in shuffler.values() for f in e.findings)


def test_shuffler_occluded_flags_disagree_as_published(shuffler):
    # 000001089: occluded no / yes / yes / no (shuffler's testdata, one file per annotator)
    flags = [next(o for o in shuffler[u].objects if o.image == "000001089.jpg").occluded
             for u in ("ecyou", "mhsieh2", "sngandhi", "ylp")]
    assert flags == [False, True, True, False]
    vertices = [len(next(o for o in shuffler[u].objects if o.image == "000001089.jpg").polygons[0])
                for u in ("ecyou", "mhsieh2", "sngandhi", "ylp")]
    assert vertices == [24, 26, 18, 30]


def test_shuffler_polygon_by_hand(shuffler):
    # w55-e04-objects2/000001404.xml: 18 points, (7,10) (6,27) ... (42,16) (26,4)
    (obj,) = [o for o in shuffler["mhsieh2"].objects if o.image == "000001404.jpg"]
    poly = obj.polygons[0]
    assert poly.shape == (18, 2)
    assert poly[:2].tolist() == [[7, 10], [6, 27]] and poly[-2:].tolist() == [[42, 16], [26, 4]]
    assert obj.source.section == "object" and obj.source.index == 0 and obj.source.id == "0"
    assert obj.source.file.endswith("w55-e04-objects2/000001404.xml")
    # ecyou's file holds a deleted car, a deleted mirror, then the kept car (object index 2)
    (kept,) = [o for o in shuffler["ecyou"].objects if o.image == "000001404.jpg"]
    assert kept.source.index == 2 and kept.polygons[0][0].tolist() == [6, 9]


def test_shuffler_mean_pairwise_mask_iou(shuffler):
    # SOURCE.txt measured a mean pairwise mask IoU of 0.91 between the four annotators
    masks = {u: {o.image: rle_to_mask(polygons_to_rle(o.polygons, 64, 64)).astype(bool) for o in e.objects}
             for u, e in shuffler.items()}
    ious = []
    for a, b in itertools.combinations(masks, 2):
        for key in masks[a]:
            ma, mb = masks[a][key], masks[b][key]
            ious.append((ma & mb).sum() / (ma | mb).sum())
    assert len(ious) == 6 * 20
    assert round(float(np.mean(ious)), 2) == 0.91


def test_one_subfolder_as_one_export(shared_data):
    (export,) = load(shared_data / SHUFFLER / "w55-e04-objects3", "sam")
    assert export.annotator == "sam" and len(export.images) == 20


# --- labelme JSON fixture -------------------------------------------------------------------------

def test_json_folder(capsys):
    (export,) = load(FIXTURES / "json", "alice")
    assert list(export.images) == ["a.jpg", "b.png"]  # ../images/a.jpg leaves the folder: its name is kept
    assert export.images["a.jpg"].path is None and (export.images["b.png"].width, export.images["b.png"].height) \
        == (40, 30)
    car, sign, wheel = export.objects
    assert car.polygons[0].tolist() == [[2, 3], [12, 3], [12, 9], [2, 9]]
    assert car.attributes == {"shape": "polygon", "occluded": True, "description": "parked", "group": 1}
    # rectangle by two corners given bottom-left-first: the box 20..30 x 5..15
    assert sign.polygons[0].tolist() == [[20, 5], [30, 5], [30, 15], [20, 15]]
    assert sign.attributes == {"shape": "rectangle"}
    # circle: centre (10, 20) and a point (13, 24) on it, radius 5
    pts = wheel.polygons[0]
    np.testing.assert_allclose(np.hypot(pts[:, 0] - 10, pts[:, 1] - 20), 5.0)
    got = {(f.code, f.severity, f.source.where) for f in export.findings}
    assert got == {("FMT015", "warning", "shapes[7]"), ("FMT001", "error", "shapes[8]"),
                   ("FMT004", "error", "shapes[9]"), ("FMT001", "error", "shapes[10]"),
                   ("FMT012", "info", "shapes[3]"), ("FMT012", "info", "shapes[4]"),
                   ("FMT012", "info", "shapes[6]")}
    points = next(f for f in export.findings if f.source.where == "shapes[4]")
    assert points.message == "2 point shapes skipped: points are not areas (first one here)"


def test_single_json_file_is_detected():
    assert detect(FIXTURES / "json" / "a.json") == "labelme"
    (export,) = load(FIXTURES / "json" / "a.json")
    assert export.annotator == "a" and list(export.images) == ["a.jpg"]


def test_subfolders_without_usernames_are_named_after_the_folder():
    exports = load(FIXTURES / "team")
    assert [e.annotator for e in exports] == ["alice", "bob"]
    assert [list(e.images) for e in exports] == [["x.jpg"], ["x.jpg"]]


# --- LabelMe XML fixture --------------------------------------------------------------------------

def test_xml_folder_merges_files_of_one_image():
    (export,) = load(FIXTURES / "xml", "team")
    assert list(export.images) == ["img1.jpg"]
    assert [(o.category, o.source.file.rsplit("/", 1)[1], o.source.index) for o in export.objects] == [
        ("car", "img1.xml", 0), ("person", "img1.xml", 2), ("bike", "img1_object5.xml", 0)]
    car = export.objects[0]
    assert car.attributes == {"shape": "polygon", "occluded": True, "username": "u1", "attributes": "red",
                              "verified": False}
    got = {(f.code, f.severity, f.source.file.rsplit("/", 1)[1], f.source.where) for f in export.findings}
    assert got == {
        ("FMT015", "warning", "img1.xml", "object[3] id=3"),  # a <segm> mask
        ("FMT001", "error", "img1.xml", "object[4] id=4"),    # 2 points
        ("FMT011", "error", "img2.xml", ""),                  # no image size
        ("FMT003", "error", "img3.xml", ""),                  # img1.jpg declared 80x60 here, 40x30 before
        ("FMT013", "info", "img1.xml", "object[1] id=1"),     # deleted
    }


def test_xml_split_by_username():
    exports = load(FIXTURES / "xml", options={"annotators": "username"})
    assert {e.annotator: [o.category for o in e.objects] for e in exports} == {"u1": ["car"],
                                                                               "u2": ["person", "bike"]}


def test_unknown_annotators_option_is_an_error():
    with pytest.raises(InputError, match="annotators='everyone' is not 'folder' or 'username'"):
        load(FIXTURES / "xml", options={"annotators": "everyone"})


# --- bad files ------------------------------------------------------------------------------------

def test_malformed_xml_and_json_name_line_and_column():
    with pytest.raises(InputError) as info:
        load(FIXTURES / "bad" / "malformed.xml", format="labelme")
    assert str(info.value) == f"{FIXTURES / 'bad' / 'malformed.xml'}: invalid XML at line 3 column 2: mismatched tag"
    with pytest.raises(InputError) as info:
        load(FIXTURES / "bad" / "malformed.json", format="labelme")
    assert str(info.value).startswith(f"{FIXTURES / 'bad' / 'malformed.json'}: invalid JSON at line 2 column 19")


def test_folder_without_labelme_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="holds no LabelMe .json or .xml files"):
        load(tmp_path, format="labelme")


def test_cli_bad_labelme_folder_exits_2(capsys):
    code, out, err = run_cli(["run", f"x={FIXTURES / 'bad'}", "--input-format", "labelme"], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "invalid JSON at line 2 column 19" in err


def test_subfolders_without_labelme_files_are_not_annotators(tmp_path):
    for who in ("alice", "bob"):
        (tmp_path / who).mkdir()
        (tmp_path / who / "x.json").write_bytes((FIXTURES / "team" / who / "x.json").read_bytes())
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "x.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "info.json").write_text('{"project": "cars"}')
    (tmp_path / "batch.json").write_text('{"note": "not an export"}')
    assert [e.annotator for e in load(tmp_path)] == ["alice", "bob"]
