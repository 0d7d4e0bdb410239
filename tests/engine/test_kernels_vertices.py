"""The vertex table's per-object reductions against numpy's ``minimum.at`` and ``maximum.at``."""

import numpy as np
import pytest

from qa.engine._kernels_vertices import _max_at, _min_at


def _values(rng, m, c, dtype):
    if dtype == np.int64:
        return rng.integers(-50, 50, (m, c)).astype(np.int64)
    v = rng.choice(np.array([0.0, -0.0, 1.5, -2.25, np.inf, -np.inf, np.nan]), (m, c))
    plain = rng.random((m, c)) < 0.5
    v[plain] = rng.normal(0, 10, (m, c))[plain]
    return v


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [np.float64, np.int64])
@pytest.mark.parametrize("columns", [1, 2])
def test_min_and_max_at_equal_numpy_bit_for_bit(seed, dtype, columns):
    """Every value in the same order as numpy's unbuffered ``at``: NaN on either side gives NaN and a
    tie keeps the new value (so ``-0.0`` and ``0.0`` come out as numpy gives them), ints and floats."""
    rng = np.random.default_rng(seed)
    n, m = 7, 60
    index = rng.integers(0, n, m).astype(np.int64)
    values = _values(rng, m, columns, dtype)
    start = _values(rng, n, columns, dtype)
    for kernel, ufunc in ((_min_at, np.minimum), (_max_at, np.maximum)):
        got, want = start.copy(), start.copy()
        kernel(got, index, values)
        with np.errstate(invalid="ignore"):  # numpy warns of NaN; the kernel does not
            ufunc.at(want, index, values)
        assert got.tobytes() == want.tobytes()


def test_signed_zero_ties_follow_numpy():
    for kernel, ufunc in ((_min_at, np.minimum), (_max_at, np.maximum)):
        for a, b in ((0.0, -0.0), (-0.0, 0.0)):
            got, want = np.array([[a]]), np.array([[a]])
            kernel(got, np.zeros(1, np.int64), np.array([[b]]))
            ufunc.at(want, np.zeros(1, np.int64), np.array([[b]]))
            assert np.signbit(got[0, 0]) == np.signbit(want[0, 0])


def _ref_shared(image, x, y, owner):
    """A vertex is shared when another owner has a vertex of the same image at the same place (==)."""
    out = np.zeros(len(x), bool)
    for a in range(len(x)):
        for b in range(len(x)):
            if owner[a] != owner[b] and image[a] == image[b] and x[a] == x[b] and y[a] == y[b]:
                out[a] = True
    return out


@pytest.mark.parametrize("seed", range(5))
def test_shared_runs_equal_the_pairwise_definition_whatever_the_key(seed):
    """Equal places on a small grid, -0.0 beside 0.0, NaN (at no place); with a key that only groups
    equal places, with every vertex under one key, and with keys shared by unequal places."""
    from qa.engine._kernels_vertices import _shared_runs

    rng = np.random.default_rng(seed)
    n = 120
    image = rng.integers(0, 3, n).astype(np.int64)
    owner = rng.integers(0, 6, n).astype(np.int64)
    x = rng.integers(0, 4, n).astype(np.float64)
    y = rng.integers(0, 4, n).astype(np.float64)
    x[rng.random(n) < 0.1] = -0.0
    y[rng.random(n) < 0.05] = np.nan
    want = _ref_shared(image, x, y, owner)
    xs, ys = x + 0.0, y + 0.0
    exact = np.unique(np.column_stack([image, xs, ys]), axis=0, return_inverse=True)[1].reshape(-1)
    for key in (exact.astype(np.uint64), np.zeros(n, np.uint64), (exact % 3).astype(np.uint64)):
        assert np.array_equal(_shared_runs(np.argsort(key), key, image, x, y, owner), want)


def test_vtx005_shared_vertices_equal_the_pairwise_definition():
    """The rules' hash of image and position finds exactly the vertices another object of the same image
    also has, on regions that meet."""
    from common import make_batch, make_object
    from qa.rules._context import ExportContext
    from qa.rules.vertices import _shared

    a = np.array([[10, 10], [30, 10], [30, 30], [10, 30]], float)
    b = np.array([[30, 10], [50, 10], [50, 30], [30, 30]], float)
    c = np.array([[30.5, 10], [60, 10], [60, 30]], float)
    batch = make_batch([make_object(a), make_object(b), make_object(c)])
    ctx = ExportContext(batch.exports["alice"], batch)
    v = ctx.vertices
    want = _ref_shared(np.zeros(len(v.xy), np.int64), v.xy[:, 0], v.xy[:, 1], v.vertex_object)
    assert np.array_equal(_shared(ctx, v), want) and want.sum() == 4
