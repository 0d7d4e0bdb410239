"""The comparison's result tables, built chunk by chunk in the main process.

:class:`Tables` receives each chunk's rows as compact column arrays (the per-image task's comparison part,
:func:`qa.engine.compare.compare_image`), turns them at once into the store's compact column types
(category codes, int32 where exact, float32 pixel counts where exact), appends them to block-backed
columns (:class:`Column`) and drops them; at the end it joins each column once into the
``object_pairs`` and ``image_pairs`` DataFrames of a :class:`qa.engine.compare.Comparison`, or writes
Parquet parts while the rows arrive (:class:`Spill`). Every row carries its objects' category, file and
source, so the tables need nothing of the batch but its image keys, categories and annotators.
"""

from __future__ import annotations

import functools
import math
import re

import numpy as np

from qa import metric_registry
from qa.model import Batch


@functools.lru_cache(maxsize=None)
def _score_name(name: str) -> str | None:
    """The scores-table name of the mean of a boundary metric of ``object_pairs`` (units in the name, as the
    metric registry declares it: ``signed_offset`` -> ``signed_offset_px_mean``), or None for a column
    that is not averaged (the counts ``boundary_pair`` also returns: ``*_n``, matched boundary pixels,
    band areas, surface lengths) and for ``iou`` (``mask_iou_mean``, the engine's own figure)."""
    return None if name == "iou" else metric_registry.score_for_column(name)


_OBJECT_COLUMNS = ("position", "pair", "index_a", "index_b", "status", "iou", "best_iou", "intersection",
                   "area_a", "area_b", "label_disagreement", "crowd_share", "category_a", "category_b", "file_texts",
                   "file_codes", "source_index_a", "source_index_b", "source_id_texts", "source_id_codes")
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


def text_codes(values) -> tuple[list, np.ndarray]:
    """``values`` as text, factorized: (distinct texts in the order first met, each value's place among
    them, -1 for None). A value that is not a string is its ``str``."""
    import pandas as pd

    values = np.asarray(values, dtype=object)
    local = np.full(len(values), -1, dtype=np.int32)
    present = np.flatnonzero(values != None)  # noqa: E711 (elementwise)
    if not len(present):
        return [], local
    text = np.empty(len(present), object)
    text[:] = [v if type(v) is str else str(v) for v in values[present].tolist()]
    codes, distinct = pd.factorize(text, use_na_sentinel=False)  # hashed once per row in C
    local[present] = codes
    return list(distinct), local


class _Codes:
    """Text values (file names, source ids) coded row by row, in the order first met, in a table of the
    values seen since :meth:`forget`: source ids are usually distinct for every object, so a batch-wide
    table of them would grow with the batch even when the result tables are spilled part by part."""

    def __init__(self):
        self.values: dict[str, int] = {}

    def codes(self, values) -> np.ndarray:
        """Codes of ``values`` (as text; -1 for None), new values numbered in the order given."""
        return self.from_local(*text_codes(values))

    def from_local(self, distinct, local) -> np.ndarray:
        """The codes of values given as :func:`text_codes` gives them (as a task sends them): only each
        distinct text goes through the table, in the order met."""
        table = self.values
        coded = np.fromiter((table.setdefault(v, len(table)) for v in distinct), dtype=np.int32,
                            count=len(distinct))
        local = np.asarray(local, dtype=np.int32)
        out = np.full(len(local), -1, dtype=np.int32)
        present = local >= 0
        out[present] = coded[local[present]]
        return out

    def forget(self) -> None:
        """Start a new table (the rows coded so far are written out)."""
        self.values = {}


class Tables:
    """Builds ``object_pairs`` and ``image_pairs`` from the chunks' column arrays as they arrive.

    Each chunk is turned at once into compact columns (category codes, int32 where exact, float32 pixel
    counts where exact), appended to the tables' block-backed columns (:class:`Column`) and dropped.
    In memory, every column is joined once at the end, its blocks released as they are copied, so the
    tables exist in one copy (plus one column). With ``spill_dir``, parts of about ``_SPILL_ROWS`` rows
    are written to Parquet and released.
    """

    def __init__(self, batch: Batch, pair_list, categories: list[str], cfg, spill_dir=None, owner=None):
        from qa.engine.match import STATUS

        self.batch = batch
        self.pair_list = pair_list
        self.categories = categories
        self.cfg = cfg
        self.images = list(batch.images)
        self.position = {key: k for k, key in enumerate(self.images)}
        self.names = sorted({x for p in pair_list for x in p})
        self.pair_keys = [f"{a}|{b}" for a, b in pair_list]
        self.code_a = np.array([self.names.index(a) for a, _ in pair_list] or [0], dtype=np.int64)
        self.code_b = np.array([self.names.index(b) for _, b in pair_list] or [0], dtype=np.int64)
        self.status = list(STATUS)
        self.files = _Codes()
        self.source_ids = _Codes()
        pixels = max((i.height * i.width for i in batch.images.values()), default=0)
        self.int_type = np.int32 if pixels < 2 ** 31 else np.int64
        self.count_type = np.float32 if pixels < 2 ** 24 else np.float64
        self.max_objects = max((e.count().objects for e in batch.exports.values()), default=0)
        self.index_type = np.int32 if self.max_objects < 2 ** 31 else np.int64
        self.spill = None if spill_dir is None else Spill(spill_dir, coded={
            "image": self.images, "pair": self.pair_keys, "annotator_a": self.names, "annotator_b": self.names,
            "status": self.status, "category_a": categories, "category_b": categories}, owner=owner)
        self.boundary_names: dict[str, None] = {}
        if self.spill is not None and cfg.boundary:  # fixed columns: every part has the same schema
            self.boundary_names.update(dict.fromkeys(_boundary_names(cfg.tolerances)))
        self.obj = Table()
        self.img = Table()
        self.buffered = 0
        self.pq: dict[int, dict] = {}
        self.image_iou: dict[int, dict] = {}  # pair code -> {category code: [sum, n]}
        self.image_iou_pairs = np.zeros((len(pair_list), 2), np.float64)  # per pair: sum, images with a value
        self.images_per_pair = np.zeros(len(pair_list), np.int64)

    # -- per chunk --

    def add(self, part: dict) -> None:
        """Take one chunk's rows (:func:`qa.engine.compare.compare_image`'s, gathered by
        :func:`qa.engine.compare.chunk_columns`): ``keys`` (the chunk's images; rows give ``position``
        in them), ``obj``, ``img``, ``pq`` and ``image_iou``."""
        obj, img = part.pop("obj"), part.pop("img")
        lookup = np.asarray([self.position[k] for k in part["keys"]] or [0], dtype=np.int64)
        if "position" in obj:
            obj["position"] = lookup[obj["position"].astype(np.int64)]
        if img:
            img["position"] = lookup[img["position"].astype(np.int64)]
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
        code_type = _code_dtype(len(self.categories))
        side_a = {"category": obj.pop("category_a").astype(code_type),
                  "source_index": obj.pop("source_index_a").astype(np.int64, copy=False)}
        side_b = {"category": obj.pop("category_b").astype(code_type),
                  "source_index": obj.pop("source_index_b").astype(np.int64, copy=False)}
        # files and source ids coded row by row, a then b, so that their tables' order is the same
        # whatever the chunks (and so the executor) were; the task sends each chunk's distinct texts
        for key, coder in (("file", self.files), ("source_id", self.source_ids)):
            codes = coder.from_local(obj.pop(f"{key}_texts"), obj.pop(f"{key}_codes"))
            side_a[key], side_b[key] = codes[0::2], codes[1::2]
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

        files = list(self.files.values)
        source_ids = list(self.source_ids.values)
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
        self.files.forget()
        self.source_ids.forget()
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

    def finish(self):
        from qa.engine.compare import Comparison

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
        if self.spill is not None and self.spill.owner is None:  # a folder the caller chose (not the run's own)
            settings["spill_dir"] = str(self.spill.folder)
        from qa.engine.compare import plan_settings

        settings.update(plan_settings(self.cfg))
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
        from qa.engine.match import EXTRA, IGNORED, MATCHED, MISSING
        from qa.parts import read_table

        parts = self.spill.table("object_pairs").paths
        n = len(self.pair_keys)
        counts = [dict.fromkeys(("matched", "missing", "extra", "ignored", "label_disagreements"), 0)
                  for _ in range(n)]
        values: list[dict] = [{} for _ in range(n)]
        names = list(self._score_columns().items())
        for step in range(len(names) + 1):
            pieces: list[list] = [[] for _ in range(n)]
            for path in parts:
                columns = ["pair", "status"] + (["label_disagreement"] if step == 0 else [names[step - 1][0]])
                table = read_table(path, columns)  # one file, not a dataset
                pair = table.column("pair").to_numpy()  # codes (:class:`Spill`)
                status = table.column("status").to_numpy()
                for code in range(n):
                    in_pair = pair == code
                    matched = in_pair & (status == MATCHED)
                    if step == 0:
                        for label, name in ((MATCHED, "matched"), (MISSING, "missing"), (EXTRA, "extra"),
                                            (IGNORED, "ignored")):
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


class Column:
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


class Table:
    """Columns of one result table filled chunk by chunk (see :class:`Column`)."""

    def __init__(self):
        self.columns: dict[str, Column] = {}
        self.rows = 0

    def append(self, chunk: dict, count_type) -> None:
        n = len(next(iter(chunk.values())))
        for name, values in chunk.items():
            if name not in self.columns:  # a boundary figure first seen now: NaN on the rows before
                dtype = values.dtype if self.rows == 0 else (
                    count_type if _COUNT_COLUMN.search(name) else np.float64)
                self.columns[name] = Column(dtype)
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


class Spill:
    """Parquet parts of the result tables in a folder: ``object_pairs/part-00000.parquet``, ...,
    ``image_pairs/part-00000.parquet``, ...

    The columns whose categories are the batch's (``image``, ``pair``, the annotators, ``status``, the
    categories: ``coded``) are written as their integer codes and made categorical again on reading, with
    the same categories as the table in memory; the file and source-id columns keep the part's own
    categories (the values first met in it), which :class:`qa.parts.Parts` joins in order. So a table read
    back equals the one built in memory, dtypes and categories included.
    """

    def __init__(self, folder, coded: dict | None = None, owner=None):
        from pathlib import Path

        self.folder = Path(folder)
        self.owner = owner  # what keeps the folder alive (a run folder), held by every table read from it
        self.coded = dict(coded or {})
        self.parts = 0
        self.rows = {"object_pairs": 0, "image_pairs": 0}
        for name in ("object_pairs", "image_pairs"):
            sub = self.folder / name
            sub.mkdir(parents=True, exist_ok=True)
            for old in sub.glob("part-*.parquet"):  # a folder reused for a new run: no stale parts
                old.unlink()

    def write(self, frames: dict) -> None:
        """Write one part of each table."""
        for table, frame in frames.items():
            for name in self.coded:
                if name in frame:
                    frame[name] = frame[name].cat.codes
            frame.to_parquet(self.folder / table / f"part-{self.parts:05d}.parquet", engine="pyarrow", index=False)
            self.rows[table] += len(frame)
        self.parts += 1

    def table(self, name: str):
        """One table as :class:`qa.parts.Parts` (read whole, by column or part by part)."""
        from qa.parts import Parts

        paths = [self.folder / name / f"part-{k:05d}.parquet" for k in range(self.parts)]
        return Parts(paths, self.rows[name], owner=self.owner, restore=self._restore)

    def _restore(self, frame):
        import pandas as pd

        for name in frame.columns:
            column = frame[name]
            if name in self.coded:
                frame[name] = _categorical(column.to_numpy(), self.coded[name])
            elif isinstance(column.dtype, pd.CategoricalDtype):  # the categories' type as built in memory
                frame[name] = _categorical(column.cat.codes.to_numpy(), list(column.cat.categories))
            elif name.startswith(("file_", "source_id_")):  # no value in the part: Parquet keeps no categories
                frame[name] = _categorical(np.full(len(frame), -1, np.int8), [])
        return frame

    def read(self, table: str):
        """The whole table (its parts in order)."""
        return self.table(table).read()
