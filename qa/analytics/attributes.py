"""Agreement on what annotators say about an object besides its outline: its attributes.

CVAT attributes, occluded and truncated flags, Label Studio per-region choices, LIDC's nine rated
characteristics per reading: each is agreed on like a label, on the matched object pairs of the
comparison (the two objects one annotator and another drew of the same thing).

Which attributes. The manifest's ``[attributes]`` table (or ``--attribute NAME=LEVEL``) declares an
attribute's level of measurement; the others' are inferred from the values the objects carry, and the
inference is shown (``AttributeAgreement.attributes``): booleans and text of at most
:data:`MAX_CATEGORIES` distinct values are nominal, integers of at most :data:`MAX_CATEGORIES` distinct
values within a range of at most :data:`MAX_CATEGORIES` are ordinal (``1-5 -> ordinal``); anything else
(ids, free text, measurements) is left out with its reason, as are the keys a loader sets for its own
bookkeeping (:data:`BOOKKEEPING`) and names that look like ids (``*_id``, ``*_key``).

Figures per attribute (scope ``attribute``; ``annotator_attribute`` for ``annotator|attribute``):

- ``attribute_pairs``, ``attribute_agreement_share``: matched pairs where both objects carry the
  attribute, and the share whose values agree;
- ``attribute_accuracy`` (with a reference): per annotator, the share of its matched objects whose value
  equals the reference object's (and pooled over annotators at scope ``attribute``);
- ``attribute_kappa``: with two annotators, Cohen's kappa over their matched pairs (quadratic weights
  for an ordinal attribute); with more, Fleiss' kappa (nominal) over the clusters every annotator drew;
- ``attribute_alpha``: Krippendorff's alpha over the clusters of matched objects (one unit per cluster,
  any number of annotators per unit), nominal or ordinal.

Clusters join the matched pairs of an image into groups of at most one object per annotator
(:func:`qa.engine.match.cluster_objects`); with a reference and only reference pairs compared, a cluster
is a reference object and the annotators' objects matched to it.

The confusion table (:attr:`AttributeAgreement.confusion`) counts the value pairs of the matched pairs:
reference value against annotator value with a reference, else the pair's first annotator against its
second. A matched pair whose values differ is a review-queue row (reason ``attribute_mismatch``; score
0.5 for a nominal attribute, ``|difference| / range`` for an ordinal one).

References
----------
J. Cohen, "Weighted kappa", Psychological Bulletin 70(4), 1968, doi:10.1037/h0026256. J. L. Fleiss,
"Measuring nominal scale agreement among many raters", Psychological Bulletin 76(5), 1971,
doi:10.1037/h0031619. K. Krippendorff, "Computing Krippendorff's Alpha-Reliability", 2011
(repository.upenn.edu/asc_papers/43); the ``krippendorff`` package (pln-fing-udelar/fast-krippendorff,
``krippendorff.alpha``) computes the same alpha from a reliability matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MAX_CATEGORIES = 10
"""Most distinct values (and widest integer range) of an inferred attribute."""

BOOKKEEPING = frozenset({
    "shape", "source", "rotation", "z_order", "group", "shapes", "from_name", "origin", "labels", "void",
    "cluster", "cluster_size", "voters", "agreement", "iou_mean", "category_agreement", "members", "method",
    "username", "description", "id", "has_exclusion",
})
"""Attribute keys loaders set for their own bookkeeping (shape kind, layer, tool, consensus facts, ...)."""

LEVELS = ("nominal", "ordinal")


@dataclass(slots=True)
class AttributeAgreement:
    """What :func:`attribute_agreement` computed.

    Attributes
    ----------
    attributes : pandas.DataFrame
        One row per attribute considered: ``attribute``, ``level``, ``how`` (declared or the inference,
        ``integers 1-5 -> ordinal``), ``values``, ``used`` (False with ``reason`` when left out), and the
        figures: ``pairs``, ``attribute_agreement_share``, ``accuracy``, ``kappa``, ``kappa_kind``, ``alpha``,
        ``units``.
    annotators : pandas.DataFrame
        With a reference: ``annotator``, ``attribute``, ``pairs``, ``accuracy``.
    confusion : pandas.DataFrame
        ``attribute``, ``annotator_a`` (the reference, with one), ``annotator_b``, ``value_a``,
        ``value_b``, ``n``.
    review : pandas.DataFrame
        Review-queue rows of the mismatching matched pairs (:data:`qa.analytics.review.COLUMNS` but rank).
    scores : pandas.DataFrame
        Long rows ``scope, key, metric, value, n``.
    settings : dict
    """

    attributes: object
    annotators: object
    confusion: object
    review: object
    scores: object
    settings: dict = field(default_factory=dict)

    def summary(self) -> dict:
        from qa.analytics import _records

        return {"attributes": _records(self.attributes), "annotators": _records(self.annotators)}


# --- coefficients --------------------------------------------------------------------------------------

def _ordinal_delta(n_c: np.ndarray) -> np.ndarray:
    """Krippendorff's ordinal metric from the value totals (values in rank order)."""
    cum = np.concatenate([[0.0], np.cumsum(n_c)])
    k = len(n_c)
    c, d = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    lo, hi = np.minimum(c, d), np.maximum(c, d)
    return (cum[hi + 1] - cum[lo] - (n_c[c] + n_c[d]) / 2.0) ** 2


def krippendorff_alpha(units: np.ndarray, *, level: str = "nominal") -> float:
    """Krippendorff's alpha from a units x values count matrix.

    Parameters
    ----------
    units : (U, K) array of int
        How many coders gave each of the K values (in rank order for ``"ordinal"``) to each unit; units
        with fewer than two values are not pairable and are left out.
    level : {"nominal", "ordinal"}, default "nominal"

    Returns
    -------
    float
        ``1 - D_o / D_e``; NaN when nothing is pairable or every value is the same (``D_e = 0``).

    Examples
    --------
    Two coders, four units: (1, 1), (2, 2), (1, 2), (2, 2); nominal alpha is 1 - 2/3 x 7/... :

    >>> round(krippendorff_alpha(np.array([[2, 0], [0, 2], [1, 1], [0, 2]])), 4)
    0.5333
    """
    v = np.asarray(units, dtype=np.float64)
    m = v.sum(axis=1)
    v = v[m >= 2]
    m = m[m >= 2]
    if not len(v):
        return math.nan
    w = 1.0 / (m - 1.0)
    o = v.T @ (w[:, None] * v) - np.diag((w[:, None] * v).sum(axis=0))
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if level == "ordinal":
        delta = _ordinal_delta(n_c)
    elif level == "nominal":
        delta = 1.0 - np.eye(len(n_c))
    else:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    d_o = (o * delta).sum() / n
    d_e = (np.outer(n_c, n_c) * delta).sum() / (n * (n - 1.0))
    return math.nan if d_e == 0 else float(1.0 - d_o / d_e)


def cohen_kappa(table: np.ndarray, *, weights: str | None = None) -> float:
    """Cohen's kappa of two raters from their K x K confusion table.

    ``weights="quadratic"`` gives the weighted kappa with ``(i - j)^2 / (K - 1)^2`` disagreement weights
    (values in rank order), for an ordinal attribute.

    Examples
    --------
    >>> round(cohen_kappa(np.array([[4, 1], [1, 4]])), 3)
    0.6
    >>> round(cohen_kappa(np.array([[3, 1, 0], [0, 3, 1], [0, 0, 2]]), weights="quadratic"), 3)
    0.833
    """
    t = np.asarray(table, dtype=np.float64)
    n = t.sum()
    k = len(t)
    if n == 0 or k < 2:
        return math.nan
    expected = np.outer(t.sum(axis=1), t.sum(axis=0)) / n
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    w = ((i - j) ** 2) / (k - 1) ** 2 if weights == "quadratic" else (i != j).astype(np.float64)
    denom = (w * expected).sum()
    return math.nan if denom == 0 else float(1.0 - (w * t).sum() / denom)


def fleiss_kappa(units: np.ndarray) -> float:
    """Fleiss' kappa from a units x values count matrix where every unit has the same number of raters.

    Examples
    --------
    >>> round(fleiss_kappa(np.array([[3, 0], [0, 3], [2, 1], [1, 2]])), 3)
    0.333
    """
    v = np.asarray(units, dtype=np.float64)
    if not len(v):
        return math.nan
    m = v.sum(axis=1)
    if m.min() < 2 or m.min() != m.max():
        return math.nan
    r = m[0]
    p_j = v.sum(axis=0) / v.sum()
    p_i = ((v * v).sum(axis=1) - r) / (r * (r - 1))
    p_e = (p_j ** 2).sum()
    return math.nan if p_e == 1 else float((p_i.mean() - p_e) / (1 - p_e))


# --- which attributes ----------------------------------------------------------------------------------

def _scalar(value):
    """A value agreed on (bool, int, text), or None."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, list) and len(value) == 1:  # Label Studio choices: ["yes"]
        return _scalar(value[0])
    return None


def infer_level(values) -> tuple[str | None, str]:
    """The level of measurement of an attribute from its values, and how it was decided.

    Examples
    --------
    >>> infer_level([1, 3, 5, 2]), infer_level([True, False])[0], infer_level(["car", "bus"])[0]
    (('ordinal', 'integers 1-5 -> ordinal'), 'nominal', 'nominal')
    >>> infer_level(list(range(100)))[0] is None
    True
    """
    distinct = set(values)
    if not distinct:
        return None, "no values"
    if all(isinstance(v, bool) for v in distinct):
        return "nominal", "true/false -> nominal"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in distinct):
        lo, hi = min(distinct), max(distinct)
        if len(distinct) <= MAX_CATEGORIES and hi - lo <= MAX_CATEGORIES:
            return "ordinal", f"integers {lo}-{hi} -> ordinal"
        return None, f"integers {lo}-{hi}, {len(distinct)} distinct (an id or a measurement?)"
    if all(isinstance(v, str) for v in distinct):
        if len(distinct) <= MAX_CATEGORIES:
            return "nominal", f"{len(distinct)} text values -> nominal"
        return None, f"{len(distinct)} distinct text values (free text?)"
    return None, "mixed value types"


def _candidates(batch, declared: dict):
    """``{attribute: (level, how, {annotator: values array of objects (None where absent)})}`` and the
    left-out attributes with their reasons."""
    values: dict[str, dict[str, list]] = {}
    for name, export in batch.exports.items():
        for k, obj in enumerate(export.objects):
            for key, raw in obj.attributes.items():
                if key not in declared and (key in BOOKKEEPING or key.endswith(("_id", "_key")) or
                                     key.startswith("attribute:")):
                    continue
                value = _scalar(raw)
                if value is None:
                    continue
                values.setdefault(key, {}).setdefault(name, {})[k] = value
    used, left = {}, []
    for key in sorted(values):
        per = values[key]
        all_values = [v for d in per.values() for v in d.values()]
        if key in declared:
            level, how = declared[key], f"declared {declared[key]}"
            if level == "ordinal" and not all(isinstance(v, (int, bool)) for v in all_values):
                level, how = "nominal", "declared ordinal, but not numbers -> nominal"
        else:
            level, how = infer_level(all_values)
        if level is None:
            left.append({"attribute": key, "level": None, "how": how, "values": len(set(all_values)),
                         "used": False, "reason": how})
            continue
        if len(per) < 2:
            left.append({"attribute": key, "level": level, "how": how, "values": len(set(all_values)),
                         "used": False, "reason": "carried by one export only"})
            continue
        used[key] = (level, how, per)
    return used, left


# --- the analysis --------------------------------------------------------------------------------------

def _order(values) -> list:
    """Values in rank order (numbers ascending, then text)."""
    return sorted(set(values), key=lambda v: (isinstance(v, str), v))


def attribute_agreement(batch, comparison, *, levels: dict | None = None, reference: str | None = None,
                        reference_of: dict | None = None):
    """Agreement on object attributes over the comparison's matched pairs.

    Parameters
    ----------
    batch : Batch
    comparison : qa.engine.compare.Comparison
    levels : dict, optional
        ``{attribute: "nominal" | "ordinal"}``: declared levels (the other attributes' are inferred).
    reference : str, optional
        The reference annotator: accuracy of every other annotator's values against its.
    reference_of : dict, optional
        ``{annotator: its reference}`` (default: every annotator against ``reference``).

    Returns
    -------
    AttributeAgreement or None
        None when no object carries an attribute that can be agreed on.
    """
    import pandas as pd

    from qa.engine.match import cluster_objects

    levels = dict(levels or {})
    bad = {k: v for k, v in levels.items() if v not in LEVELS}
    if bad:
        from qa.errors import ConfigError

        key = next(iter(bad))
        raise ConfigError(f"attribute {key!r}: level {bad[key]!r} is not one of {', '.join(LEVELS)}")
    used, left = _candidates(batch, levels)
    if not used and not left:
        return None
    if reference_of is None and reference is not None:
        reference_of = {a: reference for a in batch.annotators if a != reference}
    reference_of = reference_of or {}
    matched = comparison.object_columns(["status", "image", "annotator_a", "annotator_b", "object_index_a",
                                         "object_index_b", "iou"], status="matched")
    img = matched["image"].astype(str).to_numpy()
    an_a = matched["annotator_a"].astype(str).to_numpy()
    an_b = matched["annotator_b"].astype(str).to_numpy()
    ix_a = matched["object_index_a"].to_numpy(dtype=np.int64, na_value=-1)
    ix_b = matched["object_index_b"].to_numpy(dtype=np.int64, na_value=-1)
    ious = matched["iou"].to_numpy(dtype=np.float64)
    # reference side of each matched row: 'a', 'b' or ''
    side = np.array(["a" if reference_of.get(y) == x else "b" if reference_of.get(x) == y else ""
                     for x, y in zip(an_a, an_b)], dtype=object)
    names = sorted(batch.annotators)
    code = {n: k for k, n in enumerate(names)}
    rows, annotator_rows, confusion, review, records = [], [], [], [], []
    for key, (level, how, per) in used.items():
        order = _order([v for d in per.values() for v in d.values()])
        rank = {v: k for k, v in enumerate(order)}
        va = np.array([rank.get(per.get(x, {}).get(int(i)), -1) for x, i in zip(an_a, ix_a)], dtype=np.int64)
        vb = np.array([rank.get(per.get(y, {}).get(int(i)), -1) for y, i in zip(an_b, ix_b)], dtype=np.int64)
        both = (va >= 0) & (vb >= 0)
        agree = both & (va == vb)
        entry = {"attribute": key, "level": level, "how": how, "values": len(order), "used": True, "reason": "",
                 "pairs": int(both.sum()),
                 "attribute_agreement_share": float(agree.sum() / both.sum()) if both.any() else math.nan}
        k_vals = len(order)
        # with a reference: accuracy per annotator, confusion reference x annotator
        ref_rows = both & (side != "")
        if ref_rows.any():
            r_val = np.where(side == "a", va, vb)
            o_val = np.where(side == "a", vb, va)
            who = np.where(side == "a", an_b, an_a)
            correct = ref_rows & (r_val == o_val)
            entry["accuracy"] = float(correct.sum() / ref_rows.sum())
            records.append(("attribute", key, "attribute_accuracy", entry["accuracy"], int(ref_rows.sum())))
            for name in sorted(set(who[ref_rows])):
                mine = ref_rows & (who == name)
                acc = float(correct[mine].sum() / mine.sum())
                annotator_rows.append({"annotator": name, "attribute": key, "pairs": int(mine.sum()),
                                       "accuracy": acc})
                records.append(("annotator_attribute", f"{name}|{key}", "attribute_accuracy", acc, int(mine.sum())))
                records.append(("annotator_attribute", f"{name}|{key}", "attribute_pairs", float(mine.sum()),
                                int(mine.sum())))
                table = np.zeros((k_vals, k_vals), np.int64)
                np.add.at(table, (r_val[mine], o_val[mine]), 1)
                for i, j in zip(*np.nonzero(table)):
                    confusion.append({"attribute": key, "annotator_a": reference_of.get(name), "annotator_b": name,
                                      "value_a": str(order[i]), "value_b": str(order[j]), "n": int(table[i, j])})
        else:
            for pair in sorted(set(zip(an_a[both], an_b[both]))):
                mine = both & (an_a == pair[0]) & (an_b == pair[1])
                table = np.zeros((k_vals, k_vals), np.int64)
                np.add.at(table, (va[mine], vb[mine]), 1)
                for i, j in zip(*np.nonzero(table)):
                    confusion.append({"attribute": key, "annotator_a": pair[0], "annotator_b": pair[1],
                                      "value_a": str(order[i]), "value_b": str(order[j]), "n": int(table[i, j])})
        # across annotators: clusters of matched objects as units
        units = _units(names, code, img, an_a, ix_a, an_b, ix_b, ious, per, rank, k_vals, cluster_objects)
        raters = sorted({n for n, d in per.items() if d})
        entry["units"] = int((units.sum(axis=1) >= 2).sum()) if len(units) else 0
        entry["alpha"] = krippendorff_alpha(units, level=level) if len(units) else math.nan
        if len(raters) == 2:
            pair = both & (((an_a == raters[0]) & (an_b == raters[1])) | ((an_a == raters[1]) & (an_b == raters[0])))
            first = np.where(an_a == raters[0], va, vb)[pair]
            second = np.where(an_a == raters[0], vb, va)[pair]
            table = np.zeros((k_vals, k_vals), np.int64)
            np.add.at(table, (first, second), 1)
            entry["kappa"] = cohen_kappa(table, weights="quadratic" if level == "ordinal" else None)
            entry["kappa_kind"] = "Cohen" + (" (quadratic weights)" if level == "ordinal" else "")
            kappa_n = int(pair.sum())
        else:
            full = units[units.sum(axis=1) == len(raters)] if len(units) else units
            entry["kappa"] = fleiss_kappa(full) if len(full) else math.nan
            entry["kappa_kind"] = f"Fleiss (nominal, {len(full)} objects all {len(raters)} drew)"
            kappa_n = int(len(full))
        records += [("attribute", key, "attribute_pairs", float(entry["pairs"]), entry["pairs"]),
                    ("attribute", key, "attribute_agreement_share", entry["attribute_agreement_share"], entry["pairs"]),
                    ("attribute", key, "attribute_kappa", entry["kappa"], kappa_n),
                    ("attribute", key, "attribute_alpha", entry["alpha"], entry["units"])]
        rows.append(entry)
        # review rows: matched pairs whose values differ (reference pairs only, with a reference)
        differ = both & (va != vb) & ((side != "") if reference_of else True)
        if differ.any():
            review.append(_review_rows(batch, key, level, order, matched, differ, side, va, vb, an_a, an_b,
                                       ix_a, ix_b, img))
    attributes = pd.DataFrame(rows + left)
    for column in ("pairs", "attribute_agreement_share", "accuracy", "kappa", "kappa_kind", "alpha", "units"):
        if column not in attributes:
            attributes[column] = np.nan
    scores = pd.DataFrame.from_records(records, columns=["scope", "key", "metric", "value", "n"])
    scores["value"] = scores["value"].astype(np.float64)
    scores["n"] = scores["n"].astype(np.int64)
    from qa.analytics.review import COLUMNS

    review_df = pd.concat(review, ignore_index=True) if review else pd.DataFrame(columns=COLUMNS[1:])
    return AttributeAgreement(
        attributes=attributes, annotators=pd.DataFrame(annotator_rows, columns=["annotator", "attribute", "pairs",
                                                                                 "accuracy"]),
        confusion=pd.DataFrame(confusion, columns=["attribute", "annotator_a", "annotator_b", "value_a", "value_b",
                                                   "n"]),
        review=review_df, scores=scores,
        settings={"declared": dict(levels), "used": {r["attribute"]: r["level"] for r in rows},
                  "left_out": {r["attribute"]: r["reason"] for r in left}})


def _units(names, code, img, an_a, ix_a, an_b, ix_b, ious, per, rank, k_vals, cluster_objects) -> np.ndarray:
    """Units x values counts: one unit per cluster of matched objects (per image), from every annotator's
    value of the attribute on its object in the cluster."""
    units = []
    order = np.argsort(img, kind="stable")
    bounds = np.flatnonzero(np.r_[True, img[order][1:] != img[order][:-1], True])
    for s, e in zip(bounds[:-1], bounds[1:]):
        rows = order[s:e]
        objects: dict[tuple, int] = {}
        pairs = []
        for r in rows:
            p = objects.setdefault((an_a[r], int(ix_a[r])), len(objects))
            q = objects.setdefault((an_b[r], int(ix_b[r])), len(objects))
            pairs.append((p, q))
        keys = list(objects)
        labels = cluster_objects(np.array([code[a] for a, _ in keys], dtype=np.int64),
                                 np.array(pairs, dtype=np.int64).reshape(-1, 2), ious[rows])
        counts = np.zeros((int(labels.max()) + 1 if len(labels) else 0, k_vals), np.int64)
        for (a, i), lab in zip(keys, labels):
            value = per.get(a, {}).get(i)
            if value is not None:
                counts[lab, rank[value]] += 1
        units.append(counts)
    return np.concatenate(units) if units else np.zeros((0, k_vals), np.int64)


def _review_rows(batch, key, level, order, matched, differ, side, va, vb, an_a, an_b, ix_a, ix_b, img):
    """Review-queue rows for matched pairs whose attribute values differ: the annotator's object (not the
    reference's), scored 0.5 (nominal) or by the difference over the range (ordinal)."""
    import pandas as pd

    who_is_b = side == "a"  # the reference is a: the annotator's object is b's
    annotator = np.where(who_is_b, an_b, an_a)[differ]
    other = np.where(who_is_b, an_a, an_b)[differ]
    index = np.where(who_is_b, ix_b, ix_a)[differ]
    other_index = np.where(who_is_b, ix_a, ix_b)[differ]
    mine_v = np.where(who_is_b, vb, va)[differ]
    other_v = np.where(who_is_b, va, vb)[differ]
    if level == "ordinal" and all(isinstance(v, (int, bool)) for v in order) and len(order) > 1:
        span = float(max(order)) - float(min(order)) or 1.0
        values = np.array([float(order[x]) - float(order[y]) for x, y in zip(mine_v, other_v)])
        score = np.minimum(1.0, np.abs(values) / span)
    else:
        values = np.ones(len(mine_v))
        score = np.full(len(mine_v), 0.5)
    from qa.model import objects_at

    images = img[differ]
    found = [None] * len(annotator)  # each annotator's objects looked up at once
    for name in dict.fromkeys(annotator):
        at = np.flatnonzero(annotator == name)
        for k, obj in zip(at, objects_at(batch.exports[name].objects, index[at])):
            found[k] = obj
    rows = []
    for k in range(len(annotator)):
        obj = found[k]
        rows.append({"kind": "object", "image": images[k], "reason": "attribute_mismatch",
                     "metric": f"attribute:{key}", "value": float(values[k]), "score": float(score[k]),
                     "reasons": 1, "annotator": annotator[k], "object_index": int(index[k]),
                     "category": obj.category, "other_annotator": other[k], "other_object_index": int(other_index[k]),
                     "area": float(obj.area) if obj.area is not None else math.nan, "file": obj.source.file,
                     "source_index": obj.source.index,
                     "source_id": None if obj.source.id is None else str(obj.source.id),
                     "detail": f"{key}: {annotator[k]} says {order[mine_v[k]]}, {other[k]} says {order[other_v[k]]}"})
    return pd.DataFrame(rows)
