"""OCC rules: occluded flags against the geometry and across annotators."""

import math

import pytest

from common import make_batch, make_object, run_rule, square


def test_occ001_flag_without_occluder():
    alone = make_batch([make_object(square(10, 10, 20), occluded=True)])
    (f,) = run_rule("OCC001", alone)
    assert math.isnan(f.value) and f.message == "object is flagged occluded but no other thing is labelled in the image"
    far = make_batch([make_object(square(10, 10, 20), occluded=True), make_object(square(40, 10, 20))])
    (g,) = run_rule("OCC001", far)
    assert g.source.index == 0 and g.value == 10.0 and g.limit == 2
    assert g.message == "object is flagged occluded but the nearest labelled thing is 10 px away (maximum 2 px)"
    assert run_rule("OCC001", far, touch_px=10) == []


@pytest.mark.parametrize("x", [31, 32, 25])
def test_occ001_touching_or_overlapping_neighbour_is_an_occluder(x):
    batch = make_batch([make_object(square(10, 10, 20), occluded=True), make_object(square(x, 10, 20))])
    assert run_rule("OCC001", batch) == []


def test_occ001_unflagged_objects_are_not_checked():
    assert run_rule("OCC001", make_batch([make_object(square(10, 10, 20), occluded=False)])) == []


def test_occ002_covered_but_not_flagged():
    objs = [make_object(square(10, 10, 40), occluded=False, z=0), make_object(square(30, 10, 40), occluded=False, z=1)]
    (f,) = run_rule("OCC002", make_batch(objs))
    assert f.source.index == 0 and f.value == pytest.approx(0.5) and f.limit == 0.2
    assert f.message == "object is 50 % covered by things above it but not flagged occluded (maximum 20 %)"
    objs[0].attributes["occluded"] = True
    assert run_rule("OCC002", make_batch(objs)) == []


def test_occ002_needs_flags_in_the_export():
    objs = [make_object(square(10, 10, 40), z=0), make_object(square(30, 10, 40), z=1)]
    assert run_rule("OCC002", make_batch(objs)) == []


def test_occ002_drawing_order_and_amodal_exports():
    objs = [make_object(square(10, 10, 40), occluded=False), make_object(square(30, 10, 40), occluded=False)]
    # LabelMe paints in export order: the first object is under the second
    (f,) = run_rule("OCC002", make_batch(objs, fmt="labelme"))
    assert f.source.index == 0
    # no layer order (COCO without z_order): either could be in front; neither is flagged
    assert sorted(x.source.index for x in run_rule("OCC002", make_batch(objs))) == [0, 1]
    objs[1].attributes["occluded"] = True
    assert run_rule("OCC002", make_batch(objs)) == []


def test_occ003_heavy_occlusion_policies():
    objs = [make_object(square(10, 10, 40), occluded=True, z=0), make_object(square(5, 5, 48), occluded=False, z=1)]
    (f,) = run_rule("OCC003", make_batch(objs))
    assert f.source.index == 0 and f.value == 1.0 and "drops objects covered more than 80 %" in f.message
    assert run_rule("OCC003", make_batch(objs), policy="flag") == []
    objs[0].attributes["occluded"] = False
    (g,) = run_rule("OCC003", make_batch(objs), policy="flag")
    assert "not flagged occluded" in g.message
    half = [make_object(square(10, 10, 40), z=0), make_object(square(30, 10, 40), z=1)]
    assert run_rule("OCC003", make_batch(half)) == []


def test_occ004_flag_disagreement_minority_is_reported():
    shape = square(10, 10, 40)
    batch = make_batch({
        "alice": [make_object(shape, occluded=True)],
        "bob": [make_object(shape + 1, occluded=False)],
        "carol": [make_object(shape - 1, occluded=False)],
    })
    (f,) = run_rule("OCC004", batch)
    assert f.annotator == "alice" and f.value == 1.0 and f.limit == 0.5
    assert f.message == "object is flagged occluded but 2 of 2 matched objects say not occluded (bob, carol)"


def test_occ004_two_annotators_both_sides_and_agreement():
    shape = square(10, 10, 40)
    batch = make_batch({"alice": [make_object(shape, occluded=True)], "bob": [make_object(shape, occluded=False)]})
    assert sorted(f.annotator for f in run_rule("OCC004", batch)) == ["alice", "bob"]
    same = make_batch({"alice": [make_object(shape, occluded=True)], "bob": [make_object(shape, occluded=True)]})
    assert run_rule("OCC004", same) == []


def test_occ004_unmatched_objects_are_not_compared():
    batch = make_batch({"alice": [make_object(square(10, 10, 20), occluded=True)],
                        "bob": [make_object(square(60, 60, 20), occluded=False)]})
    assert run_rule("OCC004", batch) == []


def test_stuff_neither_occludes_nor_is_checked():
    road = make_object(square(0, 0, 100), category="road", occluded=False, z=0)
    car = make_object(square(40, 40, 20), category="car", occluded=True, z=1)
    batch = make_batch([road, car], stuff=("road",))
    (f,) = run_rule("OCC001", batch)  # the road under the car is no occluder
    assert f.source.index == 1
    assert run_rule("OCC002", batch) == []  # the road is covered by the car, but stuff is not checked
    over = make_batch([make_object(square(40, 40, 20), category="car", occluded=False, z=0),
                       make_object(square(0, 0, 100), category="road", z=1)], stuff=("road",))
    assert run_rule("OCC002", over) == [] and run_rule("OCC003", over) == []  # that is LAY002's business
    assert [f.code for f in run_rule("LAY002", over)] == ["LAY002"]


def test_occ004_tiny_objects_are_not_compared():
    shape = square(10, 10, 6)
    batch = make_batch({"alice": [make_object(shape, occluded=True)], "bob": [make_object(shape, occluded=False)]})
    assert run_rule("OCC004", batch) == []
    assert len(run_rule("OCC004", batch, min_area_px=10)) == 2
