"""Small named inputs and helpers shared by the tests."""

from __future__ import annotations


def run_cli(argv, capsys):
    """Run ``qa`` in-process; return (exit code, stdout, stderr)."""
    from qa.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def coco_area(segmentation, height, width) -> int:
    """pycocotools' area of a COCO segmentation as written in the JSON (polygons or RLE), via frPyObjects."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, dict) and isinstance(segmentation["counts"], str):
        rle = dict(segmentation, counts=segmentation["counts"].encode("ascii"))  # COCO.annToRLE does the same
    else:
        rles = mask_utils.frPyObjects(segmentation, height, width)
        rle = mask_utils.merge(rles) if isinstance(rles, list) else rles
    return int(mask_utils.area(rle))


def write_json(path, document) -> "Path":
    """Write ``document`` as JSON at ``path`` (parents created) and return the path."""
    import json
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


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
