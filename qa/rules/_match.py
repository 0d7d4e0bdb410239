"""Objects matched across annotators, for the rules that compare annotators (OCC004, LAY005).

A stop-gap until ``qa.engine.match`` (the comparison engine's matching) is available: for each
image and each pair of annotators, mask IoU of every object pair (pycocotools ``iou`` on RLEs, no
decoding), then the one-to-one assignment that maximises the summed IoU (``scipy.optimize.
linear_sum_assignment``), keeping pairs with IoU at least the threshold. Matching is label-agnostic.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np


def optimal_assignment(iou: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the one-to-one assignment with the largest summed IoU, pairs below
    ``threshold`` dropped.

    Examples
    --------
    >>> optimal_assignment(np.array([[0.9, 0.6], [0.7, 0.2]]), 0.5)
    (array([0, 1]), array([1, 0]))
    >>> optimal_assignment(np.array([[0.9, 0.6], [0.3, 0.2]]), 0.5)
    (array([0]), array([0]))
    """
    from scipy.optimize import linear_sum_assignment

    if iou.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    r, c = linear_sum_assignment(iou, maximize=True)
    keep = iou[r, c] >= threshold
    return r[keep].astype(np.int64), c[keep].astype(np.int64)


def match_objects(ctx, *, iou_threshold: float = 0.5, where: np.ndarray) -> np.ndarray:
    """Rows ``(g_a, g_b, iou)`` of matched objects (global indices of a BatchContext)."""
    from pycocotools import mask as mask_utils

    rows = []
    names = ctx.batch.annotators
    for image, holders in ctx.batch.coverage.items():
        for a, b in combinations([n for n in names if n in holders], 2):
            ca, cb = ctx.contexts[a], ctx.contexts[b]
            ia = ca.by_image.get(image, np.zeros(0, np.int64))
            ib = cb.by_image.get(image, np.zeros(0, np.int64))
            ia = ia[where[ctx.offset[a] + ia]]
            ib = ib[where[ctx.offset[b] + ib]]
            if not len(ia) or not len(ib):
                continue
            iou = np.asarray(mask_utils.iou([ca.rles[k] for k in ia], [cb.rles[k] for k in ib],
                                            [0] * len(ib)), dtype=np.float64).reshape(len(ia), len(ib))
            r, c = optimal_assignment(iou, iou_threshold)
            for x, y in zip(r, c):
                rows.append((ctx.offset[a] + ia[x], ctx.offset[b] + ib[y], iou[x, y]))
    if not rows:
        return np.zeros((0, 3))
    return np.asarray(rows, dtype=np.float64)
