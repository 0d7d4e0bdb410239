"""Numba kernels for comparing two semantic label maps of one image.

A label map here is an int32 ``(h, w)`` array of class indices ``0..n-1``; negative values are pixels to
ignore (void, or unlabelled). Class boundaries and category interfaces are listed as points, from one
scan of the map; distances between two point lists come from
:func:`qa.engine._kernels_sdf._nearest_d2_both`, so their cost grows with the outlines' length, not with the
area of the classes (road and sky cover most of a street scene).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qa.engine._kernels_boundary import _grow


@njit(cache=True, nogil=True)
def _confusion(a, b, n):
    """Pixel counts of every (class in a, class in b) pair, over pixels valid in both.

    Parameters
    ----------
    a, b : (h, w) int32
        Class indices; negative is ignored.
    n : int
        Number of classes.

    Returns
    -------
    (n, n) int64
        ``out[i, j]`` = pixels labelled ``i`` in ``a`` and ``j`` in ``b``.
    """
    out = np.zeros((n, n), dtype=np.int64)
    h, w = a.shape
    for y in range(h):
        for x in range(w):
            i = a[y, x]
            j = b[y, x]
            if i >= 0 and j >= 0:
                out[i, j] += 1
    return out


@njit(cache=True, nogil=True)
def _other_classes(m, y, x, h, w, found):
    """The 4-neighbours of pixel ``(y, x)`` inside the map: whether any differs from its class, and the
    distinct valid classes other than its own among them (written to ``found``, their number returned).
    """
    c = m[y, x]
    differs = False
    k = 0
    for side in range(4):
        yy = y
        xx = x
        if side == 0:
            yy = y - 1
        elif side == 1:
            yy = y + 1
        elif side == 2:
            xx = x - 1
        else:
            xx = x + 1
        if yy < 0 or yy >= h or xx < 0 or xx >= w:
            continue  # the image border is never boundary
        d = m[yy, xx]
        if d == c:
            continue
        differs = True
        if d < 0:
            continue
        seen = False
        for q in range(k):
            if found[q] == d:
                seen = True
        if not seen:
            found[k] = d
            k += 1
    return differs, k


@njit(cache=True, nogil=True)
def _edge_points(m):
    """Every class's inner boundary and every category interface of a label map, as point lists.

    Parameters
    ----------
    m : (h, w) int32
        Class indices; negative is ignored.

    Returns
    -------
    b_class, b_y, b_x : (k,) int32
        Inner boundary pixels: pixels of a valid class with a 4-neighbour inside the map of any other
        value (void included), in row-major order; the same pixels as
        :func:`qa.engine._kernels_boundary._inner_boundary` draws on each class's mask.
    i_class, i_other, i_y, i_x : (j,) int32
        Interface records: a pixel of class ``i_class`` with a 4-neighbour of valid class ``i_other``
        (a pixel meeting several classes gives one record each), in row-major order.
    """
    h, w = m.shape
    found = np.empty(4, dtype=np.int32)
    # one pass; the flat record buffers (class, y, x) and (class, other, y, x) double when full
    boundary = np.empty(3 * (4 * (h + w) + 64), dtype=np.int32)
    interface = np.empty(4 * (4 * (h + w) + 64), dtype=np.int32)
    nb = 0
    ni = 0
    for y in range(h):
        for x in range(w):
            c = m[y, x]
            if c < 0:
                continue
            if 0 < y < h - 1 and 0 < x < w - 1 and m[y - 1, x] == c and m[y + 1, x] == c \
                    and m[y, x - 1] == c and m[y, x + 1] == c:
                continue  # fast path: inside the class
            differs, k = _other_classes(m, y, x, h, w, found)
            if differs:
                boundary = _grow(boundary, 3 * (nb + 1))
                boundary[3 * nb] = c
                boundary[3 * nb + 1] = y
                boundary[3 * nb + 2] = x
                nb += 1
            if k > 0:
                interface = _grow(interface, 4 * (ni + k))
                for q in range(k):
                    interface[4 * ni] = c
                    interface[4 * ni + 1] = found[q]
                    interface[4 * ni + 2] = y
                    interface[4 * ni + 3] = x
                    ni += 1
    b = boundary[:3 * nb].reshape((nb, 3))
    i = interface[:4 * ni].reshape((ni, 4))
    return (np.ascontiguousarray(b[:, 0]), np.ascontiguousarray(b[:, 1]), np.ascontiguousarray(b[:, 2]),
            np.ascontiguousarray(i[:, 0]), np.ascontiguousarray(i[:, 1]), np.ascontiguousarray(i[:, 2]),
            np.ascontiguousarray(i[:, 3]))


@njit(cache=True, nogil=True)
def _interface_match(qy, qx, d2_other, other, c1, c2, tolerances):
    """Compare one side's ``c1|c2`` interface with the other side's.

    Parameters
    ----------
    qy, qx : (k,) int32
        This side's interface pixels.
    d2_other : (k,) float64
        Squared distance of each of them to the other side's nearest interface pixel (``inf`` when
        the other side has none).
    other : (H, W) int32
        The other side's whole label map.
    c1, c2 : int
        The two classes.
    tolerances : (t,) float64
        Tolerances in pixels.

    Returns
    -------
    (t + 4,) float64
        Matched interface pixels at each tolerance (distance <= tolerance), then the number of
        interface pixels, then the sum of signed distances, the sum of their absolute values and the
        number of pixels that have a sign. A pixel's sign is + where the other side labels it ``c2``
        (this side's ``c1`` reaches into the other's ``c2``), - where it labels it ``c1``; pixels the
        other side gives a third class or ignores have no sign.
    """
    nt = tolerances.shape[0]
    out = np.zeros(nt + 4, dtype=np.float64)
    for k in range(qy.shape[0]):
        d2 = d2_other[k]
        for t in range(nt):
            if d2 <= tolerances[t] * tolerances[t]:
                out[t] += 1.0
        out[nt] += 1.0
        label = other[qy[k], qx[k]]
        if d2 == np.inf:
            continue
        d = np.sqrt(d2)
        if label == c2:
            out[nt + 1] += d
            out[nt + 2] += d
            out[nt + 3] += 1.0
        elif label == c1:
            out[nt + 1] -= d
            out[nt + 2] += d
            out[nt + 3] += 1.0
    return out


@njit(cache=True, nogil=True)
def _crop_runs(crop, x0, y0, height, width):
    """COCO run lengths (column-major, starting with a run of zeros) of a crop placed in an image.

    Parameters
    ----------
    crop : (h, w) uint8
        The mask inside its window; nonzero is foreground.
    x0, y0 : int
        The window's offset in the image.
    height, width : int
        The image size.

    Returns
    -------
    (k,) int64
        Runs that sum to ``height * width``, as ``pycocotools`` expects in an uncompressed RLE.
    """
    h, w = crop.shape
    runs = np.zeros(2 * h * w + 2, dtype=np.int64)
    k = 0  # index of the current run; even runs are zeros, odd runs ones
    last = 0  # flat position (column-major) where the current run started
    full_height = y0 == 0 and h == height  # columns of the crop follow each other in the image
    for x in range(w):
        for y in range(h):
            value = 1 if crop[y, x] != 0 else 0
            if value != (k & 1):
                p = (x + x0) * height + (y + y0)
                runs[k] = p - last
                last = p
                k += 1
        if (k & 1) == 1 and (x == w - 1 or not full_height):
            p = (x + x0) * height + y0 + h  # the pixel after the crop's column is outside the crop
            runs[k] = p - last
            last = p
            k += 1
    runs[k] = height * width - last
    if runs[k] == 0 and k > 0:  # the mask reaches the image's last pixel: no closing run of zeros
        return runs[:k]
    return runs[:k + 1]
