"""Rasterise polygon objects with pycocotools, the rasteriser :mod:`qa.engine._masks` uses.

Declared areas and bboxes therefore equal what ``qa`` measures from the polygons. Painting works on
each object's bbox crop, the polygon moved by whole pixels, so no full-image mask is made per object.
pycocotools rounds ``5 x + 0.5`` down; a coordinate whose ``5 x`` ends in exactly .5 is a tie that
floating-point error breaks differently at different magnitudes, so a moved polygon could rasterise a
pixel differently. :func:`quantise` rounds coordinates to 0.01 px and moves such ties by 0.01 px, after
which the crop and the full-image raster agree exactly (the tests check it).
"""

from __future__ import annotations

import math

import numpy as np
from pycocotools import mask as mask_utils

from qa.engine._masks import decode_full


def quantise(points: np.ndarray) -> np.ndarray:
    """Round to 0.01 px, moving values whose hundredths are 10 modulo 20 (x.10, x.30, ...) up by 0.01.

    Examples
    --------
    >>> quantise(np.array([[1.3, 2.0], [0.104, -0.001]])).tolist()
    [[1.31, 2.0], [0.11, 0.0]]
    """
    hundredths = np.round(np.asarray(points, dtype=np.float64) * 100.0)
    hundredths += (np.mod(hundredths, 20) == 10)
    return hundredths / 100.0 + 0.0  # + 0.0 turns -0.0 into 0.0


def _flat(parts, dx: float = 0.0, dy: float = 0.0) -> list[list[float]]:
    out = []
    for p in parts:
        q = np.asarray(p, dtype=np.float64)
        if dx or dy:
            q = q - (dx, dy)
        out.append(q.ravel().tolist())
    return out


def rle(parts, height: int, width: int) -> dict:
    """The union of ``parts`` (each an ``(N, 2)`` array of x, y) as one compressed RLE."""
    rles = mask_utils.frPyObjects(_flat(parts), height, width)
    return mask_utils.merge(rles) if len(rles) > 1 else rles[0]


def area_bbox(parts, height: int, width: int) -> tuple[int, list[float]]:
    """Raster area (pixels) and COCO bbox ``[x, y, w, h]`` of the mask the polygon rasterises to."""
    if not parts:
        return 0, [0.0, 0.0, 0.0, 0.0]
    r = rle(parts, height, width)
    return int(mask_utils.area(r)), [float(v) for v in mask_utils.toBbox(r)]


def crop(parts, height: int, width: int):
    """The polygon's mask inside its vertex bbox (clipped to the image) and the crop's ``(x0, y0)``.

    Returns ``(None, (0, 0))`` when the bbox misses the image.
    """
    pts = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])
    x0 = max(int(math.floor(pts[:, 0].min())) - 1, 0)
    y0 = max(int(math.floor(pts[:, 1].min())) - 1, 0)
    x1 = min(int(math.ceil(pts[:, 0].max())) + 1, width)
    y1 = min(int(math.ceil(pts[:, 1].max())) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None, (0, 0)
    rles = mask_utils.frPyObjects(_flat(parts, x0, y0), y1 - y0, x1 - x0)
    r = mask_utils.merge(rles) if len(rles) > 1 else rles[0]
    return decode_full(r).astype(bool), (x0, y0)


def paint(objects, height: int, width: int) -> np.ndarray:
    """Paint objects into an int32 id map in the order given (later objects cover earlier ones).

    ``objects`` is a sequence of ``(id, parts)``; pixels no object covers stay 0. The map is uint8
    when every id is below 256 (the usual case: ids are positions in the object list), else int32.
    """
    objects = list(objects)
    small = all(0 <= oid < 256 for oid, _ in objects)
    id_map = np.zeros((height, width), dtype=np.uint8 if small else np.int32)
    for oid, parts in objects:
        if not parts:
            continue
        mask, (x0, y0) = crop(parts, height, width)
        if mask is None:
            continue
        h, w = mask.shape
        np.copyto(id_map[y0:y0 + h, x0:x0 + w], oid, where=mask)
    return id_map
