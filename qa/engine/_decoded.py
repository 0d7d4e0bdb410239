"""One annotator's labels on one image, decoded once and shared by every per-image figure.

The per-image work of a run (the comparison, the class maps, the rules, pixel alpha, the consensus) reads
the same pixels. :class:`Decoded` holds what they need and makes each part on first use, once: the
panoptic id map (read from its PNG), the objects' tight crops (:class:`qa.engine._masks.ObjectCrops`:
polygons rasterised by pycocotools, RLEs painted, segments cut from the id map), their outlines
(:class:`qa.engine.boundary.Outlines`) and each category's pixels as row runs.

:func:`image_labels` gives the :class:`Decoded` of every annotator covering an image of a (narrowed)
batch, from the batch alone: each object's category code, crowd and void flags, and its position in the
whole export (``Export.ordinals``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qa.model import Batch, Limits, Object


class Decoded:
    """One annotator's labels on one image; each part is made on first use and kept.

    Attributes
    ----------
    annotator : str
    objects : list of Object
        The annotator's objects of the image, in export order.
    indices : (n,) int64
        Each object's position in the whole export.
    categories : (n,) int64
        Category codes (the comparison's, :func:`qa.engine.compare.category_list`).
    crowd : (n,) bool
    void : (n,) bool or None
        Void regions of label maps (no category's pixels); None when there are none.
    png : str or None
        The panoptic id map of the image (panoptic exports), else None.
    comparable : bool
        False for a panoptic export whose id map could not be read at load (a finding says why).
    shape : (int, int)
        The image's height and width.
    """

    __slots__ = ("annotator", "objects", "indices", "categories", "crowd", "void", "png", "comparable", "shape",
                 "max_pixels", "_id_map", "seg_ids", "_crops", "_boxes", "_outlines", "_category_runs")

    def __init__(self, annotator: str, objects: list[Object], indices: np.ndarray, categories: np.ndarray,
                 png, panoptic: bool, height: int, width: int, max_pixels: int):
        self.annotator = annotator
        self.objects = objects
        self.indices = indices
        self.categories = categories
        self.crowd = np.asarray([bool(o.iscrowd) for o in objects], dtype=bool)
        self.void = (np.asarray([bool(o.attributes.get("void")) for o in objects], dtype=bool)
                     if any(o.attributes.get("void") for o in objects) else None)
        self.png = str(png) if panoptic and png is not None else None
        self.comparable = not panoptic or png is not None
        self.shape = (int(height), int(width))
        self.max_pixels = int(max_pixels)
        self._id_map = None
        self.seg_ids = (np.asarray([-1 if o.segment_id is None else int(o.segment_id) for o in objects],
                                   dtype=np.int64) if self.png is not None else None)
        self._crops = None
        self._boxes = None
        self._outlines = None
        self._category_runs = None

    @property
    def panoptic(self) -> bool:
        return self.png is not None

    @property
    def id_map(self) -> np.ndarray | None:
        """The image's panoptic id map (int32), read once; None for instance exports."""
        if self._id_map is None and self.png is not None:
            from qa.formats.coco_panoptic import read_id_map

            self._id_map = read_id_map(Path(self.png), Limits(max_pixels=self.max_pixels))
        return self._id_map

    def crops(self):
        """Every object's tight crop (:class:`qa.engine._masks.ObjectCrops`), in object order: segments cut
        from the id map, other objects painted from their RLEs (polygons rasterised by pycocotools)."""
        if self._crops is None:
            from qa.engine._masks import polygons_to_rle, rle_crops, segment_crops

            if self.png is not None:
                self._crops = segment_crops(self.id_map, self.seg_ids)
            else:
                h, w = self.shape
                rles = [polygons_to_rle(o.polygons, h, w) if o.kind == "polygon" else o.rle for o in self.objects]
                self._crops = rle_crops(rles, h, w)
        return self._crops

    def boxes(self) -> np.ndarray:
        """Each object's tight bbox ``(x0, y0, x1, y1)``; for segments from one pass over the id map."""
        if self._crops is not None:
            return self._crops.boxes
        if self.png is None:
            return self.crops().boxes
        if self._boxes is None:
            from qa.engine._masks import _segment_boxes

            order = np.argsort(self.seg_ids, kind="stable")
            boxes_sorted, _ = _segment_boxes(self.id_map, self.seg_ids[order])
            self._boxes = np.empty_like(boxes_sorted)
            self._boxes[order] = boxes_sorted
        return self._boxes

    def outlines(self):
        """Every object's outline as point lists (:class:`qa.engine.boundary.Outlines`), made once: from
        one pass over the id map, or over each object's crop."""
        if self._outlines is None:
            from qa.engine.boundary import id_map_outlines, object_outlines

            if self.png is not None:
                self._outlines = id_map_outlines(self.id_map, self.seg_ids)
            else:
                self._outlines = object_outlines(self.crops())
        return self._outlines

    def release_outlines(self) -> None:
        """Drop the outlines and category runs (kept: the crops and the id map, which the rules read)."""
        self._outlines = None
        self._category_runs = None

    def category_runs(self):
        """Each category's pixels (the union of its objects, crowd regions included, void regions of label
        maps left out) as row runs, made once: ``(codes, ptr, y, x0, x1)``
        (:func:`qa.engine.compare.category_union_runs` of the outlines' runs)."""
        if self._category_runs is None:
            from qa.engine.compare import category_union_runs

            categories = self.categories
            if self.void is not None:
                categories = np.where(self.void, -1, categories)
            self._category_runs = category_union_runs(self.outlines().runs, categories)
        return self._category_runs


def is_panoptic(export, objects: list[Object]) -> bool:
    """Whether an annotator's labels of an image come as a panoptic id map."""
    return export.format == "coco_panoptic" or any(o.kind == "segment" for o in objects)


def grouped_objects(batch: Batch) -> dict[str, dict[str, tuple[list[Object], np.ndarray]]]:
    """``{annotator: {image: (objects, positions in the whole export)}}`` of a (narrowed) batch, objects in
    export order."""
    out = {}
    for name, export in batch.exports.items():
        per: dict[str, tuple[list, list]] = {}
        for obj, position in zip(export.objects, export.positions().tolist()):
            entry = per.get(obj.image)
            if entry is None:
                entry = per[obj.image] = ([], [])
            entry[0].append(obj)
            entry[1].append(position)
        out[name] = {k: (objs, np.asarray(pos, dtype=np.int64)) for k, (objs, pos) in per.items()}
    return out


_NONE = ([], np.zeros(0, dtype=np.int64))


def image_labels(batch: Batch, key: str, codes: dict[str, int], max_pixels: int, grouped: dict) -> dict[str, Decoded]:
    """The :class:`Decoded` labels of every annotator covering image ``key`` (names sorted).

    ``codes`` gives each category its code; ``grouped`` is :func:`grouped_objects` of the batch.
    """
    image = batch.images[key]
    out = {}
    for name in sorted(batch.coverage.get(key, ())):
        export = batch.exports[name]
        objs, positions = grouped[name].get(key, _NONE)
        out[name] = Decoded(name, objs, positions,
                            np.asarray([codes[o.category] for o in objs], dtype=np.int64),
                            export.id_maps.get(key), is_panoptic(export, objs), image.height, image.width,
                            max_pixels)
    return out
