"""Boundary kernels (qa/engine/_kernels_boundary.py) and the one-pass pair function
(qa/engine/boundary.py) against the full-image definitions in tests/reference.py; crops give the
full-image result."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference as ref
from common import NAMED_MASKS, random_mask
from scipy import ndimage

from qa.engine import _kernels_boundary as kb
from qa.engine import _kernels_sdf as ks
from qa.engine.boundary import (boundary_pair, boundary_points, crop_window, edges_of, point_match_counts,
                                tolerance_label)

ALL = (1, 1, 1, 1)


def _masks(seed, n=10, shape=(18, 23)):
    rng = np.random.default_rng(seed)
    return [random_mask(rng, shape) for _ in range(n)] + list(NAMED_MASKS.values())


@pytest.mark.parametrize("seed", range(2))
def test_seg2bmap_equals_davis(seed):
    for m in _masks(seed):
        m = np.ascontiguousarray(m)
        np.testing.assert_array_equal(kb._seg2bmap(m, 1, 1), ref.davis_seg2bmap(m))


@pytest.mark.parametrize("seed", range(2))
def test_inner_boundary_4_and_8(seed):
    for m in _masks(seed):
        m = np.ascontiguousarray(m)
        np.testing.assert_array_equal(kb._inner_boundary(m, 4, *ALL), ref.inner_boundary(m))
        square = m.astype(bool) & ~ndimage.binary_erosion(m, structure=np.ones((3, 3)), border_value=1)
        np.testing.assert_array_equal(kb._inner_boundary(m, 8, *ALL), square)


@pytest.mark.parametrize("seed", range(2))
def test_chessboard_band_both_border_rules(seed):
    for m in _masks(seed):
        m = np.ascontiguousarray(m)
        for d in (1, 2, 4):
            np.testing.assert_array_equal(kb._chessboard_band(m, d, 1, *ALL), ref.cheng_mask_to_boundary(m, dilation=d))
            np.testing.assert_array_equal(kb._chessboard_band(m, d, 0, *ALL), ref.band(m, d))


def test_crop_sides_off_the_image_border_are_background():
    # a crop that does not reach the image border: outside it is background, so an object filling
    # the crop has its outline on the crop's edge
    m = np.ones((3, 4), np.uint8)
    assert kb._inner_boundary(m, 4, 0, 0, 0, 0).sum() == 10
    assert kb._inner_boundary(m, 4, 1, 1, 1, 1).sum() == 0
    assert kb._seg2bmap(m, 0, 0).sum() == 6  # last row and column differ from the background beyond
    assert kb._chessboard_band(m, 1, 0, 0, 0, 0, 0).sum() == 10


def test_match_counts_and_overlap_counts():
    a = np.zeros((5, 5), np.uint8)
    a[1, 1:4] = 1
    b = np.zeros((5, 5), np.uint8)
    b[3, 1:3] = 1
    counts = point_match_counts(boundary_points(a), boundary_points(b), np.array([1.0, 2.0, 2.3]))
    assert counts.tolist() == [0, 2, 3, 3]  # (1,3) is sqrt(5) = 2.24 from (3,2)
    assert point_match_counts(boundary_points(a), boundary_points(b[:0]), np.array([9.0])).tolist() == [0, 3]
    assert kb._overlap_counts(a, b) == (0, 5, 3, 2)


def test_offset_stats_by_hand():
    reference = np.zeros((7, 7), np.uint8)
    reference[2:5, 2:5] = 1
    other = np.zeros((7, 7), np.uint8)
    other[1:6, 1:6] = 1
    d2 = ks._edt_squared(kb._inner_boundary(reference, 4, *ALL))
    mean, median, n = kb._offset_stats(kb._inner_boundary(other, 4, *ALL), d2, reference)
    assert n == 16 and median == 1.0
    assert mean == pytest.approx((12 * 1.0 + 4 * math.sqrt(2)) / 16)
    assert math.isnan(kb._offset_stats(np.zeros((3, 3), np.uint8), d2[:3, :3], reference[:3, :3])[0])


# --- boundary_pair: one pass, crops equal the full image ----------------------------------------------


def _full(a, b, tolerances, dilation):
    """boundary_pair's figures from the full-image references."""
    out = {}
    for t in tolerances:
        out[f"boundary_f_{tolerance_label(t)}"] = ref.boundary_f(a, b, t)
    out["boundary_iou"] = ref.boundary_iou(a, b, dilation)
    sd = ref.deepmind_surface_distances(a, b)
    if a.any() or b.any():
        with np.errstate(divide="ignore", invalid="ignore"):
            for t in tolerances:
                out[f"nsd_{tolerance_label(t)}"] = ref.deepmind_surface_dice(sd, t)
            out["hd95"] = ref.deepmind_robust_hausdorff(sd, 95)
            out["assd"] = ref.assd(sd)
    offsets = ref.signed_offsets(b, a)
    out["signed_offset"] = offsets.mean() if offsets.size else math.nan
    out["signed_offset_median"] = np.median(offsets) if offsets.size else math.nan
    return out


@pytest.mark.parametrize("seed", range(3))
def test_boundary_pair_equals_full_image_references(seed):
    rng = np.random.default_rng(seed)
    tolerances = (1.0, 2.0, 3.5)
    for _ in range(8):
        a = np.zeros((40, 50), np.uint8)
        b = np.zeros((40, 50), np.uint8)
        y, x = rng.integers(0, 25), rng.integers(0, 35)
        a[y:y + 15, x:x + 15] = random_mask(rng, (15, 15), fill=(0.2, 0.6))
        b[y:y + 15, x:x + 15] = np.roll(a[y:y + 15, x:x + 15], rng.integers(-2, 3), axis=0)
        expected = _full(a, b, tolerances, 2)
        got_full = boundary_pair(a, b, tolerances=tolerances, biou_dilation=2)
        for key, value in expected.items():
            assert got_full[key] == pytest.approx(value, abs=1e-12, nan_ok=True), key
        for margin in (1, 2, 6):
            a_crop, b_crop, offset = crop_window(a, b, margin)
            got = boundary_pair(a_crop, b_crop, tolerances=tolerances, offset=offset, image_shape=a.shape,
                                biou_dilation=2)
            assert got.keys() == got_full.keys()
            for key in got:
                assert got[key] == pytest.approx(got_full[key], abs=1e-12, nan_ok=True), (key, margin)


@pytest.mark.parametrize("name", ["BORDER_TOUCH", "FULL", "TWO_BLOBS", "RING", "DOT", "LINE_1PX"])
def test_boundary_pair_crops_at_the_image_border(name):
    a = np.ascontiguousarray(NAMED_MASKS[name])
    b = np.ascontiguousarray(np.roll(a, 1, axis=1))
    full = boundary_pair(a, b, tolerances=(1.0, 2.0))
    for margin in (1, 3):
        a_crop, b_crop, offset = crop_window(a, b, margin)
        got = boundary_pair(a_crop, b_crop, tolerances=(1.0, 2.0), offset=offset, image_shape=a.shape)
        for key in full:
            assert got[key] == pytest.approx(full[key], abs=1e-12, nan_ok=True), key


def test_boundary_pair_counts_rebuild_the_scores():
    a = np.ascontiguousarray(NAMED_MASKS["RING"])
    b = np.ascontiguousarray(NAMED_MASKS["HOLE"])
    r = boundary_pair(a, b, tolerances=(1.0,), biou_dilation=1)
    p = r["boundary_a_matched_1px"] / r["boundary_a_n"]
    rc = r["boundary_b_matched_1px"] / r["boundary_b_n"]
    assert r["boundary_f_1px"] == pytest.approx(2 * p * rc / (p + rc))
    assert r["boundary_iou"] == r["biou_intersection"] / r["biou_union"]
    assert r["surface_a_length"] > 0 and r["signed_offset_n"] == r["boundary_a_n"]


def test_boundary_pair_checks_its_window():
    with pytest.raises(ValueError, match="one shape"):
        boundary_pair(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="does not fit"):
        boundary_pair(np.zeros((3, 3)), np.zeros((3, 3)), offset=(9, 0), image_shape=(10, 10))
    assert edges_of((3, 3), (0, 7), (10, 10)) == (0, 1, 1, 0)
    assert tolerance_label(2.0) == "2px" and tolerance_label(1.5) == "1p5px"


# --- outlines as point lists, and boundary_pair from them ---------------------------------------------


def _points(mask):
    ys, xs = np.nonzero(mask)
    return ys.astype(np.int32), xs.astype(np.int32)


def _outline_of(mask, edges=ALL, offset=(0, 0), band_width=2):
    ones, first = np.ones(1, np.int64), np.zeros(1, np.int64)
    return kb._outlines(np.ascontiguousarray(mask, dtype=np.uint8), ones, first, 1, offset[1], offset[0], *edges,
                        band_width)


@pytest.mark.parametrize("seed", range(2))
def test_outlines_equal_the_dense_maps(seed):
    # rows wider than a few 8-pixel words, with specks, so that flagged pixels fall at every place in
    # a word (the raster pass finds them a word at a time)
    rng = np.random.default_rng(40 + seed)
    specks = [random_mask(rng, (9, 71)) | (rng.random((9, 71)) < 0.05) for _ in range(4)]
    for m in _masks(seed) + specks:
        m = np.ascontiguousarray(m, dtype=np.uint8)
        for d in (1, 2, 3):
            out = _outline_of(m, band_width=d)
            run_ptr, run_y, run_x0, run_x1 = out[0:4]
            painted = np.zeros_like(m)
            for y, x0, x1 in zip(run_y, run_x0, run_x1):
                assert painted[y, x0:x1].sum() == 0 and x0 < x1
                painted[y, x0:x1] = 1
            np.testing.assert_array_equal(painted, m)
            assert run_ptr.tolist() == [0, len(run_y)]
            for (ys, xs), dense in ((out[5:7], ref.inner_boundary(m)), (out[8:10], ref.band(m, d))):
                expected = _points(dense)
                np.testing.assert_array_equal(ys, expected[0])
                np.testing.assert_array_equal(xs, expected[1])
            codes = ks._corner_codes(m)
            surfels = (codes != 0) & (codes != 15)
            expected = _points(surfels)
            np.testing.assert_array_equal(out[11], expected[0])
            np.testing.assert_array_equal(out[12], expected[1])
            np.testing.assert_array_equal(out[13], codes[surfels])


def test_outlines_of_an_id_map_are_those_of_each_segment():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, (17, 23)).astype(np.int32)
    labels[5:12, 4:20] = 9  # one large segment among small ones
    ids = np.array([9, 1, 3], np.int64)  # 0 and 2 are not wanted (background)
    order = np.argsort(ids, kind="stable")
    out = kb._outlines(labels, ids[order], order.astype(np.int64), 3, 0, 0, *ALL, 2)
    for k, v in enumerate(ids):
        single = _outline_of(labels == v)
        for ptr_at, members in ((0, (1, 2, 3)), (4, (5, 6)), (7, (8, 9)), (10, (11, 12, 13))):
            lo, hi = out[ptr_at][k], out[ptr_at][k + 1]
            for member in members:
                np.testing.assert_array_equal(out[member][lo:hi], single[member])


def test_outlines_of_a_crop_inside_the_image():
    # sides off the image border: outside the crop is background there (the object touching the crop's
    # right side has boundary and surface along it); coordinates are the image's
    m = np.ones((3, 4), np.uint8)
    inside = _outline_of(m, edges=(1, 0, 1, 0), offset=(10, 0))
    assert len(inside[5]) == 6  # the last row and the last column
    assert inside[6].min() == 10 and inside[2].tolist() == [10, 10, 10]
    assert len(_outline_of(m, edges=ALL)[5]) == 0  # the whole image: no boundary
    assert len(_outline_of(m, edges=ALL)[11]) == 2 * (3 + 4)  # DeepMind: outside the image is background


@pytest.mark.parametrize("seed", range(4))
def test_mask_outlines_equal_the_labelled_outlines(seed):
    """The 0/1 mask kernel lists exactly what the labelled one lists for label 1: every array, in order,
    for windows on and off each side of the image border, thin and empty windows, every band width."""
    rng = np.random.default_rng(300 + seed)
    shapes = [(1, 1), (1, 7), (7, 1), (2, 2), (0, 5), (5, 0)] + [
        tuple(int(v) for v in rng.integers(2, 40, 2)) for _ in range(12)]
    ones, first = np.ones(1, np.int64), np.zeros(1, np.int64)
    for shape in shapes:
        for fill in (0.0, 0.3, 0.7, 1.0):
            m = (rng.random(shape) < fill).astype(np.uint8)
            if m.size and fill not in (0.0, 1.0):
                m = np.ascontiguousarray(m | random_mask(rng, shape).astype(np.uint8))
            edges = tuple(int(v) for v in rng.integers(0, 2, 4))
            offset = (int(rng.integers(0, 9)), int(rng.integers(0, 9)))
            for band_width in (1, 2, 3):
                got = kb._mask_outlines(m, offset[1], offset[0], *edges, band_width)
                expected = kb._outlines(m, ones, first, 1, offset[1], offset[0], *edges, band_width)
                for g, e in zip(got, expected):
                    assert g.dtype == e.dtype
                    np.testing.assert_array_equal(g, e)


def _crop_by_crop(crops, band_width):
    """The outlines of an ObjectCrops as they were listed before one call did them all: each crop on its
    own (crop_outlines), then the lists put one after the other."""
    from qa.engine.boundary import Outlines, crop_outlines

    parts = []
    for k in range(len(crops)):
        crop, offset = crops.crop(k)
        parts.append(crop_outlines(crop, offset=offset, image_shape=crops.shape, band_width=band_width))
    return Outlines.concatenate(parts, band_width)


@pytest.mark.parametrize("seed", range(3))
def test_object_outlines_of_many_crops_equal_each_crop_alone(seed):
    """One kernel call over an image's crops lists each object exactly as its own crop does (empty objects
    and crops on every side of the image border included)."""
    from qa.engine._masks import mask_to_rle, rle_crops
    from qa.engine.boundary import object_outlines

    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(20, 40)), int(rng.integers(20, 40)))
    masks = [random_mask(rng, shape) for _ in range(6)]
    masks.append(np.zeros(shape, np.uint8))         # an empty object
    masks.append(np.ones(shape, np.uint8))          # the whole image
    corner = np.zeros(shape, np.uint8)
    corner[-5:, -7:] = 1                              # on the bottom and right border
    masks.append(corner)
    crops = rle_crops([mask_to_rle(np.ascontiguousarray(m, dtype=np.uint8)) for m in masks], *shape)
    for band_width in (1, 2, 3):
        got = object_outlines(crops, band_width=band_width).arrays()
        expected = _crop_by_crop(crops, band_width).arrays()
        assert len(got) == len(expected) == 14
        for g, e in zip(got, expected):
            assert g.dtype == e.dtype
            np.testing.assert_array_equal(g, e)
    none = object_outlines(rle_crops([], *shape)).arrays()
    assert [a.tolist() for a in none] == [[0], [], [], [], [0], [], [], [0], [], [], [0], [], [], []]


@pytest.mark.parametrize("seed", range(3))
def test_boundary_pair_equals_dense_distance_transforms_to_the_bit(seed):
    """boundary_pair from point lists gives exactly what exact EDTs of the window give."""
    rng = np.random.default_rng(seed)
    for _ in range(25):
        shape = tuple(int(v) for v in rng.integers(4, 40, 2))
        a = random_mask(rng, shape)
        b = random_mask(rng, shape) if rng.random() < 0.5 else np.roll(a, int(rng.integers(-3, 4)), axis=1)
        tolerances = (1.0, 1.5, 4.0)
        for dilation in (1, 2, 3):
            expected = ref.dense_boundary_pair(a, b, tolerances=tolerances, biou_dilation=dilation)
            got = boundary_pair(a, b, tolerances=tolerances, biou_dilation=dilation)
            assert got.keys() == expected.keys()
            for key in expected:
                assert got[key] == expected[key] or (math.isnan(got[key]) and math.isnan(expected[key])), key
            a_crop, b_crop, offset = crop_window(a, b, 1)
            cropped = boundary_pair(a_crop, b_crop, tolerances=tolerances, offset=offset, image_shape=a.shape,
                                    biou_dilation=dilation)
            for key in expected:
                assert cropped[key] == got[key] or (math.isnan(got[key]) and math.isnan(cropped[key])), key


@pytest.mark.parametrize("name", sorted(NAMED_MASKS))
def test_boundary_pair_named_masks_equal_dense(name):
    a = np.ascontiguousarray(NAMED_MASKS[name])
    for b in (a, np.roll(a, 2, axis=0), np.zeros_like(a), 1 - a):
        expected = ref.dense_boundary_pair(a, b)
        got = boundary_pair(a, b)
        for key in expected:
            assert got[key] == expected[key] or (math.isnan(got[key]) and math.isnan(expected[key])), key
