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
import os
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from qa.model import Batch, Limits

Progress = Callable[[str, int, int], None]

_CHUNK_MAX = 16
"""Most images sent to a worker at once."""


# --- result -------------------------------------------------------------------------------------------

@dataclass(slots=True)
class Comparison:
    """What :func:`compare_batch` produced.

    Attributes
    ----------
    object_pairs : pandas.DataFrame
        One row per matched pair, missing, extra or ignored object, per image and annotator pair.
    image_pairs : pandas.DataFrame
        One row per image and annotator pair.
    scores : pandas.DataFrame
        The long scores table (``scope, key, metric, value, n``) with ``annotator_pair`` and ``batch``
        rows.
    settings : dict
        The tolerances, IoU threshold and whether boundary metrics were computed.

    See ``docs/engine.md`` for every column.
    """

    object_pairs: "object"
    image_pairs: "object"
    scores: "object"
    settings: dict = field(default_factory=dict)

    def pair_table(self) -> list[dict]:
        """One plain dict per annotator pair with its ``annotator_pair`` scores (for text and JSON)."""
        df = self.scores
        rows = df[df["scope"] == "annotator_pair"]
        out = []
        for key, group in rows.groupby("key", sort=True):
            entry = {"pair": key}
            for metric, value in zip(group["metric"], group["value"]):
                entry[metric] = None if value != value else (int(value) if _is_count(metric) else float(value))
            out.append(entry)
        return out

    def write_parquet(self, folder) -> list:
        """Write ``object_pairs.parquet``, ``image_pairs.parquet`` and ``scores.parquet`` into ``folder``
        (created when missing); return their paths."""
        from pathlib import Path

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in ("object_pairs", "image_pairs", "scores"):
            path = folder / f"{name}.parquet"
            getattr(self, name).to_parquet(path, engine="pyarrow", index=False)
            paths.append(path)
        return paths


_COUNTS = ("images", "matched", "missing", "extra", "ignored", "label_disagreements")


def _is_count(metric: str) -> bool:
    return metric in _COUNTS


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


def _object_positions(batch: Batch) -> dict[str, dict[str, list[int]]]:
    """``{annotator: {image: [object positions]}}`` in export order."""
    out: dict[str, dict[str, list[int]]] = {}
    for name, export in batch.exports.items():
        per_image: dict[str, list[int]] = {}
        for k, obj in enumerate(export.objects):
            per_image.setdefault(obj.image, []).append(k)
        out[name] = per_image
    return out


def _tasks(batch: Batch, codes: dict[str, int]) -> Iterator[_Task]:
    positions = _object_positions(batch)
    position = 0
    for key, image in batch.images.items():
        covering = sorted(batch.coverage.get(key, ()))
        entries = []
        for name in covering:
            export = batch.exports[name]
            idx = positions[name].get(key, [])
            objs = [export.objects[k] for k in idx]
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
                indices=np.asarray(idx, dtype=np.int64),
                categories=np.asarray([codes[o.category] for o in objs], dtype=np.int64),
                crowd=np.asarray([bool(o.iscrowd) for o in objs], dtype=bool),
                geometry=geometry,
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


_BOUNDARY_SCORES = ("boundary_f_", "boundary_iou", "nsd_", "assd", "hd95", "signed_offset")
"""Prefixes of the boundary metrics that get a mean per image pair and per annotator pair; the counts
``boundary_pair`` also returns (``*_n``, matched boundary pixels, band areas, surface lengths) stay in
``object_pairs`` only."""
_IN_PIXELS = ("assd", "hd95", "signed_offset", "signed_offset_median")


def _score_name(name: str) -> str | None:
    """The scores-table name of a boundary metric's mean (units in the name), or None for a count."""
    if not name.startswith(_BOUNDARY_SCORES) or name.endswith("_n"):
        return None
    return f"{name}_px_mean" if name in _IN_PIXELS else f"{name}_mean"


def _boundary_function():
    """``outline_pairs(outlines_a, outlines_b, index_a, index_b, *, tolerances) -> list of dict`` (every
    boundary metric of each pair of objects, :func:`qa.engine.boundary.outline_pairs`), or None when
    that module is absent."""
    try:
        from qa.engine.boundary import outline_pairs
    except ImportError:
        return None
    return outline_pairs


def _panoptic_pair(a: _Decoded, b: _Decoded):
    """Intersections, areas and PQ counts of two panoptic annotators from one pass over their id maps."""
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
    counts = panoptic_counts(None, None, Segments(a.seg_ids, a.entry.categories, a.entry.crowd),
                             Segments(b.seg_ids, b.entry.categories, b.entry.crowd), form="symmetric",
                             pairs=pairs)
    return inter, area_a, area_b, counts


def _compare_pair(a: _Decoded, b: _Decoded, cfg: _Config, outline_pairs) -> dict:
    from qa.engine._kernels_iou import _intersection_counts
    from qa.engine.match import EXTRA, IGNORED, MATCHED, MISSING, match_objects
    from qa.engine.panoptic import add_counts, pq_summary

    counts = None
    if a.panoptic and b.panoptic:
        inter, area_a, area_b, counts = _panoptic_pair(a, b)
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
    image_row = {
        "objects_a": int((~a.entry.crowd).sum()), "objects_b": int((~b.entry.crowd).sum()),
        "matched": len(matched_rows), "missing": m.count(MISSING), "extra": m.count(EXTRA),
        "ignored": m.count(IGNORED), "label_disagreements": int(m.label_disagreement.sum()),
        "mask_iou_mean": float(matched_iou.mean()) if len(matched_iou) else math.nan,
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
    }


def _compare_image(task: _Task, cfg: _Config, outline_pairs) -> list[tuple[int, dict]]:
    decoded = {e.annotator: _Decoded(e, task.height, task.width, cfg.max_pixels) for e in task.entries}
    out = []
    for a, b in itertools.combinations(sorted(decoded), 2):
        out.append((cfg.pairs[(a, b)], _compare_pair(decoded[a], decoded[b], cfg, outline_pairs)))
    return out


def _compare_chunk(tasks: list[_Task], cfg: _Config) -> dict:
    """Compare a chunk of images; return its results as column arrays (cheap to pickle and keep)."""
    outline_pairs = _boundary_function() if cfg.boundary else None
    obj: dict[str, list] = {}
    image_rows: list[dict] = []
    pq: dict[int, dict] = {}
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
            cats, tp, fp, fn, iou = res["pq"]
            total = pq.setdefault(code, {})
            for k, c in enumerate(cats.tolist()):
                row = total.setdefault(c, [0, 0, 0, 0.0])
                row[0] += int(tp[k])
                row[1] += int(fp[k])
                row[2] += int(fn[k])
                row[3] += float(iou[k])
    return {
        "images": len(tasks),
        "obj": {k: np.concatenate(v) if v else np.zeros(0) for k, v in obj.items()},
        "img": {k: np.asarray([r.get(k, math.nan) for r in image_rows])
                for k in dict.fromkeys(k for r in image_rows for k in r)},
        "pq": pq,
    }


# --- driving the work ---------------------------------------------------------------------------------

def _chunks(tasks: Iterable[_Task], size: int) -> Iterator[list[_Task]]:
    chunk: list[_Task] = []
    for task in tasks:
        chunk.append(task)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def default_workers() -> int:
    """The CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _pool_context():
    import multiprocessing as mp

    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["qa.engine._preload"])
        return ctx
    return mp.get_context("spawn")


def _run_chunks(chunks: Iterator[list[_Task]], cfg: _Config, workers: int) -> Iterator[dict]:
    """Results chunk by chunk, in order; at most ``2 * workers`` chunks in flight."""
    if workers <= 1:
        for chunk in chunks:
            yield _compare_chunk(chunk, cfg)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append(pool.submit(_compare_chunk, chunk, cfg))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def compare_batch(batch: Batch, *, tolerances=(1, 2, 4), iou_threshold: float = 0.5, workers: int | None = None,
                  progress: Progress | None = None, max_pixels: int | None = None) -> Comparison:
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
        Worker processes; default one per available CPU. ``1`` runs in this process.
    progress : callable, optional
        ``progress("compare", images_done, images_total)``.
    max_pixels : int, optional
        Largest panoptic PNG decoded (default: the model's limit).

    Returns
    -------
    Comparison
        ``object_pairs``, ``image_pairs`` and ``scores`` DataFrames (see ``docs/engine.md``).

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
    form of :mod:`qa.engine.panoptic` and needs both annotators of the pair to export COCO panoptic.
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
    categories = list(batch.categories)
    for export in batch.exports.values():
        for obj in export.objects:
            if obj.category not in batch.categories and obj.category not in categories:
                categories.append(obj.category)
    codes = {c: k for k, c in enumerate(categories)}
    boundary = _boundary_function() is not None
    cfg = _Config(pairs={p: k for k, p in enumerate(pair_list)}, tolerances=tolerances,
                  iou_threshold=float(iou_threshold), max_pixels=max_pixels or Limits().max_pixels,
                  boundary=boundary)
    total = sum(1 for key in batch.images if len(batch.coverage.get(key, ())) >= 2)
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    size = max(1, min(_CHUNK_MAX, math.ceil(total / max(1, workers * 4))))
    if total <= size:
        workers = 1  # one chunk: a pool would only add start-up time
    done = 0
    if progress:
        progress("compare", 0, total)
    parts = []
    for part in _run_chunks(_chunks(_tasks(batch, codes), size), cfg, workers):
        parts.append(part)
        done += part["images"]
        if progress:
            progress("compare", done, total)
    return _assemble(batch, parts, pair_list, categories, cfg)


# --- tables (parent side) -----------------------------------------------------------------------------

_OBJECT_COLUMNS = ("position", "pair", "index_a", "index_b", "status", "iou", "best_iou", "intersection",
                   "area_a", "area_b", "label_disagreement", "crowd_share")
_IMAGE_COUNTS = ("objects_a", "objects_b", "matched", "missing", "extra", "ignored", "label_disagreements")


def _concat(parts, table: str) -> tuple[dict[str, np.ndarray], int]:
    """Join the chunks' column arrays (a column missing from a chunk is NaN there).

    Each chunk's column is released as soon as it is joined, so at most one column exists twice.
    """
    names = list(dict.fromkeys(name for part in parts for name in part[table]))
    lengths = [len(next(iter(part[table].values()))) if part[table] else 0 for part in parts]
    out = {}
    for name in names:
        pieces = [part[table].pop(name, None) for part in parts]
        out[name] = np.concatenate([np.full(k, np.nan) if p is None else p for p, k in zip(pieces, lengths)])
        del pieces
    return out, sum(lengths)


def _categorical(codes: np.ndarray, labels: list):
    import pandas as pd

    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int64), categories=pd.Index(labels, dtype=object))


def _object_meta(export, codes: dict[str, int]):
    """Category codes, source file codes and names, source indices and ids of an export's objects."""
    n = len(export.objects)
    files: dict[str, int] = {}
    cat = np.empty(n, np.int64)
    file_code = np.empty(n, np.int64)
    src_index = np.full(n, -1, np.int64)
    src_id = np.empty(n, dtype=object)
    for k, o in enumerate(export.objects):
        cat[k] = codes[o.category]
        file_code[k] = files.setdefault(o.source.file, len(files))
        if o.source.index is not None:
            src_index[k] = o.source.index
        src_id[k] = None if o.source.id is None else str(o.source.id)
    return cat, file_code, list(files), src_index, src_id


def _side_columns(batch, pair, index, pair_list, which: int, side: str, categories: list[str],
                  cache: dict) -> dict:
    """``object_index``, ``category``, ``file``, ``source_index``, ``source_id`` for one side of each row."""
    import pandas as pd

    n = len(pair)
    codes = {c: k for k, c in enumerate(categories)}
    cat = np.full(n, -1, np.int64)
    file_code = np.full(n, -1, np.int64)
    src_index = np.full(n, -1, np.int64)
    src_id = np.full(n, None, dtype=object)
    files: dict[str, int] = {}
    for code, names in enumerate(pair_list):
        rows = np.flatnonzero((pair == code) & (index >= 0))
        if not len(rows):
            continue
        name = names[which]
        if name not in cache:
            cache[name] = _object_meta(batch.exports[name], codes)
        c, f, file_names, si, sid = cache[name]
        k = index[rows]
        remap = np.array([files.setdefault(x, len(files)) for x in file_names], dtype=np.int64)
        cat[rows] = c[k]
        file_code[rows] = remap[f[k]]
        src_index[rows] = si[k]
        src_id[rows] = sid[k]
    present = index >= 0
    return {
        f"object_index_{side}": _nullable_int(index, present),
        f"category_{side}": _categorical(cat, categories),
        f"file_{side}": _categorical(file_code, list(files)),
        f"source_index_{side}": _nullable_int(src_index, src_index >= 0),
        f"source_id_{side}": pd.array(src_id, dtype="string"),
    }


def _nullable_int(values: np.ndarray, valid: np.ndarray):
    import pandas as pd

    return pd.arrays.IntegerArray(np.where(valid, values, 0).astype(np.int64), ~np.asarray(valid, dtype=bool))


def _assemble(batch: Batch, parts: list[dict], pair_list, categories, cfg: _Config) -> Comparison:
    import pandas as pd

    from qa.engine.match import EXTRA, IGNORED, MATCHED, MISSING, STATUS
    from qa.engine.panoptic import pq_summary

    images = list(batch.images)
    names = sorted({x for p in pair_list for x in p})
    pair_keys = [f"{a}|{b}" for a, b in pair_list]
    code_a = np.array([names.index(a) for a, _ in pair_list] or [0], dtype=np.int64)
    code_b = np.array([names.index(b) for _, b in pair_list] or [0], dtype=np.int64)

    def pair_columns(position, pair):
        return {"image": _categorical(position, images), "pair": _categorical(pair, pair_keys),
                "annotator_a": _categorical(code_a[pair], names), "annotator_b": _categorical(code_b[pair], names)}

    # object pairs (each chunk's arrays are released once joined, so the rows exist in at most two copies)
    obj, n = _concat(parts, "obj")
    get = lambda name, dtype: obj.pop(name).astype(dtype, copy=False) if n else np.zeros(0, dtype)  # noqa: E731
    pair = get("pair", np.int64)
    index_a, index_b, status = get("index_a", np.int64), get("index_b", np.int64), get("status", np.int64)
    boundary_names = [k for k in obj if k not in _OBJECT_COLUMNS]
    columns = pair_columns(get("position", np.int64), pair)
    columns["status"] = _categorical(status, list(STATUS))
    meta: dict[str, tuple] = {}  # per annotator, shared by both sides
    side_a = _side_columns(batch, pair, index_a, pair_list, 0, "a", categories, meta)
    side_b = _side_columns(batch, pair, index_b, pair_list, 1, "b", categories, meta)
    del meta
    for key in ("object_index", "category"):
        columns[f"{key}_a"] = side_a[f"{key}_a"]
        columns[f"{key}_b"] = side_b[f"{key}_b"]
    columns.update(iou=get("iou", np.float64), best_iou=get("best_iou", np.float64),
                   intersection=get("intersection", np.int64), area_a=get("area_a", np.int64),
                   area_b=get("area_b", np.int64), label_disagreement=get("label_disagreement", bool),
                   crowd_share=get("crowd_share", np.float64))
    for name in boundary_names:
        columns[name] = get(name, np.float64)
    for key in ("file", "source_index", "source_id"):
        columns[f"{key}_a"] = side_a[f"{key}_a"]
    for key in ("file", "source_index", "source_id"):
        columns[f"{key}_b"] = side_b[f"{key}_b"]
    object_pairs = pd.DataFrame(columns, copy=False)

    # image pairs
    img, m = _concat(parts, "img")
    iget = lambda name, dtype: img[name].astype(dtype, copy=False) if m else np.zeros(0, dtype)  # noqa: E731
    ipair = iget("pair", np.int64)
    icols = pair_columns(iget("position", np.int64), ipair)
    for name in _IMAGE_COUNTS:
        icols[name] = iget(name, np.int64)
    extra_means = [k for k in img if k.endswith("_mean") and k != "mask_iou_mean"]
    for name in ["mask_iou_mean", "pq", "sq", "rq", *extra_means]:
        icols[name] = iget(name, np.float64)
    image_pairs = pd.DataFrame(icols, copy=False)

    # scores: per annotator pair, then the batch
    pq_totals: dict[int, dict] = {}
    for part in parts:
        for code, per_cat in part["pq"].items():
            total = pq_totals.setdefault(code, {})
            for c, row in per_cat.items():
                t = total.setdefault(c, [0, 0, 0, 0.0])
                for k in range(4):
                    t[k] += row[k]
    isthing = {k: batch.categories[c].isthing if c in batch.categories else True for k, c in enumerate(categories)}
    records: list[tuple] = []
    means: dict[str, list[float]] = {}
    label = columns["label_disagreement"]
    for code, key in enumerate(pair_keys):
        in_pair = pair == code
        matched = in_pair & (status == MATCHED)
        n_images = int((ipair == code).sum())
        records.append(("annotator_pair", key, "images", n_images, n_images))
        for metric, value in (("matched", matched.sum()), ("missing", (in_pair & (status == MISSING)).sum()),
                              ("extra", (in_pair & (status == EXTRA)).sum()),
                              ("ignored", (in_pair & (status == IGNORED)).sum()),
                              ("label_disagreements", (in_pair & label).sum())):
            records.append(("annotator_pair", key, metric, int(value), n_images))
        figures = {"mask_iou_mean": columns["iou"][matched]}
        for name in boundary_names:
            if _score_name(name) is not None:
                figures[_score_name(name)] = columns[name][matched]
        for metric, values in figures.items():
            values = values[~np.isnan(values)]
            value = float(values.mean()) if len(values) else math.nan
            records.append(("annotator_pair", key, metric, value, len(values)))
            means.setdefault(metric, []).append(value)
        if code in pq_totals:
            summary = pq_summary(pq_totals[code], isthing=isthing)
            for metric in ("pq", "sq", "rq"):
                records.append(("annotator_pair", key, metric, summary["all"][metric], summary["all"]["n"]))
                means.setdefault(metric, []).append(summary["all"][metric])
            records.append(("annotator_pair", key, "pq_things", summary["things"]["pq"], summary["things"]["n"]))
            records.append(("annotator_pair", key, "pq_stuff", summary["stuff"]["pq"], summary["stuff"]["n"]))
    for metric in ("matched", "missing", "extra", "ignored", "label_disagreements"):
        records.append(("batch", "", metric, sum(r[3] for r in records if r[0] == "annotator_pair" and r[2] == metric),
                        len(pair_keys)))
    for metric, values in means.items():
        values = [v for v in values if v == v]
        records.append(("batch", "", metric, float(np.mean(values)) if values else math.nan, len(values)))
    scores = pd.DataFrame.from_records(records, columns=["scope", "key", "metric", "value", "n"])
    scores["value"] = scores["value"].astype(np.float64)
    scores["n"] = scores["n"].astype(np.int64)
    settings = {"tolerances": list(cfg.tolerances), "iou_threshold": cfg.iou_threshold,
                "boundary_metrics": bool(boundary_names), "pq_form": "symmetric"}
    return Comparison(object_pairs=object_pairs, image_pairs=image_pairs, scores=scores, settings=settings)
