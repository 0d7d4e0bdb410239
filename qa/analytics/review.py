"""The review queue: images and objects to look at first, worst first, each with its reason.

Every candidate gets a ``score`` in [0, 1] (1 is the worst) from one of these reasons:

============================  =========================================  ==============================
reason                        candidate                                  score
============================  =========================================  ==============================
``low_agreement`` (image)     an image's annotator pairs                 ``1 - mean agreement``
``unmatched`` (object)        an object other annotators did not match   ``1 - best_iou``
``label_disagreement``        a matched pair with two categories         ``1``
``attribute_mismatch``        a matched pair with two attribute values   ``0.5``, ordinal ``|diff| / range``
``low_iou``                   a matched pair with one category           ``1 - iou``
``boundary_offset``           a matched pair whose outlines are apart    ``|offset| / (|offset| + t)``
``rule_error``                an object with an error-severity violation ``1``
============================  =========================================  ==============================

``agreement`` of an image pair is ``sum(IoU of same-category matches) / (TP + FP/2 + FN/2)`` over all its
objects (panoptic quality's formula with the categories pooled): 1 when both annotators drew the same
objects with the same labels and outlines, 0 when nothing matches. ``t`` is the largest boundary
tolerance of the comparison (an offset of ``t`` pixels scores 0.5).

An object appears once, under its worst reason; ``reasons`` counts the annotator pairs (or rules) that
give that reason (an object drawn by one annotator of four is unmatched in three pairs; an image row
counts its pairs with a score of at least ``min_score``). An unmatched object's ``best_iou`` is the
largest IoU any of the annotators that did not match it reached with one of their objects (the best
of its pairs, so its score says how close the nearest outline came), and its detail says who drew
something there below the matching threshold and who drew nothing there. The queue is sorted by score, then
``reasons``, then object area (largest first), and keeps the rows with ``score >= min_score``.
"""

from __future__ import annotations

import numpy as np

COLUMNS = ["rank", "kind", "image", "reason", "metric", "value", "score", "reasons", "annotator", "object_index",
           "category", "other_annotator", "other_object_index", "area", "file", "source_index", "source_id",
           "detail"]
"""The queue's columns (also the stored ``review_queue`` table's, with ``run_id``)."""

REASONS = ("low_agreement", "unmatched", "label_disagreement", "attribute_mismatch", "low_iou", "boundary_offset",
           "rule_error")


def _fmt(values, digits=2):
    return np.char.mod(f"%.{digits}f", np.asarray(values, dtype=np.float64)).astype(object)


def _str(values):
    return np.asarray(values, dtype=object).astype(str)


def _image_rows(op, min_score: float):
    """One candidate per image of ``op`` (rows of ``object_pairs``): its worst pair's agreement."""
    import pandas as pd

    op = op[op["status"] != "ignored"]
    matched = (op["status"] == "matched").to_numpy()
    label = op["label_disagreement"].to_numpy(dtype=bool) & matched
    tp = matched & ~label
    frame = pd.DataFrame({
        "image": op["image"].astype(str).to_numpy(), "pair": op["pair"].astype(str).to_numpy(),
        "tp": tp.astype(np.int64), "iou": np.where(tp, op["iou"].to_numpy(dtype=np.float64), 0.0),
        "missing": (op["status"] == "missing").to_numpy().astype(np.int64),
        "extra": (op["status"] == "extra").to_numpy().astype(np.int64), "label": label.astype(np.int64),
        "matched": matched.astype(np.int64),
    })
    if not len(frame):
        return None
    g = frame.groupby(["image", "pair"], sort=True).sum()
    fp = g["extra"] + g["label"]
    fn = g["missing"] + g["label"]
    denom = g["tp"] + 0.5 * (fp + fn)
    g = g.assign(agreement=np.where(denom > 0, g["iou"] / denom.where(denom > 0, 1), np.nan))
    g = g[denom > 0].reset_index()
    if not len(g):
        return None
    by_image = g.groupby("image", sort=True)
    bad = (1.0 - g["agreement"] >= min_score).groupby(g["image"]).sum()
    mean = by_image["agreement"].mean()
    pairs = by_image.size()
    worst = g.sort_values(["image", "agreement", "pair"], kind="stable").drop_duplicates("image")
    mean = mean.reindex(worst["image"]).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_iou = np.where(worst["tp"] > 0, worst["iou"] / worst["tp"].where(worst["tp"] > 0, 1), np.nan)
    iou_text = np.where(worst["tp"] > 0, " (mean IoU " + _fmt(mean_iou) + ")", "")
    detail = ("mean agreement " + _fmt(mean) + " over " + _str(pairs.reindex(worst["image"]).to_numpy())
              + " pairs; worst " + _str(worst["pair"]) + " " + _fmt(worst["agreement"]) + ": "
              + _str(worst["matched"]) + " matched" + iou_text + ", " + _str(worst["missing"]) + " missing, "
              + _str(worst["extra"]) + " extra, " + _str(worst["label"]) + " label disagreements")
    return pd.DataFrame({
        "kind": "image", "image": worst["image"].to_numpy(), "reason": "low_agreement", "metric": "agreement_mean",
        "value": mean, "score": 1.0 - mean,
        "annotator": worst["pair"].to_numpy(), "detail": detail,
        "reasons": worst["image"].map(bad).to_numpy(dtype=np.float64),
    })


def _object_rows(op, tolerance: float, min_score: float = 0.0, first_row: int = 0):
    """Candidate rows for the objects of ``op`` (rows of ``object_pairs`` from row ``first_row``):
    unmatched, label disagreements, low IoU, boundary offsets; ``seq`` is each row's in ``object_pairs``.

    The rows of a reason whose score is final here (every reason but ``unmatched``, whose score is the
    best over the object's pairs) are kept only at ``min_score`` or above, as :func:`review_queue` would
    keep them, so their words are written for the rows kept only. A reason with candidates keeps a
    frame, empty when none reaches ``min_score``."""
    import pandas as pd

    seq = np.flatnonzero((op["status"] != "ignored").to_numpy()) + first_row
    op = op[op["status"] != "ignored"]
    status = op["status"].astype(str).to_numpy()
    matched = status == "matched"
    extra = status == "extra"
    label = op["label_disagreement"].to_numpy(dtype=bool) & matched
    a, b = _str(op["annotator_a"]), _str(op["annotator_b"])
    ia = op["object_index_a"].to_numpy(dtype=np.float64, na_value=np.nan)
    ib = op["object_index_b"].to_numpy(dtype=np.float64, na_value=np.nan)
    ca = op["category_a"].astype(object).to_numpy()
    cb = op["category_b"].astype(object).to_numpy()
    iou = op["iou"].to_numpy(dtype=np.float64)
    best = op["best_iou"].to_numpy(dtype=np.float64)
    offset = op["signed_offset"].to_numpy(dtype=np.float64) if "signed_offset" in op else np.full(len(op), np.nan)
    # the primary object: b's for an extra row, a's otherwise
    side = {
        "annotator": np.where(extra, b, a), "object_index": np.where(extra, ib, ia),
        "category": np.where(extra, cb, ca), "other_annotator": np.where(extra, a, b),
        "other_object_index": np.where(extra, ia, ib),
        "area": np.where(extra, op["area_b"].to_numpy(), op["area_a"].to_numpy()).astype(np.float64),
        "file": np.where(extra, op["file_b"].astype(object).to_numpy(), op["file_a"].astype(object).to_numpy()),
        "source_index": np.where(extra, op["source_index_b"].to_numpy(dtype=np.float64, na_value=np.nan),
                                 op["source_index_a"].to_numpy(dtype=np.float64, na_value=np.nan)),
        "source_id": np.where(extra, op["source_id_b"].astype(object).to_numpy(),
                              op["source_id_a"].astype(object).to_numpy()),
        "seq": seq,
    }
    image = op["image"].astype(str).to_numpy()
    parts = []

    def part(mask, reason, metric, value, score, detail, final=True):
        if not mask.any():
            return
        if final:
            mask = mask & (score >= min_score)
        frame = pd.DataFrame({"kind": "object", "image": image[mask], "reason": reason, "metric": metric,
                              "value": value[mask], "score": score[mask],
                              **{k: v[mask] for k, v in side.items()}, "detail": detail(mask)})
        parts.append(frame)

    unmatched = ~matched
    who, other = side["annotator"], side["other_annotator"]
    part(unmatched, "unmatched", "best_iou", best, 1.0 - np.nan_to_num(best),
         lambda m: "drawn by " + who[m] + ", not by " + other[m], final=False)
    part(label, "label_disagreement", "mask_iou", iou, np.ones(len(op)),
         lambda m: a[m] + " says " + _str(ca[m]) + ", " + b[m] + " says " + _str(cb[m]) + " (IoU " + _fmt(iou[m]) + ")")
    part(matched & ~label, "low_iou", "mask_iou", iou, 1.0 - iou,
         lambda m: "IoU " + _fmt(iou[m]) + " between " + a[m] + " and " + b[m])
    with np.errstate(invalid="ignore"):
        big = matched & np.isfinite(offset)
        score = np.abs(offset) / (np.abs(offset) + float(tolerance))
    direction = np.where(offset >= 0, " px outside ", " px inside ")
    part(big, "boundary_offset", "signed_offset_px", offset, np.nan_to_num(score),
         lambda m: a[m] + "'s outline " + _fmt(np.abs(offset[m]), 1) + direction[m] + b[m] + "'s")
    return parts


def _rule_rows(batch, violations):
    """Candidate rows for objects with an error-severity rule violation (``seq``: the violation's place
    among them). Only the objects named by a violation are looked up, one export at a time.

    The rows are made a column at a time, and of each object only what a row shows is kept: a dict a
    row and the objects themselves held 90 MB at once for the 40,000 errors of a 20,000-image batch."""
    import pandas as pd

    from qa.rules.violations import of_severity

    errors = [f for f in of_severity(violations, "error") if f.annotator and f.source is not None]
    if not errors:
        return None
    wanted: dict = {}
    for f in errors:
        wanted.setdefault(f.annotator, set()).add((f.source.file, f.source.section, f.source.index))
    where = {}  # (annotator, file, section, index) -> (position in the export, image, category, area)
    for name, keys in wanted.items():
        export = batch.exports.get(name)
        for k, o in enumerate(export.objects if export is not None else ()):
            key = (o.source.file, o.source.section, o.source.index)
            if key in keys:
                where[(name, *key)] = (k, o.image, o.category, np.nan if o.area is None else float(o.area))
    del wanted
    missing = (None, None, None, np.nan)
    found = [where.get((f.annotator, f.source.file, f.source.section, f.source.index), missing) for f in errors]
    del where
    n = len(errors)
    return pd.DataFrame({
        "kind": ["object"] * n,
        "image": [f.image or image for f, (_, image, _, _) in zip(errors, found)],
        "reason": ["rule_error"] * n,
        "metric": [f.code for f in errors],
        "value": np.array([np.nan if f.value is None else float(f.value) for f in errors], dtype=np.float64),
        "score": np.ones(n),
        "annotator": [f.annotator for f in errors],
        "object_index": np.array([np.nan if k is None else float(k) for k, *_ in found], dtype=np.float64),
        "category": [category for _, _, category, _ in found],
        "area": np.array([area for *_, area in found], dtype=np.float64),
        "file": [f.source.file for f in errors],
        "source_index": np.array([np.nan if f.source.index is None else float(f.source.index) for f in errors],
                                 dtype=np.float64),
        "source_id": [None if f.source.id is None else str(f.source.id) for f in errors],
        "detail": [f"{f.code} {f.message}" for f in errors],
        "seq": np.arange(n, dtype=np.int64)})


def _joined(keys, names):
    """``names`` joined with ", " per key (a Series by key, keys in order of first appearance, names in
    row order): ``frame.groupby(keys, sort=False)[names].agg(", ".join)`` in one pass over the rows.

    Examples
    --------
    >>> _joined(["b", "a", "b"], ["x", "y", "z"]).to_dict()
    {'b': 'x, z', 'a': 'y'}
    """
    import pandas as pd

    out: dict = {}
    # whole columns to Python lists at once: iterating a pandas text column yields one value per call
    for key, name in zip(np.asarray(keys, dtype=object).tolist(), np.asarray(names, dtype=object).tolist()):
        out[key] = out[key] + ", " + name if key in out else name
    return pd.Series(out, dtype=object)


def _unmatched_details(unmatched, threshold: float):
    """The words of each unmatched object (a Series by ``key``): who drew something there below the
    matching threshold (with the best IoU and whose it is), who drew it but had that outline matched to
    another object, and who drew nothing there. Vectorised over the objects: a few grouped joins.

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"key": ["a:1"] * 3, "annotator": ["a"] * 3, "other_annotator": ["b", "c", "d"],
    ...                      "value": [0.36, 0.499, 0.0]})
    >>> _unmatched_details(rows, 0.5).tolist()
    ['drawn by a; b, c drew it below the matching IoU 0.5 (best 0.499, c); not drawn by d']
    """
    import pandas as pd

    rows = unmatched[["key", "annotator", "other_annotator", "value"]].copy()
    rows["value"] = rows["value"].fillna(0.0).astype(np.float64)
    rows = rows.sort_values(["key", "other_annotator"], kind="stable")
    keys = pd.Index(rows["key"].drop_duplicates())
    text = pd.Series("drawn by " + rows.drop_duplicates("key").set_index("key")["annotator"].astype(str),
                     index=keys).reindex(keys)
    value = rows["value"].to_numpy()
    below = rows[(value > 0) & (value < threshold)]
    if len(below):
        names = _joined(below["key"], below["other_annotator"])
        best = below.sort_values(["key", "value"], kind="stable").drop_duplicates("key", keep="last") \
            .set_index("key")
        part = (names + f" drew it below the matching IoU {threshold:g} (best "
                + pd.Series(_fmt(best["value"], 3), index=best.index) + ", " + best["other_annotator"] + ")")
        text.loc[part.index] = text.loc[part.index] + "; " + part
    taken = rows[value >= threshold]
    if len(taken):
        names = _joined(taken["key"], taken["other_annotator"])
        top = taken.groupby("key", sort=False)["value"].max()
        part = names + " drew it (IoU up to " + pd.Series(_fmt(top, 3), index=top.index) + \
            ") but matched that outline to another object"
        text.loc[part.index] = text.loc[part.index] + "; " + part
    absent = rows[value <= 0]
    if len(absent):
        part = "not drawn by " + _joined(absent["key"], absent["other_annotator"])
        text.loc[part.index] = text.loc[part.index] + "; " + part
    return text


_RANGE_ROWS = 10_000
"""Rows of ``object_pairs`` made into candidates at a time, cut between images (every candidate of an
object comes from its own image's rows, so a range's rows are ranked and deduplicated on their own)."""

_SORT = ("score", "reasons", "area", "image", "annotator", "order", "seq")
_DESCENDING = ("score", "reasons", "area")
"""The queue's order: worst first, then more reasons, larger objects, image and annotator names; the
last two keys (the reason's place in :data:`REASONS`, the row's in ``object_pairs`` or the violation's
among the errors) make it total, so a queue made range by range is ranked as one made at once."""

_INTEGERS = ("object_index", "other_object_index", "source_index")
_TEXT = ("kind", "image", "reason", "metric", "annotator", "category", "other_annotator", "file", "source_id",
         "detail")


def _ranges(op) -> list[tuple[int, int]]:
    """Row ranges of ``op`` of about :data:`_RANGE_ROWS` rows each, cut where an image starts; one range when
    an image's rows are not all together."""
    n = len(op)
    if n <= _RANGE_ROWS:
        return [(0, n)]
    image = op["image"]
    codes = image.cat.codes.to_numpy() if hasattr(image, "cat") else image.factorize()[0]
    starts = np.flatnonzero(codes[1:] != codes[:-1]) + 1  # the rows where the next image starts
    if len(starts) + 1 != len(np.unique(codes)):
        return [(0, n)]
    if not len(starts):
        return [(0, n)]
    cuts = starts[np.minimum(np.searchsorted(starts, np.arange(_RANGE_ROWS, n, _RANGE_ROWS)), len(starts) - 1)]
    bounds = [0, *np.unique(cuts).tolist(), n]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _typed(out, *, text: bool = True):
    """The queue's column types (of the columns ``out`` has): nullable integers, float64 area, int64
    counts, text as str or None (left as it is with ``text=False``, for rows only written to Parquet:
    a Python string a cell cost 60 MB for the 85,000 attribute rows of a 20,000-image run)."""
    import pandas as pd

    for column in _INTEGERS:
        if column in out:
            values = out[column].to_numpy(dtype=np.float64, na_value=np.nan)
            missing = np.isnan(values)
            out[column] = pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing)
    for column, dtype in (("area", np.float64), ("reasons", np.int64)):
        if column in out:
            out[column] = out[column].astype(dtype)
    for column in _TEXT if text else ():
        if column in out:
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out


def _range_queue(op, first_row: int, rules, *, tolerance: float, threshold: float, min_score: float,
                 text: bool = True):
    """The kept rows of one range of ``object_pairs`` (from row ``first_row``) and of the rule rows of its
    images: every candidate scored, an object once under its worst reason, typed (:func:`_typed`, its
    ``text`` too), with the sort keys ``order`` and ``seq``, not yet ranked. None when the range has no
    candidate."""
    import pandas as pd

    parts = []
    images = _image_rows(op, min_score)
    if images is not None:
        parts.append(images)
    objects = _object_rows(op, tolerance, min_score, first_row)
    parts.extend(objects)
    if rules is not None and len(rules):
        parts.append(rules)
    parts = [p for p in parts if len(p)] or objects[:1]  # candidates, none kept: an empty queue of the columns' types
    if not parts:
        return None
    rows = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    for column in COLUMNS[1:]:
        if column not in rows:
            rows[column] = np.nan if column in ("object_index", "other_object_index", "area", "source_index") else None
    rows["order"] = rows["reason"].map({r: k for k, r in enumerate(REASONS)}).astype(np.int64)
    rows["seq"] = rows["seq"].fillna(0).astype(np.int64) if "seq" in rows else np.zeros(len(rows), np.int64)
    known = rows["object_index"].notna().to_numpy()
    key = np.where(rows["kind"] == "image", "image:" + rows["image"].astype(str),
                   rows["annotator"].astype(str) + ":" + np.where(
                       known, rows["object_index"].astype(str), "violation " + rows["seq"].astype(str)))
    rows["key"] = key  # an object, or a violation whose object was not found (each its own row)
    # an unmatched object: the best IoU over its pairs, and every annotator that did not match it
    is_unmatched = rows["reason"] == "unmatched"
    if is_unmatched.any():
        unmatched = rows[is_unmatched]
        best = unmatched["value"].fillna(0.0).groupby(unmatched["key"]).transform("max")
        rows.loc[is_unmatched, "value"] = best
        rows.loc[is_unmatched, "score"] = 1.0 - best
        rows.loc[is_unmatched, "detail"] = _unmatched_details(unmatched, threshold).reindex(
            unmatched["key"]).to_numpy()
        ordered = unmatched.sort_values("other_annotator", kind="stable")
        names = _joined(ordered["key"], ordered["other_annotator"])
        rows.loc[is_unmatched, "other_annotator"] = names.reindex(unmatched["key"]).to_numpy()
    rows = rows[rows["score"] >= min_score]
    if "reasons" not in rows or rows["reasons"].isna().any():
        counted = rows.groupby(["key", "reason"])["score"].transform("size").astype(np.int64)
        rows["reasons"] = rows["reasons"].fillna(counted) if "reasons" in rows else counted
    rows = rows.sort_values(["score", "order"], ascending=[False, True], kind="stable")
    rows = rows.drop_duplicates("key")
    return _typed(rows[[*COLUMNS[1:], "order", "seq"]].reset_index(drop=True), text=text)


def _ranged(batch, comparison, violations, min_score: float, *, text: bool = True, executor=None):
    """Each range's kept rows (:func:`_range_queue`), in order, one at a time: each range (whole images) is
    a task (:func:`_range_task`) on ``executor`` (:mod:`qa.engine._executors`; in this process without
    one), given its rows of ``object_pairs`` and its images' rule rows, so the candidates of several ranges
    are made at once."""
    settings = (float(max(comparison.settings.get("tolerances") or [2])),
                float(comparison.settings.get("iou_threshold", 0.5)), float(min_score), bool(text))
    from qa.engine._pool import on_executor

    jobs = _range_jobs(comparison.object_pieces(), _rule_rows(batch, violations))
    yield from on_executor(_range_task, jobs, settings, executor)


def _range_jobs(pieces, rules):
    """``(rows, first row, rule rows)`` of each range of the parts of ``object_pairs`` (:func:`_ranges`):
    each violation with the range of its image, those of no range's images with the last range."""
    left = None if rules is None else np.ones(len(rules), dtype=bool)  # violations not yet given to a range
    images = None if rules is None else rules["image"].map(lambda i: i if isinstance(i, str) else None)
    pending = None  # a range's job is made once the next is known: the last one also takes the rest
    for first, piece in pieces:  # whole images: the parts on disk, or the table
        for a, b in _ranges(piece):
            if pending is not None:
                rows, start, of_range = pending
                yield rows, start, None if rules is None else rules[of_range]
            rows = piece.iloc[a:b]
            of_range = None
            if rules is not None:
                of_range = left & images.isin(rows["image"].astype(str).unique()).to_numpy()
                left &= ~of_range
            pending = (rows, first + a, of_range)
    if pending is not None:
        rows, start, of_range = pending
        yield rows, start, None if rules is None else rules[of_range | left]


def _range_task(job, settings):
    """:func:`_range_queue` of one range, ``job`` ``(rows, first row, rule rows)`` and ``settings``
    ``(tolerance, IoU threshold, min_score, text)``: a task of :func:`_ranged`."""
    rows, first, rules = job
    tolerance, threshold, min_score, text = settings
    return _range_queue(rows, first, rules, tolerance=tolerance, threshold=threshold, min_score=min_score, text=text)


def _ranked(frames: list):
    """The ranges' kept rows as one queue, ranked."""
    import pandas as pd

    kept = [f for f in frames if f is not None]
    full = [f for f in kept if len(f)]
    if not kept:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    rows = (pd.concat(full, ignore_index=True) if len(full) > 1 else full[0]) if full else kept[0]
    rows = rows.sort_values(list(_SORT), ascending=[k not in _DESCENDING for k in _SORT], na_position="last",
                            kind="stable")
    rows.insert(0, "rank", np.arange(1, len(rows) + 1, dtype=np.int64))
    return rows[COLUMNS].reset_index(drop=True)


def _arrow_schema(columns=(*COLUMNS[1:], "order", "seq")):
    import pyarrow as pa

    types = {"rank": pa.int64(), "value": pa.float64(), "score": pa.float64(), "reasons": pa.int64(),
             "area": pa.float64(), "order": pa.int64(), "seq": pa.int64(),
             **{c: pa.int64() for c in _INTEGERS}, **{c: pa.string() for c in _TEXT}}
    return pa.schema([(c, types[c]) for c in columns])


SORT_ROWS = 100_000
"""Candidates that DuckDB sorts in one query, at most (unless one score bin, :data:`_SCORE_BINS`, holds
more): a larger queue is cut into ranges of scores, worst first, each sorted on its own within
:data:`SORT_MEMORY`, and the sorted ranges put one after the other. DuckDB fills the memory it is allowed:
sorting the 1.45 million candidates of a 20,000-image run in one query grew the process by 147 MB within
a 128 MB limit (and ran out of 64 MB); 158,000 of them sort within 64 MB, growing it by 73 MB."""

SORT_MEMORY = 64 * 2 ** 20
"""DuckDB's memory limit, in bytes, for sorting a range of at most :data:`SORT_ROWS` candidates; a range
that runs out of it (wider rows than the figures above) is sorted again within twice as much, up to
:func:`sort_memory_limit`."""

_SCORE_BINS = 1024
"""Bins of [0, 1) that the candidates' scores are counted in to cut the ranges: the edges are multiples of
1/1024, exact in binary, so a score lies in the same range in NumPy and in DuckDB."""


def sort_memory_limit(rows: int) -> int:
    """DuckDB's largest memory limit, in bytes, for sorting ``rows`` candidates on disk: 128 MB, or 20 bytes a
    row when that is more (from 6.7 million rows, only when one score holds that many: ranges of scores
    are sorted within :data:`SORT_MEMORY` first).

    DuckDB's external sort still needs memory in proportion to its rows: 1.45 million candidates sorted
    within 128 MB and not within 96; 14.5 million ran out of 128 MB and sorted within 256 (44 s; a peak of
    431 MB for the process).

    Examples
    --------
    >>> sort_memory_limit(1_450_000) // 2 ** 20, sort_memory_limit(14_500_000) // 2 ** 20
    (128, 276)
    """
    return max(128 * 2 ** 20, 20 * int(rows))


def _duckdb(folder, limit: int):
    """A DuckDB connection for sorting candidates on disk within ``limit`` bytes, spilling into ``folder``.

    One thread: with two, the scan of the candidates' many files and the sort ran out of the 128 MB at
    20,000 images (1.5 million candidates in 145 files); with one, 1.5 million rows in 1,450 files sort
    within it."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{max(int(limit) // 2 ** 20, 1)}MB'")
    con.execute("SET threads = 1")
    con.execute("SET temp_directory = ?", [str(folder / "duckdb.tmp")])
    return con


def _score_bins(scores) -> np.ndarray:
    """Each score's bin: 0 below 0, ``1 + floor(score * 1024)`` in [0, 1), :data:`_SCORE_BINS` + 1 from 1
    up and for NaN (which DuckDB orders above every number)."""
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=np.inf)
    return (np.clip(np.floor(np.clip(scores, -1.0, 2.0) * _SCORE_BINS) + 1, 0, _SCORE_BINS + 1)).astype(np.int64)


def _score_cuts(counts: np.ndarray, most: int = SORT_ROWS) -> list[float]:
    """The lowest score of each range but the last, worst range first: ranges of whole bins of at most
    ``most`` candidates (``counts``: candidates per bin, :func:`_score_bins`), or one bin when it holds more.
    A range is ``cut <= score < the cut before it``; the first has no upper bound (NaN lies in it), the
    last no lower one."""
    cuts, held = [], 0
    for b in range(len(counts) - 1, 0, -1):  # bin b's lowest score is (b - 1) / 1024; bin 0 ends the last range
        if held and counts[b] and held + counts[b] > most:
            cuts.append(b / _SCORE_BINS)  # the lowest score of bin b + 1
            held = 0
        held += int(counts[b])
    return cuts


def _sort_ranges(paths, cuts, folder):
    """The candidates of ``paths`` written again, one file per range of scores (``cuts``, worst range first):
    the files, in that order, and their rows. A part is read at a time."""
    import pyarrow.parquet as pq

    from qa.parts import batches

    ascending = np.asarray(sorted(cuts), dtype=np.float64)
    files = [folder / f"review_range-{k:04d}.parquet" for k in range(len(cuts) + 1)]
    writers, rows = {}, np.zeros(len(files), dtype=np.int64)
    try:
        for path in paths:
            for batch in batches(path, rows=10_000):
                scores = batch.column(batch.schema.get_field_index("score")).to_numpy(zero_copy_only=False)
                # NaN sorts after every cut, into the worst range, as DuckDB's comparisons put it there
                worst_first = len(cuts) - np.searchsorted(ascending, scores, side="right")
                for k in np.unique(worst_first):
                    chosen = batch.filter(worst_first == k)
                    if k not in writers:
                        writers[k] = pq.ParquetWriter(files[k], batch.schema)
                    writers[k].write_batch(chosen)
                    rows[k] += chosen.num_rows
    finally:
        for writer in writers.values():
            writer.close()
    return [(f, int(n)) for f, n in zip(files, rows) if n]


def _spilled(frames, folder, owner):
    """The ranges' kept rows written as Parquet parts in ``folder``, then ranked by DuckDB (an external
    sort within a small memory limit, :data:`SORT_ROWS` candidates at a time) into
    ``folder/review_queue``: a :class:`qa.parts.Parts`."""
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    from qa.parts import Parts

    folder = Path(folder)
    candidates = folder / "review_candidates"
    candidates.mkdir(parents=True, exist_ok=True)
    schema = _arrow_schema()
    paths, empty, rows = [], None, 0
    counts = np.zeros(_SCORE_BINS + 2, dtype=np.int64)
    for frame in frames:
        if frame is None:
            continue
        empty = frame.iloc[:0] if empty is None else empty
        rows += len(frame)
        if len(frame):
            counts += np.bincount(_score_bins(frame["score"].to_numpy(dtype=np.float64)), minlength=len(counts))
            path = candidates / f"part-{len(paths):05d}.parquet"
            pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)
            paths.append(path)
            del frame
    out = folder / "review_queue"
    out.mkdir(parents=True, exist_ok=True)
    target = out / "part-00000.parquet"
    if not paths:  # no row kept: an empty queue, in memory (typed as without a folder)
        return _ranked([] if empty is None else [_typed(empty)])
    from qa._memory import give_back

    cuts = _score_cuts(counts, SORT_ROWS)
    if cuts:  # more candidates than one sort takes: a file per range of scores, each sorted on its own
        ranges = [([path], n) for path, n in _sort_ranges(paths, cuts, folder)]
        for path in paths:
            path.unlink()
    else:
        ranges = [(paths, rows)]
    sorted_parts = [folder / f"review_sorted-{k:04d}.parquet" for k in range(len(ranges))]
    for (sources, n), sorted_rows in zip(ranges, sorted_parts):
        give_back()  # DuckDB allocates apart from Arrow's pool: what Arrow freed is given back first
        _sort(sources, n, sorted_rows, folder)
        for path in sources:
            path.unlink()
    written = _numbered(sorted_parts, target)
    if written != rows:  # each candidate lies in one range of scores: a cut that left some out is a bug
        raise RuntimeError(f"the review queue's sort wrote {written} of {rows} candidates")
    return Parts([target], written, owner=owner, restore=_typed)


def _sort(sources, rows: int, target, folder) -> None:
    """The candidates of ``sources`` (Parquet files) sorted by DuckDB into ``target`` (row
    groups of 10,000 rows: DuckDB's own 122,880 held 50 MB more as it wrote), within :data:`SORT_MEMORY`,
    or twice that as often as it runs out, up to :func:`sort_memory_limit`."""
    import duckdb

    order = ", ".join(
        {"area": "CASE WHEN isnan(area) THEN NULL ELSE area END DESC NULLS LAST"}.get(
            k, f'"{k}" {"DESC" if k in _DESCENDING else "ASC"} NULLS LAST') for k in _SORT)
    columns = ", ".join(f'"{c}"' for c in COLUMNS[1:])
    files = "[" + ", ".join(f"'{p}'" for p in sources) + "]"
    limit, most = SORT_MEMORY, sort_memory_limit(rows)
    while True:
        con = _duckdb(folder, limit)
        try:
            con.execute(f"COPY (SELECT {columns} FROM read_parquet({files}) ORDER BY {order}) "
                        f"TO '{target}' (FORMAT parquet, ROW_GROUP_SIZE 10000)")
            return
        except duckdb.OutOfMemoryException:
            if limit >= most:
                raise
            limit = min(2 * limit, most)
        finally:
            con.close()


def _numbered(sources, target) -> int:
    """The rows of ``sources`` (a Parquet file, or a list of them read one after the other) in their order
    with ``rank`` 1, 2, ... in front, written to ``target`` 10,000 rows (one row group) at a time; the
    sources are removed. Returns the rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from qa.parts import batches

    sources = list(sources) if isinstance(sources, (list, tuple)) else [sources]
    rows = 0
    # the queue's own types, every column nullable: DuckDB marks a column it wrote no null in as not null
    columns = _arrow_schema(COLUMNS[1:])
    schema = pa.schema([pa.field("rank", pa.int64(), nullable=False), *columns])
    with pq.ParquetWriter(target, schema) as out:
        for source in sources:
            for batch in batches(source, rows=10_000):
                rank = pa.array(np.arange(rows + 1, rows + 1 + batch.num_rows, dtype=np.int64))
                table = pa.Table.from_batches([batch]).select(columns.names).cast(columns)
                out.write_table(table.add_column(0, schema.field("rank"), rank))
                rows += batch.num_rows
            source.unlink()
    return rows


def review_queue(batch, comparison, *, violations=None, min_score: float = 0.25, folder=None, owner=None,
                 executor=None):
    """Images and objects ranked worst first, each with its reason.

    Parameters
    ----------
    batch : Batch
        The compared batch (for rule violations' objects).
    comparison : qa.engine.compare.Comparison
        The engine's tables.
    violations : list of Finding, optional
        Rule violations; those of severity ``error`` become ``rule_error`` rows.
    min_score : float, default 0.25
        Smallest score kept (0 keeps every candidate).
    folder : str or os.PathLike, optional
        Keep the queue on disk there (``folder/review_queue``, Parquet) instead of in memory, and
        return a :class:`qa.parts.Parts` of it (``owner`` keeps the folder alive).
    executor : qa.engine._executors.Executor, optional
        Make the candidates of each range of ``object_pairs`` (about :data:`_RANGE_ROWS` rows, whole
        images) as a task on it (the run's executor); in this process without one. The queue is the same
        either way.

    Returns
    -------
    pandas.DataFrame or qa.parts.Parts
        :data:`COLUMNS`, one row per image or object, ``rank`` 1 first. ``annotator`` is the object's
        annotator (for an image, the worst pair ``a|b``); ``other_annotator`` and ``other_object_index``
        the object it was compared with; ``value`` is the figure named by ``metric``; ``detail`` says it
        in words. With ``folder``, the same rows, read on demand (``parts.read()``, ``parts.head(n)``).

    Notes
    -----
    Scores are defined in the module docstring; every one lies in [0, 1]. Candidates are computed with
    vectorised column operations on the engine's tables, about :data:`_RANGE_ROWS` rows of
    ``object_pairs`` (whole images) at a time; with ``folder`` only one range's rows are in memory, and
    the ranking is an external sort.
    """
    # rows only written to Parquet keep pandas' text columns: no Python string a cell
    frames = _ranged(batch, comparison, violations, min_score, text=folder is None, executor=executor)
    if folder is None:
        return _ranked(list(frames))
    return _spilled(frames, folder, owner)


def reason_counts(queue):
    """The queue's rows counted by ``reason``, as ``queue["reason"].value_counts()`` gives them (most first;
    ties in the order the reasons first appear). A queue kept on disk is counted in Arrow a batch at a
    time: its reason column read whole is a Python string a row (95 MB at 20,000 images)."""
    import pandas as pd

    if not hasattr(queue, "paths"):
        return queue["reason"].value_counts()
    import pyarrow.compute as pc

    from qa.parts import batches

    counts: dict = {}  # in order of first appearance, as pandas' count before its sort
    for path in queue.paths:
        for batch in batches(path, rows=100_000, columns=["reason"]):
            for entry in pc.value_counts(batch.column(0)).to_pylist():
                if entry["values"] is not None:
                    counts[entry["values"]] = counts.get(entry["values"], 0) + entry["counts"]
    out = pd.Series(list(counts.values()), index=pd.Index(list(counts), dtype=object, name="reason"),
                    name="count", dtype=np.int64)
    return out.sort_values(ascending=False, kind="stable")


def _shared_objects(paths, extra, rows: int = 100_000):
    """The object rows that can be in both the queue kept in ``paths`` and ``extra`` (with its ``seq``):
    ``src`` (0 the queue, 1 extra), ``pos`` (the queue's ``rank``, extra's ``seq``), ``score``, ``image``,
    ``annotator`` and ``object_index`` (NaN when unknown) of every object row of ``extra`` and of the
    queue's object rows with the key of one of them or no object index. The queue is read ``rows`` rows
    and six columns at a time and matched in Arrow (a semi join on the key): an object can be twice only
    where ``extra`` has it, so only these few rows become Python values. A row's key is its three values
    joined into one string, looked up with ``is_in`` (a hash set of ``extra``'s keys): an Arrow hash join
    of each batch against them grew the process by 45 MB at 20,000 images. Two keys can only be joined
    equal if a name holds the separator; such a row is one more row compared exactly, not a wrong one."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from qa.parts import batches

    def keyed(frame, src, pos):
        return pd.DataFrame({"src": src, "pos": frame[pos].to_numpy(np.int64),
                             "score": frame["score"].to_numpy(np.float64),
                             "image": frame["image"].to_numpy(object), "annotator": frame["annotator"].to_numpy(object),
                             "object_index": frame["object_index"].to_numpy(np.float64, na_value=np.nan)})

    objects = keyed(extra[(extra["kind"] == "object").to_numpy()], 1, "seq")
    known = objects[objects["object_index"].notna()]
    wanted = pa.table({"image": pa.array(known["image"].tolist(), pa.string()),
                       "annotator": pa.array(known["annotator"].tolist(), pa.string()),
                       "object_index": pa.array(known["object_index"].to_numpy(np.int64), pa.int64())})
    found = [objects]
    columns = ["rank", "kind", "score", "image", "annotator", "object_index"]
    def joined(table):
        return pc.binary_join_element_wise(table["image"], table["annotator"],
                                           pc.cast(table["object_index"], pa.string()), "\x1f")

    for path in paths:
        types = pq.read_schema(path)  # the keys typed as the file has them, so both are written alike
        keys = joined(wanted.cast(pa.schema([types.field(c) for c in wanted.column_names])))
        for batch in batches(path, rows=rows, columns=columns):
            queued = pa.Table.from_batches([batch])
            queued = queued.filter(pc.equal(queued["kind"], "object"))
            unknown = queued.filter(pc.is_null(queued["object_index"]))
            shared = queued.filter(pc.is_in(joined(queued), value_set=keys))
            # the text as categoricals: one string a distinct name, not one a row (25 MB at 20,000 images)
            found += [keyed(part.to_pandas(strings_to_categorical=True), 0, "rank")
                      for part in (unknown, shared) if part.num_rows]
    return pd.concat(found, ignore_index=True)


def _rows_at_least(paths, scores, rows: int = 100_000):
    """For each of ``scores``, how many rows of the queue kept in ``paths`` (in score order, worst first)
    score at least as much: ``np.searchsorted(-queue_scores, -scores, side="right")``, summed over the
    queue's batches of ``rows`` scores, so its score column is never read whole."""
    from qa.parts import batches

    count = np.zeros(len(scores), dtype=np.int64)
    for path in paths:
        for batch in batches(path, rows=rows, columns=["score"]):
            queued = batch.column(0).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            count += np.searchsorted(-queued, -scores, side="right")
    return count


def requeue(queue, extra):
    """The review queue with more candidate rows (``extra``: :data:`COLUMNS` but ``rank``, such as the
    attribute rows of :mod:`qa.analytics.attributes`), ranked again by score (worst first; on a tie the
    queue's rows, in their order, before ``extra``'s); an object stays once, under its worst reason.

    ``queue`` is a DataFrame or a queue kept on disk (:class:`qa.parts.Parts`), and so is the result.
    """
    import pandas as pd

    if not hasattr(queue, "paths"):
        rows = pd.concat([queue.drop(columns=["rank"]), extra[[c for c in queue.columns if c != "rank"]]],
                         ignore_index=True)
        rows = rows.sort_values("score", ascending=False, kind="stable")
        objects = rows["kind"] == "object"
        dupes = objects & rows.duplicated(["kind", "image", "annotator", "object_index"], keep="first")
        rows = rows[~dupes].reset_index(drop=True)
        rows.insert(0, "rank", range(1, len(rows) + 1))
        return rows[queue.columns]
    import pyarrow as pa
    import pyarrow.parquet as pq

    from qa.parts import Parts, batches

    folder = queue.paths[0].parent
    extra = _typed(extra[list(COLUMNS[1:])].reset_index(drop=True), text=False).assign(seq=np.arange(len(extra)))
    shared = _shared_objects(queue.paths, extra)
    shared = shared.sort_values(["score", "src", "pos"], ascending=[False, True, True], kind="stable")
    dropped = shared[shared.duplicated(["image", "annotator", "object_index"], keep="first")]
    gone_queue = set(dropped.loc[dropped["src"] == 0, "pos"].tolist())  # ranks
    extra = extra[~extra["seq"].isin(dropped.loc[dropped["src"] == 1, "pos"])]
    # the queue is in score order (worst first): each extra row goes after the queue's rows of its score or
    # worse, and the extra rows among themselves by score (stable)
    extra = extra.sort_values("score", ascending=False, kind="stable").drop(columns=["seq"])
    after = _rows_at_least(queue.paths, extra["score"].to_numpy(dtype=np.float64))
    gone = np.fromiter(sorted(gone_queue), dtype=np.int64, count=len(gone_queue))
    sorted_rows = folder / "review_sorted.parquet"
    schema = _arrow_schema(COLUMNS[1:])
    done, taken = 0, 0  # queue rows read, extra rows written
    with pq.ParquetWriter(sorted_rows, schema) as out:
        for path in queue.paths:
            for batch in batches(path, rows=10_000):
                rows = _typed(batch.to_pandas(), text=False)  # only written back: no Python string a cell
                stop = done + len(rows)
                upto = int(np.searchsorted(after, stop, side="right"))  # the extra rows placed up to here
                keep = ~np.isin(rows["rank"].to_numpy(), gone)
                rows = rows.drop(columns=["rank"])
                if upto > taken:  # extra row k goes right before the queue's row after[k]
                    key = np.concatenate([np.arange(done, stop, dtype=np.float64), after[taken:upto] - 0.5])
                    order = np.argsort(key, kind="stable")
                    order = order[np.concatenate([keep, np.ones(upto - taken, bool)])[order]]
                    rows = pd.concat([rows, extra.iloc[taken:upto]], ignore_index=True).iloc[order]
                else:
                    rows = rows[keep]
                out.write_table(pa.Table.from_pandas(rows[list(COLUMNS[1:])], schema=schema, preserve_index=False))
                taken, done = upto, stop
        if taken < len(extra):
            out.write_table(pa.Table.from_pandas(extra.iloc[taken:][list(COLUMNS[1:])], schema=schema,
                                                 preserve_index=False))
    for path in queue.paths:
        path.unlink()
    target = folder / "part-00000.parquet"
    return Parts([target], _numbered(sorted_rows, target), owner=queue.owner, restore=_typed)
