"""A mask crop placed in its image, as COCO run lengths (numba kernel and its wrapper).

CVAT stores a mask as run lengths over its bounding box in row-major order; COCO counts runs over the
whole image in column-major order. :func:`crop_to_coco_rle` converts without allocating the full-image
mask: columns outside the crop and rows above and below it are whole runs of zeros; the runs are then
written as COCO's compressed counts string (:func:`qa.formats._rle_counts.runs_counts`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from qa.formats._rle_counts import runs_counts


@njit(cache=True, nogil=True)
def _crop_counts(crop, left, top, height, width):
    """Column-major run lengths of an image that is zero outside a crop.

    Parameters
    ----------
    crop : (hc, wc) uint8
        The mask inside its box (read column by column where it lies: a transposed copy first cost
        more than the strided reads); non-zero is foreground.
    left, top : int
        The box's offset in the image; the box lies inside the image.
    height, width : int
        The image size.

    Returns
    -------
    (n,) int64
        The runs, starting with a (possibly empty) run of zeros.
    """
    hc, wc = crop.shape
    bottom = height - top - hc
    # at most one run per pixel of the box and two more per column of it, one per column outside it
    counts = np.empty(wc * (hc + 2) + (width - wc) + 1, dtype=np.int64)
    cur = 0
    run = 0
    n = 0
    for x in range(width):
        if x < left or x >= left + wc:
            if cur == 0:
                run += height
            else:
                counts[n] = run
                n += 1
                cur = 0
                run = height
            continue
        cx = x - left
        # rows above the box: zeros
        if top > 0:
            if cur == 0:
                run += top
            else:
                counts[n] = run
                n += 1
                cur = 0
                run = top
        for cy in range(hc):
            v = 1 if crop[cy, cx] != 0 else 0
            if v == cur:
                run += 1
            else:
                counts[n] = run
                n += 1
                cur = v
                run = 1
        # rows below the box: zeros
        if bottom > 0:
            if cur == 0:
                run += bottom
            else:
                counts[n] = run
                n += 1
                cur = 0
                run = bottom
    counts[n] = run
    n += 1
    return counts[:n]


def crop_to_coco_rle(crop: np.ndarray, left: int, top: int, height: int, width: int) -> dict:
    """Compressed COCO RLE of an image that is ``crop`` at ``(left, top)`` and zero elsewhere.

    Parameters
    ----------
    crop : ndarray, (hc, wc)
        Mask inside its box; non-zero is foreground.
    left, top : int, pixels
        Offset of the box in the image.
    height, width : int, pixels
        Image size; the box must lie inside the image.

    Returns
    -------
    dict
        ``{"size": [height, width], "counts": bytes}`` as pycocotools writes it.

    Raises
    ------
    ValueError
        When the box does not lie inside the image.

    Examples
    --------
    The 2x2 crop ``[[1, 0], [1, 1]]`` at (1, 2) in a 4x3 image: column-major runs are 6 zeros
    (column 0 and the top of column 1), 2 ones, 3 zeros, 1 one.

    >>> from pycocotools import mask as mask_utils
    >>> rle = crop_to_coco_rle(np.array([[1, 0], [1, 1]]), 1, 2, 4, 3)
    >>> rle["size"], int(mask_utils.area(rle)), mask_utils.toBbox(rle).tolist()
    ([4, 3], 3, [1.0, 2.0, 2.0, 2.0])
    """
    crop = np.ascontiguousarray(crop, dtype=np.uint8)
    hc, wc = crop.shape
    if left < 0 or top < 0 or left + wc > width or top + hc > height:
        raise ValueError(f"box {wc}x{hc} at ({left}, {top}) does not lie inside the {width}x{height} image")
    counts = _crop_counts(crop, left, top, height, width)
    return {"size": [height, width], "counts": runs_counts(counts)}
