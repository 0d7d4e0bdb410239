"""Numba kernels: all-pairs intersection counts between two annotators' objects of one image, and crowd
cover.

Objects arrive as tight bbox crops in one flat buffer per annotator (:class:`qa.engine._masks.ObjectCrops`).
Objects of one annotator may overlap each other: each pair is counted on its own, never through a label
map. A pair whose bboxes do not overlap is skipped without reading a pixel.

Crowd regions (COCO ``iscrowd=1``) are never matched. An object left unmatched that lies mostly inside a
crowd region of the other annotator with the same category is not counted as missing or extra: its
share inside the crowd region, ``|object & crowd| / |object|`` (pycocotools' crowd IoU, which divides by
the non-crowd object's area), is computed by :func:`_crowd_cover` and compared with 0.5 by the caller.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _intersection_counts(buf_a, starts_a, boxes_a, buf_b, starts_b, boxes_b):
    """Pixel intersections of every object of A with every object of B.

    Parameters
    ----------
    buf_a : (size_a,) uint8
        A's tight crops, 0/1, row-major, one after the other.
    starts_a : (na + 1,) int64
        Crop ``i`` of A is ``buf_a[starts_a[i]:starts_a[i + 1]]``.
    boxes_a : (na, 4) int64
        A's tight bboxes ``x0, y0, x1, y1`` (end-exclusive).
    buf_b, starts_b, boxes_b
        The same for B.

    Returns
    -------
    (na, nb) int64
        ``out[i, j]`` = number of pixels in both object ``i`` of A and object ``j`` of B.
    """
    na = boxes_a.shape[0]
    nb = boxes_b.shape[0]
    out = np.zeros((na, nb), np.int64)
    for i in range(na):
        ax0 = boxes_a[i, 0]
        ay0 = boxes_a[i, 1]
        ax1 = boxes_a[i, 2]
        ay1 = boxes_a[i, 3]
        wa = ax1 - ax0
        if wa <= 0 or ay1 <= ay0:
            continue
        for j in range(nb):
            bx0 = boxes_b[j, 0]
            by0 = boxes_b[j, 1]
            bx1 = boxes_b[j, 2]
            by1 = boxes_b[j, 3]
            ox0 = max(ax0, bx0)
            ox1 = min(ax1, bx1)
            oy0 = max(ay0, by0)
            oy1 = min(ay1, by1)
            if ox0 >= ox1 or oy0 >= oy1:
                continue
            wb = bx1 - bx0
            count = np.int64(0)
            for y in range(oy0, oy1):
                ra = starts_a[i] + (y - ay0) * wa - ax0
                rb = starts_b[j] + (y - by0) * wb - bx0
                for x in range(ox0, ox1):
                    count += buf_a[ra + x] & buf_b[rb + x]
            out[i, j] = count
    return out


@njit(cache=True, nogil=True)
def _crowd_cover(inter, areas, categories, other_crowd, other_categories):
    """Largest share of each object's area inside one crowd region of the other side, same category.

    Parameters
    ----------
    inter : (n, m) int64
        Intersections of this side's objects (rows) with the other side's (columns).
    areas : (n,) int64
        This side's object areas.
    categories : (n,) int64
        This side's category codes.
    other_crowd : (m,) bool
        Which of the other side's objects are crowd regions.
    other_categories : (m,) int64
        The other side's category codes.

    Returns
    -------
    (n,) float64
        ``max_j inter[i, j] / areas[i]`` over the other side's crowd regions ``j`` of the same category;
        0 when there is none or the object is empty.
    """
    n = inter.shape[0]
    m = inter.shape[1]
    out = np.zeros(n, np.float64)
    for i in range(n):
        if areas[i] <= 0:
            continue
        best = 0.0
        for j in range(m):
            if other_crowd[j] and other_categories[j] == categories[i]:
                share = inter[i, j] / areas[i]
                if share > best:
                    best = share
        out[i] = best
    return out
