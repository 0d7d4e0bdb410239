"""Small named inputs and helpers shared by the tests."""

from __future__ import annotations


def run_cli(argv, capsys):
    """Run ``qa`` in-process; return (exit code, stdout, stderr)."""
    from qa.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def rle_to_mask(rle):
    """Decode a COCO RLE (compressed or not) to a uint8 ``(height, width)`` mask with numpy only.

    pycocotools' own ``decode`` warns under numpy 2, which the suite turns into an error.
    """
    import numpy as np

    from qa.formats.coco import _decode_counts_string

    h, w = rle["size"]
    counts = rle["counts"]
    if isinstance(counts, (bytes, str)):
        counts = _decode_counts_string(counts.decode("ascii") if isinstance(counts, bytes) else counts)
    counts = np.asarray(counts, dtype=np.int64)
    values = (np.arange(len(counts)) & 1).astype(np.uint8)
    return np.repeat(values, counts).reshape(w, h).T.copy()
