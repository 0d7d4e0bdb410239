"""Numba kernel: the pixel count of every (segment of A, segment of B) pair of two panoptic id maps.

This is the confusion count panopticapi builds with ``np.unique(gt * OFFSET + pred, return_counts=True)``,
done in one pass without sorting: pixels are read row by row, a run of pixels with the same pair of ids
is counted at once, and a run whose pair differs from the previous run's is looked up in an
open-addressing hash table of packed pair keys (``id_a << 32 | id_b``). Everything panoptic quality needs
(segment areas, intersections, overlap with void and crowd) follows from this table; see
:mod:`qa.engine.panoptic`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

@njit(cache=True, nogil=True)
def _slot(keys, used, key):
    """Slot of ``key`` in the table (its own, or the empty one where it belongs).

    The hash multiplies each 32-bit half by an odd constant (products below 2^64, so no overflow) and
    keeps middle bits of their XOR; the table's size is a power of two.
    """
    mask = keys.shape[0] - 1
    lo = np.uint64(key & 0xFFFFFFFF)
    hi = np.uint64((key >> 32) & 0xFFFFFFFF)
    h = (lo * np.uint64(0x9E3779B1)) ^ (hi * np.uint64(0x85EBCA77))
    s = np.int64((h >> np.uint64(16)) & np.uint64(mask))
    while used[s] and keys[s] != key:
        s = (s + 1) & mask
    return s


@njit(cache=True, nogil=True)
def _pair_area_counts(a, b):
    """Pixel counts of every pair of ids found at the same pixel of two id maps.

    Parameters
    ----------
    a, b : (H, W) int32, C-contiguous, same shape
        The two id maps.

    Returns
    -------
    ids_a, ids_b : (k,) int64
        Each pair of ids present, sorted by ``ids_a`` then ``ids_b``.
    counts : (k,) int64
        Pixels of the pair; they sum to ``H * W``.
    """
    bits = 10
    capacity = 1 << bits
    keys = np.zeros(capacity, np.int64)
    counts = np.zeros(capacity, np.int64)
    used = np.zeros(capacity, np.bool_)
    n_used = 0
    height = a.shape[0]
    width = a.shape[1]
    last_key = np.int64(0)
    last_slot = np.int64(-1)
    for y in range(height):
        x = 0
        while x < width:
            va = a[y, x]
            vb = b[y, x]
            start = x
            x += 1
            while x < width and a[y, x] == va and b[y, x] == vb:
                x += 1
            key = (np.int64(va) << 32) | (np.int64(vb) & 0xFFFFFFFF)
            if last_slot >= 0 and key == last_key:
                counts[last_slot] += x - start
                continue
            s = _slot(keys, used, key)
            if not used[s]:
                if 2 * (n_used + 1) > capacity:  # keep the load under 1/2: grow and rehash
                    bits += 1
                    capacity = 1 << bits
                    old_keys = keys
                    old_counts = counts
                    old_used = used
                    keys = np.zeros(capacity, np.int64)
                    counts = np.zeros(capacity, np.int64)
                    used = np.zeros(capacity, np.bool_)
                    for t in range(old_keys.shape[0]):
                        if old_used[t]:
                            u = _slot(keys, used, old_keys[t])
                            keys[u] = old_keys[t]
                            counts[u] = old_counts[t]
                            used[u] = True
                    s = _slot(keys, used, key)
                keys[s] = key
                used[s] = True
                n_used += 1
            counts[s] += x - start
            last_key = key
            last_slot = s
    found = np.empty(n_used, np.int64)
    found_counts = np.empty(n_used, np.int64)
    k = 0
    for t in range(capacity):
        if used[t]:
            found[k] = keys[t]
            found_counts[k] = counts[t]
            k += 1
    order = np.argsort(found)
    ids_a = np.empty(n_used, np.int64)
    ids_b = np.empty(n_used, np.int64)
    out_counts = np.empty(n_used, np.int64)
    for k in range(n_used):
        key = found[order[k]]
        ids_a[k] = key >> 32
        low = key & 0xFFFFFFFF
        ids_b[k] = low - (np.int64(1) << 32) if low >= (np.int64(1) << 31) else low
        out_counts[k] = found_counts[order[k]]
    return ids_a, ids_b, out_counts
