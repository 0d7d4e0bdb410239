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
from dataclasses import dataclass
from typing import Callable

import numpy as np

from qa import metric_registry
from qa.engine import _pool
from qa.engine._decoded import Decoded
from qa.engine.tables import _score_name, text_codes
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

    def object_pair_columns(self) -> list[str]:
        """The names of ``object_pairs``' columns (without reading a row)."""
        if self._object_pairs is None and self._spill is not None:
            return self._spill.table("object_pairs").columns()
        return [] if self._object_pairs is None else [str(c) for c in self._object_pairs.columns]

    def object_columns(self, columns, *, status=None, images=None):
        """``object_pairs`` with only those of ``columns`` it has (in the table's order); spilled, only those
        columns are read. ``status`` (a status or several, such as ``("matched", "missing")``) keeps only
        the rows of that status, and ``images`` (image keys) only the rows on those images, read part by
        part. The rows keep their ``object_pairs`` index, so the frame equals ``object_pairs.loc[rows,
        columns]``, except that with ``images`` its categorical columns hold only the categories of those rows
        (the table's categories are every value of the batch, such as each object's id). None without the
        table."""
        import pandas as pd

        if self._object_pairs is None and self._spill is None:
            return None
        wanted = set(columns) | ({"status"} if status is not None else set()) | ({"image"} if images is not None
                                                                                else set())
        keep = [c for c in self.object_pair_columns() if c in wanted]
        statuses = None if status is None else [status] if isinstance(status, str) else list(status)
        if self._object_pairs is not None:
            op = self._object_pairs
            if statuses is None and images is None:
                return op[keep]
            rows = op.loc[_rows_kept(op, statuses, images), keep]
            return rows if images is None else _used_categories(rows)
        if statuses is None and images is None:
            return self._spill.table("object_pairs").read(keep)
        from qa.parts import _concat

        # with images, a few images' rows: each piece's categoricals keep only their values as it comes, not
        # every value of its part (each object's id), which all the parts' pieces together held
        pieces = [frame if images is None else _used_categories(frame)
                  for _, frame in self.object_pieces(keep, status=statuses, images=images)]
        return _concat(pieces, ignore_index=False) if pieces else self._spill.table("object_pairs").head(0)

    def object_pieces(self, columns=None, *, status=None, images=None):
        """``object_pairs`` one part at a time, as ``(first_row, DataFrame)`` (its row in the whole
        table): each spilled part in turn (whole images), or the table in memory as one piece.
        ``status`` (a status or several) keeps only the rows of that status, ``images`` only the rows on
        those images; their frames keep their ``object_pairs`` index then, as :meth:`object_columns` does."""
        import pandas as pd

        statuses = None if status is None else [status] if isinstance(status, str) else list(status)
        filtered = statuses is not None or images is not None
        if columns is not None and filtered:
            columns = [*columns, *(["status"] if statuses is not None else []),
                       *(["image"] if images is not None else [])]
        if self._object_pairs is None and self._spill is not None:
            parts = self._spill.table("object_pairs")
            keep = None if columns is None else [c for c in parts.columns() if c in set(columns)]
            for first, frame in parts.pieces(keep):
                if filtered:  # a part read back: its rows numbered as in the whole table
                    frame.index = pd.RangeIndex(first, first + len(frame))
                    frame = frame[_rows_kept(frame, statuses, images)]
                yield first, frame
        elif self._object_pairs is not None:
            op = self._object_pairs
            frame = op if columns is None else op[[c for c in op.columns if c in set(columns)]]
            yield 0, frame[_rows_kept(frame, statuses, images)] if filtered else frame

    def object_parts(self):
        """The spilled ``object_pairs`` as :class:`qa.parts.Parts`, or None when it is in memory."""
        return self._spill.table("object_pairs") if self._object_pairs is None and self._spill is not None else None

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


class ImageAcrossParts(Exception):
    """An image's rows met in two pieces of the object pair table (:func:`by_whole_images`)."""


def _whole_images(pieces):
    """``pieces`` as they come, raising :class:`ImageAcrossParts` at the first whose images an earlier
    piece already had."""
    seen: set = set()
    for first, frame in pieces:
        if frame is not None and len(frame):
            images = {str(v) for v in frame["image"].unique()}
            if not seen.isdisjoint(images):
                raise ImageAcrossParts(next(iter(images & seen)))
            seen |= images
        yield first, frame


def _used_categories(frame):
    """``frame`` with each categorical column's unused categories dropped (the others keep their order)."""
    import pandas as pd

    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].cat.remove_unused_categories()
    return frame


def _rows_kept(frame, statuses, images):
    """A boolean mask of ``frame``'s rows whose status is one of ``statuses`` and whose image is one of
    ``images`` (either None: any)."""
    import numpy as np

    keep = np.ones(len(frame), dtype=bool)
    if statuses is not None:
        keep &= frame["status"].isin(statuses).to_numpy()
    if images is not None:
        keep &= frame["image"].astype(str).isin(set(images)).to_numpy()
    return keep


def by_whole_images(comparison, reduce, columns, *, status=None):
    """``reduce(pieces)`` over the comparison's object pair table a piece at a time
    (:meth:`Comparison.object_pieces`: ``(first_row, DataFrame)``, ``columns`` with ``image``), for work
    that needs all of an image's rows together (clusters, per-image counts).

    The run's parts hold whole images; should an image's rows come in two pieces, ``reduce`` is called
    again with the whole table as one piece, so ``reduce`` must keep nothing between calls.
    """
    try:
        return reduce(_whole_images(comparison.object_pieces(columns, status=status)))
    except ImageAcrossParts:
        return reduce([(0, comparison.object_columns(columns, status=status))])


def category_list(batch: Batch) -> list[str]:
    """The category names the comparison codes ``0 .. n - 1``: the batch's categories in order, then any
    other category an object carries, in the order first met."""
    categories = list(batch.categories)
    seen = set(categories)
    for export in batch.exports.values():
        # a streamed export's census counts its categories in the order its objects were read
        named = (o.category for o in export.objects) if export.census is None else iter(export.census.per_category)
        for category in named:
            if category not in seen:
                seen.add(category)
                categories.append(category)
    return categories


# --- settings ----------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Config:
    pairs: dict              # (a, b) -> pair code
    tolerances: tuple
    iou_threshold: float
    max_pixels: int
    boundary: bool
    categories: list         # category names by code (:func:`category_list`)
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


def compare_config(batch: Batch, *, tolerances=(1, 2, 4), iou_threshold: float = 0.5,
                   max_pixels: int | None = None, plan: PairPlan | None = None) -> _Config:
    """The comparison's settings for a batch (checked): annotator pairs (with ``plan``, only the pairs it
    compares on some image), tolerances, IoU threshold, category codes. Raises
    :class:`qa.errors.ConfigError` on a bad tolerance or threshold."""
    from qa.errors import ConfigError

    tolerances = tuple(float(t) if not float(t).is_integer() else int(t) for t in tolerances)
    if not tolerances or any(not t > 0 for t in tolerances):
        raise ConfigError(f"tolerances must be positive pixel distances, got {tolerances}")
    if not 0 < iou_threshold <= 1:
        raise ConfigError(f"iou_threshold must lie in (0, 1], got {iou_threshold}")
    pair_list = list(itertools.combinations(sorted(batch.annotators), 2))
    if plan is not None:  # only the pairs the plan compares somewhere
        planned = {p for key in batch.images for p in plan.image_pairs(batch.coverage.get(key, ()))}
        pair_list = [p for p in pair_list if p in planned]
    return _Config(pairs={p: k for k, p in enumerate(pair_list)}, tolerances=tolerances,
                   iou_threshold=float(iou_threshold), max_pixels=max_pixels or Limits().max_pixels,
                   boundary=_boundary_function() is not None, categories=category_list(batch), plan=plan)


def plan_settings(cfg: _Config) -> dict:
    """What a comparison with a plan adds to its settings: ``pairs``, ``reference_pairs`` (each pair with a
    reference mapped to its reference side) and ``pq_form``; empty without a plan."""
    plan = cfg.plan
    if plan is None:
        return {}
    sides = {f"{a}|{b}": side for a, b in cfg.pairs if (side := plan.reference_side(a, b)) is not None}
    form = "reference" if len(sides) == len(cfg.pairs) and sides else "mixed" if sides else "symmetric"
    return {"pairs": plan.pairs, "reference_pairs": sides, "pq_form": form}


def comparison_tables(batch: Batch, cfg: _Config, *, spill_dir=None, owner=None):
    """The :class:`qa.engine.tables.Tables` the chunks' rows reduce into."""
    from qa.engine.tables import Tables

    return Tables(batch, list(cfg.pairs), cfg.categories, cfg, spill_dir=spill_dir, owner=owner)


# --- work on one image (worker side) ------------------------------------------------------------------

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
    One kernel call (:func:`qa.engine._kernels_iou._union_runs`): the runs sorted by category, row and
    start, then each run that starts at or before the end of the one before it in its row extends it.

    Examples
    --------
    >>> ptr = np.array([0, 2, 3, 4]); y = np.array([0, 1, 1, 0], np.int32)
    >>> x0 = np.array([0, 0, 2, 5], np.int32); x1 = np.array([3, 2, 4, 6], np.int32)
    >>> codes, p, yy, a, b = category_union_runs((ptr, y, x0, x1), np.array([7, 7, 3]))
    >>> codes.tolist(), p.tolist(), yy.tolist(), a.tolist(), b.tolist()
    ([3, 7], [0, 1, 3], [0, 0, 1], [5, 0, 0], [6, 3, 4])
    """
    from qa.engine._kernels_iou import _union_runs

    ptr, y, x0, x1 = runs
    categories = np.asarray(categories, dtype=np.int64)
    codes = np.unique(categories[categories >= 0])
    out_ptr, out_y, out_x0, out_x1 = _union_runs(np.asarray(ptr, dtype=np.int64), np.asarray(y, dtype=np.int32),
                                                 np.asarray(x0, dtype=np.int32), np.asarray(x1, dtype=np.int32),
                                                 categories, codes)
    return codes, out_ptr, out_y, out_x0, out_x1


def _boundary_function():
    """``outline_columns(outlines_a, outlines_b, index_a, index_b, *, tolerances) -> {name: column}``
    (every boundary metric of each pair of objects, :func:`qa.engine.boundary.outline_columns`), or None
    when that module is absent."""
    try:
        from qa.engine.boundary import outline_columns
    except ImportError:
        return None
    return outline_columns


def _panoptic_pair(a: Decoded, b: Decoded, reference: str | None = None):
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
    seg_a = Segments(a.seg_ids, a.categories, a.crowd)
    seg_b = Segments(b.seg_ids, b.categories, b.crowd)
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


def _image_iou(a: Decoded, b: Decoded, inter, area_a, area_b) -> tuple[np.ndarray, np.ndarray]:
    """Per category on one image: the IoU of the two annotators' pixels of the category (each side's
    objects of the category merged, crowd regions included), for every category either side has pixels
    of. Returns ``(category codes, IoU)``.

    Two panoptic id maps never overlap within a map, so the segments' intersections add up per category;
    otherwise each side's objects are merged into one run list per category first
    (:func:`category_union_runs`), as instance objects of one category may overlap.
    """
    if a.panoptic and b.panoptic:
        codes_a, ia = np.unique(a.categories, return_inverse=True)
        codes_b, ib = np.unique(b.categories, return_inverse=True)
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


def _compare_pair(a: Decoded, b: Decoded, cfg: _Config, outline_pairs, reference: str | None = None) -> dict:
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
    m = match_objects(inter, area_a, area_b, categories_a=a.categories, categories_b=b.categories,
                      crowd_a=a.crowd, crowd_b=b.crowd, iou_threshold=cfg.iou_threshold)
    rows = len(m)
    metrics: dict[str, np.ndarray] = {}
    matched_rows = np.flatnonzero(m.status == MATCHED)
    if outline_pairs is not None and len(matched_rows):
        columns = outline_pairs(a.outlines(), b.outlines(), m.index_a[matched_rows], m.index_b[matched_rows],
                                tolerances=cfg.tolerances)
        for name, values in columns.items():
            metrics[name] = np.full(rows, np.nan)
            metrics[name][matched_rows] = values
    matched_iou = m.iou[matched_rows]
    image_codes, image_ious = (_image_iou(a, b, inter, area_a, area_b) if (a.panoptic and b.panoptic)
                               or outline_pairs is not None else (np.zeros(0, np.int64), np.zeros(0)))
    image_row = {
        "objects_a": int((~a.crowd).sum()), "objects_b": int((~b.crowd).sum()),
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
            "index_a": np.where(m.index_a >= 0, a.indices[np.maximum(m.index_a, 0)], -1) if len(
                a.indices) else m.index_a,
            "index_b": np.where(m.index_b >= 0, b.indices[np.maximum(m.index_b, 0)], -1) if len(
                b.indices) else m.index_b,
            "status": m.status, "iou": m.iou, "best_iou": m.best_iou, "intersection": m.intersection,
            "area_a": np.where(m.index_a >= 0, area_a[np.maximum(m.index_a, 0)], 0) if len(area_a) else
            np.zeros(rows, np.int64),
            "area_b": np.where(m.index_b >= 0, area_b[np.maximum(m.index_b, 0)], 0) if len(area_b) else
            np.zeros(rows, np.int64),
            "label_disagreement": m.label_disagreement, "crowd_share": m.crowd_share,
            **_side(a, m.index_a, "a"), **_side(b, m.index_b, "b"),
        },
        "metrics": metrics,
        "image": image_row,
        "pq": None if counts is None else (counts.categories, counts.tp, counts.fp, counts.fn, counts.iou_sum),
        "image_iou": (image_codes, image_ious),
        "intersections": (inter, area_a, area_b),  # for the rules' matching of the same objects (qa.task)
    }


def _side(d: Decoded, index: np.ndarray, side: str) -> dict:
    """What one side of each row points at: the object's category code, file, source index and source id
    (-1 or None where the row has no object on that side)."""
    n = len(index)
    has = index >= 0
    k = np.maximum(index, 0)
    category = np.where(has, d.categories[k], -1) if len(d.categories) else np.full(n, -1, np.int64)
    files = np.full(n, None, object)
    source_index = np.full(n, -1, np.int64)
    source_id = np.full(n, None, object)
    for r in np.flatnonzero(has).tolist():
        src = d.objects[int(index[r])].source
        files[r] = src.file
        if src.index is not None:
            source_index[r] = src.index
        source_id[r] = src.id
    return {f"category_{side}": category, f"file_{side}": files, f"source_index_{side}": source_index,
            f"source_id_{side}": source_id}


def compare_image(decoded: dict[str, Decoded], cfg: _Config, outline_pairs) -> list[tuple[int, dict]]:
    """Every annotator pair of one image: ``[(pair code, result)]`` for the pairs of ``decoded`` (the
    comparable :class:`qa.engine._decoded.Decoded` labels of the image's annotators, two or more), each
    result holding the pair's object rows, its image row, PQ counts and image-level IoU per category.
    With a plan (``cfg.plan``), only its pairs of the image, PQ with the reference as the ground truth."""
    out = []
    plan = cfg.plan
    pairs = itertools.combinations(sorted(decoded), 2) if plan is None else plan.image_pairs(decoded)
    for a, b in pairs:
        side = None if plan is None else plan.reference_side(a, b)
        out.append((cfg.pairs[(a, b)], _compare_pair(decoded[a], decoded[b], cfg, outline_pairs, side)))
    return out


def comparable(labels: dict[str, Decoded]) -> dict[str, Decoded]:
    """The labels of an image the comparison can read (panoptic exports whose id map was read)."""
    return {name: d for name, d in labels.items() if d.comparable}


def chunk_columns(keys, results: list[tuple[int, int, dict]]) -> dict:
    """One chunk's comparison as column arrays (cheap to pickle and keep): ``results`` are ``(position of
    the image in keys, pair code, result)`` in image order; see :meth:`qa.engine.tables.Tables.add`."""
    obj: dict[str, list] = {}
    image_rows: list[dict] = []
    pq: list[tuple] = []  # per image and pair, summed by the parent in image order (not per chunk)
    image_iou: list[tuple] = []  # (pair code, category codes, IoUs) per image, summed by the parent in order
    metric_names: dict[str, None] = {}  # insertion-ordered: the same columns in every process
    for _position, _code, res in results:
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
    columns = {k: np.concatenate(v) if v else np.zeros(0) for k, v in obj.items()}
    for key in ("file", "source_id"):  # a then b, row by row, as distinct texts and codes (see Tables.add)
        if f"{key}_a" in columns:
            both = np.empty(2 * len(columns[f"{key}_a"]), object)
            both[0::2], both[1::2] = columns.pop(f"{key}_a"), columns.pop(f"{key}_b")
            columns[f"{key}_texts"], columns[f"{key}_codes"] = text_codes(both)
    return {
        "keys": tuple(keys),
        "obj": columns,
        "img": {k: np.asarray([r.get(k, math.nan) for r in image_rows])
                for k in dict.fromkeys(k for r in image_rows for k in r)},
        "pq": pq,
        "image_iou": image_iou,
    }


def _compare_chunk(chunk, cfg: _Config) -> dict:
    """Compare a chunk of images (:class:`qa.engine.chunks.Chunk`); its results as column arrays."""
    from qa.engine._decoded import grouped_objects, image_labels

    batch = chunk.load()
    outline_pairs = _boundary_function() if cfg.boundary else None
    codes = {c: k for k, c in enumerate(cfg.categories)}
    grouped = grouped_objects(batch)
    results = []
    for position, key in enumerate(chunk.keys):
        decoded = comparable(image_labels(batch, key, codes, cfg.max_pixels, grouped))
        if len(decoded) >= 2:
            results.extend((position, code, res) for code, res in compare_image(decoded, cfg, outline_pairs))
    return chunk_columns(chunk.keys, results)


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
    from qa.engine.chunks import chunks_of

    cfg = compare_config(batch, tolerances=tolerances, iou_threshold=iou_threshold, max_pixels=max_pixels,
                         plan=plan)
    keys = [key for key in batch.images if len(batch.coverage.get(key, ())) >= 2]
    total = len(keys)
    size, workers = _pool.plan(total, workers, executor)
    done = 0
    if progress:
        progress("compare", 0, total)
    tables = comparison_tables(batch, cfg, spill_dir=spill_dir)
    for part in _pool.run_chunks(_compare_chunk, chunks_of(batch, _pool.chunks(keys, size)), cfg, workers,
                                 executor):
        done += len(part["keys"])
        tables.add(part)  # compacted (or written out) at once; the chunk's arrays are dropped
        if progress:
            progress("compare", done, total)
    return tables.finish()
