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


def _gap_with_scipy(ctx, i, others, reach):
    """The gap as an exact distance transform of the window (scipy), the definition the kernel follows."""
    import numpy as np
    from scipy import ndimage

    box = ctx.mask_bbox
    bi = box[i]
    gap_x = np.maximum(box[others, 0] - bi[2], bi[0] - box[others, 2])
    gap_y = np.maximum(box[others, 1] - bi[3], bi[1] - box[others, 3])
    bound = np.maximum(np.maximum(gap_x, gap_y), 0).astype(np.float64)
    close = others[bound <= reach]
    if not len(close):
        return float(bound.min())
    h, w = int(ctx.height[i]), int(ctx.width[i])
    win = (max(int(bi[0]) - reach - 1, 0), max(int(bi[1]) - reach - 1, 0),
           min(int(bi[2]) + reach + 1, w), min(int(bi[3]) + reach + 1, h))
    mine = ctx.window(i, win).astype(bool)
    union = np.zeros(mine.shape, np.uint8)
    for j in close:
        ctx.or_into(int(j), union, win)
    theirs = union.view(bool)
    if not theirs.any():
        return float(max(reach + 1, bound.min()))
    if (mine & theirs).any():
        return 0.0
    return float(max(ndimage.distance_transform_edt(~mine)[theirs].min() - 1.0, 0.0))


def _blobs_context(rng, count):
    """The rules' context of ``count`` random star-shaped objects of one annotator on a 100x100 image."""
    import numpy as np

    from qa.rules._context import ExportContext

    objects = []
    for k in range(count):
        x, y = rng.uniform(0, 70, 2)
        n = int(rng.integers(3, 9))
        t = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = rng.uniform(2, 12, n)
        poly = np.column_stack([x + r * np.cos(t), y + r * np.sin(t)]).clip(0, 99)
        objects.append(make_object(poly, index=k))
    batch = make_batch(objects)
    return ExportContext(batch.exports["alice"], batch)


@pytest.mark.parametrize("seed", range(4))
def test_gap_to_the_nearest_object_equals_the_distance_transform(seed):
    """The gap OCC001 measures (edge pixels of both sides, exact nearest points) equals the distance
    transform of the window, for touching, overlapping, near and far objects of any shape."""
    import numpy as np

    from qa.rules.occlusion import _gap_to_nearest

    rng = np.random.default_rng(seed)
    ctx = _blobs_context(rng, 14)
    idx = np.arange(ctx.n)
    for i in idx[ctx.mask_area > 0]:
        others = idx[(idx != i) & (ctx.mask_area > 0)]
        for reach in (0, 2, 5):
            assert _gap_to_nearest(ctx, int(i), others, reach) == _gap_with_scipy(ctx, int(i), others, reach)


@pytest.mark.parametrize("seed", range(3))
def test_gaps_of_many_objects_in_one_call_equal_each_gap_on_its_own(seed):
    """OCC001 measures every flagged object of an image in one kernel call, each with its own reach and
    against the eligible objects other than itself: each gap equals the distance transform's, and NaN
    when no other object is eligible."""
    import numpy as np

    from qa.rules.occlusion import _gaps_to_nearest

    rng = np.random.default_rng(100 + seed)
    ctx = _blobs_context(rng, 16)
    idx = np.arange(ctx.n)
    measured = idx[ctx.mask_area > 0]
    eligible = (ctx.mask_area > 0) & (rng.random(ctx.n) < 0.6)
    reach = rng.integers(0, 6, len(measured))
    gaps = _gaps_to_nearest(ctx, measured, eligible, reach)
    for k, i in enumerate(measured):
        others = idx[(idx != i) & eligible]
        if not len(others):
            assert np.isnan(gaps[k])
        else:
            assert gaps[k] == _gap_with_scipy(ctx, int(i), others, int(reach[k]))
    lone = np.zeros(ctx.n, dtype=bool)
    lone[measured[0]] = True
    assert np.isnan(_gaps_to_nearest(ctx, measured[:1], lone, np.array([3]))[0])
