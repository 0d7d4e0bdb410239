"""Semantic label-map kernels against slow, obvious numpy versions."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from scipy import ndimage

from qa.engine import _kernels_boundary as kb
from qa.engine import _kernels_semantic as ks


# --- slow references ---------------------------------------------------------------------------------

def confusion_ref(a, b, n):
    valid = (a >= 0) & (b >= 0)
    return np.bincount(a[valid] * n + b[valid], minlength=n * n).reshape(n, n)


def adjacency_ref(m, n):
    out = np.zeros((n, n), np.int64)
    for p, q in ((m[:, :-1], m[:, 1:]), (m[:-1, :], m[1:, :])):
        ok = (p >= 0) & (q >= 0) & (p != q)
        np.add.at(out, (p[ok], q[ok]), 1)
        np.add.at(out, (q[ok], p[ok]), 1)
    return out


def interface_ref(m, c1, c2):
    padded = np.pad(m, 1, constant_values=-99)
    near = np.zeros(m.shape, bool)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        near |= padded[1 + dy:1 + dy + m.shape[0], 1 + dx:1 + dx + m.shape[1]] == c2
    return ((m == c1) & near).astype(np.uint8)


def random_map(rng, h, w, n, void_share=0.1):
    m = rng.integers(0, n, (h, w)).astype(np.int32)
    m = ndimage.median_filter(m, size=3).astype(np.int32)  # blobs, so interfaces are not everywhere
    m[rng.random((h, w)) < void_share] = -1
    return m


SEEDS = range(8)


@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    h, w, n = rng.integers(1, 30), rng.integers(1, 30), int(rng.integers(1, 6))
    a, b = random_map(rng, h, w, n), random_map(rng, h, w, n)
    np.testing.assert_array_equal(ks._confusion(a, b, n), confusion_ref(a, b, n))


def points_of(mask):
    ys, xs = np.nonzero(mask)
    return ys.tolist(), xs.tolist()


@pytest.mark.parametrize("seed", SEEDS)
def test_edge_points_are_each_class_boundary_and_each_interface(seed):
    rng = np.random.default_rng(seed)
    h, w, n = int(rng.integers(1, 30)), int(rng.integers(1, 30)), int(rng.integers(1, 5))
    m = random_map(rng, h, w, n)
    b_class, b_y, b_x, i_class, i_other, i_y, i_x = ks._edge_points(m)
    # row-major order, as the nearest-point search needs its targets
    assert np.all(np.diff(b_y.astype(np.int64) * w + b_x) > 0)
    assert np.all(np.diff(i_y.astype(np.int64) * w + i_x) >= 0)
    for c in range(n):
        mask = np.ascontiguousarray((m == c).view(np.uint8))
        expected = kb._inner_boundary(mask, 4, 1, 1, 1, 1)  # the crop is the whole image
        assert (b_y[b_class == c].tolist(), b_x[b_class == c].tolist()) == points_of(expected)
        for d in range(n):
            pick = (i_class == c) & (i_other == d)
            assert (i_y[pick].tolist(), i_x[pick].tolist()) == points_of(interface_ref(m, c, d) if c != d
                                                                           else np.zeros_like(m))
    # the interfaces list exactly the pairs of classes that touch
    touching = {(int(c), int(d)) for c, d in zip(*np.nonzero(adjacency_ref(m, n)))}
    assert set(zip(i_class.tolist(), i_other.tolist())) == touching


def test_edge_points_of_a_map_without_classes():
    out = ks._edge_points(np.full((3, 4), -1, np.int32))
    assert all(len(a) == 0 for a in out)


def test_interface_match_counts_signs_and_distances():
    # a: rows 0-5 class 1 (sidewalk), rows 6- class 0 (road); b: the kerb 3 rows higher.
    a = np.ones((12, 5), np.int32)
    a[6:] = 0
    b = np.ones((12, 5), np.int32)
    b[3:] = 0
    road, sidewalk = 0, 1
    tol = np.array([1.0, 2.0, 3.0, 4.0])
    ia = interface_ref(a, road, sidewalk)
    ib = interface_ref(b, road, sidewalk)
    assert np.flatnonzero(ia.any(axis=1)).tolist() == [6] and np.flatnonzero(ib.any(axis=1)).tolist() == [3]
    d2_to_b = ndimage.distance_transform_edt(ib == 0) ** 2
    d2_to_a = ndimage.distance_transform_edt(ia == 0) ** 2
    ya, xa = (v.astype(np.int32) for v in np.nonzero(ia))
    yb, xb = (v.astype(np.int32) for v in np.nonzero(ib))
    out_a = ks._interface_match(ya, xa, d2_to_b[ya, xa], b, road, sidewalk, tol)
    out_b = ks._interface_match(yb, xb, d2_to_a[yb, xb], a, road, sidewalk, tol)
    # a's interface (row 6) lies in b's road: its road stops short of b's by 3 px, sign -.
    assert out_a.tolist() == [0, 0, 5, 5, 5, -15, 15, 5]
    # b's interface (row 3) lies in a's sidewalk: b's road reaches 3 px into it, sign +.
    assert out_b.tolist() == [0, 0, 5, 5, 5, 15, 15, 5]


def test_interface_match_with_no_other_interface():
    m = np.zeros((4, 4), np.int32)
    m[:, 2:] = 1
    ys, xs = (v.astype(np.int32) for v in np.nonzero(interface_ref(m, 0, 1)))
    out = ks._interface_match(ys, xs, np.full(len(ys), np.inf), m, 0, 1, np.array([2.0]))
    assert out.tolist() == [0, 4, 0, 0, 0]


@pytest.mark.parametrize("seed", range(40))
def test_crop_runs_equal_pycocotools_encode(seed):
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 14, 2))
    y0, y1 = sorted(int(v) for v in rng.integers(0, h + 1, 2))
    x0, x1 = sorted(int(v) for v in rng.integers(0, w + 1, 2))
    y1, x1 = max(y1, y0 + 1), max(x1, x0 + 1)
    y1, x1 = min(y1, h), min(x1, w)
    if y1 <= y0 or x1 <= x0:
        y0, x0 = 0, 0
    full = np.zeros((h, w), np.uint8)
    full[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < rng.random()
    runs = ks._crop_runs(np.ascontiguousarray(full[y0:y1, x0:x1]), x0, y0, h, w)
    assert int(runs.sum()) == h * w
    rle = mask_utils.frPyObjects({"counts": runs.tolist(), "size": [h, w]}, h, w)
    assert rle["counts"] == mask_utils.encode(np.asfortranarray(full))["counts"]


def test_crop_runs_edge_cases():
    full = np.ones((3, 4), np.uint8)
    assert ks._crop_runs(full, 0, 0, 3, 4).tolist() == [0, 12]
    assert ks._crop_runs(np.zeros((2, 2), np.uint8), 1, 1, 3, 4).tolist() == [12]
    assert ks._crop_runs(np.ones((1, 1), np.uint8), 3, 2, 3, 4).tolist() == [11, 1]
