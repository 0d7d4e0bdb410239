"""Run lengths from pycocotools' compressed RLE counts string (numba kernel and its wrapper).

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
