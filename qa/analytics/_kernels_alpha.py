"""Numba kernel of pixel alpha: the sufficient statistics of one image's pixel labels in one pass.

Krippendorff's alpha needs, per pixel, how many annotators gave a value and how many pairs of them
agree; per annotator pair, the pixels both labelled, how many they agree on and the values they gave.
Counting these with numpy takes a boolean array and a bincount per pair over the whole image; one pass
over the pixels keeps every count in a few small arrays, and a run of pixels on which every annotator
gives the same values as on the pixel before is counted once, weighted by its length. The wrapper is
:func:`qa.analytics.alpha.image_stats`.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _pixel_counts(labels, k):
    """Integer counts of alpha over the pixels of one image.

    Parameters
    ----------
    labels : (m, n) int32
        Each annotator's value of each pixel: a code in ``0 .. k - 1``, or negative for no value.
    k : int
        Number of codes.

    Returns
    -------
    agree_by_values : (m + 1,) int64
        Agreeing annotator pairs summed over the pixels with ``v`` values, at index ``v``.
    marginals : (k,) int64
        Values of each code at the pixels with two values or more (the pairable pixels).
    pair_n, pair_same : (m * (m - 1) / 2,) int64
        Per annotator pair ``(i, j)``, ``i < j`` in row-major order: pixels both labelled, and those
        among them with the same value.
    pair_marginals : (m * (m - 1) / 2, k) int64
        Per pair, the values of each code at the pixels both labelled, both annotators counted.
    """
    m, n = labels.shape
    n_pairs = m * (m - 1) // 2
    agree_by_values = np.zeros(m + 1, np.int64)
    marginals = np.zeros(k, np.int64)
    pair_n = np.zeros(n_pairs, np.int64)
    pair_same = np.zeros(n_pairs, np.int64)
    pair_marginals = np.zeros((n_pairs, k), np.int64)
    u = 0
    while u < n:
        # a run of pixels with the same value from every annotator (long along the rows of a label
        # map) counts once, with its length as the weight
        end = u + 1
        while end < n:
            same = True
            for i in range(m):
                if labels[i, end] != labels[i, u]:
                    same = False
                    break
            if not same:
                break
            end += 1
        c = end - u
        values = 0
        for i in range(m):
            if labels[i, u] >= 0:
                values += 1
        if values >= 2:  # otherwise not pairable, and no pair labels it
            agree = 0
            p = 0
            for i in range(m):
                a = labels[i, u]
                if a >= 0 and a < k:
                    marginals[a] += c
                for j in range(i + 1, m):
                    b = labels[j, u]
                    if a >= 0 and b >= 0:
                        pair_n[p] += c
                        if a < k:
                            pair_marginals[p, a] += c
                        if b < k:
                            pair_marginals[p, b] += c
                        if a == b:
                            pair_same[p] += c
                            agree += 1
                    p += 1
            agree_by_values[values] += agree * c
        u = end
    return agree_by_values, marginals, pair_n, pair_same, pair_marginals


@njit(cache=True, nogil=True)
def _segment_codes(id_map, ids, codes, missing, out):
    """Each pixel's code from a panoptic id map: ``codes[j]`` where the id is ``ids[j]`` (ids sorted
    ascending), ``missing`` where it is 0 or not listed. Runs of one id are looked up once."""
    n = id_map.shape[0]
    last = -1
    code = missing
    for p in range(n):
        v = id_map[p]
        if v != last:
            last = v
            code = missing
            if v != 0 and ids.shape[0] > 0:
                j = np.searchsorted(ids, v)
                if j < ids.shape[0] and ids[j] == v:
                    code = codes[j]
        out[p] = code


@njit(cache=True, nogil=True)
def _paint_codes(buf, starts, boxes, order, codes, x0, y0, out):
    """Paint objects' tight crops into a label window, one after the other (later ones on top).

    Parameters
    ----------
    buf, starts, boxes :
        Tight crops (:class:`qa.engine._masks.ObjectCrops`).
    order : (k,) int64
        The crops to paint, in painting order.
    codes : (k,) int32
        The label code of each, in ``order``.
    x0, y0 : int
        The window's top-left corner in the image.
    out : (h, w) int32
        The window's labels, painted in place where a crop marks a pixel.
    """
    h, w = out.shape
    for i in range(order.shape[0]):
        o = order[i]
        bx0 = boxes[o, 0]
        by0 = boxes[o, 1]
        cw = boxes[o, 2] - bx0
        code = codes[i]
        xa = max(bx0, x0)
        xb = min(boxes[o, 2], x0 + w)
        for y in range(max(by0, y0), min(boxes[o, 3], y0 + h)):
            row = starts[o] + (y - by0) * cw - bx0
            src = buf[row + xa:row + xb]
            dst = out[y - y0, xa - x0:xb - x0]
            for x in range(xb - xa):  # a select, not a branch, so the row vectorises
                dst[x] = code if src[x] != 0 else dst[x]
