"""Objects to COCO RLE, full masks and bbox crops (through pycocotools).

Every geometry kind meets here: polygons are rasterised by pycocotools (the same rasteriser COCO's own
evaluation uses, so areas agree with ``maskUtils.area``), RLEs pass through, and panoptic segments are cut
out of their image's id map.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from qa.model import Object


def polygons_to_rle(polygons, height: int, width: int) -> dict:
    """Rasterise the parts of one polygon object into a single compressed RLE."""
    flat = [np.ascontiguousarray(p, dtype=np.float64).ravel().tolist() for p in polygons]
    rles = mask_utils.frPyObjects(flat, height, width)
    return mask_utils.merge(rles) if len(rles) > 1 else rles[0]


def mask_to_rle(mask: np.ndarray) -> dict:
    """Encode a 2-D boolean or 0/1 mask as compressed COCO RLE."""
    return mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))


def object_rle(obj: Object, height: int, width: int, id_map: np.ndarray | None = None) -> dict:
    """The object's mask as compressed COCO RLE of size ``height x width``.

    ``id_map`` (the image's panoptic id map) is needed for ``"segment"`` objects only.
    """
    if obj.kind == "polygon":
        return polygons_to_rle(obj.polygons, height, width)
    if obj.kind == "rle":
        return obj.rle
    if obj.kind == "segment":
        if id_map is None:
            raise ValueError("a panoptic segment needs its image's id map")
        return mask_to_rle(id_map == obj.segment_id)
    raise ValueError(f"unknown geometry kind {obj.kind!r}")


def rle_bbox(rle: dict) -> tuple[int, int, int, int]:
    """Tight integer bbox ``(x0, y0, x1, y1)`` (end-exclusive) of an RLE; all zeros when empty."""
    x, y, w, h = mask_utils.toBbox(rle)
    return int(x), int(y), int(x + w), int(y + h)


def decode_full(rle: dict) -> np.ndarray:
    """The full-image uint8 mask of an RLE."""
    return mask_utils.decode(rle)


def decode_crop(rle: dict) -> tuple[np.ndarray, tuple[int, int]]:
    """The mask inside its tight bbox, and the crop's ``(x0, y0)`` offset in the image."""
    x0, y0, x1, y1 = rle_bbox(rle)
    full = mask_utils.decode(rle)
    return np.ascontiguousarray(full[y0:y1, x0:x1]), (x0, y0)
