"""Public metrics (qa/metrics.py): each compat mode pinned against the reference, defaults against the
plain definitions in tests/reference.py, and properties (bounds, symmetry, identity, translation)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import reference as ref
from common import BORDER_TOUCH, DOT, EMPTY, FULL, HOLE, LINE_1PX, NAMED_MASKS, RING, TWO_BLOBS, random_mask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils

from qa.metrics import (boundary_f, boundary_iou, mask_iou, panoptic_quality, signed_boundary_offset,
                        surface_distances)

PAIRS = list(itertools.product(NAMED_MASKS, repeat=2))


def _rle(m):
    return mask_utils.encode(np.asfortranarray(m, dtype=np.uint8))


def _random_pairs(seed, n, shape=(20, 24)):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        a = random_mask(rng, shape)
        b = random_mask(rng, shape) if k % 3 else np.roll(a, rng.integers(-2, 3), axis=1)
        out.append((a, b))
    return out


# --- mask IoU --------------------------------------------------------------------------------------


@pytest.mark.parametrize("na, nb", PAIRS)
def test_mask_iou_pycocotools_on_named_masks(na, nb):
    a, b = NAMED_MASKS[na], NAMED_MASKS[nb]
    for crowd in (False, True):
        expected = mask_utils.iou([_rle(a)], [_rle(b)], [int(crowd)])[0, 0]
        assert mask_iou(a, b, iscrowd=crowd, compat="pycocotools") == expected
    if na != "EMPTY" or nb != "EMPTY":
        assert mask_iou(a, b) == mask_utils.iou([_rle(a)], [_rle(b)], [0])[0, 0]


def test_mask_iou_rle_lists_match_pycocotools():
    rng = np.random.default_rng(3)
    a = [random_mask(rng, (30, 40)) for _ in range(5)] + [np.zeros((30, 40), np.uint8)]
    b = [random_mask(rng, (30, 40)) for _ in range(4)] + [a[0], np.zeros((30, 40), np.uint8)]
    crowd = [0, 1, 0, 0, 1, 0]
    ra, rb = [_rle(m) for m in a], [_rle(m) for m in b]
    expected = mask_utils.iou(ra, rb, crowd)
    got = mask_iou(ra, rb, iscrowd=crowd, compat="pycocotools")
    assert got.shape == (6, 6)
    np.testing.assert_array_equal(got, expected)
    default = mask_iou(ra, rb, iscrowd=crowd)
    assert default[5, 5] == 1.0  # both empty
    np.testing.assert_array_equal(np.delete(np.delete(default, 5, 0), 5, 1),
                                  np.delete(np.delete(expected, 5, 0), 5, 1))
    # one pair from the list path equals the two-mask path
    assert got[1, 2] == mask_iou(a[1], b[2], compat="pycocotools")


def test_mask_iou_errors():
    with pytest.raises(ValueError, match="one shape"):
        mask_iou(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="compat"):
        mask_iou(DOT, DOT, compat="coco")
    with pytest.raises(ValueError, match="iscrowd"):
        mask_iou([_rle(DOT)], [_rle(DOT)], iscrowd=[0, 1])
    assert mask_iou([], [_rle(DOT)]).shape == (0, 1)
    with pytest.raises(ValueError, match="differs from image"):
        mask_iou([_rle(DOT)], [_rle(np.zeros((5, 4), np.uint8))])
    with pytest.raises(ValueError, match="do not describe"):
        mask_iou([_rle(DOT)], [{"size": list(DOT.shape), "counts": [1, 2]}])


# --- boundary F ------------------------------------------------------------------------------------


@pytest.mark.parametrize("na, nb", PAIRS)
def test_boundary_f_davis_on_named_masks(na, nb):
    a, b = NAMED_MASKS[na], NAMED_MASKS[nb]
    assert boundary_f(a, b, compat="davis") == ref.davis_f_measure(a, b)
    for tol in (1, 3):
        assert boundary_f(a, b, tolerance=tol, compat="davis") == pytest.approx(ref.davis_f_measure(a, b, tol),
                                                                               abs=1e-15)


@pytest.mark.parametrize("na, nb", PAIRS)
def test_boundary_f_default_on_named_masks(na, nb):
    a, b = NAMED_MASKS[na], NAMED_MASKS[nb]
    for tol in (0.0, 1.0, 1.5, 2.0, 5.0):
        assert boundary_f(a, b, tolerance=tol) == pytest.approx(ref.boundary_f(a, b, tol), abs=1e-15)


@pytest.mark.parametrize("seed", range(3))
def test_boundary_f_random_masks_against_references(seed):
    for a, b in _random_pairs(seed, 12):
        assert boundary_f(a, b, compat="davis") == pytest.approx(ref.davis_f_measure(a, b), abs=1e-15)
        assert boundary_f(a, b, tolerance=2, compat="davis") == pytest.approx(ref.davis_f_measure(a, b, 2),
                                                                             abs=1e-15)
        assert boundary_f(a, b, tolerance=1.5) == pytest.approx(ref.boundary_f(a, b, 1.5), abs=1e-15)


def test_boundary_f_davis_default_tolerance_follows_the_diagonal():
    a = np.zeros((300, 400), np.uint8)
    a[100:200, 100:200] = 1
    b = np.roll(a, 4, axis=1)  # ceil(0.008 * 500) = 4 px: every boundary pixel matches
    assert boundary_f(a, b, compat="davis") == ref.davis_f_measure(a, b) == 1.0
    assert boundary_f(a, b, tolerance_fraction=0.004, compat="davis") == pytest.approx(
        ref.davis_f_measure(a, b, 0.004))
    assert boundary_f(a, b, tolerance_fraction=0.008) == boundary_f(a, b, tolerance=4)


def test_boundary_f_conventions_and_errors():
    assert boundary_f(EMPTY, EMPTY) == 1.0
    assert boundary_f(FULL, FULL) == 1.0  # the image border is never boundary
    assert boundary_f(FULL, EMPTY) == 1.0  # neither has a boundary
    assert boundary_f(DOT, EMPTY) == 0.0
    with pytest.raises(ValueError, match="not both"):
        boundary_f(DOT, DOT, tolerance=1, tolerance_fraction=0.01)
    with pytest.raises(ValueError, match="whole number"):
        boundary_f(DOT, DOT, tolerance=1.5, compat="davis")
    with pytest.raises(ValueError, match=">= 0"):
        boundary_f(DOT, DOT, tolerance=-1)


# --- boundary IoU ----------------------------------------------------------------------------------


@pytest.mark.parametrize("na, nb", PAIRS)
def test_boundary_iou_cheng_on_named_masks(na, nb):
    a, b = NAMED_MASKS[na], NAMED_MASKS[nb]
    assert boundary_iou(a, b, compat="cheng") == ref.cheng_boundary_iou(b, a)
    for d in (1, 2, 3):
        assert boundary_iou(a, b, dilation=d, compat="cheng") == ref.cheng_boundary_iou(b, a, dilation=d)
        assert boundary_iou(a, b, dilation=d) == ref.boundary_iou(a, b, d)


@pytest.mark.parametrize("seed", range(3))
def test_boundary_iou_random_masks_against_references(seed):
    for a, b in _random_pairs(seed, 12, shape=(60, 80)):
        assert boundary_iou(a, b, compat="cheng") == ref.cheng_boundary_iou(b, a)  # d = round(2.0) = 2
        assert boundary_iou(a, b, dilation_ratio=0.05, compat="cheng") == ref.cheng_boundary_iou(b, a, 0.05)
        assert boundary_iou(a, b, dilation=3) == ref.boundary_iou(a, b, 3)


def test_boundary_iou_conventions_and_errors():
    assert boundary_iou(EMPTY, EMPTY) == 1.0
    assert boundary_iou(EMPTY, EMPTY, compat="cheng") == 0.0
    assert boundary_iou(BORDER_TOUCH, BORDER_TOUCH) == 1.0
    # Cheng counts the image border: a band along it that the default ignores
    shifted = np.roll(BORDER_TOUCH, 1, axis=0)
    assert boundary_iou(BORDER_TOUCH, shifted, dilation=1) != boundary_iou(BORDER_TOUCH, shifted, dilation=1,
                                                                          compat="cheng")
    with pytest.raises(ValueError, match="not both"):
        boundary_iou(DOT, DOT, dilation=1, dilation_ratio=0.1)
    with pytest.raises(ValueError, match="whole number"):
        boundary_iou(DOT, DOT, dilation=0)


# --- surface distances -----------------------------------------------------------------------------


def _deepmind(a, b, tolerance):
    sd = ref.deepmind_surface_distances(b, a)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ref.deepmind_surface_dice(sd, tolerance), ref.assd(sd), ref.deepmind_robust_hausdorff(sd, 95))


@pytest.mark.parametrize("na, nb", [p for p in PAIRS if p != ("EMPTY", "EMPTY")])
def test_surface_distances_deepmind_on_named_masks(na, nb):
    a, b = NAMED_MASKS[na], NAMED_MASKS[nb]
    for tol in (0.0, 1.0, 2.5):
        nsd, assd, hd95 = _deepmind(a, b, tol)
        got = surface_distances(a, b, tolerance=tol)
        assert got.nsd == pytest.approx(nsd, abs=1e-12)
        assert got.hd95 == hd95
        assert got.assd == pytest.approx(assd, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_surface_distances_random_masks_against_deepmind(seed):
    for a, b in _random_pairs(seed, 12):
        nsd, assd, hd95 = _deepmind(a, b, 1.0)
        got = surface_distances(a, b, tolerance=1.0)
        assert got.nsd == pytest.approx(nsd, abs=1e-12)
        assert got.assd == pytest.approx(assd, abs=1e-12)
        assert got.hd95 == hd95


def test_surface_distances_conventions_and_errors():
    assert surface_distances(EMPTY, EMPTY, tolerance=1) == (1.0, 0.0, 0.0)
    one_empty = surface_distances(DOT, EMPTY, tolerance=1)
    assert one_empty.nsd == 0.0 and math.isinf(one_empty.assd) and math.isinf(one_empty.hd95)
    with pytest.raises(ValueError, match="explicit tolerance.*tolerance=2.0"):
        surface_distances(DOT, DOT)
    with pytest.raises(ValueError, match=">= 0"):
        surface_distances(DOT, DOT, tolerance=-1)


# --- signed boundary offset ------------------------------------------------------------------------


@pytest.mark.parametrize("na, nb", PAIRS)
def test_signed_offset_against_reference(na, nb):
    r, o = NAMED_MASKS[na], NAMED_MASKS[nb]
    expected = ref.signed_offsets(r, o)
    got = signed_boundary_offset(r, o)
    if expected.size == 0:
        assert math.isnan(got.mean) and math.isnan(got.median)
    else:
        assert got.n == expected.size
        assert got.mean == pytest.approx(expected.mean(), abs=1e-12)
        assert got.median == np.median(expected)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_signed_offset_recovers_a_planted_dilation(k):
    from skimage.morphology import disk

    from scipy import ndimage

    rng = np.random.default_rng(k)
    yy, xx = np.mgrid[:120, :120]
    blob = (((yy - 60) / 30.0) ** 2 + ((xx - 60) / 22.0) ** 2 < 1 + 0.1 * rng.standard_normal()).astype(np.uint8)
    grown = ndimage.binary_dilation(blob, structure=disk(k)).astype(np.uint8)
    shrunk = ndimage.binary_erosion(blob, structure=disk(k)).astype(np.uint8)
    assert abs(signed_boundary_offset(blob, grown).mean - k) <= 0.5
    assert abs(signed_boundary_offset(blob, shrunk).mean + k) <= 0.5
    assert signed_boundary_offset(blob, blob) == (0.0, 0.0, signed_boundary_offset(blob, blob).n)


# --- panoptic quality ------------------------------------------------------------------------------


def _panoptic_case(seed, shape=(24, 32)):
    """Two id maps with void, several categories, a crowd region on the reference side."""
    rng = np.random.default_rng(seed)
    ids = np.zeros(shape, np.int32)
    segs = []
    for k, sid in enumerate(rng.choice(np.arange(1, 5000), 7, replace=False)):
        m = random_mask(rng, shape, fill=(0.6, 0.9))
        ids[m != 0] = sid
        segs.append({"id": int(sid), "category_id": int(rng.integers(1, 4)), "iscrowd": int(k == 2)})
    ids[random_mask(rng, shape, fill=(0.85, 0.95)) != 0] = 0
    segs = [s for s in segs if (ids == s["id"]).any()]
    other = ids.copy()
    other[:, :] = np.roll(ids, int(rng.integers(-2, 3)), axis=1)
    other[random_mask(rng, shape, fill=(0.8, 0.95)) != 0] = 0
    new_ids = {s["id"]: s["id"] + 10000 for s in segs}
    mapped = np.zeros_like(other)
    osegs = []
    for s in segs:
        mapped[other == s["id"]] = new_ids[s["id"]]
        if (other == s["id"]).any():
            cat = s["category_id"] if rng.random() < 0.8 else int(rng.integers(1, 4))
            osegs.append({"id": new_ids[s["id"]], "category_id": cat, "iscrowd": 0})
    return ids, mapped, segs, osegs


@pytest.mark.parametrize("seed", range(8))
def test_panoptic_quality_panopticapi(seed):
    gt, pred, gs, ps = _panoptic_case(seed)
    expected = ref.panopticapi_pq(gt, pred, gs, ps)
    got = panoptic_quality(gt, pred, categories=(gs, ps), compat="panopticapi")
    assert got["all"]["n"] == expected["n"]
    for m in ("pq", "sq", "rq"):
        assert got["all"][m] == pytest.approx(expected[m], abs=1e-12, nan_ok=True)
    assert set(got["per_class"]) == set(expected["per_class"])
    for c, row in expected["per_class"].items():
        for m in ("tp", "fp", "fn"):
            assert got["per_class"][c][m] == row[m]
        assert got["per_class"][c]["pq"] == pytest.approx(row["pq"], abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_panoptic_quality_symmetric_default(seed):
    gt, pred, gs, ps = _panoptic_case(seed)
    ab = panoptic_quality(gt, pred, categories=(gs, ps))
    ba = panoptic_quality(pred, gt, categories=(ps, gs))
    for m in ("pq", "sq", "rq"):
        assert ab["all"][m] == pytest.approx(ba["all"][m], abs=1e-12, nan_ok=True)
    for c in ab["per_class"]:
        assert (ab["per_class"][c]["fp"], ab["per_class"][c]["fn"]) == (ba["per_class"][c]["fn"],
                                                                        ba["per_class"][c]["fp"])
    same = panoptic_quality(gt, gt, categories=(gs, gs), isthing={1: True, 2: True, 3: False})
    assert same["all"]["pq"] == 1.0 and same["all"]["n"] > 0
    assert set(same) == {"all", "things", "stuff", "per_class"}


def test_panoptic_quality_mapping_form_and_errors():
    ref_ids = np.array([[1, 1, 2, 2]])
    other = np.array([[7, 7, 7, 0]])
    r = panoptic_quality(ref_ids, other, categories=({1: 3, 2: 3}, {7: 3}), compat="panopticapi")
    assert r["per_class"][3]["tp"] == 1 and r["per_class"][3]["fn"] == 1
    assert r["all"]["pq"] == pytest.approx((2 / 3) / 1.5)
    with pytest.raises(ValueError, match="pair"):
        panoptic_quality(ref_ids, other, categories={1: 3})
    with pytest.raises(ValueError, match="not in the segments"):
        panoptic_quality(ref_ids, other, categories=({1: 3, 2: 3}, {}), compat="panopticapi")
    with pytest.raises(ValueError, match="one shape"):
        panoptic_quality(ref_ids, other[:, :2], categories=({}, {}))


# --- properties ------------------------------------------------------------------------------------

small_masks = arrays(np.uint8, (10, 12), elements=st.integers(0, 1))
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(small_masks, small_masks)
def test_bounds_and_symmetry(a, b):
    for f in (lambda x, y: mask_iou(x, y), lambda x, y: boundary_f(x, y, tolerance=1.5),
              lambda x, y: boundary_f(x, y, compat="davis"), lambda x, y: boundary_iou(x, y, dilation=2),
              lambda x, y: boundary_iou(x, y, dilation=1, compat="cheng"),
              lambda x, y: surface_distances(x, y, tolerance=1.0).nsd):
        v = f(a, b)
        assert 0.0 <= v <= 1.0
        assert v == pytest.approx(f(b, a), abs=1e-12)
    s_ab, s_ba = surface_distances(a, b, tolerance=1.0), surface_distances(b, a, tolerance=1.0)
    assert s_ab.hd95 == s_ba.hd95 and s_ab.assd == pytest.approx(s_ba.assd, abs=1e-12)


@PROPS
@given(small_masks)
def test_identical_masks_score_one(a):
    assert mask_iou(a, a) == 1.0
    assert boundary_f(a, a) == 1.0
    assert boundary_f(a, a, compat="davis") == 1.0
    assert boundary_iou(a, a, dilation=2) == 1.0
    s = surface_distances(a, a, tolerance=0.0)
    assert s == (1.0, 0.0, 0.0)
    off = signed_boundary_offset(a, a)
    assert off.n == 0 or (off.mean == 0.0 and off.median == 0.0)


@PROPS
@given(small_masks, small_masks, st.integers(2, 8), st.integers(2, 8))
def test_translation_invariance_away_from_the_border(a, b, dy, dx):
    def place(m, y, x):
        out = np.zeros((24, 26), np.uint8)
        out[y:y + 10, x:x + 12] = m
        return out

    pa, pb = place(a, 2, 2), place(b, 2, 2)
    qa_, qb = place(a, dy, dx), place(b, dy, dx)
    assert mask_iou(pa, pb) == mask_iou(qa_, qb)
    assert boundary_f(pa, pb, tolerance=2) == boundary_f(qa_, qb, tolerance=2)
    assert boundary_f(pa, pb, tolerance=1, compat="davis") == boundary_f(qa_, qb, tolerance=1, compat="davis")
    assert boundary_iou(pa, pb, dilation=2, compat="cheng") == boundary_iou(qa_, qb, dilation=2, compat="cheng")
    assert surface_distances(pa, pb, tolerance=1) == surface_distances(qa_, qb, tolerance=1)
    assert signed_boundary_offset(pa, pb)[:2] == pytest.approx(signed_boundary_offset(qa_, qb)[:2], nan_ok=True)


def test_inputs_are_not_modified():
    a, b = RING.copy(), HOLE.copy()
    for f in (mask_iou, boundary_f, boundary_iou, signed_boundary_offset):
        f(a, b)
    surface_distances(a, b, tolerance=1)
    assert np.array_equal(a, RING) and np.array_equal(b, HOLE)
    assert boundary_f(TWO_BLOBS, LINE_1PX) == ref.boundary_f(TWO_BLOBS, LINE_1PX, 2.0)
