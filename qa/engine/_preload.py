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


def warm_up_task() -> None:
    """Run the per-image task (:func:`qa.task.run_chunk`) once on a tiny batch of three annotators, so
    every kernel it calls (outlines, boundary figures, the vote, alpha's counts, the rules') is loaded."""
    from pathlib import Path

    import numpy as np

    from qa.engine.chunks import InMemoryChunk
    from qa.model import Batch, Category, Export, Image, Object, Source
    from qa.rules.packs import read
    from qa.task import run_chunk, task_options

    image = Image("im", "im.png", 12, 10)
    square = np.array([[1.0, 1.0], [8.0, 1.0], [8.0, 7.0], [1.0, 7.0]])
    exports = {}
    for k, name in enumerate(("a", "b", "c")):
        objects = [Object(name, "im", "car", "polygon", Source(f"{name}.json", 0, 1), polygons=(square + k * 0.5,),
                          attributes={"occluded": k == 1}),
                   Object(name, "im", "road", "polygon", Source(f"{name}.json", 1, 2),
                          polygons=(np.array([[0.0, 6.0], [11.0, 6.0], [11.0, 9.0], [0.0, 9.0]]),))]
        exports[name] = Export(name, Path(f"{name}.json"), "coco", {"im": image}, {}, objects)
    categories = {"car": Category("car"), "road": Category("road", isthing=False)}
    batch = Batch(["a", "b", "c"], exports, {"im": image}, categories, {"im": ("a", "b", "c")})
    options = task_options(batch, pack=read("default"))
    run_chunk(InMemoryChunk(("im",), batch), options)


try:
    warm_up()
    warm_up_task()
except Exception:  # a worker then loads what it needs itself
    pass
