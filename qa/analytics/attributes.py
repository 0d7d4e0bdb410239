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
from array import array
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


def _skipped(key: str, declared) -> bool:
    """True for a key a loader sets for its own bookkeeping or that names an id, unless declared."""
    return key not in declared and (key in BOOKKEEPING or key.endswith(("_id", "_key")) or
                                    key.startswith("attribute:"))


def chunk_values(objects, declared=()) -> dict:
    """The attribute values of some objects (one export's, or a chunk's of them), as codes.

    Returns ``{attribute: (rows, values, codes)}``: the rows (places in ``objects``) of the objects that
    carry a value that can be agreed on (:func:`_scalar`), the distinct values in the order first met (a
    value and its type: ``True`` and ``1`` are two values here) and each row's value as its place among
    them. Keys that look like bookkeeping are left out unless ``declared``. A task of a run's pass
    returns these for its chunk, so the main process never reads the objects for their attributes.
    """
    declared = set(declared)
    out: dict = {}
    for k, obj in enumerate(objects):
        for key, raw in obj.attributes.items():
            if _skipped(key, declared):
                continue
            value = _scalar(raw)
            if value is None:
                continue
            entry = out.get(key)
            if entry is None:
                entry = out[key] = (array("q"), {}, array("q"))
            entry[0].append(k)
            entry[2].append(entry[1].setdefault((type(value), value), len(entry[1])))
    return {key: (np.array(rows, dtype=np.int64), [v for _, v in distinct], np.array(codes, dtype=np.int64))
            for key, (rows, distinct, codes) in out.items()}


class ValueTable:
    """The reduce of :func:`chunk_values` over a batch: parts ``{annotator: (positions, chunk values)}``
    (``positions``: each object's place in its export) taken in any order.

    :meth:`finish` gives each attribute's distinct values in the order a walk through the exports (in
    ``annotators`` order) and their objects would first meet them, as one set of them would (``True`` and
    ``1`` are one value, the one met first), and each annotator's value code of each object by position.
    """

    def __init__(self, annotators):
        self.export_order = {name: k for k, name in enumerate(annotators)}
        self.codes: dict[str, dict] = {}  # attribute -> {value: code}
        self.first: dict[str, list] = {}  # attribute -> per code: ((export, position) first met, the value there)
        # attribute -> annotator -> (positions, codes), in growing blocks of their own (no fragmented heap)
        self.parts: dict[str, dict[str, tuple]] = {}

    def add(self, part: dict) -> None:
        from qa.engine.tables import Column

        for name, (positions, values) in part.items():
            export = self.export_order[name]
            for key, (rows, distinct, codes) in values.items():
                at = positions[rows]
                first_at = np.full(len(distinct), np.iinfo(np.int64).max, np.int64)
                np.minimum.at(first_at, codes, at)
                known, first = self.codes.setdefault(key, {}), self.first.setdefault(key, [])
                code_of = np.empty(len(distinct), np.int64)
                for j, value in enumerate(distinct):
                    code = known.setdefault(value, len(known))
                    met = (export, int(first_at[j]))
                    if code == len(first):
                        first.append((met, value))
                    elif met < first[code][0]:
                        first[code] = (met, value)
                    code_of[j] = code
                positions_of, codes_of = self.parts.setdefault(key, {}).setdefault(
                    name, (Column(np.int64), Column(np.int64)))
                positions_of.append(at)
                codes_of.append(code_of[codes])

    def finish(self) -> dict:
        """``{attribute: (values, {annotator: codes})}``, values in the order first met; ``codes`` holds the
        value code of each of the annotator's objects by its position in the export (-1: no value; up to
        the last object that has one), in the smallest signed integer type that holds them: one byte an
        object for most attributes, against 16 for its position and code (27 MB at 20,000 images, held from
        the pass to the attribute agreement at the run's end)."""
        out = {}
        for key, first in self.first.items():
            order = sorted(range(len(first)), key=lambda c: first[c][0])
            dtype = np.min_scalar_type(-max(len(first), 1))  # codes 0 .. len - 1, and -1
            recode = np.empty(len(first), dtype)
            recode[order] = np.arange(len(first))
            per = {}
            for name, (positions, codes) in sorted(self.parts[key].items(),
                                                   key=lambda item: self.export_order[item[0]]):
                at = positions.join()
                dense = np.full(int(at.max()) + 1 if len(at) else 0, -1, dtype)
                dense[at] = recode[codes.join()]
                per[name] = dense
            out[key] = ([first[c][1] for c in order], per)
        return out


def collect_values(batch, declared=()) -> dict:
    """:meth:`ValueTable.finish` of a batch in memory: every export's objects read once."""
    table = ValueTable(batch.exports)
    table.add({name: (np.arange(len(export.objects), dtype=np.int64), chunk_values(export.objects, declared))
               for name, export in batch.exports.items()})
    return table.finish()


def _candidates(batch, declared: dict, collected: dict | None = None):
    """``{attribute: _Values}`` of the attributes agreed on, and the left-out attributes with their reasons,
    from the batch's values (``collected``, :meth:`ValueTable.finish`, or read from the objects)."""
    if collected is None:
        collected = collect_values(batch, declared)
    used, left = {}, []
    for key in sorted(collected):
        distinct, per = collected[key]
        if key in declared:
            level, how = declared[key], f"declared {declared[key]}"
            if level == "ordinal" and not all(isinstance(v, (int, bool)) for v in distinct):
                level, how = "nominal", "declared ordinal, but not numbers -> nominal"
        else:
            level, how = infer_level(distinct)
        if level is None:
            left.append({"attribute": key, "level": None, "how": how, "values": len(distinct),
                         "used": False, "reason": how})
            continue
        if len(per) < 2:
            left.append({"attribute": key, "level": level, "how": how, "values": len(distinct),
                         "used": False, "reason": "carried by one export only"})
            continue
        order = _order(distinct)
        rank = {v: k for k, v in enumerate(order)}
        rank_of_code = np.array([rank[v] for v in distinct], dtype=np.int32)
        ranks = {}
        for name, codes in per.items():  # by object position; code -1 (no value) takes the -1 put last
            ranks[name] = np.append(rank_of_code, -1).astype(codes.dtype)[codes]
        used[key] = _Values(level, how, order, ranks)
    return used, left


@dataclass(slots=True)
class _Values:
    """One attribute's values: its level, how the level was decided, the values in rank order and, per
    annotator, the rank of each of its objects' value (by object index; -1 where the object has none)."""

    level: str
    how: str
    order: list
    ranks: dict

    def of(self, annotators: np.ndarray, indices: np.ndarray, names: list) -> np.ndarray:
        """The value rank of each object given by annotator code (into ``names``) and object index."""
        out = np.full(len(indices), -1, dtype=np.int64)
        for code in np.unique(annotators):
            dense = self.ranks.get(names[code])
            if dense is None:
                continue
            rows = np.flatnonzero((annotators == code) & (indices >= 0) & (indices < len(dense)))
            out[rows] = dense[indices[rows]]
        return out


# --- the analysis --------------------------------------------------------------------------------------

def _order(values) -> list:
    """Values in rank order (numbers ascending, then text)."""
    return sorted(set(values), key=lambda v: (isinstance(v, str), v))


def attribute_agreement(batch, comparison, *, levels: dict | None = None, reference: str | None = None,
                        reference_of: dict | None = None, values: dict | None = None):
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
    values : dict, optional
        The batch's attribute values as a run's pass collected them (:meth:`ValueTable.finish`, with
        ``levels``' names declared); read from the objects otherwise.

    Returns
    -------
    AttributeAgreement or None
        None when no object carries an attribute that can be agreed on.

    Notes
    -----
    The matched pairs are read a part of the comparison's table at a time (whole images), on codes;
    counts, confusion tables and the clusters' value counts are carried from part to part, so the
    figures are those of the whole table at once.
    """
    import pandas as pd

    levels = dict(levels or {})
    bad = {k: v for k, v in levels.items() if v not in LEVELS}
    if bad:
        from qa.errors import ConfigError

        key = next(iter(bad))
        raise ConfigError(f"attribute {key!r}: level {bad[key]!r} is not one of {', '.join(LEVELS)}")
    used, left = _candidates(batch, levels, values)
    if not used and not left:
        return None
    if reference_of is None and reference is not None:
        reference_of = {a: reference for a in batch.annotators if a != reference}
    reference_of = reference_of or {}
    names = sorted(batch.annotators)
    columns = ["image", "annotator_a", "annotator_b", "object_index_a", "object_index_b", "iou"]
    from qa.engine.compare import by_whole_images

    # the clusters need each image's pairs together
    sums = by_whole_images(comparison, lambda pieces: _summed(batch, pieces, used, names, reference_of), columns,
                           status="matched")
    rows, annotator_rows, confusion, review, records = [], [], [], [], []
    units_order = sums.units_order()
    for key, values in used.items():
        level, order, counts = values.level, values.order, sums.per_key[key]
        entry = {"attribute": key, "level": level, "how": values.how, "values": len(order), "used": True,
                 "reason": "", "pairs": counts.pairs,
                 "attribute_agreement_share": counts.agree / counts.pairs if counts.pairs else math.nan}
        if counts.reference_rows:  # with a reference: accuracy per annotator, confusion reference x annotator
            entry["accuracy"] = counts.correct / counts.reference_rows
            records.append(("attribute", key, "attribute_accuracy", entry["accuracy"], counts.reference_rows))
            for code in np.flatnonzero(counts.mine):
                name, mine = names[code], int(counts.mine[code])
                acc = float(counts.correct_of[code] / mine)
                annotator_rows.append({"annotator": name, "attribute": key, "pairs": mine, "accuracy": acc})
                records.append(("annotator_attribute", f"{name}|{key}", "attribute_accuracy", acc, mine))
                records.append(("annotator_attribute", f"{name}|{key}", "attribute_pairs", float(mine), mine))
                confusion += _confusion_rows(key, reference_of.get(name), name, order, counts.against[code])
        else:
            for a, b in sorted(counts.tables, key=lambda ab: (names[ab[0]], names[ab[1]])):
                confusion += _confusion_rows(key, names[a], names[b], order, counts.tables[(a, b)])
        # across annotators: clusters of matched objects as units
        units = counts.units(units_order)
        raters = sorted(values.ranks)
        entry["units"] = int((units.sum(axis=1) >= 2).sum()) if len(units) else 0
        entry["alpha"] = krippendorff_alpha(units, level=level) if len(units) else math.nan
        if len(raters) == 2:
            entry["kappa"] = cohen_kappa(counts.kappa_table, weights="quadratic" if level == "ordinal" else None)
            entry["kappa_kind"] = "Cohen" + (" (quadratic weights)" if level == "ordinal" else "")
            kappa_n = int(counts.kappa_table.sum())
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
        review += counts.review
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


def _confusion_rows(key, annotator_a, annotator_b, order, table) -> list[dict]:
    return [{"attribute": key, "annotator_a": annotator_a, "annotator_b": annotator_b, "value_a": str(order[i]),
             "value_b": str(order[j]), "n": int(table[i, j])} for i, j in zip(*np.nonzero(table))]


@dataclass(slots=True)
class _KeyCounts:
    """One attribute's counts over the matched pairs read so far (integers: summed in any order)."""

    k: int
    n_names: int
    pairs: int = 0
    agree: int = 0
    reference_rows: int = 0
    correct: int = 0
    mine: np.ndarray = None  # per annotator code: its matched objects against its reference
    correct_of: np.ndarray = None
    against: dict = field(default_factory=dict)  # annotator code -> reference value x its value
    tables: dict = field(default_factory=dict)  # (code a, code b) -> value a x value b
    kappa_table: np.ndarray = None
    unit_counts: list = field(default_factory=list)  # per part: clusters x values
    review: list = field(default_factory=list)

    def __post_init__(self):
        self.mine = np.zeros(self.n_names, np.int64)
        self.correct_of = np.zeros(self.n_names, np.int64)
        self.kappa_table = np.zeros((self.k, self.k), np.int64)

    def table(self, tables: dict, key) -> np.ndarray:
        found = tables.get(key)
        if found is None:
            found = tables[key] = np.zeros((self.k, self.k), np.int64)
        return found

    def units(self, order) -> np.ndarray:
        """Clusters x values counts, clusters in the order of their images' names (then of their labels)."""
        if not self.unit_counts:
            return np.zeros((0, self.k), np.int64)
        return np.concatenate(self.unit_counts).astype(np.int64)[order]


@dataclass(slots=True)
class _Sums:
    per_key: dict
    images: list = field(default_factory=list)  # per part: the names of its images
    unit_images: list = field(default_factory=list)  # per part: each cluster's image (into the part's names)

    def units_order(self) -> np.ndarray:
        """The clusters of every part in the order of their images' names (stable within an image)."""
        if not self.images:
            return np.zeros(0, np.int64)
        offsets = np.cumsum([0] + [len(n) for n in self.images[:-1]])
        names = np.concatenate([np.asarray(n, dtype=object) for n in self.images])
        rank = np.empty(len(names), np.int64)
        rank[np.argsort(names, kind="stable")] = np.arange(len(names))
        image = np.concatenate([u + o for u, o in zip(self.unit_images, offsets)])
        return np.argsort(rank[image], kind="stable")


def _codes(column, names: list) -> np.ndarray:
    """Each row's value as its place in ``names`` (-1 when not there), from a categorical or text column."""
    import pandas as pd

    if hasattr(column, "cat"):
        at = pd.Index(names).get_indexer(column.cat.categories.astype(str))
        codes = column.cat.codes.to_numpy()
        return np.where(codes >= 0, at[codes], -1).astype(np.int64)
    return pd.Index(names).get_indexer(column.astype(str)).astype(np.int64)


def _summed(batch, pieces, used: dict, names: list, reference_of: dict) -> _Sums:
    """Every attribute's counts (:class:`_KeyCounts`) from the matched pairs, one piece of the table at a
    time, each image's pairs in one piece (:func:`qa.engine.compare.by_whole_images`)."""
    import pandas as pd

    n = len(names)
    # which side of a pair (annotator codes a, b) is the reference: 1 a, 2 b, 0 neither
    side_of = np.zeros((n, n), np.int8)
    for a in range(n):
        for b in range(n):
            side_of[a, b] = 1 if reference_of.get(names[b]) == names[a] else 2 if reference_of.get(names[a]) == names[b] \
                else 0
    sums = _Sums({key: _KeyCounts(len(v.order), n) for key, v in used.items()})
    for _, piece in pieces:
        if piece is None or not len(piece):
            continue
        image_codes, image_names = pd.factorize(piece["image"])
        image_names = [str(v) for v in image_names]
        an_a, an_b = _codes(piece["annotator_a"], names), _codes(piece["annotator_b"], names)
        ix_a = piece["object_index_a"].to_numpy(dtype=np.int64, na_value=-1)
        ix_b = piece["object_index_b"].to_numpy(dtype=np.int64, na_value=-1)
        side = side_of[an_a, an_b]
        objects, unit_of, unit_image = _clusters(image_codes, an_a, ix_a, an_b, ix_b,
                                                 piece["iou"].to_numpy(dtype=np.float64), n)
        sums.images.append(image_names)
        sums.unit_images.append(unit_image)
        for key, values in used.items():
            _count_piece(sums.per_key[key], values, key, batch, names, reference_of, side, an_a, ix_a, an_b, ix_b,
                         image_codes, image_names, objects, unit_of, len(unit_image))
    return sums


def _clusters(image_codes, an_a, ix_a, an_b, ix_b, ious, n_names):
    """The clusters of matched objects of each image of a piece (:func:`qa.engine.match.cluster_objects`).

    Returns the piece's objects as ``(annotator codes, object indices)`` (each image's in the order first
    met in its pairs, as a and then b of each row), each object's cluster (numbered across the piece,
    image by image in order of first appearance) and each cluster's image code."""
    from qa.engine.match import cluster_objects

    order = np.argsort(image_codes, kind="stable")  # each image's rows together, in table order
    img = image_codes[order]
    span = int(max(ix_a.max(initial=0), ix_b.max(initial=0))) + 2
    # an object's key: (image, annotator, index); a row's objects a then b, rows in order
    key_a = (img * n_names + an_a[order]) * span + ix_a[order] + 1
    key_b = (img * n_names + an_b[order]) * span + ix_b[order] + 1
    sequence = np.stack([key_a, key_b], axis=1).ravel()
    unique, first, inverse = np.unique(sequence, return_index=True, return_inverse=True)
    renumber = np.empty(len(unique), np.int64)
    renumber[np.argsort(first, kind="stable")] = np.arange(len(unique))
    object_of = renumber[inverse.ravel()].reshape(-1, 2)  # each row's two objects, numbered as first met
    keys = unique[np.argsort(renumber)]
    obj_image = keys // span // n_names
    obj_annotator = (keys // span) % n_names
    obj_index = keys % span - 1
    unit_of = np.empty(len(keys), np.int64)
    unit_image = []
    row_bounds = np.flatnonzero(np.r_[True, img[1:] != img[:-1], True])
    obj_bounds = np.flatnonzero(np.r_[True, obj_image[1:] != obj_image[:-1], True])
    units = 0
    for (s, e), (lo, hi) in zip(zip(row_bounds[:-1], row_bounds[1:]), zip(obj_bounds[:-1], obj_bounds[1:])):
        labels = cluster_objects(obj_annotator[lo:hi], object_of[s:e] - lo, ious[order[s:e]])
        count = int(labels.max()) + 1
        unit_of[lo:hi] = labels + units
        unit_image.append(np.full(count, img[s], np.int64))
        units += count
    unit_image = np.concatenate(unit_image) if unit_image else np.zeros(0, np.int64)
    return (obj_annotator, obj_index), unit_of, unit_image


def _count_piece(counts: _KeyCounts, values: _Values, key, batch, names, reference_of, side, an_a, ix_a, an_b, ix_b,
                 image_codes, image_names, objects, unit_of, n_units) -> None:
    """Add one piece's matched pairs to one attribute's counts."""
    k = counts.k
    va, vb = values.of(an_a, ix_a, names), values.of(an_b, ix_b, names)
    both = (va >= 0) & (vb >= 0)
    counts.pairs += int(both.sum())
    counts.agree += int((both & (va == vb)).sum())
    ref_rows = both & (side != 0)
    if ref_rows.any():
        r_val = np.where(side == 1, va, vb)
        o_val = np.where(side == 1, vb, va)
        who = np.where(side == 1, an_b, an_a)
        correct = ref_rows & (r_val == o_val)
        counts.reference_rows += int(ref_rows.sum())
        counts.correct += int(correct.sum())
        counts.mine += np.bincount(who[ref_rows], minlength=len(names))
        counts.correct_of += np.bincount(who[correct], minlength=len(names))
        for code in np.unique(who[ref_rows]):
            mine = ref_rows & (who == code)
            np.add.at(counts.table(counts.against, int(code)), (r_val[mine], o_val[mine]), 1)
    pair_code = an_a * len(names) + an_b
    for code in np.unique(pair_code[both]):
        mine = both & (pair_code == code)
        np.add.at(counts.table(counts.tables, (int(code) // len(names), int(code) % len(names))),
                  (va[mine], vb[mine]), 1)
    raters = sorted(values.ranks)
    if len(raters) == 2:
        r0, r1 = names.index(raters[0]), names.index(raters[1])
        pair = both & (((an_a == r0) & (an_b == r1)) | ((an_a == r1) & (an_b == r0)))
        first = np.where(an_a == r0, va, vb)[pair]
        second = np.where(an_a == r0, vb, va)[pair]
        np.add.at(counts.kappa_table, (first, second), 1)
    # the clusters' value counts (at most one object per annotator in a cluster)
    value = values.of(objects[0], objects[1], names)
    has = value >= 0
    unit_counts = np.zeros((n_units, k), np.int32)
    np.add.at(unit_counts, (unit_of[has], value[has]), 1)
    counts.unit_counts.append(unit_counts)
    # review rows: matched pairs whose values differ (reference pairs only, with a reference)
    differ = both & (va != vb) & ((side != 0) if reference_of else True)
    if differ.any():
        image = np.asarray(image_names, dtype=object)[image_codes[differ]]
        counts.review.append(_review_rows(batch, key, values.level, values.order, side[differ], va[differ],
                                          vb[differ], np.asarray(names, dtype=object), an_a[differ], an_b[differ],
                                          ix_a[differ], ix_b[differ], image))


def _review_rows(batch, key, level, order, side, va, vb, names, an_a, an_b, ix_a, ix_b, images):
    """Review-queue rows for matched pairs whose attribute values differ: the annotator's object (not the
    reference's), scored 0.5 (nominal) or by the difference over the range (ordinal)."""
    import pandas as pd

    who_is_b = side == 1  # the reference is a: the annotator's object is b's
    annotator = names[np.where(who_is_b, an_b, an_a)]
    other = names[np.where(who_is_b, an_a, an_b)]
    index = np.where(who_is_b, ix_b, ix_a)
    other_index = np.where(who_is_b, ix_a, ix_b)
    mine_v = np.where(who_is_b, vb, va)
    other_v = np.where(who_is_b, va, vb)
    if level == "ordinal" and all(isinstance(v, (int, bool)) for v in order) and len(order) > 1:
        span = float(max(order)) - float(min(order)) or 1.0
        values = np.array([float(order[x]) - float(order[y]) for x, y in zip(mine_v, other_v)])
        score = np.minimum(1.0, np.abs(values) / span)
    else:
        values = np.ones(len(mine_v))
        score = np.full(len(mine_v), 0.5)
    from qa.model import objects_at

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
