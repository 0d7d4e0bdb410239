"""Seeded synthetic masks for the benchmarks: blobby objects of 30-300 px in 1024 x 2048 images."""

from __future__ import annotations

import numpy as np

SHAPE = (1024, 2048)


def blob_box(rng, shape=SHAPE, *, size=(30, 300)):
    """Centre, radius and jitter harmonics of one object whose diameter is drawn from ``size``."""
    radius = rng.uniform(*size) / 2
    cy = rng.uniform(radius + 2, shape[0] - radius - 2)
    cx = rng.uniform(radius + 2, shape[1] - radius - 2)
    aspect = rng.uniform(0.6, 1.0)
    harmonics = rng.normal(0, 0.06, size=(4, 2)) / np.arange(1, 5)[:, None]
    return cy, cx, radius, aspect, harmonics


def draw(shape, blob, *, jitter_rng=None, jitter=0.0, grow=0.0):
    """The object as a full uint8 mask; ``jitter`` (pixels) wobbles the outline as a second annotator
    would, ``grow`` (pixels) moves it outwards."""
    cy, cx, radius, aspect, harmonics = blob
    if jitter_rng is not None and jitter:
        harmonics = harmonics + jitter_rng.normal(0, jitter / radius, size=harmonics.shape) / 2
    r_max = int(radius * 1.5 + abs(grow) + 3)
    y0, y1 = max(int(cy) - r_max, 0), min(int(cy) + r_max + 1, shape[0])
    x0, x1 = max(int(cx) - r_max, 0), min(int(cx) + r_max + 1, shape[1])
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dy, dx = (yy - cy) / aspect, xx - cx
    theta = np.arctan2(dy, dx)
    r = radius * (1 + sum(harmonics[k, 0] * np.cos((k + 2) * theta) + harmonics[k, 1] * np.sin((k + 2) * theta)
                          for k in range(harmonics.shape[0])))
    out = np.zeros(shape, np.uint8)
    out[y0:y1, x0:x1] = np.hypot(dy, dx) <= r + grow
    return out


def mask_pairs(seed, n, shape=SHAPE):
    """``n`` pairs (a, b) of full masks: the same object drawn by two annotators (jittered outline, and
    every third pair one annotator draws 1-2 px looser)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for k in range(n):
        blob = blob_box(rng, shape)
        a = draw(shape, blob)
        b = draw(shape, blob, jitter_rng=rng, jitter=1.5, grow=rng.uniform(1, 2) if k % 3 == 0 else 0.0)
        pairs.append((a, b))
    return pairs


def bbox(mask):
    """Tight end-exclusive (x0, y0, x1, y1) of a non-empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
