"""Run lengths from pycocotools' compressed RLE counts string, and the string from run lengths (numba
kernels and their wrappers).

The string is pycocotools' variant of LEB128: each byte minus 48 carries 5 value bits, bit 0x20 continues
a number, bit 0x10 of its last byte is the sign, and from the fourth number on each is stored as the
difference to the number two places before. The loaders check RLEs with it (:func:`qa.formats.coco.
rle_problem`) and the engine parses them with it (:func:`qa.engine._masks.rle_runs`).

References
----------
cocodataset/cocoapi ``common/maskApi.c``: ``rleToString`` and ``rleFrString``.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _rle_string_runs(chars):
    """Run lengths from pycocotools' compressed counts string.

    Parameters
    ----------
    chars : (n,) uint8
        The ASCII bytes of the counts string.

    Returns
    -------
    runs : (m,) int64
        Alternating runs of zeros and ones, starting with zeros.
    ok : bool
        False when the string ends inside a number or holds a byte outside ``0`` .. ``o`` (48 .. 111);
        the runs are then meaningless.
    """
    n = chars.shape[0]
    out = np.empty(n, np.int64)
    m = 0
    p = 0
    while p < n:
        x = np.int64(0)
        k = 0
        more = True
        while more:
            if p >= n:
                return out[:m], False
            c = np.int64(chars[p]) - 48
            if c < 0 or c > 63:
                return out[:m], False
            x |= (c & 0x1F) << (5 * k)
            more = (c & 0x20) != 0
            p += 1
            k += 1
            if not more and (c & 0x10) != 0:
                x |= np.int64(-1) << (5 * k)
        if m > 2:
            x += out[m - 2]
        out[m] = x
        m += 1
    return out[:m], True


def counts_runs(counts: str | bytes) -> np.ndarray | None:
    """The alternating runs (zeros first) of a compressed counts string, or None when it is malformed.

    Examples
    --------
    >>> counts_runs("525").tolist()  # pycocotools' string for a 4x3 mask with ones at (1, 1) and (2, 1)
    [5, 2, 5]
    >>> counts_runs("5\x7f") is None
    True
    """
    raw = counts.encode("ascii", "replace") if isinstance(counts, str) else bytes(counts)
    runs, ok = _rle_string_runs(np.frombuffer(raw, dtype=np.uint8))
    return runs if ok else None


@njit(cache=True, nogil=True)
def _runs_string(runs):
    """The compressed counts string of run lengths, as ASCII bytes (pycocotools' ``rleToString``): each
    number (from the fourth on, less the number two before it) in 5-bit groups with a continuation bit,
    offset by 48."""
    out = np.empty(runs.shape[0] * 13 + 1, dtype=np.uint8)  # 64-bit values: 13 groups at most
    p = 0
    for i in range(runs.shape[0]):
        x = runs[i]
        if i > 2:
            x -= runs[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) != 0 else (x != 0)
            if more:
                c |= 0x20
            out[p] = c + 48
            p += 1
    return out[:p]


def runs_counts(runs) -> bytes:
    """The compressed counts string of alternating runs (zeros first), as pycocotools writes it: the
    inverse of :func:`counts_runs`.

    Examples
    --------
    >>> runs_counts([5, 2, 5])
    b'525'
    """
    return _runs_string(np.ascontiguousarray(runs, dtype=np.int64)).tobytes()


@njit(cache=True, nogil=True)
def _rle_strings_runs(chars, char_ptr, size):
    """:func:`_rle_string_runs` of several counts strings in one call, each checked against a mask size.

    Parameters
    ----------
    chars : (n,) uint8
        The strings' ASCII bytes, one after the other.
    char_ptr : (k + 1,) int64
        String ``i`` is ``chars[char_ptr[i]:char_ptr[i + 1]]``.
    size : int
        The pixels of the mask each string must describe (height x width).

    Returns
    -------
    runs : (m,) int64
        Every string's runs, one after the other.
    run_ptr : (k + 1,) int64
        String ``i``'s runs are ``runs[run_ptr[i]:run_ptr[i + 1]]``.
    ok : (k,) bool
        False where a string is malformed, holds a negative run or its runs do not add up to ``size``.
    """
    k = char_ptr.shape[0] - 1
    runs = np.empty(max(chars.shape[0], 1), np.int64)
    run_ptr = np.zeros(k + 1, np.int64)
    ok = np.ones(k, np.bool_)
    m = 0
    for i in range(k):
        part, good = _rle_string_runs(chars[char_ptr[i]:char_ptr[i + 1]])
        total = 0
        for r in range(part.shape[0]):
            if part[r] < 0:
                good = False
            total += part[r]
        ok[i] = good and total == size
        runs[m:m + part.shape[0]] = part  # at most one run per byte of the string
        m += part.shape[0]
        run_ptr[i + 1] = m
    return runs[:m].copy(), run_ptr, ok
