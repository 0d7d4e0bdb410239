"""Distance kernels (qa/engine/_kernels_sdf.py): exact EDT against scipy, numpy's summation order,
DeepMind's corner codes and surface statistics."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from common import NAMED_MASKS, random_mask
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from qa.engine import _kernels_sdf as ks
from qa.engine.boundary import _LENGTH_RANK, _LENGTHS, surface_stats


@pytest.mark.parametrize("seed", range(3))
def test_edt_equals_scipy(seed):
    rng = np.random.default_rng(seed)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(1, 45, 2))
        features = (rng.random((h, w)) < rng.choice([0.002, 0.03, 0.4])).astype(np.uint8)
        d2 = ks._edt_squared(features)
        if features.any():
            np.testing.assert_array_equal(np.sqrt(d2), ndimage.distance_transform_edt(features == 0))
        else:
            assert np.isinf(d2).all()


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.integers(0, 1)))
def test_edt_property_against_brute_force(features):
    d2 = ks._edt_squared(features)
    ys, xs = np.nonzero(features)
    if len(ys) == 0:
        assert np.isinf(d2).all()
        return
    gy, gx = np.mgrid[:features.shape[0], :features.shape[1]]
    brute = ((gy[..., None] - ys) ** 2 + (gx[..., None] - xs) ** 2).min(axis=-1)
    np.testing.assert_array_equal(d2, brute)


def test_pairwise_sum_is_numpys_to_the_bit():
    rng = np.random.default_rng(0)
    for n in list(range(0, 300)) + [1000, 1023, 4097, 20000]:
        a = rng.random(n) * rng.choice([1.0, 1e-7, 1e9])
        assert ks._pairwise_sum(a, 0, n) == np.sum(a)
        if n > 10:
            assert ks._pairwise_sum(a, 3, n - 5) == np.sum(a[3:n - 2])


def test_corner_codes_equal_deepmind_correlation():
    kernel = np.array([[8, 4], [2, 1]])
    for m in NAMED_MASKS.values():
        padded = np.zeros((m.shape[0] + 1, m.shape[1] + 1), np.uint8)
        padded[:-1, :-1] = m
        expected = ndimage.correlate(padded, kernel, mode="constant", cval=0)
        np.testing.assert_array_equal(ks._corner_codes(np.ascontiguousarray(m)), expected)
        np.testing.assert_array_equal(ks._surfels(ks._corner_codes(np.ascontiguousarray(m))),
                                      (expected != 0) & (expected != 15))


def test_length_table_is_deepminds():
    np.testing.assert_array_equal(_LENGTHS, ref._contour_length_table((1.0, 1.0)))
    # ties in distance sort by length, as Python's sort of (distance, length) tuples does
    assert np.array_equal(np.argsort(_LENGTH_RANK[1:15], kind="stable"),
                          np.argsort(_LENGTHS[1:15], kind="stable"))


@pytest.mark.parametrize("seed", range(3))
def test_directed_surface_statistics_against_deepmind(seed):
    rng = np.random.default_rng(seed)
    for _ in range(10):
        a, b = random_mask(rng, (22, 19)), random_mask(rng, (22, 19))
        stats_a, stats_b = surface_stats(a, b, [0.0, 1.0, 3.0])
        sd = ref.deepmind_surface_distances(b, a)  # gt = b, pred = a
        for stats, d, s in ((stats_a, "distances_pred_to_gt", "surfel_areas_pred"),
                            (stats_b, "distances_gt_to_pred", "surfel_areas_gt")):
            assert stats[0] == np.sum(sd[s])
            assert stats[1] == np.sum(sd[d] * sd[s])
            assert stats[3] == len(sd[d])
            for k, t in enumerate((0.0, 1.0, 3.0)):
                assert stats[4 + k] == np.sum(sd[s][sd[d] <= t])
        avg_gt_to_pred, avg_pred_to_gt = ref.deepmind_average_surface_distance(sd)
        assert stats_a[1] / stats_a[0] == avg_pred_to_gt
        assert stats_b[1] / stats_b[0] == avg_gt_to_pred
        assert max(stats_a[2], stats_b[2]) == ref.deepmind_robust_hausdorff(sd, 95)
        for percent in (50, 100):
            pa, pb = surface_stats(a, b, [], percent)
            assert max(pa[2], pb[2]) == ref.deepmind_robust_hausdorff(sd, percent)


def test_directed_surface_of_nothing_and_to_nothing():
    empty = np.zeros((4, 4), np.uint8)
    dot = np.zeros((4, 4), np.uint8)
    dot[1, 1] = 1
    stats_dot, stats_empty = surface_stats(dot, empty, [1.0])
    assert stats_empty[3] == 0 and np.isinf(stats_empty[2])
    # one pixel: four corner elements of half a diagonal each
    assert stats_dot[3] == 4 and np.isinf(stats_dot[2]) and stats_dot[4] == 0.0
    assert stats_dot[0] == pytest.approx(4 * 0.5 * np.sqrt(2))


# --- distances between point sets --------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_nearest_d2_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        targets = rng.random((h, w)) < rng.choice([0.001, 0.02, 0.3])
        queries = rng.random((h + 10, w + 10)) < 0.1  # some queries lie outside the targets' rows
        ty, tx = (v.astype(np.int32) for v in np.nonzero(targets))
        qy, qx = (v.astype(np.int32) - 5 for v in np.nonzero(queries))
        d2 = ks._nearest_d2(qy, qx, ty, tx)
        if len(ty) == 0:
            assert np.isinf(d2).all()
            continue
        brute = ((qy[:, None] - ty[None, :]).astype(np.int64) ** 2
                 + (qx[:, None] - tx[None, :]).astype(np.int64) ** 2).min(axis=1)
        np.testing.assert_array_equal(d2, brute.astype(np.float64))


def _brute_d2(qy, qx, ty, tx):
    if len(ty) == 0:
        return np.full(len(qy), np.inf)
    return ((qy[:, None] - ty[None, :]).astype(np.int64) ** 2
            + (qx[:, None] - tx[None, :]).astype(np.int64) ** 2).min(axis=1).astype(np.float64)


@pytest.mark.parametrize("seed", range(3))
def test_nearest_d2_both_ways_against_brute_force(seed):
    """Two outlines drawn into one grid, distances up to 8 read from it, the rest searched: the exact
    distances both ways, for lists near each other (most within 8), far apart, sparse and empty."""
    rng = np.random.default_rng(70 + seed)
    for trial in range(60):
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        a = rng.random((h, w)) < rng.choice([0.005, 0.05, 0.3])
        b = np.roll(a, tuple(int(v) for v in rng.integers(-3, 4, 2)), axis=(0, 1)) | (rng.random((h, w)) < 0.01)
        if trial % 4 == 3:
            b = rng.random((h, w)) < 0.02
        ay, ax = (v.astype(np.int32) for v in np.nonzero(a))
        by, bx = (v.astype(np.int32) for v in np.nonzero(b))
        shift = (0, 0) if trial % 5 else (int(rng.integers(0, 900)), int(rng.integers(-40, 900)))
        by, bx = by + shift[0], bx + shift[1]
        order = np.lexsort((bx, by))
        by, bx = by[order], bx[order]
        d2_ab, d2_ba = ks._nearest_d2_both(ay, ax, by, bx)
        np.testing.assert_array_equal(d2_ab, _brute_d2(ay, ax, by, bx))
        np.testing.assert_array_equal(d2_ba, _brute_d2(by, bx, ay, ax))


def test_nearest_d2_both_ways_reads_each_distance_up_to_8_from_the_grid():
    # one target, queries at every offset within 4 pixels: 0, 1, 2, 4, 5, 8 from the grid, 9 on searched
    ty, tx = np.array([10], np.int32), np.array([10], np.int32)
    dy, dx = np.mgrid[-4:5, -4:5]
    qy, qx = (dy.ravel() + 10).astype(np.int32), (dx.ravel() + 10).astype(np.int32)
    d2_q, d2_t = ks._nearest_d2_both(qy, qx, ty, tx)
    np.testing.assert_array_equal(d2_q, (dy.ravel() ** 2 + dx.ravel() ** 2).astype(np.float64))
    assert d2_t.tolist() == [0.0]


@pytest.mark.parametrize("order", ["shuffled", "columns reversed"])
def test_nearest_d2_in_any_query_order(order):
    """Queries in raster order reuse each nearby row's position from the query before; out of order
    (the kernel notices a step back) they still get the exact distance."""
    rng = np.random.default_rng(5)
    for _ in range(20):
        ty, tx = (v.astype(np.int32) for v in np.nonzero(rng.random((40, 50)) < rng.choice([0.01, 0.1, 0.4])))
        qy, qx = (v.astype(np.int32) - 3 for v in np.nonzero(rng.random((46, 56)) < 0.2))
        if order == "shuffled":
            perm = rng.permutation(len(qy))
        else:
            perm = np.lexsort((-qx, qy))
        qy, qx = qy[perm], qx[perm]
        brute = ((qy[:, None] - ty[None, :]).astype(np.int64) ** 2
                 + (qx[:, None] - tx[None, :]).astype(np.int64) ** 2).min(axis=1) if len(ty) else None
        d2 = ks._nearest_d2(qy, qx, ty, tx)
        if brute is None:
            assert np.isinf(d2).all()
        else:
            np.testing.assert_array_equal(d2, brute.astype(np.float64))


def test_stable_order_is_a_stable_argsort():
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(0, 400))
        keys = rng.integers(0, int(rng.choice([3, 40, 5000])), n).astype(np.float64)
        keys[rng.random(n) < 0.1] = np.inf
        top = float(keys[np.isfinite(keys)].max()) if np.isfinite(keys).any() else 0.0
        np.testing.assert_array_equal(ks._stable_order(keys, top), np.argsort(keys, kind="mergesort"))


def test_nearest_d2_equals_the_edt_at_the_points():
    for m in NAMED_MASKS.values():
        features = np.ascontiguousarray(m, dtype=np.uint8)
        ty, tx = (v.astype(np.int32) for v in np.nonzero(features))
        gy, gx = (v.astype(np.int32).ravel() for v in np.mgrid[:m.shape[0], :m.shape[1]])
        np.testing.assert_array_equal(ks._nearest_d2(gy, gx, ty, tx), ks._edt_squared(features).ravel())


def test_inside_runs_and_common_points():
    rng = np.random.default_rng(2)
    m = random_mask(rng, (20, 30))
    ys, xs = [], []
    for y in range(20):  # row runs of the mask
        row = np.concatenate([[0], m[y], [0]])
        starts = np.flatnonzero(np.diff(row) == 1)
        ends = np.flatnonzero(np.diff(row) == -1)
        ys += [y] * len(starts)
        xs += list(zip(starts, ends))
    run_y = np.array(ys, np.int32)
    run_x0 = np.array([s for s, _ in xs], np.int32)
    run_x1 = np.array([e for _, e in xs], np.int32)
    qy, qx = (v.astype(np.int32).ravel() - 2 for v in np.mgrid[:24, :34])
    inside = ks._inside_runs(qy, qx, run_y, run_x0, run_x1)
    padded = np.pad(m, 2)
    np.testing.assert_array_equal(inside, padded[qy + 2, qx + 2])
    other = random_mask(rng, (20, 30))
    a = [v.astype(np.int32) for v in np.nonzero(m)]
    b = [v.astype(np.int32) for v in np.nonzero(other)]
    assert ks._common_points(a[0], a[1], b[0], b[1]) == int((m & other).sum())


@pytest.mark.parametrize("bound", [0, 1, 2, 5, 26, 10 ** 6])
def test_nearest_d2_below_a_bound_is_exact_under_it_and_inf_above(bound):
    rng = np.random.default_rng(bound)
    ty, tx = (v.astype(np.int32) for v in np.nonzero(rng.random((30, 30)) < 0.03))
    qy, qx = (v.ravel().astype(np.int32) for v in np.mgrid[-5:35, -5:35])
    exact = ks._nearest_d2(qy, qx, ty, tx)
    bounded = ks._nearest_d2_below(qy, qx, ty, tx, bound)
    np.testing.assert_array_equal(bounded, np.where(exact < bound, exact, np.inf))
