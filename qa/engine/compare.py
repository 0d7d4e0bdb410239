"""Compare every pair of annotators on every image they both cover, object by object.

:func:`compare_batch` is the engine's entry point. For each image labelled by two or more annotators it
decodes each annotator's labels once (instance masks into bbox crops, panoptic PNGs into id maps), then for
every annotator pair ``a|b`` (names sorted):

1. counts the pixel intersection of every object of ``a`` with every object of ``b`` (from the crops; for
   two panoptic exports, from one pass over the two id maps, which also yields panoptic quality);
2. matches the objects one to one on IoU (:mod:`qa.engine.match`): matched pairs, label disagreements,
   missing (in ``a`` only), extra (in ``b`` only) and ignored (mostly inside a crowd region) objects;
3. computes the boundary metrics of every matched pair from the two objects' outlines, listed once per
   annotator and image (:func:`qa.engine.boundary.outline_pairs`, the numbers of
   :func:`qa.engine.boundary.boundary_pair`, when that module is present).

Images are spread over worker processes in chunks; results come back as compact column arrays, chunk by
chunk, so the working memory does not grow with the batch (only the result tables do).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from qa import metric_registry
from qa.engine import _pool
from qa.model import Batch, Limits

Progress = Callable[[str, int, int], None]

# --- result -------------------------------------------------------------------------------------------

class Comparison:
    """What :func:`compare_batch` produced.

    Attributes
    ----------
    object_pairs : pandas.DataFrame
        One row per matched pair, missing, extra or ignored object, per image and annotator pair. With a
        spill folder, read from its Parquet parts at each access (keep the DataFrame while you use it).
    image_pairs : pandas.DataFrame
        One row per image and annotator pair (read like ``object_pairs`` when spilled).
    scores : pandas.DataFrame
        The long scores table (``scope, key, metric, value, n``) with ``annotator_pair`` and ``batch``
        rows.
    settings : dict
        The tolerances, IoU threshold, whether boundary metrics were computed and the spill folder.
    category_image_iou : pandas.DataFrame or None
        Per category, over every image pair where either annotator drew it: ``category``, ``value`` (the
        mean of the category's image-level IoU) and ``n`` (image pairs); the analytics' ``category``
        figure ``image_iou_mean``.
    spill_dir : pathlib.Path or None
        Where the tables' Parquet parts are (``object_pairs/part-*.parquet``, ``image_pairs/...``), when
        :func:`compare_batch` was given ``spill_dir``.

    See ``docs/engine.md`` for every column.
    """

    __slots__ = ("_object_pairs", "_image_pairs", "scores", "settings", "_spill", "category_image_iou")

    def __init__(self, object_pairs=None, image_pairs=None, scores=None, settings=None, *, spill=None,
                 category_image_iou=None):
        self._object_pairs = object_pairs
        self._image_pairs = image_pairs
        self.scores = scores
        self.settings = dict(settings or {})
        self._spill = spill
        self.category_image_iou = category_image_iou

    @property
    def object_pairs(self):
        if self._object_pairs is None and self._spill is not None:
            return self._spill.read("object_pairs")
        return self._object_pairs

    @object_pairs.setter
    def object_pairs(self, value):
        self._object_pairs = value

    @property
    def image_pairs(self):
        if self._image_pairs is None and self._spill is not None:
            return self._spill.read("image_pairs")
        return self._image_pairs

    @image_pairs.setter
    def image_pairs(self, value):
        self._image_pairs = value

    @property
    def spill_dir(self):
        return None if self._spill is None else self._spill.folder

    def pair_table(self) -> list[dict]:
        """One plain dict per annotator pair with its ``annotator_pair`` scores (for text and JSON)."""
        df = self.scores
        rows = df[df["scope"] == "annotator_pair"]
        out = []
        for key, group in rows.groupby("key", sort=True):
            entry = {"pair": key}
            for metric, value in zip(group["metric"], group["value"]):
                entry[metric] = None if value != value else (
                    int(value) if metric_registry.is_count(metric) else float(value))
            out.append(entry)
        return out

    def write_parquet(self, folder, *, staged=None) -> list:
        """Write ``object_pairs.parquet``, ``image_pairs.parquet`` and ``scores.parquet`` into ``folder``
        (created when missing), or stage them there (:class:`qa._commit.StagedFiles`); return their paths."""
        from pathlib import Path

        folder = Path(folder)
        if staged is None:
            folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in ("object_pairs", "image_pairs", "scores"):
            path = folder / f"{name}.parquet"
            frame = getattr(self, name)
            if staged is None:
                frame.to_parquet(path, engine="pyarrow", index=False)
            else:
                staged.write(path, lambda tmp, frame=frame: frame.to_parquet(tmp, engine="pyarrow", index=False))
            paths.append(path)
        return paths


def category_list(batch: Batch) -> list[str]:
    """The category names the comparison codes ``0 .. n - 1``: the batch's categories in order, then any
    other category an object carries, in the order first met."""
    categories = list(batch.categories)
    seen = set(categories)
    for export in batch.exports.values():
        for obj in export.objects:
            if obj.category not in seen:
                seen.add(obj.category)
                categories.append(obj.category)
    return categories


# --- tasks (parent side) ------------------------------------------------------------------------------

@dataclass(slots=True)
class _Entry:
    """One annotator's labels on one image, as sent to a worker (plain data only)."""

    annotator: str
    png: str | None          # panoptic id map, or None for instance exports
    indices: np.ndarray      # object positions in the export's object list
    categories: np.ndarray   # category codes
    crowd: np.ndarray        # iscrowd
    geometry: list           # ("polygon", parts) / ("rle", dict) / ("segment", id)
    void: np.ndarray | None = None  # void regions of label maps (no category's pixels); None: none


@dataclass(slots=True)
class _Task:
    position: int
    image: str
    height: int
    width: int
    entries: list[_Entry]


@dataclass(slots=True)
class _Config:
    pairs: dict              # (a, b) -> pair code
    tolerances: tuple
    iou_threshold: float
    max_pixels: int
    boundary: bool
    plan: object = None      # PairPlan or None: every pair of the image's annotators


@dataclass(frozen=True, slots=True)
class PairPlan:
    """Which annotator pairs are compared on an image, and which side of each is the reference.

    Attributes
    ----------
    reference_of : dict
        ``{annotator: its reference}``: the export each annotator is scored against (one gold export for
        everyone, or each annotator's own consensus of the others).
    pairs : {"reference", "all"}
        ``"reference"``: on an image a reference covers, only the pairs of an annotator and its reference;
        on an image no reference covers, every pair of its annotators (honeypots: the reference labels some
        images only). ``"all"``: every pair on every image, the reference pairs marked as such.

    Examples
    --------
    >>> plan = PairPlan({"alice": "gold", "bob": "gold"})
    >>> plan.image_pairs(["alice", "bob", "gold"]), plan.image_pairs(["alice", "bob"])
    ([('alice', 'gold'), ('bob', 'gold')], [('alice', 'bob')])
    >>> plan.reference_side("alice", "gold"), plan.reference_side("alice", "bob")
    ('b', None)
    """

    reference_of: dict
    pairs: str = "reference"

    @property
    def references(self) -> frozenset:
        return frozenset(self.reference_of.values())

    def reference_side(self, a: str, b: str) -> str | None:
        """``"a"`` or ``"b"`` when that side of the pair is the other's reference, else None."""
        if self.reference_of.get(b) == a:
            return "a"
        if self.reference_of.get(a) == b:
            return "b"
        return None

    def image_pairs(self, names) -> list[tuple[str, str]]:
        """The pairs compared on an image its annotators ``names`` cover (sorted, ``a < b``)."""
        every = list(itertools.combinations(sorted(names), 2))
        if self.pairs == "all":
            return every
        scored = [p for p in every if self.reference_side(*p) is not None]
        if scored or not (set(names) & self.references):
            return scored or [p for p in every if not (set(p) & self.references)]
        return []


class _Positions:
    """Where each image's objects are in one export: ``positions.get(image)`` is an int64 array of
    object positions in export order (empty when the image has none).

    One sorted array of positions and an offset pair per image: 8 bytes per object, where lists of
    Python ints would take about 36.
    """

    __slots__ = ("order", "spans")

    def __init__(self, objects):
        keys: dict[str, int] = {}
        image_of = np.fromiter((keys.setdefault(o.image, len(keys)) for o in objects), dtype=np.int64,
                               count=len(objects))
        self.order = np.argsort(image_of, kind="stable")
        bounds = np.searchsorted(image_of[self.order], np.arange(len(keys) + 1))
        self.spans = {key: (int(bounds[code]), int(bounds[code + 1])) for key, code in keys.items()}

    def get(self, image: str) -> np.ndarray:
        start, stop = self.spans.get(image, (0, 0))
        return self.order[start:stop]


def _object_positions(batch: Batch) -> dict[str, _Positions]:
    """``{annotator: positions}`` of each export's objects by image (:class:`_Positions`)."""
    return {name: _Positions(export.objects) for name, export in batch.exports.items()}


def _tasks(batch: Batch, codes: dict[str, int]) -> Iterator[_Task]:
    positions = _object_positions(batch)
    position = 0
    for key, image in batch.images.items():
        covering = sorted(batch.coverage.get(key, ()))
        entries = []
        for name in covering:
            export = batch.exports[name]
            idx = positions[name].get(key)
            objs = [export.objects[k] for k in idx.tolist()]
            panoptic = export.format == "coco_panoptic" or any(o.kind == "segment" for o in objs)
            png = export.id_maps.get(key)
            if panoptic and png is None:
                continue  # the id map could not be read at load (a finding says why): not comparable
            geometry = []
            for o in objs:
                if o.kind == "polygon":
                    geometry.append(("polygon", o.polygons))
                elif o.kind == "rle":
                    geometry.append(("rle", o.rle))
                else:
                    geometry.append(("segment", int(o.segment_id)))
            entries.append(_Entry(
                annotator=name, png=str(png) if panoptic else None,
                indices=idx,
                categories=np.asarray([codes[o.category] for o in objs], dtype=np.int64),
                crowd=np.asarray([bool(o.iscrowd) for o in objs], dtype=bool),
                geometry=geometry,
                void=(np.asarray([bool(o.attributes.get("void")) for o in objs], dtype=bool)
                      if any(o.attributes.get("void") for o in objs) else None),
            ))
        if len(entries) >= 2:
            yield _Task(position, key, image.height, image.width, entries)
        position += 1


# --- work on one image (worker side) ------------------------------------------------------------------

class _Decoded:
    """One annotator's labels on one image, decoded once."""

    def __init__(self, entry: _Entry, height: int, width: int, max_pixels: int):
        from qa.engine._masks import polygons_to_rle, rle_crops

        self.entry = entry
        self.shape = (height, width)
        self.id_map = None
        self.seg_ids = None
        self._crops = None
        self._boxes = None
        self._outlines = None
        self._category_runs = None
        if entry.png is not None:
            from pathlib import Path

            from qa.formats.coco_panoptic import read_id_map

            self.id_map = read_id_map(Path(entry.png), Limits(max_pixels=max_pixels))
            self.seg_ids = np.asarray([g[1] for g in entry.geometry], dtype=np.int64)
        else:
            rles = [polygons_to_rle(g[1], height, width) if g[0] == "polygon" else g[1] for g in entry.geometry]
            self._crops = rle_crops(rles, height, width)

    @property
    def panoptic(self) -> bool:
        return self.id_map is not None

    def crops(self):
        if self._crops is None:
            from qa.engine._masks import segment_crops

            self._crops = segment_crops(self.id_map, self.seg_ids)
        return self._crops

    def boxes(self) -> np.ndarray:
        if self._crops is not None:
            return self._crops.boxes
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

            if self.id_map is not None:
                self._outlines = id_map_outlines(self.id_map, self.seg_ids)
            else:
                self._outlines = object_outlines(self._crops)
        return self._outlines

    def category_runs(self):
        """Each category's pixels (the union of its objects, crowd regions included, void regions of label
        maps left out) as row runs, made once: ``(codes, ptr, y, x0, x1)`` (:func:`category_union_runs` of
        the outlines' runs)."""
        if self._category_runs is None:
            categories = self.entry.categories
            if self.entry.void is not None:
                categories = np.where(self.entry.void, -1, categories)
            self._category_runs = category_union_runs(self.outlines().runs, categories)
        return self._category_runs


def category_union_runs(runs, categories):
    """The union of each category's objects as row runs.

    Parameters
    ----------
    runs : (ptr, y, x0, x1)
        Row runs ``[x0, x1)`` of each object (:attr:`qa.engine.boundary.Outlines.runs`): object ``k``'s
        runs are ``[ptr[k], ptr[k + 1])``, sorted by row then column; objects may overlap.
    categories : (n,) int64
        Each object's category code; objects with a negative code are left out.

    Returns
    -------
    codes : (m,) int64
        The categories present (non-negative codes), sorted.
    ptr : (m + 1,) int64
    y, x0, x1 : (runs,) int32
        Category ``codes[i]``'s runs ``[ptr[i], ptr[i + 1])``: overlapping or touching runs of its objects
        merged, sorted by row then column (so their lengths add up to its pixel count).

    Notes
    -----
    Vectorised over the runs (one sort, one running maximum): the runs of each (category, row) group are
    shifted by ``group x (width + 1)`` so that a single running maximum of the run ends merges within
    groups and never across them.

    Examples
    --------
    >>> ptr = np.array([0, 2, 3, 4]); y = np.array([0, 1, 1, 0], np.int32)
    >>> x0 = np.array([0, 0, 2, 5], np.int32); x1 = np.array([3, 2, 4, 6], np.int32)
    >>> codes, p, yy, a, b = category_union_runs((ptr, y, x0, x1), np.array([7, 7, 3]))
    >>> codes.tolist(), p.tolist(), yy.tolist(), a.tolist(), b.tolist()
    ([3, 7], [0, 1, 3], [0, 0, 1], [5, 0, 0], [6, 3, 4])
    """
    ptr, y, x0, x1 = runs
    categories = np.asarray(categories, dtype=np.int64)
    codes = np.unique(categories[categories >= 0])
    counts = np.diff(np.asarray(ptr, dtype=np.int64))
    per_run = np.repeat(categories, counts)
    kept = per_run >= 0
    cat = np.searchsorted(codes, per_run[kept])
    y, x0, x1 = (np.asarray(v, dtype=np.int64)[kept] for v in (y, x0, x1))
    if len(y) == 0:
        empty = np.zeros(0, np.int32)
        return codes, np.zeros(len(codes) + 1, np.int64), empty, empty.copy(), empty.copy()
    order = np.lexsort((x0, y, cat))
    cat, y, x0, x1 = cat[order], y[order], x0[order], x1[order]
    new_group = np.ones(len(y), bool)
    new_group[1:] = (cat[1:] != cat[:-1]) | (y[1:] != y[:-1])
    shift = (np.cumsum(new_group) - 1) * (int(x1.max()) + 1)
    ends = np.maximum.accumulate(x1 + shift)
    start = np.ones(len(y), bool)
    start[1:] = x0[1:] + shift[1:] > ends[:-1]
    first = np.flatnonzero(start)
    last = np.append(first[1:], len(y)) - 1
    merged_cat = cat[first]
    ptr_out = np.zeros(len(codes) + 1, np.int64)
    np.add.at(ptr_out, merged_cat + 1, 1)
    return (codes, np.cumsum(ptr_out), y[first].astype(np.int32), x0[first].astype(np.int32),
            (ends[last] - shift[last]).astype(np.int32))


def _score_name(name: str) -> str | None:
    """The scores-table name of the mean of a boundary metric of ``object_pairs`` (units in the name, as the
    metric registry declares it: ``signed_offset`` -> ``signed_offset_px_mean``), or None for a column
    that is not averaged (the counts ``boundary_pair`` also returns: ``*_n``, matched boundary pixels,
    band areas, surface lengths) and for ``iou`` (``mask_iou_mean``, the engine's own figure)."""
    return None if name == "iou" else metric_registry.score_for_column(name)


def _boundary_function():
    """``outline_pairs(outlines_a, outlines_b, index_a, index_b, *, tolerances) -> list of dict`` (every
    boundary metric of each pair of objects, :func:`qa.engine.boundary.outline_pairs`), or None when
    that module is absent."""
    try:
        from qa.engine.boundary import outline_pairs
    except ImportError:
        return None
    return outline_pairs


def _panoptic_pair(a: _Decoded, b: _Decoded, reference: str | None = None):
    """Intersections, areas and PQ counts of two panoptic annotators from one pass over their id maps.

    With ``reference`` (``"a"`` or ``"b"``) the PQ counts are panopticapi's, that side as the ground truth
    (``form="reference"``); otherwise the symmetric form."""
    from qa.engine.panoptic import Segments, _positions, pair_area_counts, panoptic_counts

    pairs = pair_area_counts(a.id_map, b.id_map)
    ids_a, ids_b, cnt = pairs
    pa = _positions(ids_a, a.seg_ids)
    pb = _positions(ids_b, b.seg_ids)
    na, nb = len(a.seg_ids), len(b.seg_ids)
    area_a = np.zeros(na, np.int64)
    area_b = np.zeros(nb, np.int64)
    np.add.at(area_a, pa[pa >= 0], cnt[pa >= 0])
    np.add.at(area_b, pb[pb >= 0], cnt[pb >= 0])
    inter = np.zeros((na, nb), np.int64)
    both = (pa >= 0) & (pb >= 0)
    inter[pa[both], pb[both]] = cnt[both]
    seg_a = Segments(a.seg_ids, a.entry.categories, a.entry.crowd)
    seg_b = Segments(b.seg_ids, b.entry.categories, b.entry.crowd)
    if reference is None:
        counts = panoptic_counts(None, None, seg_a, seg_b, form="symmetric", pairs=pairs)
    else:
        # the reference first (panopticapi's ground truth); ids the other side does not list are void there, as
        # its loader's finding says (panopticapi would stop on them)
        ids_r, ids_o, seg_r, seg_o, pos_o = ((ids_a, ids_b, seg_a, seg_b, pb) if reference == "a"
                                             else (ids_b, ids_a, seg_b, seg_a, pa))
        counts = panoptic_counts(None, None, seg_r, seg_o, form="reference",
                                 pairs=(ids_r, np.where(pos_o >= 0, ids_o, 0), cnt))
    return inter, area_a, area_b, counts


def _image_iou(a: _Decoded, b: _Decoded, inter, area_a, area_b) -> tuple[np.ndarray, np.ndarray]:
    """Per category on one image: the IoU of the two annotators' pixels of the category (each side's
    objects of the category merged, crowd regions included), for every category either side has pixels
    of. Returns ``(category codes, IoU)``.

    Two panoptic id maps never overlap within a map, so the segments' intersections add up per category;
    otherwise each side's objects are merged into one run list per category first
    (:func:`category_union_runs`), as instance objects of one category may overlap.
    """
    if a.panoptic and b.panoptic:
        codes_a, ia = np.unique(a.entry.categories, return_inverse=True)
        codes_b, ib = np.unique(b.entry.categories, return_inverse=True)
        cat_inter = np.zeros((len(codes_a), len(codes_b)), np.int64)
        if inter.size:
            np.add.at(cat_inter, (np.repeat(ia, len(ib)), np.tile(ib, len(ia))), inter.reshape(-1))
        cat_a = np.bincount(ia, weights=area_a, minlength=len(codes_a)).astype(np.int64)
        cat_b = np.bincount(ib, weights=area_b, minlength=len(codes_b)).astype(np.int64)
    else:
        from qa.engine._kernels_iou import _run_intersections

        codes_a, *runs_a = a.category_runs()
        codes_b, *runs_b = b.category_runs()
        cat_inter, cat_a, cat_b = _run_intersections(*runs_a, *runs_b)
    codes = np.union1d(codes_a, codes_b)
    area = np.zeros(len(codes), np.float64)
    area[np.searchsorted(codes, codes_a)] += cat_a
    area[np.searchsorted(codes, codes_b)] += cat_b
    common = np.intersect1d(codes_a, codes_b)
    shared = np.zeros(len(codes), np.float64)
    shared[np.searchsorted(codes, common)] = cat_inter[np.searchsorted(codes_a, common),
                                                       np.searchsorted(codes_b, common)]
    union = area - shared
    keep = union > 0
    return codes[keep], shared[keep] / union[keep]


def _compare_pair(a: _Decoded, b: _Decoded, cfg: _Config, outline_pairs, reference: str | None = None) -> dict:
    from qa.engine._kernels_iou import _intersection_counts
    from qa.engine.match import EXTRA, IGNORED, MATCHED, MISSING, match_objects
    from qa.engine.panoptic import add_counts, pq_summary

    counts = None
    if a.panoptic and b.panoptic:
        inter, area_a, area_b, counts = _panoptic_pair(a, b, reference)
    elif outline_pairs is not None:  # the outlines are needed anyway: intersect their row runs
        from qa.engine._kernels_iou import _run_intersections

        inter, area_a, area_b = _run_intersections(*a.outlines().runs, *b.outlines().runs)
    else:
        ca, cb = a.crops(), b.crops()
        inter = _intersection_counts(ca.buf, ca.starts, ca.boxes, cb.buf, cb.starts, cb.boxes)
        area_a, area_b = ca.areas, cb.areas
    m = match_objects(inter, area_a, area_b, categories_a=a.entry.categories, categories_b=b.entry.categories,
                      crowd_a=a.entry.crowd, crowd_b=b.entry.crowd, iou_threshold=cfg.iou_threshold)
    rows = len(m)
    metrics: dict[str, np.ndarray] = {}
    matched_rows = np.flatnonzero(m.status == MATCHED)
    if outline_pairs is not None and len(matched_rows):
        pairs = outline_pairs(a.outlines(), b.outlines(), m.index_a[matched_rows], m.index_b[matched_rows],
                              tolerances=cfg.tolerances)
        for r, values in zip(matched_rows, pairs):
            for name, value in values.items():
                if name not in metrics:
                    metrics[name] = np.full(rows, np.nan)
                metrics[name][r] = value
    matched_iou = m.iou[matched_rows]
    image_codes, image_ious = (_image_iou(a, b, inter, area_a, area_b) if (a.panoptic and b.panoptic)
                               or outline_pairs is not None else (np.zeros(0, np.int64), np.zeros(0)))
    image_row = {
        "objects_a": int((~a.entry.crowd).sum()), "objects_b": int((~b.entry.crowd).sum()),
        "matched": len(matched_rows), "missing": m.count(MISSING), "extra": m.count(EXTRA),
        "ignored": m.count(IGNORED), "label_disagreements": int(m.label_disagreement.sum()),
        "mask_iou_mean": float(matched_iou.mean()) if len(matched_iou) else math.nan,
        "image_iou_mean": float(image_ious.mean()) if len(image_ious) else math.nan,
        "pq": math.nan, "sq": math.nan, "rq": math.nan,
    }
    for name, column in metrics.items():
        score = _score_name(name)
        if score is not None:
            values = column[matched_rows]
            values = values[~np.isnan(values)]
            image_row[score] = float(values.mean()) if len(values) else math.nan
    if counts is not None:
        summary = pq_summary(add_counts({}, counts))["all"]
        image_row.update(pq=summary["pq"], sq=summary["sq"], rq=summary["rq"])
    return {
        "rows": {
            "index_a": np.where(m.index_a >= 0, a.entry.indices[np.maximum(m.index_a, 0)], -1) if len(
                a.entry.indices) else m.index_a,
            "index_b": np.where(m.index_b >= 0, b.entry.indices[np.maximum(m.index_b, 0)], -1) if len(
                b.entry.indices) else m.index_b,
            "status": m.status, "iou": m.iou, "best_iou": m.best_iou, "intersection": m.intersection,
            "area_a": np.where(m.index_a >= 0, area_a[np.maximum(m.index_a, 0)], 0) if len(area_a) else
            np.zeros(rows, np.int64),
            "area_b": np.where(m.index_b >= 0, area_b[np.maximum(m.index_b, 0)], 0) if len(area_b) else
            np.zeros(rows, np.int64),
            "label_disagreement": m.label_disagreement, "crowd_share": m.crowd_share,
        },
        "metrics": metrics,
        "image": image_row,
        "pq": None if counts is None else (counts.categories, counts.tp, counts.fp, counts.fn, counts.iou_sum),
        "image_iou": (image_codes, image_ious),
    }


def _compare_image(task: _Task, cfg: _Config, outline_pairs) -> list[tuple[int, dict]]:
    decoded = {e.annotator: _Decoded(e, task.height, task.width, cfg.max_pixels) for e in task.entries}
    out = []
    plan = cfg.plan
    pairs = itertools.combinations(sorted(decoded), 2) if plan is None else plan.image_pairs(decoded)
    for a, b in pairs:
        side = None if plan is None else plan.reference_side(a, b)
        out.append((cfg.pairs[(a, b)], _compare_pair(decoded[a], decoded[b], cfg, outline_pairs, side)))
    return out


def _compare_chunk(tasks: list[_Task], cfg: _Config) -> dict:
    """Compare a chunk of images; return its results as column arrays (cheap to pickle and keep)."""
    outline_pairs = _boundary_function() if cfg.boundary else None
    obj: dict[str, list] = {}
    image_rows: list[dict] = []
    pq: list[tuple] = []  # per image and pair, summed by the parent in image order (not per chunk)
    image_iou: list[tuple] = []  # (pair code, category codes, IoUs) per image, summed by the parent in order
    metric_names: dict[str, None] = {}  # insertion-ordered: the same columns in every process
    results = []
    for task in tasks:
        for code, res in _compare_image(task, cfg, outline_pairs):
            results.append((task.position, code, res))
            metric_names.update(dict.fromkeys(res["metrics"]))
    for position, code, res in results:
        n = len(res["rows"]["status"])
        obj.setdefault("position", []).append(np.full(n, position, np.int64))
        obj.setdefault("pair", []).append(np.full(n, code, np.int64))
        for name, column in res["rows"].items():
            obj.setdefault(name, []).append(column)
        for name in metric_names:
            obj.setdefault(name, []).append(res["metrics"].get(name, np.full(n, np.nan)))
        image_rows.append(dict(res["image"], position=position, pair=code))
        if res["pq"] is not None:
            pq.append((code, *res["pq"]))
        cats, values = res["image_iou"]
        image_iou.append((code, cats, values))
    return {
        "images": len(tasks),
        "obj": {k: np.concatenate(v) if v else np.zeros(0) for k, v in obj.items()},
        "img": {k: np.asarray([r.get(k, math.nan) for r in image_rows])
                for k in dict.fromkeys(k for r in image_rows for k in r)},
        "pq": pq,
        "image_iou": image_iou,
    }


# --- driving the work ---------------------------------------------------------------------------------

def compare_batch(batch: Batch, *, tolerances=(1, 2, 4), iou_threshold: float = 0.5, workers: int | None = None,
                  progress: Progress | None = None, max_pixels: int | None = None, spill_dir=None,
                  plan: PairPlan | None = None, executor=None) -> Comparison:
    """Compare every pair of annotators on every image they both cover.

    Parameters
    ----------
    batch : Batch
        Aligned exports (:func:`qa.load`).
    tolerances : sequence of float, pixels, default (1, 2, 4)
        Boundary tolerances; each gives its own boundary metrics.
    iou_threshold : float, default 0.5
        Smallest mask IoU of a matched pair (inclusive).
    workers : int, optional
        Worker processes; default one per available CPU (batches under 8 images: none). ``1`` runs
        in this process.
    executor : optional
        The run's executor (:func:`qa.engine._executors.open_executor`); when given, ``workers`` is not used.
    progress : callable, optional
        ``progress("compare", images_done, images_total)``.
    max_pixels : int, optional
        Largest panoptic PNG decoded (default: the model's limit).
    spill_dir : str or path, optional
        Write ``object_pairs`` and ``image_pairs`` to this folder as Parquet parts while the batch is
        compared (``object_pairs/part-00000.parquet``, ...; parts left there by an earlier run are
        deleted) instead of holding them in memory; ``Comparison.object_pairs`` and ``image_pairs``
        then read the parts back when accessed. For batches whose object table does not fit in memory.
    plan : PairPlan, optional
        Which pairs are compared on each image and which side of a pair is the reference (a gold export or
        a consensus): see :class:`PairPlan`. Default: every pair on every image, no reference.

    Returns
    -------
    Comparison
        ``object_pairs``, ``image_pairs`` and ``scores`` DataFrames (see ``docs/engine.md``). Spilled or
        not, the tables and scores hold the same values.

    Raises
    ------
    ConfigError
        On a tolerance that is not positive or an IoU threshold outside (0, 1].
    InputError
        When a panoptic PNG can no longer be read.

    Notes
    -----
    Annotator pairs are named ``"a|b"`` with the names sorted; ``missing`` objects are ``a``'s with no
    match in ``b``, ``extra`` objects ``b``'s with no match in ``a``. Panoptic quality uses the symmetric
    form of :mod:`qa.engine.panoptic` and needs both annotators of the pair to export COCO panoptic; in a
    pair with a reference (``plan``) it is panopticapi's ``pq_compute`` with the reference as the ground
    truth (``form="reference"``, equal to ``qa.metrics.panoptic_quality(..., compat="panopticapi")``).
    With a plan, only the pairs it compares on some image are listed (``settings["reference_pairs"]``
    maps each pair with a reference to its reference side).
    Boundary metrics come from :func:`qa.engine.boundary.outline_pairs` (the numbers of
    :func:`qa.engine.boundary.boundary_pair`) when that module is installed;
    otherwise their columns are absent.

    Examples
    --------
    >>> comparison = compare_batch(qa.load("a=a.json", "b=b.json"), workers=1)  # doctest: +SKIP
    >>> comparison.scores.query("scope == 'annotator_pair'")  # doctest: +SKIP
    """
    from qa.errors import ConfigError

    tolerances = tuple(float(t) if not float(t).is_integer() else int(t) for t in tolerances)
    if not tolerances or any(not t > 0 for t in tolerances):
        raise ConfigError(f"tolerances must be positive pixel distances, got {tolerances}")
    if not 0 < iou_threshold <= 1:
        raise ConfigError(f"iou_threshold must lie in (0, 1], got {iou_threshold}")
    names = sorted(batch.annotators)
    pair_list = list(itertools.combinations(names, 2))
    if plan is not None:  # only the pairs the plan compares somewhere
        planned = {p for key in batch.images for p in plan.image_pairs(batch.coverage.get(key, ()))}
        pair_list = [p for p in pair_list if p in planned]
    categories = category_list(batch)
    codes = {c: k for k, c in enumerate(categories)}
    boundary = _boundary_function() is not None
    cfg = _Config(pairs={p: k for k, p in enumerate(pair_list)}, tolerances=tolerances,
                  iou_threshold=float(iou_threshold), max_pixels=max_pixels or Limits().max_pixels,
                  boundary=boundary, plan=plan)
    total = sum(1 for key in batch.images if len(batch.coverage.get(key, ())) >= 2)
    size, workers = _pool.plan(total, workers, executor)
    done = 0
    if progress:
        progress("compare", 0, total)
    tables = _Tables(batch, pair_list, categories, cfg, spill_dir=spill_dir)
    for part in _pool.run_chunks(_compare_chunk, _pool.chunks(_tasks(batch, codes), size), cfg, workers,
                                 executor):
        done += part["images"]
        tables.add(part)  # compacted (or written out) at once; the chunk's arrays are dropped
        if progress:
            progress("compare", done, total)
    comparison = tables.finish()
    if plan is not None:
        comparison.settings["pairs"] = plan.pairs
        comparison.settings["reference_pairs"] = {f"{a}|{b}": side for a, b in pair_list
                                                  if (side := plan.reference_side(a, b)) is not None}
        sided = len(comparison.settings["reference_pairs"])
        comparison.settings["pq_form"] = ("reference" if sided == len(pair_list) and sided else
                                          "mixed" if sided else "symmetric")
    return comparison


# --- tables (parent side) -----------------------------------------------------------------------------

_OBJECT_COLUMNS = ("position", "pair", "index_a", "index_b", "status", "iou", "best_iou", "intersection",
                   "area_a", "area_b", "label_disagreement", "crowd_share")
_IMAGE_COUNTS = ("objects_a", "objects_b", "matched", "missing", "extra", "ignored", "label_disagreements")
_SPILL_ROWS = 50_000
"""Object rows gathered before a spilled part is written."""
_COUNT_COLUMN = re.compile(r"(_n|^biou_intersection|^biou_union|_matched_.*)$")
"""Boundary columns that hold pixel counts (stored as float32 when every image has fewer than 2^24
pixels, which holds them exactly; NaN where the row is not a matched pair)."""


def _code_dtype(n: int):
    """The smallest signed integer type for category codes ``-1 .. n - 1`` (pandas' own choice)."""
    for dtype in (np.int8, np.int16, np.int32):
        if n < np.iinfo(dtype).max:
            return dtype
    return np.int64


def _categorical(codes: np.ndarray, labels: list):
    import pandas as pd

    return pd.Categorical.from_codes(codes, categories=pd.Index(labels, dtype=object), validate=False)


def _nullable_int(values: np.ndarray, valid: np.ndarray):
    """A nullable integer array from values (any content where not valid) and the valid flags."""
    import pandas as pd

    values = np.where(valid, values, 0).astype(values.dtype, copy=False)
    cls = pd.arrays.IntegerArray
    return cls(values, ~np.asarray(valid, dtype=bool))


class _Meta:
    """Per annotator, what each object row points at: category, file and source codes (one lookup table
    per annotator, shared by both sides of every pair).

    Source ids are coded row by row instead (:meth:`source_id_codes`), in a table of the ids seen since
    :meth:`forget_source_ids`: they are usually distinct for every object, so a batch-wide table of them
    would grow with the batch even when the result tables are spilled to disk part by part.
    """

    def __init__(self, batch: Batch, categories: list[str]):
        self.batch = batch
        self.category_codes = {c: k for k, c in enumerate(categories)}
        self.files: dict[str, int] = {}
        self._tables: dict[str, tuple] = {}
        self.source_ids: dict[str, int] = {}

    def table(self, annotator: str) -> tuple:
        """``(category codes, file codes, source indices)`` of the annotator's objects."""
        if annotator not in self._tables:
            objects = self.batch.exports[annotator].objects
            n = len(objects)
            # 16 bytes per object of the batch: with spilled tables, the only memory of the engine that grows
            # (an export file holds fewer than 2^31 objects)
            cat = np.empty(n, np.int32)
            file_code = np.empty(n, np.int32)
            src_index = np.full(n, -1, np.int32)
            for k, o in enumerate(objects):
                cat[k] = self.category_codes[o.category]
                file_code[k] = self.files.setdefault(o.source.file, len(self.files))
                if o.source.index is not None:
                    src_index[k] = o.source.index
            self._tables[annotator] = (cat, file_code, src_index)
        return self._tables[annotator]

    def source_id_values(self, annotator: str, index: np.ndarray) -> list:
        """The source ids of the annotator's objects ``index`` (None where an object has none)."""
        objects = self.batch.exports[annotator].objects
        return [objects[k].source.id for k in index.tolist()]

    def source_id_codes(self, values) -> np.ndarray:
        """Codes in :attr:`source_ids` of source ids (as text; -1 for None), new ids numbered in the
        order given."""
        ids = self.source_ids
        return np.fromiter((-1 if sid is None else ids.setdefault(str(sid), len(ids)) for sid in values),
                           dtype=np.int32, count=len(values))

    def forget_source_ids(self) -> None:
        """Start a new table of source ids (the rows coded so far are written out)."""
        self.source_ids = {}


class _Tables:
    """Builds ``object_pairs`` and ``image_pairs`` from the chunks' column arrays as they arrive.

    Each chunk is turned at once into compact columns (category codes, int32 where exact, float32 pixel
    counts where exact), appended to the tables' block-backed columns (:class:`_Column`) and dropped.
    In memory, every column is joined once at the end, its blocks released as they are copied, so the
    tables exist in one copy (plus one column). With ``spill_dir``, parts of about ``_SPILL_ROWS`` rows
    are written to Parquet and released.
    """

    def __init__(self, batch: Batch, pair_list, categories: list[str], cfg: _Config, spill_dir=None):
        from qa.engine.match import STATUS

        self.batch = batch
        self.pair_list = pair_list
        self.categories = categories
        self.cfg = cfg
        self.images = list(batch.images)
        self.names = sorted({x for p in pair_list for x in p})
        self.pair_keys = [f"{a}|{b}" for a, b in pair_list]
        self.code_a = np.array([self.names.index(a) for a, _ in pair_list] or [0], dtype=np.int64)
        self.code_b = np.array([self.names.index(b) for _, b in pair_list] or [0], dtype=np.int64)
        self.status = list(STATUS)
        self.meta = _Meta(batch, categories)
        for name in sorted(batch.exports):  # every code table made up front: categories stable over parts
            self.meta.table(name)
        pixels = max((i.height * i.width for i in batch.images.values()), default=0)
        self.int_type = np.int32 if pixels < 2 ** 31 else np.int64
        self.count_type = np.float32 if pixels < 2 ** 24 else np.float64
        self.max_objects = max((len(e.objects) for e in batch.exports.values()), default=0)
        self.index_type = np.int32 if self.max_objects < 2 ** 31 else np.int64
        self.spill = None if spill_dir is None else _Spill(spill_dir)
        self.boundary_names: dict[str, None] = {}
        if self.spill is not None and cfg.boundary:  # fixed columns: every part has the same schema
            self.boundary_names.update(dict.fromkeys(_boundary_names(cfg.tolerances)))
        self.obj = _Table()
        self.img = _Table()
        self.buffered = 0
        self.pq: dict[int, dict] = {}
        self.image_iou: dict[int, dict] = {}  # pair code -> {category code: [sum, n]}
        self.image_iou_pairs = np.zeros((len(pair_list), 2), np.float64)  # per pair: sum, images with a value
        self.images_per_pair = np.zeros(len(pair_list), np.int64)

    # -- per chunk --

    def add(self, part: dict) -> None:
        obj, img = part.pop("obj"), part.pop("img")
        if self.spill is None:
            self.boundary_names.update(dict.fromkeys(k for k in obj if k not in _OBJECT_COLUMNS))
        n = len(obj["pair"]) if "pair" in obj else 0
        if n:
            self.obj.append(self._compact_objects(obj, n), self.count_type)
        if img:
            values = img.get("image_iou_mean")
            if values is not None:
                valid = ~np.isnan(values)
                pair_codes = img["pair"].astype(np.int64)[valid]
                np.add.at(self.image_iou_pairs[:, 0], pair_codes, values[valid])
                np.add.at(self.image_iou_pairs[:, 1], pair_codes, 1)
            self.img.append(self._compact_images(img), self.count_type)
            np.add.at(self.images_per_pair, img["pair"].astype(np.int64), 1)
        # summed image by image in batch order, so the float sums do not depend on the chunks
        for code, cats, values in part.get("image_iou", ()):
            total = self.image_iou.setdefault(code, {})
            for c, value in zip(cats.tolist(), values.tolist()):
                t = total.setdefault(c, [0.0, 0])
                t[0] += value
                t[1] += 1
        for code, cats, tp, fp, fn, iou in part["pq"]:
            total = self.pq.setdefault(code, {})
            for k, c in enumerate(cats.tolist()):
                t = total.setdefault(c, [0, 0, 0, 0.0])
                t[0] += int(tp[k])
                t[1] += int(fp[k])
                t[2] += int(fn[k])
                t[3] += float(iou[k])
        self.buffered += n
        if self.spill is not None and self.buffered >= _SPILL_ROWS:
            self._write_part()

    def _compact_objects(self, obj: dict, n: int) -> dict:
        pair = obj.pop("pair").astype(np.int64, copy=False)
        out = {"image": obj.pop("position").astype(_code_dtype(len(self.images))),
               "pair": pair.astype(_code_dtype(len(self.pair_keys))),
               "annotator_a": self.code_a[pair].astype(_code_dtype(len(self.names))),
               "annotator_b": self.code_b[pair].astype(_code_dtype(len(self.names))),
               "status": obj.pop("status").astype(np.int8)}
        index_a = obj.pop("index_a").astype(np.int64, copy=False)
        index_b = obj.pop("index_b").astype(np.int64, copy=False)
        side_a = self._side(pair, index_a, 0)
        side_b = self._side(pair, index_b, 1)
        # source ids coded row by row, a then b, so that their table's order is the same whatever the
        # chunks (and so the executor) were
        both = np.empty(2 * n, object)
        both[0::2], both[1::2] = side_a.pop("source_id"), side_b.pop("source_id")
        codes = self.meta.source_id_codes(both)
        side_a["source_id"], side_b["source_id"] = codes[0::2], codes[1::2]
        out["object_index_a"] = index_a.astype(self.index_type)
        out["object_index_b"] = index_b.astype(self.index_type)
        out["category_a"], out["category_b"] = side_a["category"], side_b["category"]
        for name, dtype in (("iou", np.float64), ("best_iou", np.float64), ("intersection", self.int_type),
                            ("area_a", self.int_type), ("area_b", self.int_type), ("label_disagreement", bool),
                            ("crowd_share", np.float64)):
            out[name] = obj.pop(name).astype(dtype, copy=False)
        for name in self.boundary_names:
            values = obj.pop(name, None)
            dtype = self.count_type if _COUNT_COLUMN.search(name) else np.float64
            out[name] = np.full(n, np.nan, dtype) if values is None else values.astype(dtype, copy=False)
        for side, columns in (("a", side_a), ("b", side_b)):
            for key in ("file", "source_index", "source_id"):
                out[f"{key}_{side}"] = columns[key]
        return out

    def _side(self, pair, index, which: int) -> dict:
        """Category, file and source codes of one side of each row (-1 where the side has no object)."""
        n = len(pair)
        cat = np.full(n, -1, _code_dtype(len(self.categories)))
        file_code = np.full(n, -1, np.int32)
        src_index = np.full(n, -1, np.int64)
        src_id = np.full(n, None, object)
        for code, names in enumerate(self.pair_list):
            c, f, si = self.meta.table(names[which])  # every table made in pair order: file codes fixed
            rows = np.flatnonzero((pair == code) & (index >= 0))
            if not len(rows):
                continue
            k = index[rows]
            cat[rows] = c[k]
            file_code[rows] = f[k]
            src_index[rows] = si[k]
            src_id[rows] = self.meta.source_id_values(names[which], k)
        return {"category": cat, "file": file_code, "source_index": src_index, "source_id": src_id}

    def _compact_images(self, img: dict) -> dict:
        pair = img["pair"].astype(np.int64)
        out = {"image": img["position"].astype(_code_dtype(len(self.images))),
               "pair": pair.astype(_code_dtype(len(self.pair_keys))),
               "annotator_a": self.code_a[pair].astype(_code_dtype(len(self.names))),
               "annotator_b": self.code_b[pair].astype(_code_dtype(len(self.names)))}
        for name in _IMAGE_COUNTS:
            out[name] = img[name].astype(np.int32)
        for name in ("mask_iou_mean", "image_iou_mean", "pq", "sq", "rq"):
            out[name] = img[name].astype(np.float64)
        for name in img:
            if name.endswith("_mean") and name not in ("mask_iou_mean", "image_iou_mean"):
                out[name] = img[name].astype(np.float64)
        for name in self.boundary_names:  # the same columns in every chunk (NaN without matched pairs)
            score = _score_name(name)
            if score is not None and score not in out:
                out[score] = np.full(len(pair), np.nan)
        return out

    # -- pandas wrapping (no copies of the column data) --

    def object_frame(self, columns: dict):
        import pandas as pd

        files = list(self.meta.files)
        source_ids = list(self.meta.source_ids)
        out = {"image": _categorical(columns.pop("image"), self.images),
               "pair": _categorical(columns.pop("pair"), self.pair_keys),
               "annotator_a": _categorical(columns.pop("annotator_a"), self.names),
               "annotator_b": _categorical(columns.pop("annotator_b"), self.names),
               "status": _categorical(columns.pop("status"), self.status)}
        for side in ("a", "b"):
            index = columns.pop(f"object_index_{side}")
            out[f"object_index_{side}"] = _nullable_int(index, index >= 0)
        for side in ("a", "b"):
            out[f"category_{side}"] = _categorical(columns.pop(f"category_{side}"), self.categories)
        for name in list(columns):
            if name.startswith(("file_", "source_index_", "source_id_")):
                continue
            out[name] = columns.pop(name)
        for side in ("a", "b"):
            out[f"file_{side}"] = _categorical(columns.pop(f"file_{side}"), files)
            src_index = columns.pop(f"source_index_{side}")
            out[f"source_index_{side}"] = _nullable_int(src_index, src_index >= 0)
            out[f"source_id_{side}"] = _categorical(columns.pop(f"source_id_{side}"), source_ids)
        return pd.DataFrame(out, copy=False)

    def image_frame(self, columns: dict):
        import pandas as pd

        out = {"image": _categorical(columns.pop("image"), self.images),
               "pair": _categorical(columns.pop("pair"), self.pair_keys),
               "annotator_a": _categorical(columns.pop("annotator_a"), self.names),
               "annotator_b": _categorical(columns.pop("annotator_b"), self.names)}
        out.update(columns)
        return pd.DataFrame(out, copy=False)

    # -- the end --

    def _write_part(self) -> None:
        self.spill.write({"object_pairs": self.object_frame(self.obj.join(self.object_template())),
                          "image_pairs": self.image_frame(self.img.join(self.image_template()))})
        self.meta.forget_source_ids()
        self.buffered = 0

    def object_template(self) -> dict:
        """Empty columns of the object table, in order (for batches without rows)."""
        out = {name: np.zeros(0, dtype) for name, dtype in (
            ("image", np.int8), ("pair", np.int8), ("annotator_a", np.int8), ("annotator_b", np.int8),
            ("status", np.int8), ("object_index_a", self.index_type), ("object_index_b", self.index_type),
            ("category_a", np.int8), ("category_b", np.int8), ("iou", np.float64), ("best_iou", np.float64),
            ("intersection", self.int_type), ("area_a", self.int_type), ("area_b", self.int_type),
            ("label_disagreement", bool), ("crowd_share", np.float64))}
        for name in self.boundary_names:
            out[name] = np.zeros(0, self.count_type if _COUNT_COLUMN.search(name) else np.float64)
        for side in ("a", "b"):
            out[f"file_{side}"] = np.zeros(0, np.int32)
            out[f"source_index_{side}"] = np.zeros(0, np.int64)
            out[f"source_id_{side}"] = np.zeros(0, np.int32)
        return out

    def image_template(self) -> dict:
        out = {name: np.zeros(0, np.int8) for name in ("image", "pair", "annotator_a", "annotator_b")}
        out.update({name: np.zeros(0, np.int32) for name in _IMAGE_COUNTS})
        out.update({name: np.zeros(0, np.float64) for name in ("mask_iou_mean", "image_iou_mean", "pq", "sq", "rq")})
        return out

    def finish(self) -> Comparison:
        if self.spill is not None:
            if self.obj.rows or self.img.rows or not self.spill.parts:
                self._write_part()
            object_pairs = image_pairs = None
            figures = self._spilled_figures()
        else:
            object_pairs = self.object_frame(self.obj.join(self.object_template()))
            image_pairs = self.image_frame(self.img.join(self.image_template()))
            figures = self._figures(object_pairs)
        scores = self._scores(figures)
        settings = {"tolerances": list(self.cfg.tolerances), "iou_threshold": self.cfg.iou_threshold,
                    "boundary_metrics": bool(self.boundary_names), "pq_form": "symmetric"}
        if self.spill is not None:
            settings["spill_dir"] = str(self.spill.folder)
        return Comparison(object_pairs=object_pairs, image_pairs=image_pairs, scores=scores, settings=settings,
                          spill=self.spill, category_image_iou=self._category_image_iou())

    def _category_image_iou(self):
        """Per category, the mean image-level IoU over every image pair of every annotator pair."""
        import pandas as pd

        per_category: dict[int, list] = {}
        for per_cat in self.image_iou.values():
            for c, (value, n) in per_cat.items():
                t = per_category.setdefault(c, [0.0, 0])
                t[0] += value
                t[1] += n
        codes = sorted(per_category)
        return pd.DataFrame({"category": [self.categories[c] for c in codes],
                             "value": [per_category[c][0] / per_category[c][1] for c in codes],
                             "n": np.asarray([per_category[c][1] for c in codes], dtype=np.int64)})

    def _score_columns(self) -> dict[str, str]:
        out = {"iou": "mask_iou_mean"}
        for name in self.boundary_names:
            if _score_name(name) is not None:
                out[name] = _score_name(name)
        return out

    def _figures(self, object_pairs) -> dict:
        """Per annotator pair: status counts, label disagreements and each figure's mean over the matched
        pairs (with the number of values)."""
        from qa.engine.match import EXTRA, IGNORED, MATCHED, MISSING

        pair = object_pairs["pair"].cat.codes.to_numpy()
        status = object_pairs["status"].cat.codes.to_numpy()
        label = object_pairs["label_disagreement"].to_numpy()
        out = {}
        for code in range(len(self.pair_keys)):
            in_pair = pair == code
            matched = in_pair & (status == MATCHED)
            counts = {"matched": int(matched.sum()), "missing": int((in_pair & (status == MISSING)).sum()),
                      "extra": int((in_pair & (status == EXTRA)).sum()),
                      "ignored": int((in_pair & (status == IGNORED)).sum()),
                      "label_disagreements": int((in_pair & label).sum())}
            values = {metric: _mean(object_pairs[name].to_numpy()[matched])
                      for name, metric in self._score_columns().items()}
            out[code] = (counts, values)
        return out

    def _spilled_figures(self) -> dict:
        """:meth:`_figures` read back from the Parquet parts, part by part and one column at a time, so
        that only one figure's matched values are in memory at once (the same values in the same order
        as in memory, hence the same means to the bit)."""
        import pyarrow.parquet as pq

        from qa.engine.match import STATUS

        parts = sorted((self.spill.folder / "object_pairs").glob("part-*.parquet"))
        n = len(self.pair_keys)
        counts = [dict.fromkeys(("matched", "missing", "extra", "ignored", "label_disagreements"), 0)
                  for _ in range(n)]
        values: list[dict] = [{} for _ in range(n)]
        names = list(self._score_columns().items())
        for step in range(len(names) + 1):
            pieces: list[list] = [[] for _ in range(n)]
            for path in parts:
                columns = ["pair", "status"] + (["label_disagreement"] if step == 0 else [names[step - 1][0]])
                table = pq.read_table(path, columns=columns)
                pair = table.column("pair").to_pandas().astype(object).to_numpy()
                status = table.column("status").to_pandas().astype(object).to_numpy()
                for code, key in enumerate(self.pair_keys):
                    in_pair = pair == key
                    matched = in_pair & (status == STATUS[0])
                    if step == 0:
                        for label, name in zip(STATUS, ("matched", "missing", "extra", "ignored")):
                            counts[code][name] += int((in_pair & (status == label)).sum())
                        label = table.column("label_disagreement").to_numpy()
                        counts[code]["label_disagreements"] += int((in_pair & label).sum())
                    else:
                        column = table.column(names[step - 1][0]).to_numpy()
                        pieces[code].append(column[matched].astype(np.float64, copy=False))
                del table
            if step:
                metric = names[step - 1][1]
                for code in range(n):
                    values[code][metric] = _mean(np.concatenate(pieces[code]) if pieces[code]
                                                 else np.zeros(0, np.float64))
            del pieces
        return {code: (counts[code], values[code]) for code in range(n)}

    def _scores(self, figures: dict):
        import pandas as pd

        from qa.engine.panoptic import pq_summary

        isthing = {k: self.batch.categories[c].isthing if c in self.batch.categories else True
                   for k, c in enumerate(self.categories)}
        records: list[tuple] = []
        means: dict[str, list[float]] = {}
        for code, key in enumerate(self.pair_keys):
            counts, values_by_metric = figures[code]
            n_images = int(self.images_per_pair[code])
            records.append(("annotator_pair", key, "images", n_images, n_images))
            for metric in ("matched", "missing", "extra", "ignored", "label_disagreements"):
                records.append(("annotator_pair", key, metric, counts[metric], n_images))
            for metric, (value, count) in values_by_metric.items():
                records.append(("annotator_pair", key, metric, value, count))
                means.setdefault(metric, []).append(value)
            total, n = self.image_iou_pairs[code]
            value = total / n if n else math.nan
            records.append(("annotator_pair", key, "image_iou_mean", value, int(n)))
            means.setdefault("image_iou_mean", []).append(value)
            if code in self.pq:
                summary = pq_summary(self.pq[code], isthing=isthing)
                for metric in ("pq", "sq", "rq"):
                    records.append(("annotator_pair", key, metric, summary["all"][metric], summary["all"]["n"]))
                    means.setdefault(metric, []).append(summary["all"][metric])
                records.append(("annotator_pair", key, "pq_things", summary["things"]["pq"],
                                summary["things"]["n"]))
                records.append(("annotator_pair", key, "pq_stuff", summary["stuff"]["pq"], summary["stuff"]["n"]))
        for metric in ("matched", "missing", "extra", "ignored", "label_disagreements"):
            records.append(("batch", "", metric,
                            sum(r[3] for r in records if r[0] == "annotator_pair" and r[2] == metric),
                            len(self.pair_keys)))
        for metric, values in means.items():
            values = [v for v in values if v == v]
            records.append(("batch", "", metric, float(np.mean(values)) if values else math.nan, len(values)))
        scores = pd.DataFrame.from_records(records, columns=["scope", "key", "metric", "value", "n"])
        scores["value"] = scores["value"].astype(np.float64)
        scores["n"] = scores["n"].astype(np.int64)
        return scores


class _Column:
    """One column of a result table, filled chunk by chunk, joined once.

    The values go into blocks of anonymous memory (``mmap``) that grow from 64 KiB to 4 MiB. Joining
    copies the blocks into one array and unmaps each block as soon as it is copied, so its memory goes
    back to the system at once: the column never exists twice, and the many small chunk arrays that
    came before leave no fragmented heap behind.
    """

    __slots__ = ("dtype", "blocks", "used", "length")

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.blocks: list = []  # (mmap, array view)
        self.used = 0  # values in the last block
        self.length = 0

    def append(self, values: np.ndarray) -> None:
        import mmap

        values = np.asarray(values, dtype=self.dtype)
        k = 0
        while k < len(values):
            if not self.blocks or self.used == len(self.blocks[-1][1]):
                size = min(4 << 20, (64 << 10) << min(len(self.blocks), 6))
                block = mmap.mmap(-1, size)
                self.blocks.append((block, np.frombuffer(block, dtype=self.dtype)))
                self.used = 0
            view = self.blocks[-1][1]
            take = min(len(values) - k, len(view) - self.used)
            view[self.used:self.used + take] = values[k:k + take]
            self.used += take
            k += take
        self.length += len(values)

    def pad(self, n: int) -> None:
        """Append ``n`` missing values (NaN; the column is a float one)."""
        self.append(np.full(n, np.nan, self.dtype))

    def join(self) -> np.ndarray:
        out = np.empty(self.length, self.dtype)
        pos = 0
        while self.blocks:
            block, view = self.blocks.pop(0)
            take = min(len(view), self.length - pos)
            out[pos:pos + take] = view[:take]
            pos += take
            del view
            block.close()
        self.length = 0
        return out


class _Table:
    """Columns of one result table filled chunk by chunk (see :class:`_Column`)."""

    def __init__(self):
        self.columns: dict[str, _Column] = {}
        self.rows = 0

    def append(self, chunk: dict, count_type) -> None:
        n = len(next(iter(chunk.values())))
        for name, values in chunk.items():
            if name not in self.columns:  # a boundary figure first seen now: NaN on the rows before
                dtype = values.dtype if self.rows == 0 else (
                    count_type if _COUNT_COLUMN.search(name) else np.float64)
                self.columns[name] = _Column(dtype)
                if self.rows:
                    self.columns[name].pad(self.rows)
            self.columns[name].append(values)
        for name, column in self.columns.items():
            if name not in chunk:
                column.pad(n)
        self.rows += n

    def join(self, template: dict) -> dict:
        """One array per column (``template``'s empty columns when no row came)."""
        if not self.columns:
            return template
        out = {name: column.join() for name, column in self.columns.items()}
        self.columns = {}
        self.rows = 0
        return out


def _mean(values: np.ndarray) -> tuple[float, int]:
    """Mean of the values that are not NaN (NaN when none) and their number."""
    values = values[~np.isnan(values)]
    return (float(values.mean()) if len(values) else math.nan), len(values)


def _boundary_names(tolerances) -> list[str]:
    """The columns :func:`qa.engine.boundary.boundary_pair` returns at these tolerances, in order."""
    from qa.engine.boundary import boundary_pair

    one = np.ones((1, 1), np.uint8)
    return list(boundary_pair(one, one, tolerances=tolerances))


class _Spill:
    """Parquet parts of the result tables in a folder: ``object_pairs/part-00000.parquet``, ...,
    ``image_pairs/part-00000.parquet``, ..."""

    def __init__(self, folder):
        from pathlib import Path

        self.folder = Path(folder)
        self.parts = 0
        for name in ("object_pairs", "image_pairs"):
            sub = self.folder / name
            sub.mkdir(parents=True, exist_ok=True)
            for old in sub.glob("part-*.parquet"):  # a folder reused for a new run: no stale parts
                old.unlink()

    def write(self, frames: dict) -> None:
        """Write one part of each table (large categories cut to the values present in the part)."""
        for table, frame in frames.items():
            for name in ("image", "file_a", "file_b", "source_id_a", "source_id_b"):
                if name in frame:
                    frame[name] = frame[name].cat.remove_unused_categories()
            frame.to_parquet(self.folder / table / f"part-{self.parts:05d}.parquet", engine="pyarrow", index=False)
        self.parts += 1

    def read(self, table: str):
        """The whole table (its parts in order)."""
        import pandas as pd

        return pd.read_parquet(self.folder / table, engine="pyarrow")
