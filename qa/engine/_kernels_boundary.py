"""Numba kernels: boundary maps, boundary bands and boundary match counts on bbox crops.

A crop is a window of the image. Four flags say which of its sides lie on the image border
(``at_top``, ``at_bottom``, ``at_left``, ``at_right``, 1 when they do). Beyond a side that is not on
the image border the image is background (callers cut crops with a margin of at least one pixel, so
this is true); beyond a side that is on the border there is no image, and each kernel says how it
treats that.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _outside_image(i, j, h, w, at_top, at_bottom, at_left, at_right):
    """True when crop position ``(i, j)`` (possibly outside the crop) lies outside the image."""
    return ((i < 0 and at_top != 0) or (i >= h and at_bottom != 0)
            or (j < 0 and at_left != 0) or (j >= w and at_right != 0))


@njit(cache=True, nogil=True)
def _seg2bmap(mask, at_bottom, at_right):
    """DAVIS ``seg2bmap``: pixels that differ from their east, south or south-east neighbour.

    Neighbours outside the image are not compared, so the image border is never boundary (DAVIS
    sets the last row from east neighbours only, the last column from south ones, the corner to 0).
    Neighbours outside the crop but inside the image are background.

    Parameters
    ----------
    mask : uint8 (h, w)
    at_bottom, at_right : int
        1 when the crop's last row (column) is the image's last row (column).

    Returns
    -------
    uint8 (h, w)
        1 on boundary pixels. They lie half a pixel towards the origin from the outline, so a
        background pixel just above or left of the object can be boundary.
    """
    h, w = mask.shape
    out = np.zeros((h, w), dtype=np.uint8)
    for i in range(h):
        for j in range(w):
            m = mask[i, j] != 0
            if i < h - 1 and j < w - 1:
                # fast path: all three neighbours are inside the crop
                if (mask[i, j + 1] != 0) != m or (mask[i + 1, j] != 0) != m or (mask[i + 1, j + 1] != 0) != m:
                    out[i, j] = 1
                continue
            b = False
            for di, dj in ((0, 1), (1, 0), (1, 1)):
                y = i + di
                x = j + dj
                if (y >= h and at_bottom != 0) or (x >= w and at_right != 0):
                    continue
                other = False
                if y < h and x < w:
                    other = mask[y, x] != 0
                if other != m:
                    b = True
                    break
            if b:
                out[i, j] = 1
    return out


@njit(cache=True, nogil=True)
def _inner_boundary(mask, connectivity, at_top, at_bottom, at_left, at_right):
    """Mask pixels with a neighbour, inside the image, that is not in the mask.

    Parameters
    ----------
    mask : uint8 (h, w)
    connectivity : int
        4 (edge neighbours; the boundary is an 8-connected line) or 8 (edge and corner neighbours).
    at_top, at_bottom, at_left, at_right : int
        1 where the crop side lies on the image border; there the image border is never boundary.

    Returns
    -------
    uint8 (h, w)
        1 on boundary pixels (all of them inside the mask).
    """
    h, w = mask.shape
    out = np.zeros((h, w), dtype=np.uint8)
    for i in range(h):
        interior_row = 0 < i < h - 1
        for j in range(w):
            if mask[i, j] == 0:
                continue
            if interior_row and 0 < j < w - 1:
                # fast path: every neighbour is inside the crop
                b = mask[i - 1, j] == 0 or mask[i + 1, j] == 0 or mask[i, j - 1] == 0 or mask[i, j + 1] == 0
                if not b and connectivity == 8:
                    b = (mask[i - 1, j - 1] == 0 or mask[i - 1, j + 1] == 0 or mask[i + 1, j - 1] == 0
                         or mask[i + 1, j + 1] == 0)
                if b:
                    out[i, j] = 1
                continue
            for di in range(-1, 2):
                for dj in range(-1, 2):
                    if di == 0 and dj == 0:
                        continue
                    if connectivity == 4 and di != 0 and dj != 0:
                        continue
                    y = i + di
                    x = j + dj
                    if _outside_image(y, x, h, w, at_top, at_bottom, at_left, at_right):
                        continue
                    if y < 0 or y >= h or x < 0 or x >= w or mask[y, x] == 0:
                        out[i, j] = 1
                        break
                if out[i, j] != 0:
                    break
    return out


@njit(cache=True, nogil=True)
def _chessboard_band(mask, dilation, outside_is_background, at_top, at_bottom, at_left, at_right):
    """Mask pixels within chessboard distance ``dilation`` of a background pixel.

    This is Cheng et al.'s ``mask_to_boundary``: ``dilation`` erosions with a 3x3 square remove
    exactly the pixels whose chessboard distance to the background is at most ``dilation``, that is
    the pixels whose ``(2 dilation + 1)`` square holds a background pixel (counted here with an
    integral image, so the cost does not grow with ``dilation``).

    Parameters
    ----------
    mask : uint8 (h, w)
    dilation : int
        Band width in pixels (>= 1).
    outside_is_background : int
        1 to count outside the image as background (Cheng et al.: an object cut by the image border
        has a band along it), 0 to ignore it (the image border is never boundary).
    at_top, at_bottom, at_left, at_right : int
        1 where the crop side lies on the image border.

    Returns
    -------
    uint8 (h, w)
        1 on band pixels.
    """
    h, w = mask.shape
    # beyond each side: background, unless the side is the image border and outside is ignored
    top_bg = at_top == 0 or outside_is_background != 0
    bottom_bg = at_bottom == 0 or outside_is_background != 0
    left_bg = at_left == 0 or outside_is_background != 0
    right_bg = at_right == 0 or outside_is_background != 0
    # integral image of the background: the (2d + 1) square around a pixel holds a background pixel
    # exactly when the pixel's chessboard distance to the background is at most d
    s = np.zeros((h + 1, w + 1), dtype=np.int32)
    for i in range(h):
        run = np.int32(0)
        for j in range(w):
            run += np.int32(mask[i, j] == 0)
            s[i + 1, j + 1] = s[i, j + 1] + run
    out = np.zeros((h, w), dtype=np.uint8)
    for i in range(h):
        y0 = max(i - dilation, 0)
        y1 = min(i + dilation + 1, h)
        beyond_rows = (i - dilation < 0 and top_bg) or (i + dilation >= h and bottom_bg)
        for j in range(w):
            if mask[i, j] == 0:
                continue
            if beyond_rows or (j - dilation < 0 and left_bg) or (j + dilation >= w and right_bg):
                out[i, j] = 1
                continue
            x0 = max(j - dilation, 0)
            x1 = min(j + dilation + 1, w)
            if s[y1, x1] - s[y0, x1] - s[y1, x0] + s[y0, x0] > 0:
                out[i, j] = 1
    return out


@njit(cache=True, nogil=True)
def _overlap_counts(a, b):
    """``(intersection, union, count a, count b)`` of two uint8 (h, w) maps, as int64."""
    h, w = a.shape
    inter = 0
    na = 0
    nb = 0
    for i in range(h):
        for j in range(w):
            x = np.int64(a[i, j] != 0)
            y = np.int64(b[i, j] != 0)
            na += x
            nb += y
            inter += x & y
    return inter, na + nb - inter, na, nb


@njit(cache=True, nogil=True)
def _match_counts(boundary, d2_other, tolerances):
    """How many boundary pixels lie within each tolerance of the other boundary.

    Parameters
    ----------
    boundary : uint8 (h, w)
        This mask's boundary map.
    d2_other : float64 (h, w)
        Squared distance to the other mask's nearest boundary pixel.
    tolerances : float64 (t,)
        Tolerances in pixels; a pixel matches when its Euclidean distance is <= the tolerance (a
        disk of that radius, as DAVIS dilates with ``skimage.morphology.disk``).

    Returns
    -------
    int64 (t + 1,)
        Matched counts at each tolerance, then the number of boundary pixels.
    """
    h, w = boundary.shape
    nt = tolerances.shape[0]
    out = np.zeros(nt + 1, dtype=np.int64)
    for i in range(h):
        for j in range(w):
            if boundary[i, j] == 0:
                continue
            out[nt] += 1
            d = np.sqrt(d2_other[i, j])
            for t in range(nt):
                if d <= tolerances[t]:
                    out[t] += 1
    return out


@njit(cache=True, nogil=True)
def _offset_stats(boundary, d2_reference, reference):
    """Mean and median signed distance of one outline from a reference outline.

    Parameters
    ----------
    boundary : uint8 (h, w)
        Inner boundary of the other mask (the outline being measured).
    d2_reference : float64 (h, w)
        Squared distance to the reference's inner boundary.
    reference : uint8 (h, w)
        The reference mask: distances are negative inside it, positive outside.

    Returns
    -------
    (float, float, int)
        Mean and median signed distance in pixels (NaN without boundary pixels or reference
        boundary), and the number of boundary pixels.
    """
    h, w = boundary.shape
    n = 0
    for i in range(h):
        for j in range(w):
            if boundary[i, j] != 0:
                n += 1
    if n == 0:
        return np.nan, np.nan, 0
    values = np.empty(n, dtype=np.float64)
    k = 0
    for i in range(h):
        for j in range(w):
            if boundary[i, j] != 0:
                d = np.sqrt(d2_reference[i, j])
                values[k] = -d if reference[i, j] != 0 else d
                k += 1
    if np.isinf(values[0]):
        return np.nan, np.nan, n
    return values.mean(), np.median(values), n
