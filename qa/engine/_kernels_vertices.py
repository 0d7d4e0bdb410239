"""Numba kernels of the rules' vertex table (:class:`qa.rules._context.Vertices`): per-object reductions
of per-vertex (or per-part) values in one pass, where ``np.minimum.at`` and ``np.maximum.at`` take an
unbuffered, per-element path.
"""

from __future__ import annotations

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
