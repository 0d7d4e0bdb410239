"""What a check function sees: one export's objects as arrays, their masks as bbox crops, and overlaps.

:class:`ExportContext` holds one annotator's objects as numpy arrays (category, image, z_order,
occluded flag, declared bbox and area), their polygon vertices as one flat table
(:class:`Vertices`), and, computed on first use, each object's mask area and mask bbox, its mask
cropped to that bbox, the overlapping pairs of objects within each image, and the share of each
object covered by the objects drawn above it. :class:`BatchContext` adds the objects of every
annotator and the pairs matched across annotators (by the comparison's matching, :mod:`qa.engine.match`).

Masks are painted image by image (:meth:`ExportContext.image_crops`): the tight crops of every object
of an image in one buffer (:class:`qa.engine._masks.ObjectCrops`), polygons rasterised by pycocotools
(so areas agree with ``maskUtils.area``) and panoptic segments cut from their id map, so no full-image
mask is built for an object. Areas, bboxes, overlaps and cover come from one walk over the images
(each image's crops painted once for all of them); the contexts keep the crops of the most recent
images, and :func:`qa.rules.check.check` gives them a few images at a time, so every rule of a chunk
reads crops painted once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from qa.model import Batch, Export, Object, Source

DRAWING_ORDER_FORMATS = ("labelme", "cvat")
"""Formats whose tools paint objects in export order, so the order is a layer order without z_order."""


@dataclass(slots=True)
class Hit:
    """One violation as a check function reports it.

    ``index`` points into the context's ``objects``; image-level hits leave it None and give
    ``image`` and ``source`` instead. ``value`` is the measured value, ``limit`` the threshold.
    """

    index: int | None
    value: float
    limit: float
    message: str
    image: str | None = None
    source: Source | None = None
    annotator: str | None = None


# --- crops ---------------------------------------------------------------------------------------------

CROP_CACHE_BYTES = 48 * 2 ** 20
"""Mask crops one export context keeps at most, whole images at a time: a chunk of images
(:data:`qa.rules.check.CHUNK_PIXELS`) fits, so each image is painted once for every rule."""

ID_MAP_CACHE_BYTES = 64 * 2 ** 20
"""Decoded panoptic id maps one export context keeps at most (a 1024x2048 id map is 8 MB)."""


class RecentArrays:
    """Arrays made on demand, the most recently used kept within a byte budget (least recent dropped).

    Examples
    --------
    >>> cache = RecentArrays(budget=16)
    >>> cache.get("a", lambda: np.zeros(8, np.uint8)).nbytes
    8
    >>> _ = cache.get("b", lambda: np.zeros(16, np.uint8))  # over budget: "a" goes
    >>> "a" in cache, "b" in cache
    (False, True)
    """

    def __init__(self, budget: int):
        self.budget = int(budget)
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0

    def __contains__(self, key) -> bool:
        return key in self._items

    def get(self, key, make):
        """The array stored under ``key``, made by ``make()`` (and stored) when absent."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = make()
        self._items[key] = value
        self._bytes += value.nbytes
        while self._bytes > self.budget and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.nbytes
        return value


def paste(crop: np.ndarray, offset: tuple[int, int], window: tuple[int, int, int, int]) -> np.ndarray:
    """A crop (at ``offset`` = (x0, y0) in the image) placed into a zero array covering ``window``."""
    x0, y0, x1, y1 = window
    out = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    ox, oy = offset
    h, w = crop.shape
    ax0, ay0 = max(x0, ox), max(y0, oy)
    ax1, ay1 = min(x1, ox + w), min(y1, oy + h)
    if ax1 > ax0 and ay1 > ay0:
        out[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0] = crop[ay0 - oy:ay1 - oy, ax0 - ox:ax1 - ox]
    return out


# --- polygon vertices ---------------------------------------------------------------------------------

@dataclass(slots=True)
class Vertices:
    """Every polygon part of an export as one flat vertex table.

    ``xy`` is ``(N, 2)`` float64; part ``p`` holds vertices ``start[p] : start[p] + length[p]`` and
    belongs to object ``part_object[p]`` (an index into the context's ``objects``). ``nxt`` and ``prv``
    give each vertex's neighbours along its closed ring, so edge and turn quantities are array
    expressions over all vertices at once.
    """

    xy: np.ndarray
    start: np.ndarray
    length: np.ndarray
    part_object: np.ndarray
    part_index: np.ndarray
    vertex_part: np.ndarray
    nxt: np.ndarray
    prv: np.ndarray

    @property
    def vertex_object(self) -> np.ndarray:
        return self.part_object[self.vertex_part]

    @classmethod
    def build(cls, objects: list[Object]) -> "Vertices":
        arrays, part_object, part_index = [], [], []
        for i, obj in enumerate(objects):
            if obj.kind != "polygon" or not obj.polygons:
                continue
            for k, part in enumerate(obj.polygons):
                arrays.append(np.asarray(part, dtype=np.float64).reshape(-1, 2))
                part_object.append(i)
                part_index.append(k)
        if not arrays:
            empty_i = np.zeros(0, dtype=np.int64)
            return cls(np.zeros((0, 2)), empty_i, empty_i, empty_i, empty_i, empty_i, empty_i, empty_i)
        length = np.array([len(a) for a in arrays], dtype=np.int64)
        start = np.concatenate(([0], np.cumsum(length)[:-1]))
        xy = np.concatenate(arrays)
        vertex_part = np.repeat(np.arange(len(arrays)), length)
        idx = np.arange(len(xy))
        last = start + length - 1
        nxt = idx + 1
        nxt[last] = start
        prv = idx - 1
        prv[start] = last
        return cls(xy, start, length, np.asarray(part_object), np.asarray(part_index), vertex_part, nxt, prv)


# --- one export ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class Pairs:
    """Pairs of objects ``(i, j)`` (i < j, same image) with ``inter`` pixels in common."""

    i: np.ndarray
    j: np.ndarray
    inter: np.ndarray


class ExportContext:
    """One annotator's export, as arrays the check functions work on.

    Parameters
    ----------
    export : Export
    batch : Batch, optional
        Supplies category ``isthing`` flags; without it every category is a thing.
    """

    def __init__(self, export: Export, batch: Batch | None = None):
        self.export = export
        self.annotator = export.annotator
        self.objects: list[Object] = [o for o in export.objects if o.image in export.images]
        objs = self.objects
        n = self.n = len(objs)
        categories = batch.categories if batch is not None else export.categories
        self.category = np.array([o.category for o in objs], dtype=object)
        self.isthing = np.array([categories[o.category].isthing if o.category in categories else True
                                 for o in objs], dtype=bool)
        self.iscrowd = np.array([o.iscrowd for o in objs], dtype=bool)
        self.image = np.array([o.image for o in objs], dtype=object)
        self.kind = np.array([o.kind for o in objs], dtype=object)
        self.height = np.array([export.images[o.image].height for o in objs], dtype=np.int64)
        self.width = np.array([export.images[o.image].width for o in objs], dtype=np.int64)
        self.z = np.array([np.nan if o.z_order is None else float(o.z_order) for o in objs], dtype=np.float64)
        self.occluded = np.array([-1 if o.occluded is None else int(o.occluded) for o in objs], dtype=np.int8)
        self.declared_bbox = np.array([o.bbox if o.bbox is not None else (np.nan,) * 4 for o in objs],
                                      dtype=np.float64).reshape(n, 4)
        self.declared_area = np.array([np.nan if o.area is None else o.area for o in objs], dtype=np.float64)
        self.ordered = bool((~np.isnan(self.z)).any()) or export.format in DRAWING_ORDER_FORMATS
        """Whether the export states a layer order: it has z_order, or its tool paints in export order."""
        self._crops = RecentArrays(CROP_CACHE_BYTES)
        self._id_maps = RecentArrays(ID_MAP_CACHE_BYTES)

    @property
    def has_occluded_flags(self) -> bool:
        """Whether this export carries occluded flags at all (COCO instances usually do not)."""
        return bool((self.occluded >= 0).any())

    @cached_property
    def vertices(self) -> Vertices:
        return Vertices.build(self.objects)

    # masks --------------------------------------------------------------------------------------------
    def id_map(self, image: str) -> np.ndarray:
        """The panoptic id map of ``image`` (kept while recently used: :data:`ID_MAP_CACHE_BYTES`)."""
        def decode():
            from qa.formats.coco_panoptic import read_id_map
            from qa.model import Limits

            im = self.export.images[image]
            return read_id_map(self.export.id_maps[image], Limits(max_pixels=max(im.width * im.height, 1)))

        return self._id_maps.get(image, decode)

    def rle(self, i: int) -> dict:
        """Object ``i``'s compressed COCO RLE over its whole image, made when asked (polygons are
        rasterised by pycocotools, panoptic segments encoded from their id map; the rules read segments
        from the id map and never need theirs). Not kept: the RLEs of a batch's polygons take about
        0.2 MB per image at 512x1024, and a crop is painted from its RLE only when it is not cached."""
        from qa.engine._masks import object_rle

        obj = self.objects[i]
        id_map = self.id_map(obj.image) if obj.kind == "segment" else None
        return object_rle(obj, int(self.height[i]), int(self.width[i]), id_map)

    def seed(self, image: str, decoded) -> None:
        """Take an image's crops and id map from the run's one decode of it (the
        :class:`qa.engine._decoded.Decoded` labels of this annotator), where they are what
        :meth:`image_crops` and :meth:`id_map` would make: the same objects, image size and kind of crops
        (RLE crops for instance objects; segments cut from the id map when every object is a segment of
        its own id). Only what is already decoded is taken. Returns whether ``decoded`` holds this
        context's objects of the image, in its order."""
        idx = self.by_image.get(image)
        if idx is None or len(idx) != len(decoded.objects):
            return False
        if any(self.objects[k] is not o for k, o in zip(idx.tolist(), decoded.objects)):
            return False
        im = self.export.images[image]
        if (int(im.height), int(im.width)) != tuple(decoded.shape):
            return False
        segments = [o.kind == "segment" for o in decoded.objects]
        if decoded.png is not None and decoded._id_map is not None:
            self._id_maps.get(image, lambda: decoded._id_map)
        if decoded._crops is None:
            return True
        if decoded.png is None and not any(segments):
            self._crops.get(image, lambda: decoded._crops)
        elif decoded.png is not None and all(segments) and len(set(decoded.seg_ids.tolist())) == len(segments):
            self._crops.get(image, lambda: decoded._crops)
        return True

    # the image walk -----------------------------------------------------------------------------------
    def image_crops(self, image: str):
        """Tight crops of every object of ``image`` (in :attr:`by_image` order) as one
        :class:`qa.engine._masks.ObjectCrops`: panoptic segments cut from the id map, other objects
        painted from their RLEs (each made once). Kept while recently used: :data:`CROP_CACHE_BYTES`."""
        def paint():
            idx = self.by_image[image]
            return self.object_crops(idx, int(self.height[idx[0]]), int(self.width[idx[0]]))

        return self._crops.get(image, paint)

    @cached_property
    def _slot(self) -> np.ndarray:
        """Each object's position among the objects of its image (its crop in :meth:`image_crops`)."""
        slot = np.zeros(self.n, dtype=np.int64)
        for idx in self.by_image.values():
            slot[idx] = np.arange(len(idx))
        return slot

    @cached_property
    def _walk(self) -> tuple:
        """Mask area and bbox of every object, the overlapping pairs and the cover of each object, from
        one walk over the images: an image's crops are painted once and serve all of it, so the cost
        does not depend on how many crops the cache can keep.

        Areas and bboxes are the crops' (the same as pycocotools' ``area`` and ``toBbox`` on each RLE,
        tested). Pairs are sparse: the pairs of an image whose bboxes meet are found by a sort and sweep
        (:func:`qa.engine._kernels_iou._box_pairs`), and only their pixels are counted, so memory grows
        with the pairs that overlap, not with the square of the objects on an image. A pair of panoptic
        segments never overlaps unless both are listed under one id."""
        area = np.zeros(self.n, dtype=np.float64)
        box = np.zeros((self.n, 4), dtype=np.int64)
        share = np.full(self.n, np.nan)
        by_things = np.full(self.n, np.nan)
        pair_i, pair_j, pair_inter = [], [], []
        for image, idx in self.by_image.items():
            crops = self.image_crops(image)
            area[idx] = crops.areas
            box[idx] = crops.boxes
            if (self.kind[idx] == "segment").all():
                ids = np.array([self.objects[k].segment_id for k in idx], dtype=np.int64)
                a, b, inter = _same_id_pairs(ids, crops.areas)
            else:
                a, b, inter = _overlapping_pairs(crops)
            pair_i.append(idx[a])
            pair_j.append(idx[b])
            pair_inter.append(inter)
            share[idx], by_things[idx] = self._cover(idx, crops, idx[a], idx[b])
        cat = (lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64))
        pairs = Pairs(cat(pair_i), cat(pair_j), cat(pair_inter))
        return area, box, pairs, share, by_things

    def _cover(self, idx: np.ndarray, crops, pi: np.ndarray, pj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:attr:`covered` and :attr:`covered_by_things` of the objects ``idx`` of one image, whose
        overlapping pairs are ``(pi, pj)``: each object's crop against the union of the crops above it."""
        slot = self._slot
        share = np.where(crops.areas > 0, 0.0, np.nan)
        by_things = share.copy()
        lower = np.concatenate([pi, pj])
        upper = np.concatenate([pj, pi])
        if self.ordered:
            keep = self.above(lower, upper)
            lower, upper = lower[keep], upper[keep]
        if not len(lower):
            return share, by_things
        from qa.engine._kernels_iou import _cover_counts

        order = np.argsort(lower, kind="stable")
        lower, upper = lower[order], upper[order]
        starts = np.flatnonzero(np.r_[True, lower[1:] != lower[:-1]])
        ptr = np.r_[starts, len(lower)].astype(np.int64)
        objs = slot[lower[starts]].astype(np.int64)
        is_thing = self.isthing[upper]
        # the union of the crops above each object, things first, counted in one kernel call
        counts = _cover_counts(crops.buf, crops.starts, crops.boxes, objs, ptr, slot[upper].astype(np.int64),
                               is_thing)
        for k, obj in enumerate(objs.tolist()):
            by_things[obj] = counts[k, 0] / crops.areas[obj]
            if is_thing[ptr[k]:ptr[k + 1]].all():
                share[obj] = by_things[obj]
            else:  # stuff above adds to the cover, not to the cover by things
                share[obj] = counts[k, 1] / crops.areas[obj]
        return share, by_things

    @property
    def mask_area(self) -> np.ndarray:
        """Pixels in each object's mask (pycocotools ``area``)."""
        return self._walk[0]

    @property
    def mask_bbox(self) -> np.ndarray:
        """Each mask's tight integer bbox ``(x0, y0, x1, y1)``, end-exclusive; zeros when empty."""
        return self._walk[1]

    @property
    def overlaps(self) -> Pairs:
        """Every pair of objects of one image that share at least one pixel."""
        return self._walk[2]

    @property
    def covered(self) -> np.ndarray:
        """Share of each object's mask covered by the union of the objects above it (0 when none).

        In an export without a layer order (:attr:`ordered` false: amodal COCO, say) every
        overlapping object counts, since either could be in front. NaN for an empty mask.
        """
        return self._walk[3]

    @property
    def covered_by_things(self) -> np.ndarray:
        """As :attr:`covered`, counting only things above (stuff is background, never an occluder)."""
        return self._walk[4]

    def object_crops(self, indices: np.ndarray, height: int, width: int):
        """Tight crops of objects ``indices`` (all of one image) as one
        :class:`qa.engine._masks.ObjectCrops`: panoptic segments cut from the id map, others from their
        RLEs."""
        from qa.engine._masks import rle_crops, segment_crops

        objs = [self.objects[k] for k in indices]
        ids = [o.segment_id for o in objs]
        if objs and all(o.kind == "segment" for o in objs) and len(set(ids)) == len(ids):
            return segment_crops(self.id_map(objs[0].image), [int(i) for i in ids])
        return rle_crops([self.rle(k) for k in indices], height, width)

    def crop(self, i: int) -> np.ndarray:
        """Object ``i``'s uint8 mask inside its own :attr:`mask_bbox` (a read-only view into its image's
        :meth:`image_crops`)."""
        crop = self.image_crops(self.image[i]).crop(int(self._slot[i]))[0]
        crop.flags.writeable = False
        return crop

    def window(self, i: int, window: tuple[int, int, int, int]) -> np.ndarray:
        """Object ``i``'s mask inside ``window`` (x0, y0, x1, y1) of its image."""
        x0, y0 = (int(v) for v in self.mask_bbox[i][:2])
        return paste(self.crop(i), (x0, y0), window)

    def or_into(self, i: int, out: np.ndarray, window: tuple[int, int, int, int]) -> None:
        """Add object ``i``'s mask to ``out``, a uint8 array covering ``window`` (x0, y0, x1, y1), in
        place (no array of the window's size is made, unlike :meth:`window`)."""
        _or_crop(self.image_crops(self.image[i]), int(self._slot[i]), out, window)

    # pairs --------------------------------------------------------------------------------------------
    @cached_property
    def by_image(self) -> dict[str, np.ndarray]:
        """Object indices per image, in export order."""
        order: dict[str, list[int]] = {}
        for k, key in enumerate(self.image):
            order.setdefault(key, []).append(k)
        return {key: np.asarray(v, dtype=np.int64) for key, v in order.items()}

    def above(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Whether object ``j`` is drawn above object ``i`` (element-wise).

        A higher z_order is above; when z_order is equal or missing on either side, the object later
        in the export is above (the drawing order of CVAT and LabelMe).
        """
        zi, zj = self.z[i], self.z[j]
        by_z = ~np.isnan(zi) & ~np.isnan(zj) & (zi != zj)
        return np.where(by_z, zj > zi, j > i)


def _overlapping_pairs(crops) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(a, b, inter)``: the pairs of crops (``a < b``, sorted by ``a`` then ``b``) sharing ``inter > 0``
    pixels, from the pairs whose bboxes meet.

    Examples
    --------
    >>> from qa.engine._masks import mask_to_rle, rle_crops
    >>> m = [np.zeros((6, 6), np.uint8) for _ in range(3)]
    >>> m[0][0:3, 0:3] = 1; m[1][2:5, 2:5] = 1; m[2][3:6, 0:2] = 1  # 0 and 1 share a pixel; 2 meets 0's box only
    >>> [v.tolist() for v in _overlapping_pairs(rle_crops([mask_to_rle(x) for x in m], 6, 6))]
    [[0], [1], [1]]
    """
    from qa.engine._kernels_iou import _box_pairs, _pair_intersections

    a, b = _box_pairs(crops.boxes)
    inter = _pair_intersections(crops.buf, crops.starts, crops.boxes, a, b)
    keep = inter > 0
    a, b, inter = a[keep], b[keep], inter[keep]
    order = np.lexsort((b, a))
    return a[order], b[order], inter[order]


def _same_id_pairs(ids: np.ndarray, areas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(a, b, inter)`` for panoptic segments of one id map: two segments share pixels only when they
    are listed under one id (then all of them, ``areas[a]``); no pixel is read.

    Examples
    --------
    >>> [v.tolist() for v in _same_id_pairs(np.array([5, 7, 5, 5]), np.array([4, 9, 4, 4]))]
    [[0, 0, 2], [2, 3, 3], [4, 4, 4]]
    """
    order = np.argsort(ids, kind="stable")
    ranked = ids[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ends = np.r_[starts[1:], len(ranked)]
    a, b = [], []
    for s, e in zip(starts, ends):
        if e - s > 1:
            members = np.sort(order[s:e])
            first, second = np.triu_indices(len(members), k=1)
            a.append(members[first])
            b.append(members[second])
    if not a:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    a, b = np.concatenate(a), np.concatenate(b)
    inter = areas[a].astype(np.int64)
    keep = inter > 0
    a, b, inter = a[keep], b[keep], inter[keep]
    order = np.lexsort((b, a))
    return a[order], b[order], inter[order]


def _or_crop(crops, k: int, out: np.ndarray, window: tuple[int, int, int, int]) -> None:
    """Add crop ``k`` of ``crops`` to ``out`` (a uint8 array covering ``window``), where they meet."""
    x0, y0, x1, y1 = window
    ox, oy, ex, ey = (int(v) for v in crops.boxes[k])
    ax0, ay0, ax1, ay1 = max(x0, ox), max(y0, oy), min(x1, ex), min(y1, ey)
    if ax1 <= ax0 or ay1 <= ay0:
        return
    crop, _ = crops.crop(k)
    out[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0] |= crop[ay0 - oy:ay1 - oy, ax0 - ox:ax1 - ox]


# --- all annotators -----------------------------------------------------------------------------------

class BatchContext:
    """Every annotator's export, for rules that compare objects across annotators.

    ``objects`` lists every object of every annotator (annotators in batch order); ``owner[g]`` and
    ``local[g]`` give the export context and the index inside it of global object ``g``.
    """

    def __init__(self, batch: Batch, contexts: dict[str, ExportContext], *, intersections: dict | None = None):
        self.batch = batch
        self.contexts = contexts
        self.intersections = intersections or {}
        """``{(image, a, b): (intersections, areas_a, areas_b)}`` of all objects of two annotators on an
        image (in their contexts' order), already counted; :meth:`matches` reads them instead of the
        crops."""
        self.objects: list[Object] = []
        owner, local = [], []
        self.offset: dict[str, int] = {}
        for name in batch.annotators:
            ctx = contexts[name]
            self.offset[name] = len(self.objects)
            self.objects.extend(ctx.objects)
            owner.extend([name] * ctx.n)
            local.extend(range(ctx.n))
        self.owner = np.array(owner, dtype=object)
        self.local = np.array(local, dtype=np.int64)
        self.n = len(self.objects)
        self.category = np.array([o.category for o in self.objects], dtype=object)
        self._matches: dict[tuple, np.ndarray] = {}

    def attribute(self, name: str) -> np.ndarray:
        """A per-object array gathered from the export contexts (``"z"``, ``"occluded"``, ...)."""
        parts = [getattr(self.contexts[a], name) for a in self.batch.annotators]
        return np.concatenate(parts) if parts else np.zeros(0)

    def matches(self, *, iou_threshold: float = 0.5, where: np.ndarray | None = None) -> np.ndarray:
        """Objects matched across annotators: rows ``(g_a, g_b, iou)`` of global indices, one per
        matched pair of each annotator pair in each image (one-to-one within a pair of annotators).

        ``where`` restricts matching to the objects where it is true (for example those that carry
        an occluded flag). The matching is the comparison's (:func:`qa.engine.match.match_objects`):
        label-agnostic, on mask IoU, the largest total IoU among pairs at or above ``iou_threshold``,
        crowd regions never matched.
        """
        mask = np.ones(self.n, bool) if where is None else np.asarray(where, bool)
        key = (iou_threshold, mask.tobytes())
        if key not in self._matches:
            self._matches[key] = self._match(iou_threshold, mask)
        return self._matches[key]

    def _match(self, iou_threshold: float, where: np.ndarray) -> np.ndarray:
        from itertools import combinations

        from qa.engine._kernels_iou import _intersection_counts
        from qa.engine.match import MATCHED, match_objects

        rows = []
        names = self.batch.annotators
        for image, holders in self.batch.coverage.items():
            local = {}
            for name in holders:
                ctx = self.contexts[name]
                idx = ctx.by_image.get(image, np.zeros(0, np.int64))
                local[name] = idx[where[self.offset[name] + idx]]
            present = [n for n in names if n in holders and len(local[n])]
            # each annotator's crops of the image (the export context's, shared with its other rules),
            # narrowed to the objects to match: the kernel reads a crop from its start and bbox only
            crops: dict = {}

            def narrowed(name, image=image, local=local, crops=crops):
                if name not in crops:
                    ctx = self.contexts[name]
                    image_crops, slot = ctx.image_crops(image), ctx._slot[local[name]]
                    crops[name] = (image_crops.buf, image_crops.starts[slot], image_crops.boxes[slot],
                                   image_crops.areas[slot])
                return crops[name]

            for a, b in combinations(present, 2):
                ca, cb = self.contexts[a], self.contexts[b]
                ia, ib = local[a], local[b]
                counted = self._counted(image, a, b, ca._slot[ia], cb._slot[ib])
                if counted is not None:
                    inter, areas_a, areas_b = counted
                else:
                    buf_a, starts_a, boxes_a, areas_a = narrowed(a)
                    buf_b, starts_b, boxes_b, areas_b = narrowed(b)
                    inter = _intersection_counts(buf_a, starts_a, boxes_a, buf_b, starts_b, boxes_b)
                # categories only tell label disagreements and crowd cover apart; matching ignores them
                m = match_objects(inter, areas_a, areas_b, categories_a=np.zeros(len(ia), np.int64),
                                  categories_b=np.zeros(len(ib), np.int64), crowd_a=ca.iscrowd[ia],
                                  crowd_b=cb.iscrowd[ib], iou_threshold=iou_threshold)
                for r in np.flatnonzero(m.status == MATCHED):
                    rows.append((self.offset[a] + ia[m.index_a[r]], self.offset[b] + ib[m.index_b[r]], m.iou[r]))
        if not rows:
            return np.zeros((0, 3))
        return np.asarray(rows, dtype=np.float64)

    def _counted(self, image, a, b, slot_a, slot_b):
        """The already counted intersections and areas of objects ``slot_a`` of ``a`` and ``slot_b`` of
        ``b`` on ``image`` (their positions among the image's objects), or None."""
        if (image, a, b) in self.intersections:
            inter, area_a, area_b = self.intersections[(image, a, b)]
        elif (image, b, a) in self.intersections:
            inter, area_b, area_a = self.intersections[(image, b, a)]
            inter = inter.T
        else:
            return None
        return inter[np.ix_(slot_a, slot_b)], area_a[slot_a], area_b[slot_b]

    def global_index(self, annotator: str, local: int) -> int:
        return self.offset[annotator] + local
