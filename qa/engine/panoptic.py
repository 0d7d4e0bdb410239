"""Panoptic quality (PQ, SQ, RQ per category) from one pass over two id maps.

:func:`pair_area_counts` wraps the numba kernel that counts the pixels of every pair of segment ids found
at the same pixel (the confusion count panopticapi builds with ``np.unique``). :func:`panoptic_counts`
applies panopticapi's rules to that table and returns true positives, false positives, false negatives
and the IoU sum per category; :func:`pq_summary` averages them over categories as panopticapi's
``PQStat.pq_average`` does. Both work on small per-segment arrays only: the pixels are read once.

Two forms (``form=``):

``"reference"``
    panopticapi's ``pq_compute_single_core`` with ``a`` as the ground truth and ``b`` as the prediction:
    void (id 0) and crowd regions count on ``a``'s side only; a segment of ``b`` left unmatched is not a
    false positive when more than half of it lies in ``a``'s void or in ``a``'s crowd region of its
    category (panopticapi keeps one crowd region per category: the last one listed); the IoU of a pair
    leaves out the part of ``b``'s segment that lies in ``a``'s void. ``b``'s ``iscrowd`` flags are
    ignored, as panopticapi ignores them on the prediction side.
``"symmetric"`` (default, for two annotators with no ground truth)
    Each side is treated as panopticapi treats the ground truth, so swapping ``a`` and ``b`` swaps the
    false positives and false negatives and leaves PQ, SQ and RQ unchanged. Void is id 0 or any id not
    listed in the side's segments. Crowd segments of either side are never matched. A pair's IoU leaves
    out the pixels that are void on the other side (``|a & b| / (|a| + |b| - |a & b| - |a & void_b| -
    |b & void_a|)``). A segment of either side left unmatched is ignored (neither FP nor FN) when more
    than half of it lies in the other side's void plus its crowd regions of the same category (all of
    them).

In both forms a match needs the same category and IoU > 0.5, which makes matches unique; segments are
matched by id. Segment areas are pixel counts of the id maps (panopticapi takes the ground truth's areas
from its JSON, which equal the pixel counts in a valid export); a listed segment absent from the map is
left out.

References
----------
A. Kirillov, K. He, R. Girshick, C. Rother, P. Dollár, "Panoptic Segmentation", CVPR 2019,
doi:10.1109/CVPR.2019.00963. Reference code: github.com/cocodataset/panopticapi,
``panopticapi/evaluation.py`` (``pq_compute_single_core``, ``PQStat.pq_average``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

VOID = 0
"""The id of unlabelled pixels."""

FORMS = ("symmetric", "reference")


class Segments(NamedTuple):
    """The segments of one id map: ``ids`` (n,) int64, ``categories`` (n,) int64, ``iscrowd`` (n,) bool."""

    ids: np.ndarray
    categories: np.ndarray
    iscrowd: np.ndarray

    @classmethod
    def from_info(cls, segments_info) -> "Segments":
        """From panopticapi's ``segments_info`` list of dicts (``id``, ``category_id``, ``iscrowd``)."""
        ids = np.array([int(s["id"]) for s in segments_info], dtype=np.int64)
        cats = np.array([int(s["category_id"]) for s in segments_info], dtype=np.int64)
        crowd = np.array([bool(s.get("iscrowd", 0)) for s in segments_info], dtype=bool)
        return cls(ids, cats, crowd)

    @classmethod
    def of(cls, ids, categories, iscrowd=None) -> "Segments":
        """From three sequences (``iscrowd`` defaults to all False)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        cats = np.asarray(categories, dtype=np.int64).reshape(-1)
        crowd = np.zeros(len(ids), bool) if iscrowd is None else np.asarray(iscrowd, dtype=bool).reshape(-1)
        if not (len(ids) == len(cats) == len(crowd)):
            raise ValueError("ids, categories and iscrowd must have the same length")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("segment ids must be distinct")
        return cls(ids, cats, crowd)


@dataclass(slots=True)
class PanopticCounts:
    """Per-category TP/FP/FN and IoU sums, plus the matched segment pairs.

    ``categories`` lists every category of a non-crowd segment on either side (sorted); ``tp``, ``fp``,
    ``fn`` (int64) and ``iou_sum`` (float64) follow it. ``fn`` counts ``a``'s unmatched segments,
    ``fp`` ``b``'s. ``match_a`` and ``match_b`` are positions in the two :class:`Segments`, ``match_iou``
    the IoU of each matched pair (as used for SQ).
    """

    categories: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    iou_sum: np.ndarray
    match_a: np.ndarray
    match_b: np.ndarray
    match_iou: np.ndarray


def pair_area_counts(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels of every pair of ids at the same pixel of two id maps, from one pass.

    Parameters
    ----------
    a, b : (H, W) array of int
        Id maps of the same shape (cast to int32).

    Returns
    -------
    ids_a, ids_b, counts : (k,) int64
        Every pair present, sorted by ``ids_a`` then ``ids_b``; ``counts`` sums to ``H * W``.

    Raises
    ------
    ValueError
        When the shapes differ.

    Examples
    --------
    >>> a = np.array([[1, 1, 2], [0, 2, 2]])
    >>> b = np.array([[5, 5, 5], [0, 0, 5]])
    >>> [x.tolist() for x in pair_area_counts(a, b)]
    [[0, 1, 2, 2], [0, 5, 0, 5], [1, 2, 1, 2]]
    """
    from qa.engine._kernels_panoptic import _pair_area_counts

    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"id maps must be 2-D and of one shape, got {a.shape} and {b.shape}")
    return _pair_area_counts(np.ascontiguousarray(a, dtype=np.int32), np.ascontiguousarray(b, dtype=np.int32))


def _positions(ids: np.ndarray, seg_ids: np.ndarray) -> np.ndarray:
    """Position of each of ``ids`` in ``seg_ids`` (-1 when absent)."""
    if len(seg_ids) == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    order = np.argsort(seg_ids, kind="stable")
    sorted_ids = seg_ids[order]
    pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, order[pos], -1).astype(np.int64)


def _sum_by(index: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, index, weights)
    return out


def panoptic_counts(a: np.ndarray, b: np.ndarray, segments_a: Segments, segments_b: Segments, *,
                    form: str = "symmetric", pairs=None) -> PanopticCounts:
    """True positives, false positives, false negatives and IoU sums per category for two id maps.

    Parameters
    ----------
    a, b : (H, W) array of int
        Id maps (``a`` is the reference in ``form="reference"``).
    segments_a, segments_b : Segments
        The segments listed for each map.
    form : {"symmetric", "reference"}, default "symmetric"
        See the module notes.
    pairs : tuple of three arrays, optional
        The output of :func:`pair_area_counts` for ``a`` and ``b`` when already computed (then ``a``
        and ``b`` are not read).

    Returns
    -------
    PanopticCounts

    Raises
    ------
    ValueError
        On an unknown form, or (``form="reference"``) when ``b`` holds a nonzero id not listed in
        ``segments_b`` (panopticapi raises a KeyError there).

    Examples
    --------
    >>> a = np.array([[1, 1, 2, 2]]); b = np.array([[7, 7, 7, 0]])
    >>> c = panoptic_counts(a, b, Segments.of([1, 2], [3, 3]), Segments.of([7], [3]))
    >>> c.tp.tolist(), c.fp.tolist(), c.fn.tolist(), c.match_iou.round(3).tolist()
    ([1], [0], [1], [0.667])
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    symmetric = form == "symmetric"
    ids_a, ids_b, cnt = pair_area_counts(a, b) if pairs is None else pairs
    na, nb = len(segments_a.ids), len(segments_b.ids)
    sa = _positions(ids_a, segments_a.ids)
    sb = _positions(ids_b, segments_b.ids)
    sa[ids_a == VOID] = -1
    sb[ids_b == VOID] = -1
    if not symmetric:
        unknown = (sb < 0) & (ids_b != VOID)
        if unknown.any():
            raise ValueError(f"segment id {int(ids_b[unknown][0])} is in the map but not in the segments "
                             "(panopticapi raises here)")
    # a's void: id 0, plus (symmetric) ids nobody listed; in the reference form unlisted ids of the
    # ground truth are neither void nor matched, as in panopticapi
    void_a = (ids_a == VOID) | ((sa < 0) & symmetric)
    void_b = (ids_b == VOID) | (sb < 0)
    cat_a, cat_b = segments_a.categories, segments_b.categories
    crowd_a = segments_a.iscrowd
    crowd_b = segments_b.iscrowd if symmetric else np.zeros(nb, bool)

    in_a, in_b = sa >= 0, sb >= 0
    area_a = _sum_by(sa[in_a], cnt[in_a], na)
    area_b = _sum_by(sb[in_b], cnt[in_b], nb)
    b_in_void_a = _sum_by(sb[in_b & void_a], cnt[in_b & void_a], nb)
    a_in_void_b = _sum_by(sa[in_a & void_b], cnt[in_a & void_b], na)

    both = in_a & in_b
    ra, rb, inter = sa[both], sb[both], cnt[both]
    candidate = (~crowd_a[ra]) & (~crowd_b[rb]) & (cat_a[ra] == cat_b[rb])
    ra, rb, inter = ra[candidate], rb[candidate], inter[candidate]
    union = area_a[ra] + area_b[rb] - inter - b_in_void_a[rb]
    if symmetric:
        union = union - a_in_void_b[ra]
    iou = inter / np.maximum(union, 1)
    tp = iou > 0.5
    match_a, match_b, match_iou = ra[tp], rb[tp], iou[tp]

    # crowd cover: the pixels of each segment inside the other side's crowd region(s) of its category
    if symmetric:
        a_in_crowd_b = _sum_by(sa[both], np.where(crowd_b[sb[both]] & (cat_a[sa[both]] == cat_b[sb[both]]),
                                                  cnt[both], 0), na)
        b_crowd_region = crowd_a[sa[both]] & (cat_a[sa[both]] == cat_b[sb[both]])
    else:
        last_crowd = {}
        for k in np.flatnonzero(crowd_a):
            last_crowd[int(cat_a[k])] = int(k)  # panopticapi: one crowd region per category, the last one
        region = np.array([last_crowd.get(int(c), -1) for c in cat_b], dtype=np.int64) if nb else \
            np.zeros(0, np.int64)
        b_crowd_region = region[sb[both]] == sa[both]
        a_in_crowd_b = np.zeros(na, np.int64)
    b_in_crowd_a = _sum_by(sb[both], np.where(b_crowd_region, cnt[both], 0), nb)

    matched_a = np.zeros(na, bool)
    matched_b = np.zeros(nb, bool)
    matched_a[match_a] = True
    matched_b[match_b] = True
    fn_mask = ~matched_a & ~crowd_a & (area_a > 0)
    if symmetric:
        fn_mask &= (a_in_void_b + a_in_crowd_b) <= 0.5 * area_a
    fp_mask = ~matched_b & ~crowd_b & (area_b > 0)
    fp_mask &= (b_in_void_a + b_in_crowd_a) <= 0.5 * area_b

    present = np.concatenate([cat_a[~crowd_a & (area_a > 0)], cat_b[~crowd_b & (area_b > 0)]])
    categories = np.unique(present).astype(np.int64)
    n = len(categories)

    def per_category(cats, weights=None):
        idx = np.searchsorted(categories, cats)
        if weights is None:
            return np.bincount(idx, minlength=n).astype(np.int64)
        out = np.zeros(n, dtype=np.float64)
        np.add.at(out, idx, weights)
        return out

    return PanopticCounts(
        categories=categories,
        tp=per_category(cat_a[match_a]),
        fp=per_category(cat_b[fp_mask]),
        fn=per_category(cat_a[fn_mask]),
        iou_sum=per_category(cat_a[match_a], match_iou),
        match_a=match_a.astype(np.int64),
        match_b=match_b.astype(np.int64),
        match_iou=match_iou.astype(np.float64),
    )


def add_counts(total: dict, counts: PanopticCounts) -> dict:
    """Add per-category counts into ``total`` (``{category: [tp, fp, fn, iou_sum]}``), in place."""
    for k, c in enumerate(counts.categories.tolist()):
        row = total.setdefault(c, [0, 0, 0, 0.0])
        row[0] += int(counts.tp[k])
        row[1] += int(counts.fp[k])
        row[2] += int(counts.fn[k])
        row[3] += float(counts.iou_sum[k])
    return total


def pq_summary(per_category: dict, isthing: dict | None = None) -> dict:
    """PQ, SQ and RQ per category and averaged over categories, as panopticapi's ``pq_average``.

    Parameters
    ----------
    per_category : dict
        ``{category: (tp, fp, fn, iou_sum)}`` (see :func:`add_counts`).
    isthing : dict, optional
        ``{category: bool}``; when given, ``things`` and ``stuff`` averages are added.

    Returns
    -------
    dict
        ``{"all": {"pq", "sq", "rq", "n"}, "things": ..., "stuff": ..., "per_class": {category: {"pq",
        "sq", "rq", "tp", "fp", "fn"}}}``. Categories without TP, FP or FN are left out of the averages
        and of ``per_class``; an average over no category is NaN (panopticapi divides by zero there).
        SQ of a category with no TP is 0, as in panopticapi.

    Examples
    --------
    >>> pq_summary({1: (1, 0, 1, 0.8), 2: (0, 0, 0, 0.0)})["all"]
    {'pq': 0.5333333333333333, 'sq': 0.8, 'rq': 0.6666666666666666, 'n': 1}
    """
    per_class = {}
    for c, (tp, fp, fn, iou) in per_category.items():
        if tp + fp + fn == 0:
            continue
        denom = tp + 0.5 * fp + 0.5 * fn
        per_class[c] = {"pq": iou / denom, "sq": iou / tp if tp else 0.0, "rq": tp / denom,
                        "tp": int(tp), "fp": int(fp), "fn": int(fn)}

    def average(keys):
        keys = list(keys)
        if not keys:
            return {"pq": float("nan"), "sq": float("nan"), "rq": float("nan"), "n": 0}
        return {m: float(sum(per_class[k][m] for k in keys) / len(keys)) for m in ("pq", "sq", "rq")} | \
            {"n": len(keys)}

    out = {"all": average(per_class)}
    if isthing is not None:
        out["things"] = average(k for k in per_class if isthing.get(k, True))
        out["stuff"] = average(k for k in per_class if not isthing.get(k, True))
    out["per_class"] = per_class
    return out
