"""Label Studio brush RLE: the numba decoder against a straightforward pure-Python decoder.

The baseline is the algorithm of label-studio-converter's ``brush.decode_rle`` (the decoder users
rely on; ``ls_decode_rle`` in ``tests/reference.py``): expand the bytes to a string of '0'/'1'
characters, then read each field with ``int(bits[i:i + n], 2)``. Both decode the same streams, made
once before timing by an encoder that writes what Label Studio's canvas exports: RGBA pixels, the
brush colour with alpha 255 on the mask.

Masks are fragmented on purpose (the case where the baseline "takes seconds"): salt-and-pepper noise
and a large blob with scattered holes.

Run: ``.venv/bin/python -m benchmarks.bench_label_studio_rle``
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np

from benchmarks._common import load_reference


# --- inputs ---------------------------------------------------------------------------------------

def encode(values: np.ndarray, word_size: int = 8, rle_sizes=(3, 4, 8, 16)) -> list[int]:
    """Label Studio RLE of a flat uint8 array: repeat blocks for runs, literal blocks for singles."""
    values = np.asarray(values, dtype=np.int64)
    change = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate(([0], change))
    lengths = np.diff(np.concatenate((starts, [len(values)])))
    longest = 1 << rle_sizes[-1]

    def index(n):
        return next(k for k, s in enumerate(rle_sizes) if n - 1 < (1 << s))

    parts = [f"{len(values):032b}", f"{word_size - 1:05b}", *(f"{s - 1:04b}" for s in rle_sizes)]
    literal: list[int] = []

    def flush():
        for i in range(0, len(literal), longest):
            chunk = literal[i:i + longest]
            k = index(len(chunk))
            parts.append("0" + f"{k:02b}" + format(len(chunk) - 1, f"0{rle_sizes[k]}b"))
            parts.append("".join(format(v, f"0{word_size}b") for v in chunk))
        literal.clear()

    for start, n in zip(starts.tolist(), lengths.tolist()):
        value = int(values[start])
        if n == 1:
            literal.append(value)
            continue
        flush()
        while n:
            chunk = min(n, longest)
            k = index(chunk)
            parts.append("1" + f"{k:02b}" + format(chunk - 1, f"0{rle_sizes[k]}b") + format(value, f"0{word_size}b"))
            n -= chunk
    flush()
    bits = "".join(parts)
    bits += "0" * (-len(bits) % 8)
    return np.packbits(np.frombuffer(bits.encode("ascii"), np.uint8) - 48).tolist()


def canvas(mask: np.ndarray, colour=(255, 64, 0)) -> np.ndarray:
    out = np.zeros((*mask.shape, 4), np.uint8)
    out[mask.astype(bool)] = (*colour, 255)
    return out.ravel()


def masks(rng):
    h, w = 512, 512
    noise = rng.random((h, w)) < 0.5
    yy, xx = np.mgrid[:600, :800]
    blob = ((yy - 300) / 240.0) ** 2 + ((xx - 400) / 330.0) ** 2 < 1.0
    blob &= rng.random(blob.shape) > 0.1
    return {"noise 512x512 (50% speckle)": noise, "blob 800x600 (10% holes)": blob}


# --- the baseline ---------------------------------------------------------------------------------

python_decode = load_reference().ls_decode_rle  # label-studio-converter ``brush.decode_rle``


def alpha_to_coco(decoded, h, w):
    """What a user of the baseline does next: the alpha channel as a COCO RLE (pycocotools)."""
    from pycocotools import mask as mask_utils

    alpha = decoded.reshape(h, w, 4)[:, :, 3]
    return mask_utils.encode(np.asfortranarray((alpha != 0).astype(np.uint8)))


# --- timing ---------------------------------------------------------------------------------------

def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> None:
    from importlib.metadata import version

    import numba

    from qa.formats._ls_rle import decode_mask, to_coco_rle

    rng = np.random.default_rng(2026)
    cases = []
    for name, mask in masks(rng).items():
        rle = encode(canvas(mask))
        cases.append((name, mask, rle))
    decode_mask(cases[0][2], *cases[0][1].shape)  # compile (or load the cache) before timing

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
          f"pycocotools {version('pycocotools')}")
    print()
    header = f"{'mask':30} {'RLE bytes':>10} {'python s':>9} {'numba ms':>9} {'ratio':>7}   {'+COCO: python s':>15} {'numba ms':>9} {'ratio':>7}"
    print(header)
    for name, mask, rle in cases:
        h, w = mask.shape
        t_py, ref = best_of(lambda: python_decode(rle), 2)
        t_nb, (ours, problem) = best_of(lambda: decode_mask(rle, h, w), 20)
        assert problem is None
        np.testing.assert_array_equal(ours, (ref.reshape(h, w, 4)[:, :, 3] != 0).astype(np.uint8))
        np.testing.assert_array_equal(ours, mask.astype(np.uint8))
        t_enc, ref_rle = best_of(lambda: alpha_to_coco(ref, h, w), 5)
        t_nb2, our_rle = best_of(lambda: to_coco_rle(decode_mask(rle, h, w)[0]), 20)
        assert our_rle["counts"] == ref_rle["counts"]
        t_py2 = t_py + t_enc
        print(f"{name:30} {len(rle):>10} {t_py:>9.2f} {t_nb * 1e3:>9.2f} {t_py / t_nb:>6.0f}x   "
              f"{t_py2:>15.2f} {t_nb2 * 1e3:>9.2f} {t_py2 / t_nb2:>6.0f}x")


if __name__ == "__main__":
    main()
