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

from qa.engine._masks import _find_sorted


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


# --- outlines as point lists (cost in the length of the boundaries, not the area of the window) ------

_B4 = 1
_B8 = 2
_BAND = 4


@njit(cache=True, nogil=True)
def _grow(values, n):
    """``values`` with room for at least ``n`` entries (doubling), contents kept."""
    if n <= values.shape[0]:
        return values
    out = np.empty(max(n, 2 * values.shape[0]), dtype=values.dtype)
    out[:values.shape[0]] = values
    return out


@njit(cache=True, nogil=True)
def _edge_flags(labels, y, x, at_top, at_bottom, at_left, at_right):
    """``_B4 | _B8`` flags of a pixel on the edge of ``labels`` (neighbours beyond a side that is not
    the image border are background, beyond the image border they do not exist)."""
    h, w = labels.shape
    v = labels[y, x]
    f = 0
    for dy in range(-1, 2):
        for dx in range(-1, 2):
            if dy == 0 and dx == 0:
                continue
            yy = y + dy
            xx = x + dx
            if _outside_image(yy, xx, h, w, at_top, at_bottom, at_left, at_right):
                continue
            if yy < 0 or yy >= h or xx < 0 or xx >= w or labels[yy, xx] != v:
                f |= _B8
                if dy == 0 or dx == 0:
                    f |= _B4
    return f


@njit(cache=True, nogil=True)
def _inner_flags(labels, flags):
    """``_B4 | _B8`` flags of the pixels off the edges of ``labels`` (branch-free rows, so they
    vectorise)."""
    h, w = labels.shape
    for y in range(1, h - 1):
        up = labels[y - 1]
        mid = labels[y]
        down = labels[y + 1]
        row = flags[y]
        for x in range(1, w - 1):
            v = mid[x]
            e4 = (up[x] != v) | (down[x] != v) | (mid[x - 1] != v) | (mid[x + 1] != v)
            e8 = (up[x - 1] != v) | (up[x + 1] != v) | (down[x - 1] != v) | (down[x + 1] != v)
            row[x] = (np.uint8(e4) * np.uint8(_B4 | _B8)) | (np.uint8(e8) * np.uint8(_B8))


@njit(cache=True, nogil=True)
def _emit_corner(labels, ids, order, cy, cx, y_off, x_off, s_obj, s_y, s_x, s_code, count):
    """Append the surface elements at corner ``(cy, cx)`` (top-left of pixel ``(cy, cx)``), one per
    wanted label among its four pixels that does not cover all four; return the new count."""
    h, w = labels.shape
    top = cy > 0
    bottom = cy < h
    left = cx > 0
    right = cx < w
    # the four pixels: q = 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right (bit 8 >> q)
    ok0 = top and left
    ok1 = top and right
    ok2 = bottom and left
    ok3 = bottom and right
    v0 = labels[cy - 1, cx - 1] if ok0 else labels.dtype.type(0)
    v1 = labels[cy - 1, cx] if ok1 else labels.dtype.type(0)
    v2 = labels[cy, cx - 1] if ok2 else labels.dtype.type(0)
    v3 = labels[cy, cx] if ok3 else labels.dtype.type(0)
    if ok0 and ok1 and ok2 and ok3 and v0 == v1 and v0 == v2 and v0 == v3:
        return count  # four pixels of one label: no surface element
    for q in range(4):
        if q == 0:
            if not ok0:
                continue
            v = v0
        elif q == 1:
            if not ok1 or (ok0 and v0 == v1):
                continue
            v = v1
        elif q == 2:
            if not ok2 or (ok0 and v0 == v2) or (ok1 and v1 == v2):
                continue
            v = v2
        else:
            if not ok3 or (ok0 and v0 == v3) or (ok1 and v1 == v3) or (ok2 and v2 == v3):
                continue
            v = v3
        j = _find_sorted(ids, v)
        if j < 0:
            continue
        code = 0
        if ok0 and v0 == v:
            code |= 8
        if ok1 and v1 == v:
            code |= 4
        if ok2 and v2 == v:
            code |= 2
        if ok3 and v3 == v:
            code |= 1
        if code != 15:
            s_obj[count] = order[j]
            s_y[count] = cy + y_off
            s_x[count] = cx + x_off
            s_code[count] = code
            count += 1
    return count


_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_HIGH = np.uint64(0x8080808080808080)
_BYTE_RANK = np.uint64(0x0001020304050607)


@njit(cache=True, nogil=True)
def _flagged(flat, words, start, end, base, out, n):
    """Write ``p - base`` for every position ``p`` in ``[start, end)`` whose byte in ``flat`` is nonzero,
    in order, to ``out`` from ``out[n]``; return the new count.

    ``words`` is the same memory as uint64 (with a tail, so that whole words can be read). Nonzero bytes
    are found a word (8 bytes) at a time: a word's nonzero bytes as its high bits, each taken lowest
    first (stepping a byte at a time to the next flag cost most of the outline passes).
    """
    p = start
    while p < end and (p & 7) != 0:
        if flat[p] != 0:
            out[n] = p - base
            n += 1
        p += 1
    while p + 8 <= end:
        word = words[p >> 3]
        if word != 0:
            # the high bit of each nonzero byte (no carry crosses a byte: at most 0x7F + 0x7F)
            high = (((word & _LOW7) + _LOW7) | word) & _HIGH
            while high != 0:
                lowest = high & (~high + np.uint64(1))
                # lowest is 1 << (8 k + 7): the multiplication moves byte rank k to the top byte
                k = np.int64(((lowest >> np.uint64(7)) * _BYTE_RANK) >> np.uint64(56))
                out[n] = p + k - base
                n += 1
                high ^= lowest
        p += 8
    while p < end:
        if flat[p] != 0:
            out[n] = p - base
            n += 1
        p += 1
    return n


@njit(cache=True, nogil=True)
def _row_columns(flat, words, cy, h, w, cols):
    """The columns the raster pass visits in corner row ``cy`` (0 .. h), in order, written to ``cols``
    (``w + 1`` long); return how many.

    Every column of the first and last corner rows (and of windows narrower than 2); in the others
    column 0, the flagged pixels of columns 1 .. w - 2 (:func:`_flagged`), then columns w - 1 and w.
    """
    if cy == 0 or cy == h or w < 2:
        for cx in range(w + 1):
            cols[cx] = cx
        return w + 1
    cols[0] = 0
    base = cy * w
    n = _flagged(flat, words, base + 1, base + w - 1, base, cols, 1)
    cols[n] = w - 1
    cols[n + 1] = w
    return n + 2


@njit(cache=True, nogil=True)
def _outlines(labels, ids, order, n_objects, y_off, x_off, at_top, at_bottom, at_left, at_right, band_width):
    """Row runs, inner boundaries, boundary bands and surface elements of labelled regions, as point
    lists in raster order.

    One branch-free pass over ``labels`` flags the pixels that differ from a neighbour; everything
    else reads only the flagged pixels (and the window's edges), so apart from that pass the cost
    grows with the length of the boundaries.

    Parameters
    ----------
    labels : (h, w) int32 or uint8
        A window of the image: a panoptic id map, or a 0/1 crop of one mask.
    ids : (n,) int64, sorted ascending
        The labels wanted (other labels are background).
    order : (n,) int64
        ``ids[j]`` is object ``order[j]``.
    n_objects : int
        Number of objects (outputs are grouped by object ``0 .. n_objects - 1``).
    y_off, x_off : int
        Position of the window in the image (outputs are in image coordinates).
    at_top, at_bottom, at_left, at_right : int
        1 where the window's side lies on the image border. Beyond a side that is not, the image is
        background.
    band_width : int
        ``d`` >= 1 of the boundary band: mask pixels within chessboard distance ``d`` of a pixel of the
        image outside the mask (the image border is not boundary).

    Returns
    -------
    tuple of arrays
        ``run_ptr, run_y, run_x0, run_x1``: each object's row runs ``[x0, x1)`` (int64 pointers, int32
        coordinates); ``b4_ptr, b4_y, b4_x``: its inner boundary with edge neighbours (a mask pixel with
        an edge neighbour in the image outside the mask); ``band_ptr, band_y, band_x``: its boundary
        band; ``s_ptr, s_y, s_x, s_code``: its surface elements, the pixel corners ``(y, x)`` (top-left
        corner of pixel ``(y, x)``) whose DeepMind neighbour code (uint8, outside the image is
        background) is neither 0 nor 15. Object ``k``'s entries are ``[ptr[k], ptr[k + 1])``, sorted
        by row, then column.

    Notes
    -----
    The band is computed as the mask pixels within chessboard distance ``d - 1`` of an inner boundary
    pixel with corner neighbours (a mask pixel with any neighbour in the image outside the mask): a
    chessboard path from a band pixel to the nearest such outside pixel stays in the image and leaves
    the mask at such a boundary pixel, and the reverse is immediate. A corner off the window's edges
    whose bottom-right pixel has no differing neighbour has four pixels of one label, so only the
    corners of flagged pixels are examined.
    """
    h, w = labels.shape
    # flags, with a tail so that whole 8-byte words can be read when skipping unflagged pixels
    words = np.zeros((h * w + 7) // 8 + 1, dtype=np.uint64)
    flat = words.view(np.uint8)
    flags = flat[:h * w].reshape((h, w))
    # pass 1: flags of every pixel (the edges one by one, the rest branch-free)
    _inner_flags(labels, flags)
    for y in range(h):
        step = 1 if y == 0 or y == h - 1 else max(w - 1, 1)
        for x in range(0, w, step):
            flags[y, x] = _edge_flags(labels, y, x, at_top, at_bottom, at_left, at_right)
    # the wanted pixels with a differing neighbour, for the band
    b8 = np.empty(1024, dtype=np.int64)
    n8 = 0
    n8_all = 0
    last_v = labels[0, 0] if h > 0 and w > 0 else 0
    last_j = _find_sorted(ids, last_v) if h > 0 and w > 0 else -1
    cols = np.empty(w + 1, dtype=np.int64)
    for y in range(h):
        for i in range(_flagged(flat, words, y * w, y * w + w, y * w, cols, 0)):
            n8_all += 1
            v = labels[y, cols[i]]
            if v != last_v:
                last_v = v
                last_j = _find_sorted(ids, v)
            if last_j >= 0:
                if n8 == b8.shape[0]:
                    b8 = _grow(b8, n8 + 1)
                b8[n8] = y * w + cols[i]
                n8 += 1
    # pass 2: the band, the wanted pixels within chessboard distance d - 1 of a boundary pixel of theirs
    r = band_width - 1
    n_band = 0
    for k in range(n8):
        y = b8[k] // w
        x = b8[k] - y * w
        v = labels[y, x]
        for yy in range(max(y - r, 0), min(y + r + 1, h)):
            for xx in range(max(x - r, 0), min(x + r + 1, w)):
                if labels[yy, xx] == v and (flags[yy, xx] & _BAND) == 0:
                    flags[yy, xx] |= _BAND
                    n_band += 1
    # pass 3, in raster order: runs, boundary and band pixels, surface elements (at flagged pixels and
    # along the window's edges only)
    rec_obj = np.empty(n_band + 2 * h + 1, dtype=np.int64)
    rec_y = np.empty(n_band + 2 * h + 1, dtype=np.int32)
    rec_x0 = np.empty(n_band + 2 * h + 1, dtype=np.int32)
    rec_x1 = np.empty(n_band + 2 * h + 1, dtype=np.int32)
    b4_obj = np.empty(n_band, dtype=np.int64)
    b4_y = np.empty(n_band, dtype=np.int32)
    b4_x = np.empty(n_band, dtype=np.int32)
    band_obj = np.empty(n_band, dtype=np.int64)
    band_y = np.empty(n_band, dtype=np.int32)
    band_x = np.empty(n_band, dtype=np.int32)
    cap = 4 * (n8_all + 2 * (h + w) + 4)
    s_obj = np.empty(cap, dtype=np.int64)
    s_y = np.empty(cap, dtype=np.int32)
    s_x = np.empty(cap, dtype=np.int32)
    s_code = np.empty(cap, dtype=np.uint8)
    n_runs = 0
    n4 = 0
    nb = 0
    ns = 0
    run_start = 0
    last_v = labels[0, 0] if h > 0 and w > 0 else 0
    last_j = _find_sorted(ids, last_v) if h > 0 and w > 0 else -1
    last_k = order[last_j] if last_j >= 0 else -1
    for cy in range(h + 1):
        edge_row = cy == 0 or cy == h
        for i in range(_row_columns(flat, words, cy, h, w, cols)):
            cx = cols[i]
            pixel = cy < h and cx < w
            f = flags[cy, cx] if pixel else np.uint8(0)
            if f == _BAND and not edge_row and 0 < cx < w - 1:  # band only: no corner, no run end
                band_obj[nb] = last_k if labels[cy, cx] == last_v else order[_find_sorted(ids, labels[cy, cx])]
                band_y[nb] = cy + y_off
                band_x[nb] = cx + x_off
                nb += 1
                continue
            if (f & _B8) != 0 or edge_row or cx == 0 or cx == w:
                ns = _emit_corner(labels, ids, order, cy, cx, y_off, x_off, s_obj, s_y, s_x, s_code, ns)
            if pixel and (f != 0 or cx == 0 or cx == w - 1):
                v = labels[cy, cx]
                if v != last_v:
                    last_v = v
                    last_j = _find_sorted(ids, v)
                    last_k = order[last_j] if last_j >= 0 else -1
                j = last_j
                if j >= 0:
                    k = last_k
                    if f & _BAND:
                        band_obj[nb] = k
                        band_y[nb] = cy + y_off
                        band_x[nb] = cx + x_off
                        nb += 1
                        if f & _B4:
                            b4_obj[n4] = k
                            b4_y[n4] = cy + y_off
                            b4_x[n4] = cx + x_off
                            n4 += 1
                    # a run starts where the left neighbour differs and ends where the right one does;
                    # both pixels are flagged (or on the window's first or last column)
                    if cx == 0 or labels[cy, cx - 1] != v:
                        run_start = cx
                    if cx == w - 1 or labels[cy, cx + 1] != v:
                        rec_obj[n_runs] = k
                        rec_y[n_runs] = cy + y_off
                        rec_x0[n_runs] = run_start + x_off
                        rec_x1[n_runs] = cx + 1 + x_off
                        n_runs += 1
    run_ptr, run_perm = _group(rec_obj, n_runs, n_objects)
    b4_ptr, b4_perm = _group(b4_obj, n4, n_objects)
    band_ptr, band_perm = _group(band_obj, nb, n_objects)
    s_ptr, s_perm = _group(s_obj, ns, n_objects)
    return (run_ptr, rec_y[run_perm], rec_x0[run_perm], rec_x1[run_perm],
            b4_ptr, b4_y[b4_perm], b4_x[b4_perm],
            band_ptr, band_y[band_perm], band_x[band_perm],
            s_ptr, s_y[s_perm], s_x[s_perm], s_code[s_perm])


@njit(cache=True, nogil=True)
def _mask_band(mask, flags, r):
    """Mark ``_BAND`` on the mask pixels within chessboard distance ``r`` of a mask pixel with a
    differing neighbour (``_B8``); return ``(band pixels, _B8 pixels of the window)``.

    The square neighbourhood is a dilation along the rows, then along the columns, of the mask's
    ``_B8`` pixels: whole rows at a time and branch-free, so that they vectorise (marking from each
    boundary pixel in turn cost about four times as much).
    """
    h, w = mask.shape
    near = np.zeros((h, w), dtype=np.uint8)
    srow = np.empty(w, dtype=np.uint8)
    n8_all = 0
    for y in range(h):
        frow = flags[y]
        mrow = mask[y]
        for x in range(w):
            srow[x] = np.uint8((frow[x] & _B8) != 0) & np.uint8(mrow[x] == 1)
        for x in range(w):
            n8_all += np.uint8((frow[x] & _B8) != 0)
        for dx in range(-r, r + 1):
            lo = max(0, -dx)
            hi = min(w, w - dx)
            # slices indexed from 0: an index that might be negative would not vectorise
            source = srow[lo + dx:hi + dx]
            target = near[y, lo:hi]
            for x in range(hi - lo):
                target[x] |= source[x]
    n_band = 0
    band = np.empty(w, dtype=np.uint8)
    for y in range(h):
        band[:] = 0
        for yy in range(max(y - r, 0), min(y + r + 1, h)):
            nrow = near[yy]
            for x in range(w):
                band[x] |= nrow[x]
        frow = flags[y]
        mrow = mask[y]
        for x in range(w):
            band[x] &= np.uint8(mrow[x] == 1)
            frow[x] |= band[x] * np.uint8(_BAND)
        for x in range(w):
            n_band += band[x]
    return n_band, n8_all


@njit(cache=True, nogil=True)
def _mask_outlines(mask, y_off, x_off, at_top, at_bottom, at_left, at_right, band_width):
    """``_outlines`` of one 0/1 mask (its pixels equal to 1 are the one object), the same 14 arrays.

    The same passes as ``_outlines`` with one label wanted: the flags of every pixel; the band as a
    dilation of the mask's boundary pixels (``_mask_band``); then the raster pass, where a corner's one
    surface element is its code from the four pixels around it (an element when some but not all of
    those inside the window are in the mask), and every record belongs to object 0, so nothing is
    regrouped.

    Parameters
    ----------
    mask : (h, w) uint8
        0/1 (a pixel equal to 1 is in the mask, any other value is not).
    y_off, x_off, at_top, at_bottom, at_left, at_right, band_width :
        As ``_outlines``.
    """
    h, w = mask.shape
    words = np.zeros((h * w + 7) // 8 + 1, dtype=np.uint64)
    flat = words.view(np.uint8)
    flags = flat[:h * w].reshape((h, w))
    _inner_flags(mask, flags)
    for y in range(h):
        step = 1 if y == 0 or y == h - 1 else max(w - 1, 1)
        for x in range(0, w, step):
            flags[y, x] = _edge_flags(mask, y, x, at_top, at_bottom, at_left, at_right)
    n_band, n8_all = _mask_band(mask, flags, band_width - 1)
    run_y = np.empty(n_band + 2 * h + 1, dtype=np.int32)
    run_x0 = np.empty(n_band + 2 * h + 1, dtype=np.int32)
    run_x1 = np.empty(n_band + 2 * h + 1, dtype=np.int32)
    b4_y = np.empty(n_band, dtype=np.int32)
    b4_x = np.empty(n_band, dtype=np.int32)
    band_y = np.empty(n_band, dtype=np.int32)
    band_x = np.empty(n_band, dtype=np.int32)
    cap = 4 * (n8_all + 2 * (h + w) + 4)
    s_y = np.empty(cap, dtype=np.int32)
    s_x = np.empty(cap, dtype=np.int32)
    s_code = np.empty(cap, dtype=np.uint8)
    n_runs = 0
    n4 = 0
    nb = 0
    ns = 0
    run_start = 0
    cols = np.empty(w + 1, dtype=np.int64)
    for cy in range(h + 1):
        edge_row = cy == 0 or cy == h
        for i in range(_row_columns(flat, words, cy, h, w, cols)):
            cx = cols[i]
            pixel = cy < h and cx < w
            f = flags[cy, cx] if pixel else np.uint8(0)
            if f == _BAND and not edge_row and 0 < cx < w - 1:  # band only: no corner, no run end
                band_y[nb] = cy + y_off
                band_x[nb] = cx + x_off
                nb += 1
                continue
            if (f & _B8) != 0 or edge_row or cx == 0 or cx == w:
                # the corner's code: 8, 4, 2, 1 for its top-left, top-right, bottom-left, bottom-right
                # pixel in the mask (pixels beyond the window are not)
                code = 0
                if cy > 0:
                    if cx > 0 and mask[cy - 1, cx - 1] == 1:
                        code |= 8
                    if cx < w and mask[cy - 1, cx] == 1:
                        code |= 4
                if cy < h:
                    if cx > 0 and mask[cy, cx - 1] == 1:
                        code |= 2
                    if cx < w and mask[cy, cx] == 1:
                        code |= 1
                if code != 0 and code != 15:
                    s_y[ns] = cy + y_off
                    s_x[ns] = cx + x_off
                    s_code[ns] = code
                    ns += 1
            if pixel and (f != 0 or cx == 0 or cx == w - 1) and mask[cy, cx] == 1:
                if f & _BAND:
                    band_y[nb] = cy + y_off
                    band_x[nb] = cx + x_off
                    nb += 1
                    if f & _B4:
                        b4_y[n4] = cy + y_off
                        b4_x[n4] = cx + x_off
                        n4 += 1
                # a run starts where the left neighbour differs and ends where the right one does;
                # both pixels are flagged (or on the window's first or last column)
                if cx == 0 or mask[cy, cx - 1] != 1:
                    run_start = cx
                if cx == w - 1 or mask[cy, cx + 1] != 1:
                    run_y[n_runs] = cy + y_off
                    run_x0[n_runs] = run_start + x_off
                    run_x1[n_runs] = cx + 1 + x_off
                    n_runs += 1
    run_ptr = np.zeros(2, dtype=np.int64)
    run_ptr[1] = n_runs
    b4_ptr = np.zeros(2, dtype=np.int64)
    b4_ptr[1] = n4
    band_ptr = np.zeros(2, dtype=np.int64)
    band_ptr[1] = nb
    s_ptr = np.zeros(2, dtype=np.int64)
    s_ptr[1] = ns
    return (run_ptr, run_y[:n_runs].copy(), run_x0[:n_runs].copy(), run_x1[:n_runs].copy(),
            b4_ptr, b4_y[:n4].copy(), b4_x[:n4].copy(),
            band_ptr, band_y[:nb].copy(), band_x[:nb].copy(),
            s_ptr, s_y[:ns].copy(), s_x[:ns].copy(), s_code[:ns].copy())


@njit(cache=True, nogil=True)
def _group(obj, n, n_objects):
    """Stable counting sort of the first ``n`` records by object: ``(ptr, permutation)``."""
    ptr = np.zeros(n_objects + 1, dtype=np.int64)
    for i in range(n):
        ptr[obj[i] + 1] += 1
    for k in range(n_objects):
        ptr[k + 1] += ptr[k]
    fill = ptr[:n_objects].copy()
    perm = np.empty(n, dtype=np.int64)
    for i in range(n):
        k = obj[i]
        perm[fill[k]] = i
        fill[k] += 1
    return ptr, perm


@njit(cache=True, nogil=True)
def _append(values, n, part):
    """``values`` (grown when needed) with ``part`` written at ``[n, n + len(part))``."""
    values = _grow(values, n + part.shape[0])
    values[n:n + part.shape[0]] = part
    return values


@njit(cache=True, nogil=True)
def _crops_outlines(buf, starts, boxes, height, width, band_width):
    """``_outlines`` of every tight crop of one image, object after object, in one call.

    Parameters
    ----------
    buf : (size,) uint8
        The crops, one after the other, each row-major (0/1): crop ``k`` is
        ``buf[starts[k]:starts[k + 1]]`` reshaped to its box.
    starts : (n + 1,) int64
    boxes : (n, 4) int64
        Each crop's ``x0, y0, x1, y1`` in the image (end-exclusive).
    height, width : int
        The image's size (a crop side on the image border is the image border).
    band_width : int
        As ``_outlines``.

    Returns
    -------
    tuple of arrays
        The 14 arrays of ``_outlines`` for objects ``0 .. n - 1``: each object's entries are those of
        ``_outlines`` of its crop alone (``_mask_outlines``), in the same order.
    """
    n = boxes.shape[0]
    run_ptr = np.zeros(n + 1, dtype=np.int64)
    b4_ptr = np.zeros(n + 1, dtype=np.int64)
    band_ptr = np.zeros(n + 1, dtype=np.int64)
    s_ptr = np.zeros(n + 1, dtype=np.int64)
    run_y = np.empty(0, dtype=np.int32)
    run_x0 = np.empty(0, dtype=np.int32)
    run_x1 = np.empty(0, dtype=np.int32)
    b4_y = np.empty(0, dtype=np.int32)
    b4_x = np.empty(0, dtype=np.int32)
    band_y = np.empty(0, dtype=np.int32)
    band_x = np.empty(0, dtype=np.int32)
    s_y = np.empty(0, dtype=np.int32)
    s_x = np.empty(0, dtype=np.int32)
    s_code = np.empty(0, dtype=np.uint8)
    for k in range(n):
        x0 = boxes[k, 0]
        y0 = boxes[k, 1]
        x1 = boxes[k, 2]
        y1 = boxes[k, 3]
        h = max(y1 - y0, 0)
        w = max(x1 - x0, 0)
        crop = buf[starts[k]:starts[k] + h * w].reshape((h, w))
        part = _mask_outlines(crop, y0, x0, int(y0 == 0), int(y1 == height), int(x0 == 0), int(x1 == width),
                              band_width)
        m = run_ptr[k]
        run_y = _append(run_y, m, part[1])
        run_x0 = _append(run_x0, m, part[2])
        run_x1 = _append(run_x1, m, part[3])
        run_ptr[k + 1] = m + part[1].shape[0]
        m = b4_ptr[k]
        b4_y = _append(b4_y, m, part[5])
        b4_x = _append(b4_x, m, part[6])
        b4_ptr[k + 1] = m + part[5].shape[0]
        m = band_ptr[k]
        band_y = _append(band_y, m, part[8])
        band_x = _append(band_x, m, part[9])
        band_ptr[k + 1] = m + part[8].shape[0]
        m = s_ptr[k]
        s_y = _append(s_y, m, part[11])
        s_x = _append(s_x, m, part[12])
        s_code = _append(s_code, m, part[13])
        s_ptr[k + 1] = m + part[11].shape[0]
    return (run_ptr, run_y[:run_ptr[n]].copy(), run_x0[:run_ptr[n]].copy(), run_x1[:run_ptr[n]].copy(),
            b4_ptr, b4_y[:b4_ptr[n]].copy(), b4_x[:b4_ptr[n]].copy(),
            band_ptr, band_y[:band_ptr[n]].copy(), band_x[:band_ptr[n]].copy(),
            s_ptr, s_y[:s_ptr[n]].copy(), s_x[:s_ptr[n]].copy(), s_code[:s_ptr[n]].copy())
