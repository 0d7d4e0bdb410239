"""Matching two annotators' objects of one image: optimal one-to-one assignment on mask IoU.

The assignment is label-agnostic: an object drawn by both annotators but given different categories is
matched, and reported as a label disagreement rather than as one missing plus one extra object. Among
the pairs whose IoU reaches the threshold, the matching maximises the total IoU (the Hungarian
algorithm, :func:`scipy.optimize.linear_sum_assignment`); pairs below the threshold are never matched.

For a pair ``a|b`` (annotator names sorted), an object of ``a`` left unmatched is *missing* (``b`` did not
draw it) and an object of ``b`` left unmatched is *extra* (``b`` drew it, ``a`` did not). Crowd regions
(``iscrowd``) are never matched and never missing or extra; an unmatched object whose area lies for more
than half inside one crowd region of the other annotator with the same category is *ignored* (see
:mod:`qa.engine._kernels_iou`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MATCHED, MISSING, EXTRA, IGNORED = 0, 1, 2, 3
STATUS = ("matched", "missing", "extra", "ignored")
"""Status names by code."""


def iou_matrix(inter: np.ndarray, area_a: np.ndarray, area_b: np.ndarray) -> np.ndarray:
    """IoU of every pair from intersections and areas (0 where the union is empty).

    Examples
    --------
    >>> iou_matrix(np.array([[2, 0]]), np.array([4]), np.array([2, 0])).tolist()
    [[0.5, 0.0]]
    """
    inter = np.asarray(inter, dtype=np.float64)
    union = np.asarray(area_a, dtype=np.float64)[:, None] + np.asarray(area_b, dtype=np.float64)[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def assign(iou: np.ndarray, *, iou_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Optimal one-to-one matching: the pairs with IoU >= threshold of largest total IoU.

    Parameters
    ----------
    iou : (na, nb) float64
        IoU of every pair; set pairs that may not match (crowd regions) to 0.
    iou_threshold : float, default 0.5
        Smallest IoU of a match (inclusive, as in the COCO evaluation). Must be > 0.

    Returns
    -------
    rows, cols : (k,) int64
        Matched pairs, sorted by row.

    Examples
    --------
    >>> iou = np.array([[0.6, 0.55], [0.58, 0.0]])
    >>> [x.tolist() for x in assign(iou)]  # 0.55 + 0.58 beats 0.6 alone
    [[0, 1], [1, 0]]
    """
    from scipy.optimize import linear_sum_assignment

    if not iou_threshold > 0:
        raise ValueError(f"iou_threshold must be > 0, got {iou_threshold}")
    valid = iou >= iou_threshold
    rows_any = np.flatnonzero(valid.any(axis=1))
    cols_any = np.flatnonzero(valid.any(axis=0))
    if len(rows_any) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    sub = np.where(valid[np.ix_(rows_any, cols_any)], iou[np.ix_(rows_any, cols_any)], 0.0)
    r, c = linear_sum_assignment(sub, maximize=True)
    keep = sub[r, c] >= iou_threshold
    rows, cols = rows_any[r[keep]], cols_any[c[keep]]
    order = np.argsort(rows, kind="stable")
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


@dataclass(slots=True)
class PairMatch:
    """The outcome of matching two annotators' objects of one image, one row per object pair or object.

    Rows come as matched pairs (by ``index_a``), then ``a``'s unmatched objects, then ``b``'s. Indices are
    positions in the arrays given to :func:`match_objects` (-1 where the row has no object on that
    side). ``iou`` is the pair's IoU (NaN when unmatched); ``best_iou`` the largest IoU of the row's
    object with any non-crowd object of the other side (for a matched pair, its IoU); ``crowd_share``
    the share of an unmatched object inside the other side's crowd region of its category.
    """

    index_a: np.ndarray
    index_b: np.ndarray
    status: np.ndarray
    iou: np.ndarray
    best_iou: np.ndarray
    intersection: np.ndarray
    label_disagreement: np.ndarray
    crowd_share: np.ndarray

    def __len__(self) -> int:
        return len(self.status)

    def count(self, status: int) -> int:
        return int((self.status == status).sum())


def match_objects(inter: np.ndarray, area_a: np.ndarray, area_b: np.ndarray, *, categories_a: np.ndarray,
                  categories_b: np.ndarray, crowd_a: np.ndarray | None = None, crowd_b: np.ndarray | None = None,
                  iou_threshold: float = 0.5) -> PairMatch:
    """Match two annotators' objects of one image and classify every object.

    Parameters
    ----------
    inter : (na, nb) int64
        Pixel intersections of every pair.
    area_a, area_b : (na,), (nb,) int64
        Object areas in pixels.
    categories_a, categories_b : (na,), (nb,) int64
        Category codes (only compared for equality).
    crowd_a, crowd_b : (na,), (nb,) bool, optional
        Crowd regions (default: none).
    iou_threshold : float, default 0.5
        Smallest IoU of a match (inclusive).

    Returns
    -------
    PairMatch

    Examples
    --------
    >>> m = match_objects(np.array([[8, 0], [0, 0]]), np.array([10, 5]), np.array([9, 4]),
    ...                   categories_a=np.array([1, 1]), categories_b=np.array([2, 1]))
    >>> [STATUS[s] for s in m.status], m.label_disagreement.tolist(), m.iou.round(3).tolist()
    (['matched', 'missing', 'extra'], [True, False, False], [0.727, nan, nan])
    """
    from qa.engine._kernels_iou import _crowd_cover

    inter = np.asarray(inter, dtype=np.int64).reshape(len(area_a), len(area_b))
    area_a = np.asarray(area_a, dtype=np.int64)
    area_b = np.asarray(area_b, dtype=np.int64)
    cat_a = np.asarray(categories_a, dtype=np.int64)
    cat_b = np.asarray(categories_b, dtype=np.int64)
    crowd_a = np.zeros(len(area_a), bool) if crowd_a is None else np.asarray(crowd_a, dtype=bool)
    crowd_b = np.zeros(len(area_b), bool) if crowd_b is None else np.asarray(crowd_b, dtype=bool)

    iou = iou_matrix(inter, area_a, area_b)
    iou[crowd_a, :] = 0.0
    iou[:, crowd_b] = 0.0
    rows, cols = assign(iou, iou_threshold=iou_threshold)
    matched_a = np.zeros(len(area_a), bool)
    matched_b = np.zeros(len(area_b), bool)
    matched_a[rows] = True
    matched_b[cols] = True
    best_a = iou.max(axis=1) if iou.shape[1] else np.zeros(len(area_a))
    best_b = iou.max(axis=0) if iou.shape[0] else np.zeros(len(area_b))
    share_a = _crowd_cover(inter, area_a, cat_a, crowd_b, cat_b)
    share_b = _crowd_cover(np.ascontiguousarray(inter.T), area_b, cat_b, crowd_a, cat_a)

    un_a = np.flatnonzero(~matched_a & ~crowd_a)
    un_b = np.flatnonzero(~matched_b & ~crowd_b)
    status_a = np.where(share_a[un_a] > 0.5, IGNORED, MISSING)
    status_b = np.where(share_b[un_b] > 0.5, IGNORED, EXTRA)
    k, ka, kb = len(rows), len(un_a), len(un_b)
    none_a, none_b = np.full(kb, -1, np.int64), np.full(ka, -1, np.int64)
    nan = np.full(ka + kb, np.nan)
    return PairMatch(
        index_a=np.concatenate([rows, un_a, none_a]).astype(np.int64),
        index_b=np.concatenate([cols, none_b, un_b]).astype(np.int64),
        status=np.concatenate([np.full(k, MATCHED), status_a, status_b]).astype(np.int8),
        iou=np.concatenate([iou[rows, cols], nan]),
        best_iou=np.concatenate([iou[rows, cols], best_a[un_a], best_b[un_b]]),
        intersection=np.concatenate([inter[rows, cols], np.zeros(ka + kb, np.int64)]).astype(np.int64),
        label_disagreement=np.concatenate([cat_a[rows] != cat_b[cols], np.zeros(ka + kb, bool)]),
        crowd_share=np.concatenate([np.zeros(k), share_a[un_a], share_b[un_b]]),
    )


def cluster_objects(annotators, pairs, iou) -> np.ndarray:
    """Group one image's objects, drawn by several annotators, into clusters of at most one object per
    annotator, from the pairwise matches.

    A greedy agglomeration over the matched pairs, best IoU first: every object starts alone, and the
    clusters of a matched pair merge when (1) no annotator has an object in both, and (2) at least half
    of the object pairs across the two clusters are matched pairs (average linkage on the match graph).
    Rule (2) lets a cluster grow through an object whose match with one member fell just below the
    threshold, but never joins two groups through a single bridging pair.

    Parameters
    ----------
    annotators : (n,) int
        Annotator code of each object.
    pairs : (m, 2) int
        Matched object pairs (positions in ``annotators``), from the pairwise one-to-one matchings of
        :func:`match_objects`; each pair links objects of two different annotators.
    iou : (m,) float
        Each pair's IoU (the merge order).

    Returns
    -------
    (n,) int64
        Cluster label of each object, numbered 0, 1, ... in order of each cluster's first object.

    Raises
    ------
    ValueError
        When a pair links two objects of one annotator or points outside ``annotators``.

    Notes
    -----
    Ties in IoU are broken by the pair's positions (lower first), so the result depends on the input
    order only through those positions. Every object is in exactly one cluster, so an unmatched object
    is a cluster of one.

    Examples
    --------
    Annotators 0, 1 and 2 each drew one object; 0-1 and 1-2 match, 0-2 fell below the threshold (one
    of the two cross pairs is matched: the clusters merge). Object 3 (annotator 0) matches only 2,
    which already has annotator 0's object 0:

    >>> cluster_objects([0, 1, 2, 0], [[0, 1], [1, 2], [3, 2]], [0.9, 0.8, 0.7]).tolist()
    [0, 0, 0, 1]
    """
    codes = np.asarray(annotators, dtype=np.int64).reshape(-1)
    n = len(codes)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    iou = np.asarray(iou, dtype=np.float64).reshape(-1)
    if len(iou) != len(pairs):
        raise ValueError(f"{len(pairs)} pairs but {len(iou)} IoU values")
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= n):
        raise ValueError(f"a pair points outside the {n} objects")
    if (codes[pairs[:, 0]] == codes[pairs[:, 1]]).any():
        raise ValueError("a matched pair links two objects of the same annotator")
    linked = {(int(min(i, j)), int(max(i, j))) for i, j in pairs}
    members = {i: [i] for i in range(n)}
    owners = {i: {int(codes[i])} for i in range(n)}
    root = list(range(n))
    for e in np.lexsort((pairs[:, 1], pairs[:, 0], -iou)):
        ri, rj = root[pairs[e, 0]], root[pairs[e, 1]]
        if ri == rj or owners[ri] & owners[rj]:
            continue
        cross = sum((min(u, v), max(u, v)) in linked for u in members[ri] for v in members[rj])
        if 2 * cross < len(members[ri]) * len(members[rj]):
            continue
        keep, gone = min(ri, rj), max(ri, rj)
        for u in members[gone]:
            root[u] = keep
        members[keep].extend(members.pop(gone))
        owners[keep] |= owners.pop(gone)
    labels = np.empty(n, np.int64)
    numbering: dict[int, int] = {}
    for i in range(n):
        labels[i] = numbering.setdefault(root[i], len(numbering))
    return labels
