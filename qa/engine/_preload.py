"""Imported once by the worker pool's fork server: loads the engine and its compiled kernels.

Workers are forked from that server, so each starts with numba, scipy and every kernel already loaded
(from numba's on-disk cache) instead of paying for them again.
"""

from __future__ import annotations


def warm_up() -> None:
    """Call every kernel of the comparison once on tiny inputs of the dtypes the engine uses."""
    import numpy as np
    import scipy.optimize  # noqa: F401

    import qa.engine.compare  # noqa: F401
    import qa.formats.coco_panoptic  # noqa: F401
    from qa.engine._kernels_iou import _box_pairs, _crowd_cover, _intersection_counts, _pair_intersections
    from qa.engine._masks import mask_to_rle, polygons_to_rle, rle_crops, segment_crops
    from qa.engine.match import match_objects
    from qa.engine.panoptic import Segments, panoptic_counts

    m = np.zeros((4, 4), np.uint8)
    m[1:3, 1:3] = 1
    rle = polygons_to_rle([np.array([[0.0, 0.0], [3.0, 0.0], [3.0, 3.0]])], 4, 4)
    crops = rle_crops([mask_to_rle(m), rle], 4, 4)
    ids = m.astype(np.int32)
    segs = segment_crops(ids, [1])
    inter = _intersection_counts(crops.buf, crops.starts, crops.boxes, segs.buf, segs.starts, segs.boxes)
    pair_i, pair_j = _box_pairs(crops.boxes)  # the rules' overlaps
    _pair_intersections(crops.buf, crops.starts, crops.boxes, pair_i, pair_j)
    _crowd_cover(inter, crops.areas, np.zeros(2, np.int64), np.zeros(1, bool), np.zeros(1, np.int64))
    match_objects(inter, crops.areas, segs.areas, categories_a=np.zeros(2, np.int64),
                  categories_b=np.zeros(1, np.int64))
    panoptic_counts(ids, ids, Segments.of([1], [1]), Segments.of([1], [1]))


try:
    warm_up()
except Exception:  # a worker then loads what it needs itself
    pass
