"""Numba kernels: all-pairs intersection counts between two annotators' objects of one image, the
overlapping pairs of one annotator's objects (sparse: only pairs whose boxes meet), and crowd cover.

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
        for j in range(nb):
            out[i, j] = _pair_count(buf_a, starts_a, boxes_a, i, buf_b, starts_b, boxes_b, j)
    return out


@njit(cache=True, nogil=True)
def _box_pairs(boxes):
    """The pairs of boxes that share a pixel, each pair once, by sort and sweep.

    Parameters
    ----------
    boxes : (n, 4) int64
        Tight bboxes ``x0, y0, x1, y1`` (end-exclusive); an empty box (``x0 == x1`` or ``y0 == y1``)
        meets nothing.

    Returns
    -------
    i, j : (p,) int64
        ``i < j``; every pair of boxes that overlap, in no particular order.

    Notes
    -----
    The boxes are sorted along the axis where they are short relative to the spread of the image
    they cover (so a batch of wide strips is swept down the image, not across it). Each box is then
    compared with the boxes that start before it ends along that axis only, and kept when the
    other axis overlaps too. Two passes, one to count the pairs and one to write them, so the memory
    is that of the pairs, never n x n.
    """
    n = boxes.shape[0]
    ext = np.zeros(2, np.float64)
    lo = np.full(2, np.iinfo(np.int64).max)
    hi = np.full(2, np.iinfo(np.int64).min)
    for k in range(n):
        for a in range(2):
            if boxes[k, a + 2] > boxes[k, a]:
                ext[a] += boxes[k, a + 2] - boxes[k, a]
                lo[a] = min(lo[a], boxes[k, a])
                hi[a] = max(hi[a], boxes[k, a + 2])
    # sweep along x unless the boxes are relatively longer in x than in y
    axis = 0
    if hi[0] > lo[0] and hi[1] > lo[1] and ext[0] / (hi[0] - lo[0]) > ext[1] / (hi[1] - lo[1]):
        axis = 1
    other = 1 - axis
    order = np.argsort(boxes[:, axis], kind="mergesort")
    out_i = np.zeros(0, np.int64)
    out_j = np.zeros(0, np.int64)
    count = 0
    for write in range(2):
        if write == 1:
            out_i = np.empty(count, np.int64)
            out_j = np.empty(count, np.int64)
        m = 0
        for a in range(n):
            i = order[a]
            if boxes[i, 2] <= boxes[i, 0] or boxes[i, 3] <= boxes[i, 1]:
                continue
            end = boxes[i, axis + 2]
            for b in range(a + 1, n):
                j = order[b]
                if boxes[j, axis] >= end:
                    break
                if boxes[j, 2] <= boxes[j, 0] or boxes[j, 3] <= boxes[j, 1]:
                    continue
                if boxes[j, other] < boxes[i, other + 2] and boxes[i, other] < boxes[j, other + 2]:
                    if write == 1:
                        out_i[m] = min(i, j)
                        out_j[m] = max(i, j)
                    m += 1
        count = m
    return out_i, out_j


@njit(cache=True, nogil=True)
def _pair_intersections(buf, starts, boxes, pair_i, pair_j):
    """Pixel intersections of the given pairs of one side's objects.

    Same layout as :func:`_intersection_counts` (objects of one annotator, which may overlap);
    ``pair_i``, ``pair_j`` (p,) int64 index the pairs (from :func:`_box_pairs`). Returns (p,) int64.
    """
    out = np.zeros(pair_i.shape[0], np.int64)
    for k in range(pair_i.shape[0]):
        out[k] = _pair_count(buf, starts, boxes, pair_i[k], buf, starts, boxes, pair_j[k])
    return out


@njit(cache=True, nogil=True, inline="always")
def _pair_count(buf_a, starts_a, boxes_a, i, buf_b, starts_b, boxes_b, j):
    """Pixels in both crop ``i`` of A and crop ``j`` of B (0 without reading a pixel when their bboxes
    do not overlap)."""
    ax0 = boxes_a[i, 0]
    ay0 = boxes_a[i, 1]
    ax1 = boxes_a[i, 2]
    ay1 = boxes_a[i, 3]
    bx0 = boxes_b[j, 0]
    by0 = boxes_b[j, 1]
    bx1 = boxes_b[j, 2]
    by1 = boxes_b[j, 3]
    ox0 = max(ax0, bx0)
    ox1 = min(ax1, bx1)
    oy0 = max(ay0, by0)
    oy1 = min(ay1, by1)
    if ox0 >= ox1 or oy0 >= oy1:
        return 0
    wa = ax1 - ax0
    wb = bx1 - bx0
    n = ox1 - ox0
    count = np.int64(0)
    for y in range(oy0, oy1):
        ra = starts_a[i] + (y - ay0) * wa - ax0 + ox0
        rb = starts_b[j] + (y - by0) * wb - bx0 + ox0
        row_a = buf_a[ra:ra + n]
        row_b = buf_b[rb:rb + n]
        # a row's count in 32 bits (a row holds fewer than 2^32 pixels), so the loop vectorises
        s = np.uint32(0)
        for x in range(n):
            s += np.uint32(row_a[x] & row_b[x])
        count += s
    return count


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


@njit(cache=True, nogil=True)
def _run_rows(ptr, y, k):
    """Rows and row pointers of object ``k``'s runs (sorted by row): ``(first row, last row + 1, rp)``
    with the runs of row ``first + r`` at ``ptr[k] + rp[r] .. ptr[k] + rp[r + 1]``."""
    lo = ptr[k]
    hi = ptr[k + 1]
    if lo == hi:
        return 0, 0, np.zeros(1, np.int64)
    y0 = np.int64(y[lo])
    y1 = np.int64(y[hi - 1]) + 1
    rp = np.zeros(y1 - y0 + 1, np.int64)
    for r in range(lo, hi):
        rp[y[r] - y0 + 1] += 1
    for r in range(y1 - y0):
        rp[r + 1] += rp[r]
    return y0, y1, rp


@njit(cache=True, nogil=True)
def _run_intersections(a_ptr, a_y, a_x0, a_x1, b_ptr, b_y, b_x0, b_x1):
    """Pixel intersections of every object of A with every object of B, from their row runs.

    Parameters
    ----------
    a_ptr : (na + 1,) int64
        Object ``i`` of A has the runs ``[a_ptr[i], a_ptr[i + 1])``.
    a_y, a_x0, a_x1 : (runs,) int32
        Row and column span ``[x0, x1)`` of each run, sorted by row, then column, per object (runs
        of one object do not overlap; objects may overlap each other).
    b_ptr, b_y, b_x0, b_x1
        The same for B.

    Returns
    -------
    inter : (na, nb) int64
        ``inter[i, j]`` = pixels in both object ``i`` of A and object ``j`` of B.
    area_a : (na,) int64
    area_b : (nb,) int64

    Notes
    -----
    Pairs whose bounding boxes do not overlap are skipped; otherwise the two run lists are merged row
    by row over the rows both objects span, so the cost grows with the number of runs, not with the
    area of the objects. The same kernel serves column runs (COCO RLE) with rows and columns swapped.
    """
    na = a_ptr.shape[0] - 1
    nb = b_ptr.shape[0] - 1
    inter = np.zeros((na, nb), np.int64)
    area_a = np.zeros(na, np.int64)
    area_b = np.zeros(nb, np.int64)
    box_a = np.zeros((na, 4), np.int64)  # x0, y0, x1, y1 (empty: all zero)
    box_b = np.zeros((nb, 4), np.int64)
    for side in range(2):
        ptr = a_ptr if side == 0 else b_ptr
        ys = a_y if side == 0 else b_y
        x0s = a_x0 if side == 0 else b_x0
        x1s = a_x1 if side == 0 else b_x1
        area = area_a if side == 0 else area_b
        box = box_a if side == 0 else box_b
        for k in range(ptr.shape[0] - 1):
            lo = ptr[k]
            hi = ptr[k + 1]
            if lo == hi:
                continue
            xmin = np.int64(x0s[lo])
            xmax = np.int64(x1s[lo])
            total = np.int64(0)
            for r in range(lo, hi):
                total += x1s[r] - x0s[r]
                xmin = min(xmin, np.int64(x0s[r]))
                xmax = max(xmax, np.int64(x1s[r]))
            area[k] = total
            box[k, 0] = xmin
            box[k, 1] = ys[lo]
            box[k, 2] = xmax
            box[k, 3] = np.int64(ys[hi - 1]) + 1
    # row pointers of B's objects, made once
    b_first = np.zeros(nb, np.int64)
    b_base = np.zeros(nb + 1, np.int64)
    for j in range(nb):
        b_base[j + 1] = b_base[j] + (box_b[j, 3] - box_b[j, 1]) + 1
    b_rows = np.zeros(b_base[nb], np.int64)
    for j in range(nb):
        y0, y1, rp = _run_rows(b_ptr, b_y, j)
        b_first[j] = y0
        b_rows[b_base[j]:b_base[j] + rp.shape[0]] = rp
    for i in range(na):
        if area_a[i] == 0:
            continue
        ay0 = np.int64(-1)
        arp = b_base[:1]
        for j in range(nb):
            if area_b[j] == 0:
                continue
            oy0 = max(box_a[i, 1], box_b[j, 1])
            oy1 = min(box_a[i, 3], box_b[j, 3])
            if oy0 >= oy1 or max(box_a[i, 0], box_b[j, 0]) >= min(box_a[i, 2], box_b[j, 2]):
                continue
            if ay0 < 0:  # A's row pointers, once a B object overlaps its box
                ay0, _, arp = _run_rows(a_ptr, a_y, i)
            count = np.int64(0)
            for y in range(oy0, oy1):
                p = a_ptr[i] + arp[y - ay0]
                pe = a_ptr[i] + arp[y - ay0 + 1]
                q = b_ptr[j] + b_rows[b_base[j] + y - b_first[j]]
                qe = b_ptr[j] + b_rows[b_base[j] + y - b_first[j] + 1]
                while p < pe and q < qe:
                    lo = max(a_x0[p], b_x0[q])
                    hi = min(a_x1[p], b_x1[q])
                    if hi > lo:
                        count += hi - lo
                    if a_x1[p] < b_x1[q]:
                        p += 1
                    else:
                        q += 1
            inter[i, j] = count
    return inter, area_a, area_b


@njit(cache=True, nogil=True)
def _rle_intervals(chars, char_starts, raw, raw_starts, compressed, height, width):
    """The runs of ones of several COCO RLEs of one image, as intervals of column-major positions.

    Parameters
    ----------
    chars : (c,) uint8
        The compressed counts strings (pycocotools' format) of the compressed RLEs, one after the other.
    char_starts : (n + 1,) int64
        RLE ``k``'s string is ``chars[char_starts[k]:char_starts[k + 1]]`` (empty for an uncompressed one).
    raw : (r,) int64
        The counts of the uncompressed RLEs, one after the other.
    raw_starts : (n + 1,) int64
        RLE ``k``'s counts are ``raw[raw_starts[k]:raw_starts[k + 1]]``.
    compressed : (n,) bool
        Which RLEs are compressed.
    height, width : int
        Image size.

    Returns
    -------
    ptr : (n + 1,) int64
        RLE ``k``'s intervals are ``[ptr[k], ptr[k + 1])``.
    start, end : int64
        Each run of ones as positions ``[start, end)`` down the columns (``y + height x``), in order.
    boxes : (n, 4) int64
        Tight bboxes ``x0, y0, x1, y1`` (end-exclusive; zeros when empty).
    areas : (n,) int64
    ok : (n,) bool
        False when the counts are malformed (a string ending inside a number, a negative run, or runs
        that do not sum to ``height x width``); that RLE then has no intervals.
    """
    n = compressed.shape[0]
    cap = chars.shape[0] + raw.shape[0] + 1
    start = np.empty(cap, np.int64)
    end = np.empty(cap, np.int64)
    ptr = np.zeros(n + 1, np.int64)
    boxes = np.zeros((n, 4), np.int64)
    areas = np.zeros(n, np.int64)
    ok = np.ones(n, np.bool_)
    m = 0
    for k in range(n):
        first = m
        good = True
        pos = np.int64(0)
        row = np.int64(0)  # pos = row + height x column, kept without a division per run
        count = 0
        back1 = np.int64(0)  # the last two runs, for the delta coding
        back2 = np.int64(0)
        one = False
        ymin = np.int64(height)
        ymax = np.int64(-1)
        p = char_starts[k]
        stop = char_starts[k + 1]
        q = raw_starts[k]
        q_stop = raw_starts[k + 1]
        while True:
            if compressed[k]:  # pycocotools' rleFrString: 5-bit groups, delta from two runs back
                if p >= stop:
                    break
                x = np.int64(0)
                shift = 0
                while True:
                    c = np.int64(chars[p]) - 48
                    x |= (c & 0x1F) << shift
                    p += 1
                    shift += 5
                    if (c & 0x20) == 0:
                        if (c & 0x10) != 0:
                            x |= np.int64(-1) << shift
                        break
                    if p >= stop:
                        good = False
                        break
                if not good:
                    break
                if count > 2:
                    x += back2
                back2 = back1
                back1 = x
            else:
                if q >= q_stop:
                    break
                x = raw[q]
                q += 1
            if x < 0:
                good = False
                break
            if one and x > 0:
                start[m] = pos
                end[m] = pos + x
                m += 1
                last = row + x - 1  # row of the run's last pixel, counted from this column's top
                if last >= height:  # the run reaches the next column
                    ymin = 0
                    ymax = height - 1
                else:
                    ymin = min(ymin, row)
                    ymax = max(ymax, last)
                areas[k] += x
            pos += x
            row += x
            if row >= height:
                row = row - height if row < 2 * height else row % height
            count += 1
            one = not one
        if not good or pos != np.int64(height) * width:
            ok[k] = False
            m = first
            areas[k] = 0
        elif m > first:
            boxes[k, 0] = start[first] // height
            boxes[k, 1] = ymin
            boxes[k, 2] = (end[m - 1] - 1) // height + 1
            boxes[k, 3] = ymax + 1
        ptr[k + 1] = m
    return ptr, start[:m], end[:m], boxes, areas, ok


@njit(cache=True, nogil=True)
def _first_ending_after(end, lo, hi, position):
    """First index in ``[lo, hi)`` whose interval ends after ``position`` (``hi`` when none)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if end[mid] <= position:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def _rle_intersections(chars, char_starts, raw, raw_starts, compressed, n_a, height, width):
    """Pixel intersections and areas of two lists of COCO RLEs of one image (the first ``n_a`` RLEs
    and the rest), from their run lengths.

    The RLEs are decoded once (:func:`_rle_intervals`). A pair whose bboxes do not overlap is skipped;
    otherwise the two lists of runs are merged over the columns both bboxes span only (pycocotools'
    ``rleIou`` merges the whole lists).

    Returns
    -------
    inter : (n_a, n - n_a) int64
    area_a : (n_a,) int64
    area_b : (n - n_a,) int64
    ok : (n,) bool
        False for malformed counts (see :func:`_rle_intervals`).
    """
    ptr, start, end, boxes, areas, ok = _rle_intervals(chars, char_starts, raw, raw_starts, compressed,
                                                       height, width)
    n = compressed.shape[0]
    nb = n - n_a
    inter = np.zeros((n_a, nb), np.int64)
    for i in range(n_a):
        if areas[i] == 0:
            continue
        for jb in range(nb):
            j = n_a + jb
            if areas[j] == 0:
                continue
            ox0 = max(boxes[i, 0], boxes[j, 0])
            ox1 = min(boxes[i, 2], boxes[j, 2])
            if ox0 >= ox1 or max(boxes[i, 1], boxes[j, 1]) >= min(boxes[i, 3], boxes[j, 3]):
                continue
            lo_pos = ox0 * height
            hi_pos = ox1 * height
            p = _first_ending_after(end, ptr[i], ptr[i + 1], lo_pos)
            q = _first_ending_after(end, ptr[j], ptr[j + 1], lo_pos)
            pe = ptr[i + 1]
            qe = ptr[j + 1]
            count = np.int64(0)
            if p < pe and q < qe and start[p] < hi_pos and start[q] < hi_pos:
                while True:
                    ep = end[p]
                    eq = end[q]
                    overlap = min(ep, eq) - max(start[p], start[q])
                    if overlap > 0:
                        count += overlap
                    if ep < eq:
                        p += 1
                        if p == pe or start[p] >= hi_pos:
                            break
                    else:
                        q += 1
                        if q == qe or start[q] >= hi_pos:
                            break
            inter[i, jb] = count
    return inter, areas[:n_a].copy(), areas[n_a:].copy(), ok


@njit(cache=True, nogil=True)
def _cover_counts(buf, starts, boxes, lower, top_ptr, tops, top_thing):
    """Pixels of each object under the union of the objects above it: things first, then every one.

    Parameters
    ----------
    buf, starts, boxes :
        Tight crops of one image's objects (:class:`qa.engine._masks.ObjectCrops`).
    lower : (g,) int64
        The covered objects (positions in ``boxes``).
    top_ptr : (g + 1,) int64
        Object ``lower[k]``'s objects above are ``tops[top_ptr[k]:top_ptr[k + 1]]``.
    tops : (t,) int64
    top_thing : (t,) bool
        Whether each object above is a thing.

    Returns
    -------
    (g, 2) int64
        Pixels of each covered object under its things above, then under all objects above.
    """
    out = np.zeros((lower.shape[0], 2), np.int64)
    for k in range(lower.shape[0]):
        o = lower[k]
        x0 = boxes[o, 0]
        y0 = boxes[o, 1]
        h = boxes[o, 3] - y0
        w = boxes[o, 2] - x0
        union = np.zeros((h, w), np.uint8)
        for stage in range(2):  # things, then the stuff above adds to the cover
            for q in range(top_ptr[k], top_ptr[k + 1]):
                if top_thing[q] != (stage == 0):
                    continue
                t = tops[q]
                tx0 = boxes[t, 0]
                ty0 = boxes[t, 1]
                cw = boxes[t, 2] - tx0
                xa = max(tx0, x0)
                xb = min(boxes[t, 2], x0 + w)
                for y in range(max(ty0, y0), min(boxes[t, 3], y0 + h)):
                    row = starts[t] + (y - ty0) * cw - tx0
                    src = buf[row + xa:row + xb]
                    dst = union[y - y0, xa - x0:xb - x0]
                    for x in range(xb - xa):  # branch-free, so the row vectorises
                        dst[x] |= np.uint8(src[x] != 0)
            n = np.int64(0)
            for y in range(h):
                row = starts[o] + y * w
                mine = buf[row:row + w]
                under = union[y]
                for x in range(w):
                    n += np.int64(under[x] & np.uint8(mine[x] != 0))
            out[k, stage] = n
    return out


@njit(cache=True, nogil=True)
def _union_runs(ptr, y, x0, x1, categories, codes):
    """The union of each category's objects as row runs (see :func:`qa.engine.compare.category_union_runs`).

    Parameters
    ----------
    ptr : (n + 1,) int64
        Object ``k``'s runs are ``[ptr[k], ptr[k + 1])`` of ``y, x0, x1``.
    y, x0, x1 : (r,) int32
        Row runs ``[x0, x1)``, each object's sorted by row then column; objects may overlap.
    categories : (n,) int64
        Each object's category code; negative codes are left out.
    codes : (m,) int64
        The non-negative codes present, sorted.

    Returns
    -------
    out_ptr : (m + 1,) int64
    out_y, out_x0, out_x1 : (q,) int32
        Category ``codes[i]``'s runs ``[out_ptr[i], out_ptr[i + 1])``: overlapping or touching runs merged
        (a run starting at or before the end of the one before it in its row extends it), sorted by row
        then column.
    """
    n = ptr.shape[0] - 1
    m = codes.shape[0]
    kept = 0
    for k in range(n):
        if categories[k] >= 0:
            kept += ptr[k + 1] - ptr[k]
    out_ptr = np.zeros(m + 1, np.int64)
    if kept == 0:
        empty = np.zeros(0, np.int32)
        return out_ptr, empty, empty.copy(), empty.copy()
    ymin = np.int64(1) << 40
    ymax = -(np.int64(1) << 40)
    xmin = np.int64(1) << 40
    xmax = -(np.int64(1) << 40)
    for k in range(n):
        if categories[k] < 0:
            continue
        for r in range(ptr[k], ptr[k + 1]):
            ymin = min(ymin, np.int64(y[r]))
            ymax = max(ymax, np.int64(y[r]))
            xmin = min(xmin, np.int64(x0[r]))
            xmax = max(xmax, np.int64(x0[r]))
    rows = ymax - ymin + 1
    cols = xmax - xmin + 1
    # one key per run: (category, row, start), so that a sort puts each category's rows in order
    keys = np.empty(kept, np.int64)
    src = np.empty(kept, np.int64)
    cat = np.empty(kept, np.int64)
    q = 0
    for k in range(n):
        if categories[k] < 0:
            continue
        c = np.searchsorted(codes, categories[k])
        for r in range(ptr[k], ptr[k + 1]):
            keys[q] = (c * rows + (np.int64(y[r]) - ymin)) * cols + (np.int64(x0[r]) - xmin)
            src[q] = r
            cat[q] = c
            q += 1
    order = np.argsort(keys, kind="mergesort")
    out_y = np.empty(kept, np.int32)
    out_x0 = np.empty(kept, np.int32)
    out_x1 = np.empty(kept, np.int32)
    count = 0
    last_cat = -1
    last_row = -1
    end = 0
    for i in range(kept):
        r = src[order[i]]
        c = cat[order[i]]
        if c == last_cat and np.int64(y[r]) == last_row and x0[r] <= end:
            if x1[r] > end:
                end = x1[r]
                out_x1[count - 1] = end
            continue
        out_y[count] = y[r]
        out_x0[count] = x0[r]
        out_x1[count] = x1[r]
        end = x1[r]
        count += 1
        out_ptr[c + 1] += 1
        last_cat = c
        last_row = np.int64(y[r])
    for c in range(m):
        out_ptr[c + 1] += out_ptr[c]
    return out_ptr, out_y[:count].copy(), out_x0[:count].copy(), out_x1[:count].copy()
