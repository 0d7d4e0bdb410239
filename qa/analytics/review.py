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


def _image_rows(comparison, min_score: float):
    """One candidate per image: its worst pair's agreement."""
    import pandas as pd

    op = comparison.object_pairs
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


def _object_rows(comparison, tolerance: float, min_score: float = 0.0):
    """Candidate rows for objects: unmatched, label disagreements, low IoU, boundary offsets.

    The rows of a reason whose score is final here (every reason but ``unmatched``, whose score is the
    best over the object's pairs) are kept only at ``min_score`` or above, as :func:`review_queue` would
    keep them, so their words are written for the rows kept only. A reason with candidates keeps a
    frame, empty when none reaches ``min_score``."""
    import pandas as pd

    op = comparison.object_pairs
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
    """Candidate rows for objects with an error-severity rule violation."""
    import pandas as pd

    errors = [f for f in violations or () if f.severity == "error" and f.annotator and f.source is not None]
    if not errors:
        return None
    where = {}
    for name in {f.annotator for f in errors}:
        export = batch.exports.get(name)
        for k, o in enumerate(export.objects if export is not None else ()):
            where[(name, o.source.file, o.source.section, o.source.index)] = (k, o)
    rows = []
    for f in errors:
        found = where.get((f.annotator, f.source.file, f.source.section, f.source.index))
        k, obj = found if found is not None else (None, None)
        rows.append({"kind": "object", "image": f.image or (obj.image if obj is not None else None),
                     "reason": "rule_error", "metric": f.code,
                     "value": np.nan if f.value is None else float(f.value), "score": 1.0, "annotator": f.annotator,
                     "object_index": np.nan if k is None else float(k),
                     "category": obj.category if obj is not None else None,
                     "area": np.nan if obj is None or obj.area is None else float(obj.area),
                     "file": f.source.file, "source_index": np.nan if f.source.index is None else float(f.source.index),
                     "source_id": None if f.source.id is None else str(f.source.id),
                     "detail": f"{f.code} {f.message}"})
    return pd.DataFrame(rows)


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
    for key, name in zip(list(keys), list(names)):
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


def review_queue(batch, comparison, *, violations=None, min_score: float = 0.25):
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

    Returns
    -------
    pandas.DataFrame
        :data:`COLUMNS`, one row per image or object, ``rank`` 1 first. ``annotator`` is the object's
        annotator (for an image, the worst pair ``a|b``); ``other_annotator`` and ``other_object_index``
        the object it was compared with; ``value`` is the figure named by ``metric``; ``detail`` says it
        in words.

    Notes
    -----
    Scores are defined in the module docstring; every one lies in [0, 1]. Candidates are computed with
    vectorised column operations on the engine's tables.
    """
    import pandas as pd

    tolerance = float(max(comparison.settings.get("tolerances") or [2]))
    parts = []
    images = _image_rows(comparison, min_score)
    if images is not None:
        parts.append(images)
    objects = _object_rows(comparison, tolerance, min_score)
    parts.extend(objects)
    rules = _rule_rows(batch, violations)
    if rules is not None:
        parts.append(rules)
    parts = [p for p in parts if len(p)] or objects[:1]  # candidates, none kept: an empty queue of the columns' types
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    rows = pd.concat(parts, ignore_index=True)
    for column in COLUMNS:
        if column not in rows:
            rows[column] = np.nan if column in ("object_index", "other_object_index", "area", "source_index") else None
    rows["order"] = rows["reason"].map({r: k for k, r in enumerate(REASONS)})
    key = np.where(rows["kind"] == "image", "image:" + rows["image"].astype(str),
                   rows["annotator"].astype(str) + ":" + rows["object_index"].astype(str))
    rows["key"] = key
    # an unmatched object: the best IoU over its pairs, and every annotator that did not match it
    is_unmatched = rows["reason"] == "unmatched"
    if is_unmatched.any():
        threshold = float(comparison.settings.get("iou_threshold", 0.5))
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
    rows = rows.sort_values(["score", "reasons", "area", "image", "annotator"],
                            ascending=[False, False, False, True, True], na_position="last", kind="stable")
    rows["rank"] = np.arange(1, len(rows) + 1, dtype=np.int64)
    out = rows[COLUMNS].reset_index(drop=True)
    for column in ("object_index", "other_object_index", "source_index"):
        values = out[column].to_numpy(dtype=np.float64)
        missing = np.isnan(values)
        out[column] = pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing)
    out["area"] = out["area"].astype(np.float64)
    out["reasons"] = out["reasons"].astype(np.int64)
    for column in ("kind", "image", "reason", "metric", "annotator", "category", "other_annotator", "file",
                   "source_id", "detail"):
        out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out
