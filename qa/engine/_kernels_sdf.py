"""Numba kernels: exact Euclidean distance transforms, signed distances and surface-distance statistics.

Everything here works on one bbox crop (or its grid of pixel corners) and takes and returns arrays and
numbers only. Distances are exact: the transform is the separable algorithm of Felzenszwalb and
Huttenlocher on squared integer distances, so ``sqrt`` of a result is the same double that
``scipy.ndimage.distance_transform_edt`` returns.

References
----------
P. F. Felzenszwalb and D. P. Huttenlocher, "Distance Transforms of Sampled Functions", Theory of
Computing 8 (2012), doi:10.4086/toc.2012.v008a019.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FAR = 1e18
"""Squared distance standing for "no surface element" when sorting (larger than any real one)."""
_FAR_COLUMN = 1 << 29
"""Column distance standing for "no feature in this column" (larger than any crop side)."""


@njit(cache=True, nogil=True)
def _edt_squared(features):
    """Squared Euclidean distance from every pixel to the nearest nonzero pixel of ``features``.

    Parameters
    ----------
    features : uint8 (h, w)
        Nonzero where a feature (for example a boundary pixel) lies.

    Returns
    -------
    float64 (h, w)
        Exact squared distances (integers held in doubles); ``inf`` everywhere when there is no
        feature.
    """
    h, w = features.shape
    out = np.empty((h, w), dtype=np.float64)
    # Pass 1, down the columns (row by row, so memory is read in order): distance to the nearest
    # feature in the same column, _FAR_COLUMN when there is none.
    g = np.empty((h, w), dtype=np.int32)
    for j in range(w):
        g[0, j] = 0 if features[0, j] != 0 else _FAR_COLUMN
    for i in range(1, h):
        for j in range(w):
            up = g[i - 1, j] + 1
            if up > _FAR_COLUMN:
                up = _FAR_COLUMN
            g[i, j] = 0 if features[i, j] != 0 else up
    for i in range(h - 2, -1, -1):
        for j in range(w):
            down = g[i + 1, j] + 1
            if down < g[i, j]:
                g[i, j] = down
    # Pass 2, along each row: lower envelope of the parabolas (x - q)^2 + g[q]^2 of the columns that
    # have a feature. ``f[k]`` holds g^2 + q^2 of the k-th parabola kept, ``z[k]`` where it starts.
    v = np.empty(w, dtype=np.int64)
    z = np.empty(w + 1, dtype=np.float64)
    f = np.empty(w, dtype=np.float64)
    for i in range(h):
        k = -1
        for q in range(w):
            gq = g[i, q]
            if gq >= _FAR_COLUMN:
                continue
            fq = float(gq) * gq + float(q) * q
            s = -np.inf
            while k >= 0:
                s = (fq - f[k]) / (2.0 * (q - v[k]))
                if s > z[k]:
                    break
                k -= 1
            k += 1
            v[k] = q
            f[k] = fq
            z[k] = s if k > 0 else -np.inf
            z[k + 1] = np.inf
        if k < 0:
            for q in range(w):
                out[i, q] = np.inf
            continue
        k = 0
        for q in range(w):
            while z[k + 1] < q:
                k += 1
            p = v[k]
            out[i, q] = f[k] - float(p) * p + float(q - p) * (q - p)
    return out


@njit(cache=True, nogil=True)
def _block_sum(a, lo, n):
    """numpy's pairwise-sum leaf for ``a[lo:lo + n]``, ``n <= 128`` (eight interleaved partial sums)."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = 8
    while i < n - (n % 8):
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True, nogil=True)
def _pairwise_sum(a, lo, n):
    """Sum of float64 ``a[lo:lo + n]`` in numpy's pairwise order, so the double equals ``np.sum``'s.

    numpy splits a run longer than 128 at ``n // 2`` rounded down to a multiple of 8 and adds the two
    halves' sums. This walks the same tree with an explicit stack (numba's cache cannot hold a
    recursive function).
    """
    if n <= 128:
        return _block_sum(a, lo, n)
    stack_lo = np.empty(64, dtype=np.int64)
    stack_n = np.empty(64, dtype=np.int64)
    stack_state = np.empty(64, dtype=np.int64)
    values = np.empty(64, dtype=np.float64)
    sp = 0
    vp = 0
    stack_lo[0] = lo
    stack_n[0] = n
    stack_state[0] = 0
    sp = 1
    while sp > 0:
        top = sp - 1
        cur_lo = stack_lo[top]
        cur_n = stack_n[top]
        if cur_n <= 128:
            values[vp] = _block_sum(a, cur_lo, cur_n)
            vp += 1
            sp -= 1
            continue
        n2 = cur_n // 2
        n2 -= n2 % 8
        state = stack_state[top]
        if state == 0:
            stack_state[top] = 1
            stack_lo[sp] = cur_lo
            stack_n[sp] = n2
            stack_state[sp] = 0
            sp += 1
        elif state == 1:
            stack_state[top] = 2
            stack_lo[sp] = cur_lo + n2
            stack_n[sp] = cur_n - n2
            stack_state[sp] = 0
            sp += 1
        else:
            right = values[vp - 1]
            left = values[vp - 2]
            vp -= 2
            values[vp] = left + right
            vp += 1
            sp -= 1
    return values[0]


@njit(cache=True, nogil=True)
def _corner_codes(mask):
    """DeepMind neighbour codes of every pixel corner of a crop (outside the crop is background).

    Parameters
    ----------
    mask : uint8 (h, w)

    Returns
    -------
    uint8 (h + 1, w + 1)
        Code of the corner at the top-left of pixel ``(i, j)``: 8 x top-left + 4 x top-right +
        2 x bottom-left + 1 x bottom-right pixel. Codes other than 0 and 15 are surface elements.
    """
    h, w = mask.shape
    codes = np.zeros((h + 1, w + 1), dtype=np.uint8)
    for i in range(h + 1):
        for j in range(w + 1):
            c = 0
            if i > 0 and j > 0 and mask[i - 1, j - 1] != 0:
                c += 8
            if i > 0 and j < w and mask[i - 1, j] != 0:
                c += 4
            if i < h and j > 0 and mask[i, j - 1] != 0:
                c += 2
            if i < h and j < w and mask[i, j] != 0:
                c += 1
            codes[i, j] = c
    return codes


@njit(cache=True, nogil=True)
def _surfels(codes):
    """uint8 map of the surface elements of a code grid (codes other than 0 and 15)."""
    h, w = codes.shape
    out = np.zeros((h, w), dtype=np.uint8)
    for i in range(h):
        for j in range(w):
            c = codes[i, j]
            if c != 0 and c != 15:
                out[i, j] = 1
    return out


@njit(cache=True, nogil=True)
def _directed_surface(codes, d2_other, lengths, length_rank, tolerances, percent):
    """Statistics of one surface's distances to the other surface (DeepMind ``surface_distance``).

    Parameters
    ----------
    codes : uint8 (h, w)
        Corner codes of this mask (``_corner_codes``).
    d2_other : float64 (h, w)
        Squared distance from every corner to the other mask's nearest surface element.
    lengths : float64 (16,)
        Contour length of each code (DeepMind's ``create_table_neighbour_code_to_contour_length``).
    length_rank : int64 (16,)
        Rank of each code's length among the distinct lengths (orders ties as DeepMind's sort does).
    tolerances : float64 (t,)
        Tolerances in pixels for the overlap.
    percent : float
        Percentile of the robust Hausdorff distance (95.0 for HD95).

    Returns
    -------
    float64 (4 + t,)
        ``[total length, sum of length x distance, percentile distance, count, overlap at each
        tolerance]``; the percentile distance is ``inf`` when there is no element, and distances are
        ``inf`` when the other surface is empty.
    """
    h, w = codes.shape
    n = 0
    for i in range(h):
        for j in range(w):
            c = codes[i, j]
            if c != 0 and c != 15:
                n += 1
    listed = np.empty(n, dtype=np.uint8)
    d2 = np.empty(n, dtype=np.float64)
    k = 0
    for i in range(h):
        for j in range(w):
            c = codes[i, j]
            if c != 0 and c != 15:
                listed[k] = c
                d2[k] = d2_other[i, j]
                k += 1
    return _surface_statistics(listed, d2, lengths, length_rank, tolerances, percent)


# --- distances between point sets (cost in the length of the outlines, not the area of the window) ---

_NONE = np.int64(1) << 62
"""Squared distance standing for "no point" while searching."""


@njit(cache=True, nogil=True)
def _row_pointers(ty):
    """Row index of a point list sorted by row: ``(first row, ptr)`` with the points of row
    ``first + r`` at ``[ptr[r], ptr[r + 1])``."""
    n = ty.shape[0]
    y0 = np.int64(ty[0])
    rows = np.int64(ty[n - 1]) - y0 + 1
    ptr = np.zeros(rows + 1, dtype=np.int64)
    for k in range(n):
        ptr[ty[k] - y0 + 1] += 1
    for r in range(rows):
        ptr[r + 1] += ptr[r]
    return y0, ptr


@njit(cache=True, nogil=True)
def _nearest_d2(qy, qx, ty, tx):
    """Exact squared Euclidean distance from each query point to the nearest target point.

    Parameters
    ----------
    qy, qx : (n,) int32
        Query points.
    ty, tx : (m,) int32
        Target points, sorted by row, then column.

    Returns
    -------
    (n,) float64
        Squared distances (integers held in doubles, as :func:`_edt_squared` gives them at those
        points); ``inf`` when there is no target.

    Notes
    -----
    Rows are searched outwards from the query's row; each row's nearest point comes from a binary
    search on its columns, and the search stops once the row distance alone reaches the best distance
    found. The cost per query grows with its distance to the targets, not with any area.
    """
    return _nearest_d2_below(qy, qx, ty, tx, _NONE)


@njit(cache=True, nogil=True)
def _nearest_d2_below(qy, qx, ty, tx, bound):
    """:func:`_nearest_d2` for distances that matter only below a bound: squared distances under
    ``bound`` (int64) are exact, the others are ``inf``; the search of a query stops at the bound, so
    points far from every target (a region one side left out) cost no more than near ones."""
    n = qy.shape[0]
    out = np.empty(n, dtype=np.float64)
    m = ty.shape[0]
    if m == 0:
        for i in range(n):
            out[i] = np.inf
        return out
    y0, ptr = _row_pointers(ty)
    rows = ptr.shape[0] - 1
    y1 = y0 + rows - 1
    # for the rows near the current query row: the position of the first target at or after the last
    # query's column (queries of one row come in increasing column order, so it only moves forward)
    near = 8
    cursor = np.empty(2 * near + 1, dtype=np.int64)
    cur_row = np.int64(-(1 << 60))
    for i in range(n):
        y = np.int64(qy[i])
        x = np.int64(qx[i])
        if y != cur_row or (i > 0 and x < np.int64(qx[i - 1])):
            cur_row = y
            for c in range(2 * near + 1):
                r = y - near + c
                cursor[c] = ptr[r - y0] if y0 <= r <= y1 else 0
        best = np.int64(bound)
        dy = np.int64(0)
        if y < y0:
            dy = y0 - y
        elif y > y1:
            dy = y - y1
        while dy * dy < best:
            above = y - dy
            below = y + dy
            if above < y0 and below > y1:
                break
            for side in range(2):
                r = above if side == 0 else below
                if side == 1 and dy == 0:
                    break
                if r < y0 or r > y1:
                    continue
                lo = ptr[r - y0]
                hi = ptr[r - y0 + 1]
                if lo == hi:
                    continue
                if dy <= near:
                    c = r - y + near
                    a = cursor[c]
                    while a < hi and tx[a] < x:
                        a += 1
                    cursor[c] = a
                else:
                    a = lo
                    b = hi
                    while a < b:
                        mid = (a + b) >> 1
                        if tx[mid] < x:
                            a = mid + 1
                        else:
                            b = mid
                if a < hi:
                    dx = np.int64(tx[a]) - x
                    d = dy * dy + dx * dx
                    if d < best:
                        best = d
                if a > lo:
                    dx = x - np.int64(tx[a - 1])
                    d = dy * dy + dx * dx
                    if d < best:
                        best = d
            dy += 1
        out[i] = float(best) if best < bound else np.inf
    return out


@njit(cache=True, nogil=True)
def _near_in_grid(qy, qx, grid, y0, x0, bit, out):
    """Squared distances up to 8 read from a grid of the targets' pixels (``grid & bit``; the query at
    ``grid[y - y0, x - x0]``, with a margin of two all round) into ``out``; return the queries whose
    nearest target is farther (their ``out`` is not set), in order.

    The 5 x 5 neighbourhood holds every offset with a squared length up to 8 (the sums of two squares up
    to 8 are 0, 1, 2, 4, 5 and 8), tried nearest first; a squared distance over 8 is at least 9."""
    n = qy.shape[0]
    rest = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        y = np.int64(qy[i]) - y0
        x = np.int64(qx[i]) - x0
        if grid[y, x] & bit:
            out[i] = 0.0
        elif (grid[y - 1, x] | grid[y + 1, x] | grid[y, x - 1] | grid[y, x + 1]) & bit:
            out[i] = 1.0
        elif (grid[y - 1, x - 1] | grid[y - 1, x + 1] | grid[y + 1, x - 1] | grid[y + 1, x + 1]) & bit:
            out[i] = 2.0
        elif (grid[y - 2, x] | grid[y + 2, x] | grid[y, x - 2] | grid[y, x + 2]) & bit:
            out[i] = 4.0
        elif (grid[y - 2, x - 1] | grid[y - 2, x + 1] | grid[y + 2, x - 1] | grid[y + 2, x + 1]
              | grid[y - 1, x - 2] | grid[y + 1, x - 2] | grid[y - 1, x + 2] | grid[y + 1, x + 2]) & bit:
            out[i] = 5.0
        elif (grid[y - 2, x - 2] | grid[y - 2, x + 2] | grid[y + 2, x - 2] | grid[y + 2, x + 2]) & bit:
            out[i] = 8.0
        else:
            rest[m] = i
            m += 1
    return rest[:m]


@njit(cache=True, nogil=True)
def _nearest_d2_both(ay, ax, by, bx):
    """``(_nearest_d2(a -> b), _nearest_d2(b -> a))`` of two point lists sorted by row, then column.

    Two outlines of one object by two annotators lie mostly within a pixel or two of each other: both
    lists are drawn into one small grid over their boxes (bit 1 for ``a``, 2 for ``b``), each point's
    squared distance up to 8 is read from its 5 x 5 neighbourhood there (:func:`_near_in_grid`; 95 % of
    the points of the benchmark's pairs), and only the others are searched for (:func:`_nearest_d2`).
    The same figures; a grid much larger than the outlines (far-apart boxes) is not drawn.
    """
    na = ay.shape[0]
    nb = by.shape[0]
    if na == 0 or nb == 0:
        return _nearest_d2(ay, ax, by, bx), _nearest_d2(by, bx, ay, ax)
    ymin = min(np.int64(ay[0]), np.int64(by[0]))  # sorted by row
    ymax = max(np.int64(ay[na - 1]), np.int64(by[nb - 1]))
    xmin = np.int64(ax[0])
    xmax = xmin
    for i in range(na):
        xmin = min(xmin, np.int64(ax[i]))
        xmax = max(xmax, np.int64(ax[i]))
    for i in range(nb):
        xmin = min(xmin, np.int64(bx[i]))
        xmax = max(xmax, np.int64(bx[i]))
    gh = ymax - ymin + 5
    gw = xmax - xmin + 5
    if gh * gw > 64 * (na + nb) + 65536:
        return _nearest_d2(ay, ax, by, bx), _nearest_d2(by, bx, ay, ax)
    grid = np.zeros((gh, gw), dtype=np.uint8)
    y0 = ymin - 2
    x0 = xmin - 2
    for i in range(na):
        grid[np.int64(ay[i]) - y0, np.int64(ax[i]) - x0] |= 1
    for i in range(nb):
        grid[np.int64(by[i]) - y0, np.int64(bx[i]) - x0] |= 2
    d2_ab = np.empty(na, dtype=np.float64)
    d2_ba = np.empty(nb, dtype=np.float64)
    rest = _near_in_grid(ay, ax, grid, y0, x0, 2, d2_ab)
    if rest.shape[0]:
        d2_ab[rest] = _nearest_d2(ay[rest], ax[rest], by, bx)
    rest = _near_in_grid(by, bx, grid, y0, x0, 1, d2_ba)
    if rest.shape[0]:
        d2_ba[rest] = _nearest_d2(by[rest], bx[rest], ay, ax)
    return d2_ab, d2_ba


@njit(cache=True, nogil=True)
def _stable_order(keys, top):
    """``np.argsort(keys, kind="mergesort")`` of keys that are whole numbers in ``[0, top]`` or ``inf``
    (a counting sort: equal keys keep their order, ``inf`` last)."""
    n = keys.shape[0]
    m = int(top) + 2  # one bucket per whole number, then inf
    starts = np.zeros(m + 1, dtype=np.int64)
    bucket = np.empty(n, dtype=np.int64)
    for k in range(n):
        b = int(keys[k]) if keys[k] < np.inf else m - 1
        bucket[k] = b
        starts[b + 1] += 1
    for b in range(m):
        starts[b + 1] += starts[b]
    order = np.empty(n, dtype=np.int64)
    for k in range(n):
        b = bucket[k]
        order[starts[b]] = k
        starts[b] += 1
    return order


@njit(cache=True, nogil=True)
def _surface_statistics(codes, d2, lengths, length_rank, tolerances, percent):
    """The statistics of :func:`_directed_surface` from a list of surface elements: their codes and
    squared distances to the other surface (the grid version lists its elements and calls this)."""
    nt = tolerances.shape[0]
    out = np.zeros(4 + nt, dtype=np.float64)
    n = codes.shape[0]
    if n == 0:
        out[2] = np.inf
        return out
    keys = np.empty(n, dtype=np.float64)
    dist = np.empty(n, dtype=np.float64)
    lens = np.empty(n, dtype=np.float64)
    top = 0.0
    for k in range(n):
        c = codes[k]
        dist[k] = np.sqrt(d2[k])
        lens[k] = lengths[c]
        # sort key: distance first, then length (squared distances are integers < 2^50)
        keys[k] = d2[k] * 4.0 + length_rank[c] if d2[k] < _FAR else np.inf
        if keys[k] > top and keys[k] < np.inf:
            top = keys[k]
    order = _stable_order(keys, top) if top < 4 * n + 4096 else np.argsort(keys, kind="mergesort")
    sorted_lens = np.empty(n, dtype=np.float64)
    sorted_dist = np.empty(n, dtype=np.float64)
    for k in range(n):
        sorted_lens[k] = lens[order[k]]
        sorted_dist[k] = dist[order[k]]
    total = _pairwise_sum(sorted_lens, 0, n)
    weighted = np.empty(n, dtype=np.float64)
    for k in range(n):
        weighted[k] = sorted_dist[k] * sorted_lens[k]
    out[0] = total
    out[1] = _pairwise_sum(weighted, 0, n)
    # robust Hausdorff: first element whose cumulative length share reaches the percentile
    target = percent / 100.0
    cum = 0.0
    idx = n - 1
    for k in range(n):
        cum += sorted_lens[k]
        if cum / total >= target:
            idx = k
            break
    out[2] = sorted_dist[idx]
    out[3] = n
    for t in range(nt):
        # the elements within the tolerance are a prefix of the sorted order
        m = 0
        while m < n and sorted_dist[m] <= tolerances[t]:
            m += 1
        out[4 + t] = _pairwise_sum(sorted_lens, 0, m)
    return out


@njit(cache=True, nogil=True)
def _inside_runs(qy, qx, run_y, run_x0, run_x1):
    """1 where a point lies in a mask given by its row runs (sorted by row, then column), else 0."""
    n = qy.shape[0]
    out = np.zeros(n, dtype=np.uint8)
    m = run_y.shape[0]
    if m == 0:
        return out
    y0, ptr = _row_pointers(run_y)
    y1 = y0 + ptr.shape[0] - 2
    for i in range(n):
        y = np.int64(qy[i])
        if y < y0 or y > y1:
            continue
        lo = ptr[y - y0]
        hi = ptr[y - y0 + 1]
        x = qx[i]
        while lo < hi:  # first run ending after x
            mid = (lo + hi) >> 1
            if run_x1[mid] <= x:
                lo = mid + 1
            else:
                hi = mid
        if lo < ptr[y - y0 + 1] and run_x0[lo] <= x:
            out[i] = 1
    return out


@njit(cache=True, nogil=True)
def _common_points(ay, ax, by, bx):
    """Number of points in both of two lists sorted by row, then column (no duplicates)."""
    i = 0
    j = 0
    n = 0
    while i < ay.shape[0] and j < by.shape[0]:
        if ay[i] < by[j] or (ay[i] == by[j] and ax[i] < bx[j]):
            i += 1
        elif ay[i] == by[j] and ax[i] == bx[j]:
            n += 1
            i += 1
            j += 1
        else:
            j += 1
    return n


@njit(cache=True, nogil=True)
def _outline_pair(a_run_y, a_run_x0, a_run_x1, a_b4y, a_b4x, a_band_y, a_band_x, a_sy, a_sx, a_sc,
                  b_run_y, b_run_x0, b_run_x1, b_b4y, b_b4x, b_band_y, b_band_x, b_sy, b_sx, b_sc,
                  tolerances, lengths, length_rank, percent, surfaces):
    """Every boundary figure of one mask pair from the two masks' outlines (``_outlines``).

    Parameters
    ----------
    a_run_y, a_run_x0, a_run_x1 : int32
        ``a``'s row runs (only ``b``'s are read: they say which of ``a``'s boundary pixels lie in ``b``).
    a_b4y, a_b4x : int32
        ``a``'s inner boundary (edge neighbours), sorted by row, then column.
    a_band_y, a_band_x : int32
        ``a``'s boundary band, sorted.
    a_sy, a_sx, a_sc : int32, int32, uint8
        ``a``'s surface elements (corner positions, sorted) and their codes.
    b_... :
        The same for ``b``.
    tolerances : float64 (t,)
    lengths, length_rank : float64 (16,), int64 (16,)
        DeepMind's contour length per code and its rank (see ``_directed_surface``).
    percent : float
        Percentile of the robust Hausdorff distance.
    surfaces : bool
        False to leave the surface statistics out (their entries stay 0): the distances between the
        surface elements are most of the cost, and a caller that reads only boundary F, boundary IoU
        and the signed offset does not pay for them.

    Returns
    -------
    float64 (2 (t + 1) + 5 + 2 (4 + t),)
        Boundary match counts of ``a`` then ``b`` (matched at each tolerance, then
        the boundary size); signed offset of ``a`` from ``b`` (mean, median, count; ``_offset_stats``);
        band intersection and union; surface statistics of ``a`` then ``b`` (``_directed_surface``).
    """
    nt = tolerances.shape[0]
    out = np.zeros(2 * (nt + 1) + 5 + 2 * (4 + nt), dtype=np.float64)
    d2_ab, d2_ba = _nearest_d2_both(a_b4y, a_b4x, b_b4y, b_b4x)
    for side in range(2):
        d2 = d2_ab if side == 0 else d2_ba
        base = side * (nt + 1)
        out[base + nt] = d2.shape[0]
        for k in range(d2.shape[0]):
            d = np.sqrt(d2[k])
            for t in range(nt):
                if d <= tolerances[t]:
                    out[base + t] += 1
    p = 2 * (nt + 1)
    n = a_b4y.shape[0]
    out[p + 2] = n
    if n == 0:
        out[p] = np.nan
        out[p + 1] = np.nan
    elif np.isinf(d2_ab[0]):
        out[p] = np.nan
        out[p + 1] = np.nan
    else:
        inside = _inside_runs(a_b4y, a_b4x, b_run_y, b_run_x0, b_run_x1)
        values = np.empty(n, dtype=np.float64)
        for k in range(n):
            d = np.sqrt(d2_ab[k])
            values[k] = -d if inside[k] != 0 else d
        out[p] = values.mean()
        out[p + 1] = np.median(values)
    inter = _common_points(a_band_y, a_band_x, b_band_y, b_band_x)
    out[p + 3] = inter
    out[p + 4] = a_band_y.shape[0] + b_band_y.shape[0] - inter
    if not surfaces:
        return out
    q = p + 5
    s2_ab, s2_ba = _nearest_d2_both(a_sy, a_sx, b_sy, b_sx)
    out[q:q + 4 + nt] = _surface_statistics(a_sc, s2_ab, lengths, length_rank, tolerances, percent)
    q += 4 + nt
    out[q:q + 4 + nt] = _surface_statistics(b_sc, s2_ba, lengths, length_rank, tolerances, percent)
    return out


@njit(cache=True, nogil=True)
def _outline_pairs(a_run_ptr, a_run_y, a_run_x0, a_run_x1, a_b4_ptr, a_b4y, a_b4x, a_band_ptr, a_band_y,
                   a_band_x, a_s_ptr, a_sy, a_sx, a_sc,
                   b_run_ptr, b_run_y, b_run_x0, b_run_x1, b_b4_ptr, b_b4y, b_b4x, b_band_ptr, b_band_y,
                   b_band_x, b_s_ptr, b_sy, b_sx, b_sc,
                   index_a, index_b, tolerances, lengths, length_rank, percent, surfaces):
    """:func:`_outline_pair` for pairs ``(index_a[r], index_b[r])`` of two annotators' objects.

    The outlines are those of ``_outlines`` (pointer arrays per object). Returns a float64
    ``(len(index_a), k)`` array, one :func:`_outline_pair` row per pair.
    """
    nt = tolerances.shape[0]
    k = 2 * (nt + 1) + 5 + 2 * (4 + nt)
    n = index_a.shape[0]
    out = np.empty((n, k), dtype=np.float64)
    for r in range(n):
        i = index_a[r]
        j = index_b[r]
        ra0, ra1 = a_run_ptr[i], a_run_ptr[i + 1]
        rb0, rb1 = b_run_ptr[j], b_run_ptr[j + 1]
        ba0, ba1 = a_b4_ptr[i], a_b4_ptr[i + 1]
        bb0, bb1 = b_b4_ptr[j], b_b4_ptr[j + 1]
        na0, na1 = a_band_ptr[i], a_band_ptr[i + 1]
        nb0, nb1 = b_band_ptr[j], b_band_ptr[j + 1]
        sa0, sa1 = a_s_ptr[i], a_s_ptr[i + 1]
        sb0, sb1 = b_s_ptr[j], b_s_ptr[j + 1]
        out[r] = _outline_pair(a_run_y[ra0:ra1], a_run_x0[ra0:ra1], a_run_x1[ra0:ra1], a_b4y[ba0:ba1],
                               a_b4x[ba0:ba1], a_band_y[na0:na1], a_band_x[na0:na1], a_sy[sa0:sa1],
                               a_sx[sa0:sa1], a_sc[sa0:sa1],
                               b_run_y[rb0:rb1], b_run_x0[rb0:rb1], b_run_x1[rb0:rb1], b_b4y[bb0:bb1],
                               b_b4x[bb0:bb1], b_band_y[nb0:nb1], b_band_x[nb0:nb1], b_sy[sb0:sb1],
                               b_sx[sb0:sb1], b_sc[sb0:sb1],
                               tolerances, lengths, length_rank, percent, surfaces)
    return out


@njit(cache=True, nogil=True)
def _outline_lengths(edges, part_start, part_length, part_object, n_objects):
    """The length of each object's polygon outline, summed as numpy and Python would: each part's edge
    lengths by numpy's pairwise sum, then the parts one after the other.

    Parameters
    ----------
    edges : (v,) float64
        The length of every edge of every part, part after part.
    part_start, part_length : (p,) int64
        Part ``i``'s edges are ``edges[part_start[i]:part_start[i] + part_length[i]]`` (no empty part).
    part_object : (p,) int64
        The object of each part, in order (an object's parts are consecutive).
    n_objects : int

    Returns
    -------
    (n_objects,) float64
        ``sum(float(part.sum()) for part in parts)``, 0 for an object without parts.
    """
    out = np.zeros(n_objects, dtype=np.float64)
    for i in range(part_start.shape[0]):
        out[part_object[i]] += _pairwise_sum(edges, part_start[i], part_length[i])
    return out


@njit(cache=True, nogil=True)
def _edge_pixels(mask):
    """Pixels of a 0/1 window with a 4-neighbour outside the mask (or beyond the window), raster order."""
    h, w = mask.shape
    n = 0
    ys = np.empty(h * w, dtype=np.int32)
    xs = np.empty(h * w, dtype=np.int32)
    for y in range(h):
        for x in range(w):
            if mask[y, x] == 0:
                continue
            if (y == 0 or mask[y - 1, x] == 0 or y == h - 1 or mask[y + 1, x] == 0 or x == 0
                    or mask[y, x - 1] == 0 or x == w - 1 or mask[y, x + 1] == 0):
                ys[n] = y
                xs[n] = x
                n += 1
    return ys[:n].copy(), xs[:n].copy()


@njit(cache=True, nogil=True)
def _gap_d2(buf, starts, boxes, mine, others, x0, y0, x1, y1):
    """The squared distance from the pixels of objects ``others`` to those of object ``mine`` within a
    window of the image (one image's tight crops, :class:`qa.engine._masks.ObjectCrops`).

    Returns ``(state, d2)``: state 0 when no pixel of ``others`` lies in the window, 1 when they overlap
    ``mine``, 2 with ``d2`` the smallest squared distance between the two (exactly the square of the
    Euclidean distance transform of the window outside ``mine``, at its nearest pixel of ``others``).

    Notes
    -----
    The closest pair of two disjoint pixel sets lies on their edges: a pixel whose 4-neighbour towards
    the other set belongs to its own set is farther than that neighbour. So only edge pixels are
    compared, with the exact nearest-point search.
    """
    h = y1 - y0
    w = x1 - x0
    a = np.zeros((h, w), np.uint8)
    b = np.zeros((h, w), np.uint8)
    for which in range(2):
        out = a if which == 0 else b
        count = 1 if which == 0 else others.shape[0]
        for q in range(count):
            o = mine if which == 0 else others[q]
            bx0 = boxes[o, 0]
            by0 = boxes[o, 1]
            cw = boxes[o, 2] - bx0
            for y in range(max(by0, y0), min(boxes[o, 3], y1)):
                row = starts[o] + (y - by0) * cw - bx0
                for x in range(max(bx0, x0), min(boxes[o, 2], x1)):
                    if buf[row + x] != 0:
                        out[y - y0, x - x0] = 1
    seen = False
    for y in range(h):
        for x in range(w):
            if b[y, x] != 0:
                seen = True
                if a[y, x] != 0:
                    return 1, 0.0
    if not seen:
        return 0, 0.0
    ay, ax = _edge_pixels(a)
    by, bx = _edge_pixels(b)
    d2 = _nearest_d2(by, bx, ay, ax)
    return 2, d2.min()


@njit(cache=True, nogil=True)
def _gaps(buf, starts, boxes, eligible, mine, reach, height, width):
    """The gap in pixels of background from each object ``mine[k]`` of one image's tight crops
    (:class:`qa.engine._masks.ObjectCrops`) to the nearest other ``eligible`` object: exact up to
    ``reach[k]``, beyond it a lower bound from the bboxes.

    Parameters
    ----------
    buf, starts, boxes
        The image's crops (``boxes`` int64, the tight bboxes of the masks).
    eligible : (n,) bool
        The objects ``mine[k]`` is measured against (``mine[k]`` itself never is).
    mine : (m,) int64
        The objects measured (positions among the crops).
    reach : (m,) int64
    height, width : (m,) int64
        The image's size (windows are clipped to it).

    Returns
    -------
    (m,) float64
        0 when the two touch or overlap; ``max(sqrt(d2) - 1, 0)`` with ``d2`` the least squared distance
        between their pixels (:func:`_gap_d2`) when an eligible object's bbox comes within ``reach[k]``;
        otherwise ``max(reach[k] + 1, bound)`` when none of their pixels is in the window, ``bound``
        when no bbox comes that close (``bound`` the least bbox gap); NaN when no object is eligible.
    """
    n = boxes.shape[0]
    m = mine.shape[0]
    out = np.empty(m, dtype=np.float64)
    close = np.empty(n, dtype=np.int64)
    for k in range(m):
        i = mine[k]
        r = reach[k]
        bx0 = boxes[i, 0]
        by0 = boxes[i, 1]
        bx1 = boxes[i, 2]
        by1 = boxes[i, 3]
        seen = False
        least = np.int64(0)
        c = 0
        for j in range(n):
            if j == i or not eligible[j]:
                continue
            gx = max(boxes[j, 0] - bx1, bx0 - boxes[j, 2])
            gy = max(boxes[j, 1] - by1, by0 - boxes[j, 3])
            g = max(max(gx, gy), 0)
            if not seen or g < least:
                least = g
            seen = True
            if g <= r:
                close[c] = j
                c += 1
        if not seen:
            out[k] = np.nan
            continue
        if c == 0:
            out[k] = np.float64(least)
            continue
        x0 = max(bx0 - r - 1, 0)
        y0 = max(by0 - r - 1, 0)
        x1 = min(bx1 + r + 1, width[k])
        y1 = min(by1 + r + 1, height[k])
        state, d2 = _gap_d2(buf, starts, boxes, i, close[:c], x0, y0, x1, y1)
        if state == 0:  # no pixel of theirs in the window
            out[k] = np.float64(max(r + 1, least))
        elif state == 1:  # they overlap
            out[k] = 0.0
        else:
            out[k] = max(np.sqrt(d2) - 1.0, 0.0)
    return out
