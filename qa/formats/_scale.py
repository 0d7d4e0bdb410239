"""Scale an object's geometry from the size its export declares to another frame of the same image.

Used by :func:`qa.align.align` when an export labelled the same images at another resolution (a resized
copy): polygons are scaled exactly, masks (RLE) are resampled by nearest neighbour.

Notes
-----
A vertex ``(x, y)`` becomes ``(x * sx, y * sy)`` with ``sx = W / w`` and ``sy = H / h`` (COCO's polygon
coordinates are continuous, the image spans ``[0, w] x [0, h]``), so a polygon and its scaled copy
rasterise to the same shape at either resolution, up to the rasteriser's own half-pixel rounding.

A mask pixel ``(i, j)`` of the new frame takes the value of the source pixel whose cell holds its centre:
``(floor((i + 0.5) / sy), floor((j + 0.5) / sx))``. The outline therefore stays on the source grid: it
moves by at most half a source pixel along each axis, which is ``sx / 2`` and ``sy / 2`` pixels of the
new frame when upscaling (a mask drawn at a quarter of the resolution is off by up to 2 px along each
axis, 2.8 px diagonally, at the full resolution; tested) and half a pixel when downscaling (where thin
parts narrower than a source step can vanish). Boundary
figures at tolerances below that error measure the resampling as much as the annotator; the finding
that says an export was scaled names the factors.
"""

from __future__ import annotations

import math

import numpy as np

from qa.formats._crop_rle import crop_to_coco_rle
from qa.formats._rle_counts import counts_runs
from qa.model import Object


def _mask(rle: dict) -> np.ndarray | None:
    """The full-image uint8 mask of a COCO RLE (compressed or uncompressed), or None when malformed."""
    h, w = (int(v) for v in rle["size"])
    counts = rle.get("counts")
    runs = np.asarray(counts, dtype=np.int64) if isinstance(counts, list) else counts_runs(counts)
    if runs is None or (runs < 0).any() or int(runs.sum()) != h * w:
        return None
    values = np.zeros(len(runs), np.uint8)
    values[1::2] = 1
    return np.repeat(values, runs).reshape(w, h).T


def nearest_indices(n_out: int, n_in: int) -> np.ndarray:
    """Source index of each of ``n_out`` target pixels: the source cell of ``n_in`` holding the target
    pixel's centre, ``floor((i + 0.5) n_in / n_out)`` in integers (no rounding error at a cell edge).

    Examples
    --------
    >>> nearest_indices(6, 3).tolist(), nearest_indices(2, 4).tolist()
    ([0, 0, 1, 1, 2, 2], [1, 3])
    """
    index = ((2 * np.arange(n_out, dtype=np.int64) + 1) * n_in) // (2 * n_out)
    return np.clip(index, 0, n_in - 1)


def resample_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A mask resampled by nearest neighbour to ``height x width`` (see the module notes).

    Examples
    --------
    >>> resample_mask(np.array([[1, 0], [0, 0]], np.uint8), 4, 4).tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    """
    h, w = mask.shape
    rows = nearest_indices(height, h)
    cols = nearest_indices(width, w)
    return mask[rows[:, None], cols[None, :]]


def scale_rle(rle: dict, height: int, width: int) -> dict | None:
    """A COCO RLE resampled by nearest neighbour to ``height x width`` (None when the RLE is malformed).

    Only the mask's bbox, widened to whole target pixels, is resampled.
    """
    mask = _mask(rle)
    if mask is None:
        return None
    h, w = mask.shape
    sy, sx = height / h, width / w
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if not len(ys):
        return crop_to_coco_rle(np.zeros((1, 1), np.uint8), 0, 0, height, width)
    top, bottom = int(math.floor(ys[0] * sy)), min(height, int(math.ceil((ys[-1] + 1) * sy)))
    left, right = int(math.floor(xs[0] * sx)), min(width, int(math.ceil((xs[-1] + 1) * sx)))
    rows = nearest_indices(height, h)[top:bottom]
    cols = nearest_indices(width, w)[left:right]
    return crop_to_coco_rle(mask[rows[:, None], cols[None, :]], left, top, height, width)


def scale_object(obj: Object, sx: float, sy: float, height: int, width: int) -> bool:
    """Scale an object in place into a ``height x width`` frame (``sx``, ``sy``: new pixels per old).

    Polygons and the declared bbox and area are scaled exactly; an RLE is resampled and its bbox and
    area taken from the result. Returns False for a geometry that cannot be scaled here (a panoptic
    segment, or a malformed RLE the loader already reported), which is left as it is.
    """
    if obj.kind == "polygon" and obj.polygons is not None:
        factor = np.array([sx, sy], dtype=np.float64)
        obj.polygons = tuple(np.asarray(part, dtype=np.float64) * factor for part in obj.polygons)
    elif obj.kind == "rle" and obj.rle is not None:
        scaled = scale_rle(obj.rle, height, width)
        if scaled is None:
            return False
        obj.rle = scaled
        from pycocotools import mask as mask_utils

        obj.bbox = tuple(float(v) for v in mask_utils.toBbox(scaled))
        obj.area = float(mask_utils.area(scaled))
        return True
    else:
        return False
    if obj.bbox is not None:
        x, y, w, h = obj.bbox
        obj.bbox = (x * sx, y * sy, w * sx, h * sy)
    if obj.area is not None:
        obj.area = obj.area * sx * sy
    return True
