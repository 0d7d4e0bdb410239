"""Numba kernels for comparing two semantic label maps of one image.

A label map here is an int32 ``(h, w)`` array of class indices ``0..n-1``; negative values are pixels to
ignore (void, or unlabelled). Distances come from an exact squared Euclidean distance map computed by
the caller (:func:`qa.engine._kernels_sdf._edt_squared`).
"""

from __future__ import annotations

import numpy as np
from numba import njit


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
def _adjacency(m, n):
    """How often two classes touch: 4-neighbour pixel pairs of different valid classes.

    Parameters
    ----------
    m : (h, w) int32
        Class indices; negative is ignored.
    n : int
        Number of classes.

    Returns
    -------
    (n, n) int64
        Symmetric; ``out[i, j]`` = number of horizontally or vertically adjacent pixel pairs with
        classes ``i`` and ``j`` (``i != j``).
    """
    out = np.zeros((n, n), dtype=np.int64)
    h, w = m.shape
    for y in range(h):
        for x in range(w):
            c = m[y, x]
            if c < 0:
                continue
            if x + 1 < w:
                d = m[y, x + 1]
                if d >= 0 and d != c:
                    out[c, d] += 1
                    out[d, c] += 1
            if y + 1 < h:
                d = m[y + 1, x]
                if d >= 0 and d != c:
                    out[c, d] += 1
                    out[d, c] += 1
    return out


@njit(cache=True, nogil=True)
def _interface(m, c1, c2, y0, y1, x0, x1):
    """The ``c1|c2`` interface inside a window: pixels of class ``c1`` with a 4-neighbour of class ``c2``.

    Neighbours are read from the whole map, so the window's edges do not invent or hide interface
    pixels.

    Parameters
    ----------
    m : (h, w) int32
        Class indices.
    c1, c2 : int
        The two classes; the interface is drawn on the ``c1`` side.
    y0, y1, x0, x1 : int
        The window (end-exclusive) in ``m``.

    Returns
    -------
    (y1 - y0, x1 - x0) uint8
        1 on interface pixels.
    """
    h, w = m.shape
    out = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    for y in range(y0, y1):
        for x in range(x0, x1):
            if m[y, x] != c1:
                continue
            if (x > 0 and m[y, x - 1] == c2) or (x + 1 < w and m[y, x + 1] == c2) or \
                    (y > 0 and m[y - 1, x] == c2) or (y + 1 < h and m[y + 1, x] == c2):
                out[y - y0, x - x0] = 1
    return out


@njit(cache=True, nogil=True)
def _interface_bbox(m, c1, c2):
    """Tight bbox ``(y0, y1, x0, x1)`` (end-exclusive) of the ``c1|c2`` interface of a map; zeros when
    there is none.

    Parameters
    ----------
    m : (h, w) int32
        Class indices.
    c1, c2 : int
        The two classes (interface on the ``c1`` side).

    Returns
    -------
    (4,) int64
    """
    h, w = m.shape
    y0 = h
    y1 = 0
    x0 = w
    x1 = 0
    for y in range(h):
        for x in range(w):
            if m[y, x] != c1:
                continue
            if (x > 0 and m[y, x - 1] == c2) or (x + 1 < w and m[y, x + 1] == c2) or \
                    (y > 0 and m[y - 1, x] == c2) or (y + 1 < h and m[y + 1, x] == c2):
                if y < y0:
                    y0 = y
                if y + 1 > y1:
                    y1 = y + 1
                if x < x0:
                    x0 = x
                if x + 1 > x1:
                    x1 = x + 1
    out = np.zeros(4, dtype=np.int64)
    if y1 > y0:
        out[0] = y0
        out[1] = y1
        out[2] = x0
        out[3] = x1
    return out


@njit(cache=True, nogil=True)
def _interface_match(iface, d2_other, other, y0, x0, c1, c2, tolerances):
    """Compare one side's ``c1|c2`` interface with the other side's.

    Parameters
    ----------
    iface : (h, w) uint8
        This side's interface pixels in a window.
    d2_other : (h, w) float64
        Squared distance of every window pixel to the other side's interface.
    other : (H, W) int32
        The other side's whole label map.
    y0, x0 : int
        The window's offset in the map.
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
    h, w = iface.shape
    for y in range(h):
        for x in range(w):
            if iface[y, x] == 0:
                continue
            d2 = d2_other[y, x]
            for t in range(nt):
                if d2 <= tolerances[t] * tolerances[t]:
                    out[t] += 1.0
            out[nt] += 1.0
            label = other[y + y0, x + x0]
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


@njit(cache=True, nogil=True)
def _class_boxes(m, n):
    """Tight bbox and pixel count of every class of a label map, from one pass.

    Parameters
    ----------
    m : (h, w) int32
        Class indices; negative is ignored.
    n : int
        Number of classes.

    Returns
    -------
    boxes : (n, 4) int64
        ``x0, y0, x1, y1`` (end-exclusive) of each class; zeros for a class that is absent.
    areas : (n,) int64
        Pixels of each class.
    """
    h, w = m.shape
    boxes = np.zeros((n, 4), dtype=np.int64)
    areas = np.zeros(n, dtype=np.int64)
    for c in range(n):
        boxes[c, 0] = w
        boxes[c, 1] = h
    for y in range(h):
        for x in range(w):
            c = m[y, x]
            if c < 0:
                continue
            areas[c] += 1
            if x < boxes[c, 0]:
                boxes[c, 0] = x
            if y < boxes[c, 1]:
                boxes[c, 1] = y
            if x + 1 > boxes[c, 2]:
                boxes[c, 2] = x + 1
            if y + 1 > boxes[c, 3]:
                boxes[c, 3] = y + 1
    for c in range(n):
        if areas[c] == 0:
            boxes[c, 0] = 0
            boxes[c, 1] = 0
            boxes[c, 2] = 0
            boxes[c, 3] = 0
    return boxes, areas
