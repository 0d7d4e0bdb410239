"""Slow, obvious numpy versions of the kernels, for the tests to compare against.

Each section belongs to one part of the engine; keep them apart so parallel work merges cleanly.
"""

from __future__ import annotations

import numpy as np

# =====================================================================================================
# Comparison engine: masks, intersections, pair-area counts (qa/engine/_masks.py, _kernels_iou.py,
# _kernels_panoptic.py)
# =====================================================================================================


def ref_runs(mask: np.ndarray) -> list[int]:
    """COCO RLE run lengths of a full mask, read column by column, starting with a run of zeros."""
    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    runs, current, count = [], 0, 0
    for v in flat:
        if v == current:
            count += 1
        else:
            runs.append(count)
            current, count = v, 1
    runs.append(count)
    return runs


def ref_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight end-exclusive bbox (x0, y0, x1, y1), zeros when empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return 0, 0, 0, 0
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def ref_window(mask: np.ndarray, window) -> np.ndarray:
    """The mask cut to an end-exclusive window that may reach outside the image (zeros there)."""
    x0, y0, x1, y1 = window
    out = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    h, w = mask.shape
    for y in range(y0, y1):
        for x in range(x0, x1):
            if 0 <= y < h and 0 <= x < w:
                out[y - y0, x - x0] = mask[y, x]
    return out


def ref_intersection_counts(masks_a, masks_b) -> np.ndarray:
    """All-pairs pixel intersections of two lists of full masks."""
    out = np.zeros((len(masks_a), len(masks_b)), dtype=np.int64)
    for i, a in enumerate(masks_a):
        for j, b in enumerate(masks_b):
            out[i, j] = int(np.logical_and(a, b).sum())
    return out


def ref_pair_area_counts(a: np.ndarray, b: np.ndarray) -> dict[tuple[int, int], int]:
    """``{(id in a, id in b): pixels}`` by the np.unique confusion count panopticapi uses."""
    offset = np.uint64(2 ** 32)
    keys = a.astype(np.int64).astype(np.uint64) * offset + b.astype(np.int64).astype(np.uint64)
    labels, counts = np.unique(keys, return_counts=True)
    return {(int(k // offset), int(k % offset)): int(c) for k, c in zip(labels, counts)}
