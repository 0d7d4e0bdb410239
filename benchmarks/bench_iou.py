"""Mask IoU: all pairs of two annotators' objects on one image, against pycocotools (encode included).

Run as ``python -m benchmarks.bench_iou [--images N] [--objects K] [--repeat R]``. Each image is
1024 x 2048 with K objects of 30-300 px per annotator (seeded); the second annotator redraws each object
with a jittered outline. Two figures, each against pycocotools in the same process on the same data:

- from full masks: pycocotools encodes every mask (``maskUtils.encode`` of a Fortran-ordered copy, as
  a caller holding C-ordered masks must) and runs ``maskUtils.iou``; ours finds each mask's bbox, cuts
  it out and counts all-pairs intersections on the crops (``qa.engine._kernels_iou``);
- from RLEs: ``maskUtils.iou`` on the encoded masks against ``qa.metrics.mask_iou`` on the same RLE
  lists (RLE runs painted into crops, then the same kernel).

Both results are checked equal to pycocotools before timing.
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
from pycocotools import mask as mask_utils

from benchmarks._common import best_of
from benchmarks._data import SHAPE, bbox, blob_box, draw


def scenes(seed, images, objects):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(images):
        blobs = [blob_box(rng) for _ in range(objects)]
        a = [draw(SHAPE, blob) for blob in blobs]
        b = [draw(SHAPE, blob, jitter_rng=rng, jitter=1.5) for blob in blobs]
        out.append((a, b))
    return out


def pycocotools_from_masks(a, b):
    ra = [mask_utils.encode(np.asfortranarray(m)) for m in a]
    rb = [mask_utils.encode(np.asfortranarray(m)) for m in b]
    return mask_utils.iou(ra, rb, [0] * len(rb))


def _crops(masks):
    """Tight crops in one flat buffer, as the engine's ObjectCrops holds them."""
    boxes = np.array([bbox(m) for m in masks], dtype=np.int64)
    sizes = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    starts = np.zeros(len(masks) + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    buf = np.empty(int(starts[-1]), dtype=np.uint8)
    areas = np.empty(len(masks), dtype=np.int64)
    for k, (m, (x0, y0, x1, y1)) in enumerate(zip(masks, boxes)):
        crop = m[y0:y1, x0:x1]
        buf[starts[k]:starts[k + 1]] = crop.ravel()
        areas[k] = np.count_nonzero(crop)
    return buf, starts, boxes, areas


def ours_from_masks(a, b):
    from qa.engine._kernels_iou import _intersection_counts

    buf_a, starts_a, boxes_a, area_a = _crops(a)
    buf_b, starts_b, boxes_b, area_b = _crops(b)
    inter = _intersection_counts(buf_a, starts_a, boxes_a, buf_b, starts_b, boxes_b)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5, help="images (default 5)")
    parser.add_argument("--objects", type=int, default=30, help="objects per annotator and image (default 30)")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats, best kept (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from qa.metrics import mask_iou

    data = scenes(args.seed, args.images, args.objects)
    rles = [([mask_utils.encode(np.asfortranarray(m)) for m in a], [mask_utils.encode(np.asfortranarray(m)) for m in b])
            for a, b in data]

    ours_from_masks(*data[0])  # warm numba up
    mask_iou(*rles[0], compat="pycocotools")
    for (a, b), (ra, rb) in zip(data, rles):
        expected = mask_utils.iou(ra, rb, [0] * len(rb))
        np.testing.assert_array_equal(ours_from_masks(a, b), expected)
        np.testing.assert_array_equal(mask_iou(ra, rb, compat="pycocotools"), expected)
        np.testing.assert_array_equal(pycocotools_from_masks(a, b), expected)

    t_coco_masks = best_of(lambda: [pycocotools_from_masks(a, b) for a, b in data], args.repeat)
    t_ours_masks = best_of(lambda: [ours_from_masks(a, b) for a, b in data], args.repeat)
    t_coco_rle = best_of(lambda: [mask_utils.iou(ra, rb, [0] * len(rb)) for ra, rb in rles], args.repeat)
    t_ours_rle = best_of(lambda: [mask_iou(ra, rb, compat="pycocotools") for ra, rb in rles], args.repeat)

    from importlib.metadata import version

    import numba

    n = len(data)
    print(f"{n} images of {SHAPE[0]}x{SHAPE[1]}, {args.objects} x {args.objects} object pairs each; "
          f"best of {args.repeat}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
          f"pycocotools {version('pycocotools')}; {platform.machine()}, "
          f"{len(__import__('os').sched_getaffinity(0))} cores")
    print()
    print("| comparison | pycocotools ms/image | ours ms/image | speed-up |")
    print("|---|---:|---:|---:|")
    print(f"| IoU matrix from full masks: encode + `maskUtils.iou` vs bbox crops + intersection kernel | "
          f"{t_coco_masks / n * 1e3:.1f} | {t_ours_masks / n * 1e3:.1f} | {t_coco_masks / t_ours_masks:.1f}x |")
    print(f"| IoU matrix from RLEs: `maskUtils.iou` vs `qa.metrics.mask_iou` | {t_coco_rle / n * 1e3:.2f} | "
          f"{t_ours_rle / n * 1e3:.2f} | {t_coco_rle / t_ours_rle:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
