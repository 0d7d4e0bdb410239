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
