"""Numba kernel of grouped sums that can be fed part by part and still equal pandas' group-by to the bit.

pandas sums and averages a float column per group with Kahan's compensated summation, row by row in
frame order (``group_sum`` and ``group_mean`` in ``pandas/_libs/groupby.pyx``). A sum over parts that
were each summed on their own differs from it in the last bits; carrying each group's running sum and
compensation from one part to the next, and adding the rows in the same order, gives the same floats.
The wrapper is :class:`qa.analytics.aggregate._GroupSums`.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True)
def compensated_add(labels, values, sums, compensation, counts):
    """Add rows to per-group compensated sums, in row order, as pandas' group-by sum and mean do.

    Parameters
    ----------
    labels : (n,) int64
        Each row's group, or negative for none (the row is left out).
    values : (n, k) float64
        The rows; NaN values are left out.
    sums, compensation : (groups, k) float64
        Each group's running sum and Kahan compensation, updated in place.
    counts : (groups, k) int64
        Each group's values that were not NaN, updated in place.

    Notes
    -----
    An infinite value makes the compensation NaN; it is reset to zero then, so the sum is the infinity
    and not NaN (pandas GH#53606).
    """
    n, k = values.shape
    for i in range(n):
        lab = labels[i]
        if lab < 0:
            continue
        for j in range(k):
            val = values[i, j]
            if val == val:
                counts[lab, j] += 1
                y = val - compensation[lab, j]
                t = sums[lab, j] + y
                compensation[lab, j] = t - sums[lab, j] - y
                if compensation[lab, j] != compensation[lab, j]:
                    compensation[lab, j] = 0.0
                sums[lab, j] = t
