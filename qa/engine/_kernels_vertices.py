"""Numba kernels of the rules' vertex table (:class:`qa.rules._context.Vertices`): per-object reductions
of per-vertex (or per-part) values in one pass, where ``np.minimum.at`` and ``np.maximum.at`` take an
unbuffered, per-element path; vertices at the same place as another object's (:func:`_shared_runs`).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _min_at(out, index, values):
    """``np.minimum.at(out, index, values)`` on rows: ``out[index[k]] = minimum(out[index[k]], values[k])``
    for k in order, with numpy's minimum (NaN on either side gives NaN; a tie keeps the value, so
    ``minimum(0.0, -0.0)`` is ``-0.0``).

    Parameters
    ----------
    out : (n, c) float64 or int64
        Updated in place.
    index : (m,) int64
    values : (m, c), the dtype of ``out``
    """
    for k in range(index.shape[0]):
        o = index[k]
        for c in range(out.shape[1]):
            a = out[o, c]
            b = values[k, c]
            if not (a < b or a != a):
                out[o, c] = b


@njit(cache=True, nogil=True)
def _max_at(out, index, values):
    """``np.maximum.at(out, index, values)`` on rows, as :func:`_min_at` with numpy's maximum."""
    for k in range(index.shape[0]):
        o = index[k]
        for c in range(out.shape[1]):
            a = out[o, c]
            b = values[k, c]
            if not (a > b or a != a):
                out[o, c] = b


@njit(cache=True, nogil=True)
def _shared_runs(order, key, image, x, y, owner):
    """Whether each vertex sits exactly (``==``) at the place of a vertex of another owner in the same
    image, from the vertices ordered by a key that is equal wherever image, x and y are.

    Parameters
    ----------
    order : (n,) int64
        The vertices sorted by ``key``.
    key : (n,) uint64
        Equal for two vertices at the same place (a hash of it; unequal places may share a key).
    image, owner : (n,) int64
    x, y : (n,) float64

    Returns
    -------
    (n,) bool
        Within each run of one key every pair is compared, so a shared key of two places changes nothing;
        NaN is at no place (never equal), and ``-0.0`` is at ``0.0``.
    """
    n = order.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    lo = 0
    while lo < n:
        hi = lo + 1
        while hi < n and key[order[hi]] == key[order[lo]]:
            hi += 1
        for p in range(lo, hi):
            a = order[p]
            for q in range(p + 1, hi):
                b = order[q]
                if owner[a] != owner[b] and image[a] == image[b] and x[a] == x[b] and y[a] == y[b]:
                    out[a] = True
                    out[b] = True
        lo = hi
    return out
