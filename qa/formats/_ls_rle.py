"""Label Studio's brush RLE (thi.ng rle-pack) decoded in numba, and converted to COCO RLE.

A brush result's ``rle`` is a list of bytes holding a bit stream (most significant bit first):

- a 32-bit count ``num`` of values (``height x width x 4``: the RGBA canvas, row-major);
- a 5-bit ``word_size - 1`` and four 4-bit ``rle_sizes[k] - 1``;
- then blocks until ``num`` values are out: a repeat flag (1 bit), a 2-bit index ``k`` and an
  ``rle_sizes[k]``-bit ``length - 1``; a repeat block is one ``word_size``-bit value repeated
  ``length`` times, a literal block is ``length`` values.

A pixel belongs to the mask when its alpha (the fourth value) is non-zero, as the alpha channel is the
layer label-studio-converter's ``decode_from_annotation`` keeps.

References
----------
thi.ng/umbrella, ``packages/rle-pack/src/index.ts`` (the format; Label Studio's frontend encodes with it).
HumanSignal/label-studio-converter, ``label_studio_converter/brush.py``: ``decode_rle``, ``encode_rle``,
``decode_from_annotation`` (the pure-Python reference this module is tested against in
``benchmarks/bench_label_studio_rle.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

OK = 0
TRUNCATED = 1
"""The bit stream ends before ``num`` values are decoded."""
SIZE_MISMATCH = 2
"""The header's value count is not ``height x width x 4``."""
OVERRUN = 3
"""A block runs past ``num`` values."""

_REASONS = {
    TRUNCATED: "brush RLE stream ends before all pixels are decoded",
    OVERRUN: "brush RLE block runs past the end of the image",
}


@njit(cache=True, nogil=True)
def _read_bits(data, pos, n):
    """The ``n``-bit (``n`` <= 32) unsigned value at bit ``pos`` of ``data``, most significant bit first.

    The caller guarantees ``pos + n <= 8 * len(data)``; the bytes holding the field are gathered into
    one integer, shifted and masked.
    """
    first = pos >> 3
    offset = pos & 7
    nbytes = (offset + n + 7) >> 3
    acc = 0
    for k in range(nbytes):
        acc = (acc << 8) | np.int64(data[first + k])
    acc >>= nbytes * 8 - offset - n
    return acc & ((1 << n) - 1)


@njit(cache=True, nogil=True)
def _decode_alpha(data, out):
    """Decode a Label Studio RLE stream into the 0/1 alpha mask.

    Parameters
    ----------
    data : (n_bytes,) uint8
        The ``rle`` byte list.
    out : (height * width,) uint8
        Output, row-major: 1 where the alpha value is non-zero, else 0. Written in full on success.

    Returns
    -------
    int
        :data:`OK`, :data:`TRUNCATED`, :data:`SIZE_MISMATCH` or :data:`OVERRUN`.
    """
    nbits = data.shape[0] * 8
    if nbits < 53:
        return TRUNCATED
    num = _read_bits(data, 0, 32)
    if num != out.shape[0] * 4:
        return SIZE_MISMATCH
    word = _read_bits(data, 32, 5) + 1
    sizes = np.empty(4, np.int64)
    for k in range(4):
        sizes[k] = _read_bits(data, 37 + 4 * k, 4) + 1
    pos = 53
    i = 0
    while i < num:
        if pos + 3 > nbits:
            return TRUNCATED
        repeat = _read_bits(data, pos, 1)
        size = sizes[_read_bits(data, pos + 1, 2)]
        pos += 3
        if pos + size > nbits:
            return TRUNCATED
        j = i + 1 + _read_bits(data, pos, size)
        pos += size
        if j > num:
            return OVERRUN
        if repeat:
            if pos + word > nbits:
                return TRUNCATED
            value = 1 if (_read_bits(data, pos, word) & 255) != 0 else 0
            pos += word
            # alpha values are those at index 3 mod 4
            first = i + ((3 - i) & 3)
            for idx in range(first, j, 4):
                out[idx >> 2] = value
            i = j
        else:
            if pos + word * (j - i) > nbits:
                return TRUNCATED
            while i < j:
                if (i & 3) == 3:
                    out[i >> 2] = 1 if (_read_bits(data, pos, word) & 255) != 0 else 0
                pos += word
                i += 1
    return OK


def decode_mask(rle, height: int, width: int):
    """Decode a brush ``rle`` to a ``(height, width)`` uint8 mask, or (None, problem).

    Parameters
    ----------
    rle : sequence of int
        Bytes as Label Studio exports them (each 0-255).
    height, width : int, pixels
        ``original_height`` and ``original_width`` of the result.

    Returns
    -------
    (ndarray or None, str or None)
        The 0/1 mask and None, or None and the reason it cannot be decoded.

    Examples
    --------
    >>> # 2 pixels (8 values), one repeat block of 8 x 255: word 8, rle sizes 3, 4, 8, 16
    >>> bits = f"{8:032b}{7:05b}{2:04b}{3:04b}{7:04b}{15:04b}" + "1" + "00" + f"{7:03b}" + f"{255:08b}"
    >>> bits += "0" * (-len(bits) % 8)
    >>> data = [int(bits[k:k + 8], 2) for k in range(0, len(bits), 8)]
    >>> mask, problem = decode_mask(data, 1, 2)
    >>> mask.tolist(), problem
    ([[1, 1]], None)
    """
    try:
        data = np.asarray(rle, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        return None, "brush 'rle' must be a list of integers"
    if data.ndim != 1 or ((data < 0) | (data > 255)).any():
        return None, "brush 'rle' must be a list of bytes (0-255)"
    data = data.astype(np.uint8)
    out = np.zeros(height * width, dtype=np.uint8)
    status = _decode_alpha(data, out)
    if status == SIZE_MISMATCH:
        num = int.from_bytes(bytes(data[:4]), "big") if len(data) >= 4 else 0
        return None, (f"brush RLE holds {num} values, expected height x width x 4 = "
                      f"{height}x{width}x4 = {height * width * 4}")
    if status != OK:
        return None, _REASONS[status]
    return out.reshape(height, width), None


def to_coco_rle(mask: np.ndarray) -> dict:
    """Compressed COCO RLE of a ``(height, width)`` 0/1 mask."""
    from pycocotools import mask as mask_utils

    return mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
