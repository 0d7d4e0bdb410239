"""Boundary F and boundary IoU per mask pair: the crop kernels against full-image references.

Run as ``python -m benchmarks.bench_boundary [--pairs N] [--repeat R]``. Objects of 30-300 px in
1024 x 2048 images (seeded). Baselines, timed in the same process on the same pairs:

- the reference code itself: DAVIS 2017 ``f_measure`` and Boundary IoU ``mask_to_boundary`` verbatim,
  with OpenCV (when ``cv2`` is installed: ``pip install opencv-python-headless``);
- the scipy transcriptions in ``tests/reference.py`` (OpenCV replaced by ``scipy.ndimage``).

Ours: the same settings (DAVIS: tolerance ``ceil(0.008 x diagonal)`` = 19 px, ``seg2bmap`` boundaries;
Cheng: ``d = round(0.02 x diagonal)`` = 46 px, outside the image is background) on the union-bbox window
of the pair plus one pixel, as the engine cuts it; the window is cut inside the timed part. Every result
is checked against the baselines before timing.
"""

from __future__ import annotations

import argparse
import platform

import numpy as np

from benchmarks._common import best_of, load_reference
from benchmarks._data import SHAPE, bbox, mask_pairs

ref = load_reference()

try:
    import cv2
except ImportError:  # the OpenCV baseline is optional
    cv2 = None


# --- the reference code verbatim (OpenCV) -----------------------------------------------------------


def davis_f_measure_cv2(foreground_mask, gt_mask, bound_th=0.008):
    """davis2017-evaluation ``davis2017/metrics.py`` ``f_measure`` (void_pixels=None), dilating with
    OpenCV as it does (the rest is ``tests/reference.py``'s transcription)."""
    return ref.davis_f_measure(foreground_mask, gt_mask, bound_th, dilate=_cv2_dilate)


def _cv2_dilate(boundary, selem):
    return cv2.dilate(boundary.astype(np.uint8), selem.astype(np.uint8))


def cheng_mask_to_boundary_cv2(mask, dilation_ratio=0.02):
    """boundary-iou-api ``boundary_iou/utils/boundary_utils.py`` ``mask_to_boundary``."""
    h, w = mask.shape
    img_diag = np.sqrt(h ** 2 + w ** 2)
    dilation = int(round(dilation_ratio * img_diag))
    if dilation < 1:
        dilation = 1
    new_mask = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    kernel = np.ones((3, 3), dtype=np.uint8)
    new_mask_erode = cv2.erode(new_mask, kernel, iterations=dilation)
    mask_erode = new_mask_erode[1:h + 1, 1:w + 1]
    return mask - mask_erode


def cheng_boundary_iou_cv2(gt, dt, dilation_ratio=0.02):
    gt_boundary = cheng_mask_to_boundary_cv2(gt, dilation_ratio)
    dt_boundary = cheng_mask_to_boundary_cv2(dt, dilation_ratio)
    intersection = ((gt_boundary * dt_boundary) > 0).sum()
    union = ((gt_boundary + dt_boundary) > 0).sum()
    return 0.0 if union == 0 else intersection / union


# --- ours -------------------------------------------------------------------------------------------


def windows(pairs, margin=1):
    """The engine's window per pair: union of the two bboxes plus ``margin``, clipped to the image."""
    out = []
    for a, b in pairs:
        ba, bb = bbox(a), bbox(b)
        x0 = max(min(ba[0], bb[0]) - margin, 0)
        y0 = max(min(ba[1], bb[1]) - margin, 0)
        x1 = min(max(ba[2], bb[2]) + margin, SHAPE[1])
        y1 = min(max(ba[3], bb[3]) + margin, SHAPE[0])
        out.append((x0, y0, x1, y1))
    return out


def ours_f(pairs, wins, tolerance, kind):
    from qa.engine.boundary import boundary_f_counts, edges_of, f_measure

    out = []
    for (a, b), (x0, y0, x1, y1) in zip(pairs, wins):
        ca = np.ascontiguousarray(a[y0:y1, x0:x1])
        cb = np.ascontiguousarray(b[y0:y1, x0:x1])
        edges = edges_of(ca.shape, (x0, y0), SHAPE)
        na, nb = boundary_f_counts(ca, cb, edges, [tolerance], kind)
        out.append(f_measure(int(na[0]), int(na[1]), int(nb[0]), int(nb[1])))
    return out


def ours_biou(pairs, wins, dilation, cheng):
    from qa.engine.boundary import boundary_iou_counts, edges_of

    out = []
    for (a, b), (x0, y0, x1, y1) in zip(pairs, wins):
        ca = np.ascontiguousarray(a[y0:y1, x0:x1])
        cb = np.ascontiguousarray(b[y0:y1, x0:x1])
        inter, union = boundary_iou_counts(ca, cb, edges_of(ca.shape, (x0, y0), SHAPE), dilation, cheng)
        out.append((0.0 if cheng else 1.0) if union == 0 else inter / union)
    return out


def ours_pair(pairs, wins):
    from qa.engine.boundary import boundary_pair

    out = []
    for (a, b), (x0, y0, x1, y1) in zip(pairs, wins):
        ca = np.ascontiguousarray(a[y0:y1, x0:x1])
        cb = np.ascontiguousarray(b[y0:y1, x0:x1])
        out.append(boundary_pair(ca, cb, tolerances=(1.0, 2.0, 4.0), offset=(x0, y0), image_shape=SHAPE,
                                 biou_dilation=2))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=40, help="mask pairs (default 40)")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats, best kept (default 3)")
    parser.add_argument("--ref-pairs", type=int, default=3,
                        help="pairs timed with the (slow) scipy transcriptions (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from qa.engine.boundary import INNER, SEG2BMAP
    from qa.metrics import boundary_f, boundary_iou

    pairs = mask_pairs(args.seed, args.pairs)
    wins = windows(pairs)
    sizes = [max(x1 - x0, y1 - y0) for x0, y0, x1, y1 in wins]
    tol = float(np.ceil(0.008 * np.linalg.norm(SHAPE)))
    dil = int(round(0.02 * np.sqrt(SHAPE[0] ** 2 + SHAPE[1] ** 2)))

    # warm numba up, then check every figure against the baselines before timing anything
    ours_f(pairs[:2], wins[:2], tol, SEG2BMAP)
    ours_biou(pairs[:2], wins[:2], dil, True)
    ours_pair(pairs[:2], wins[:2])
    f_ours = ours_f(pairs, wins, tol, SEG2BMAP)
    b_ours = ours_biou(pairs, wins, dil, True)
    for k, ((a, b), f, bi) in enumerate(zip(pairs, f_ours, b_ours)):
        if k < args.ref_pairs:  # the scipy transcriptions take seconds per pair
            assert abs(f - ref.davis_f_measure(a, b)) < 1e-12
            assert bi == ref.cheng_boundary_iou(b, a)
        if cv2 is not None:
            assert abs(f - davis_f_measure_cv2(a, b)) < 1e-12
            assert bi == cheng_boundary_iou_cv2(b, a)

    n = len(pairs)
    k = min(args.ref_pairs, n)
    sub, sub_wins = pairs[:k], wins[:k]
    rows = []

    def row(name, baseline_s, ours_s, count):
        rows.append((name, count, baseline_s / count * 1e3, ours_s / count * 1e3, baseline_s / ours_s))

    t_f = best_of(lambda: ours_f(pairs, wins, tol, SEG2BMAP), args.repeat)
    t_f_public = best_of(lambda: [boundary_f(a, b, compat="davis") for a, b in pairs], args.repeat)
    t_b = best_of(lambda: ours_biou(pairs, wins, dil, True), args.repeat)
    t_b_public = best_of(lambda: [boundary_iou(a, b, compat="cheng") for a, b in pairs], args.repeat)
    if cv2 is not None:
        t_cv_f = best_of(lambda: [davis_f_measure_cv2(a, b) for a, b in pairs], args.repeat)
        t_cv_b = best_of(lambda: [cheng_boundary_iou_cv2(b, a) for a, b in pairs], args.repeat)
        row("boundary F (DAVIS, 19 px): `f_measure` with OpenCV vs kernels on the window", t_cv_f, t_f, n)
        row("boundary IoU (Cheng, d = 46 px): `mask_to_boundary` with OpenCV vs kernels on the window",
            t_cv_b, t_b, n)
        row("boundary F (DAVIS): OpenCV vs `qa.metrics.boundary_f(compat=\"davis\")` on full masks",
            t_cv_f, t_f_public, n)
        row("boundary IoU (Cheng): OpenCV vs `qa.metrics.boundary_iou(compat=\"cheng\")` on full masks",
            t_cv_b, t_b_public, n)
    # the scipy transcriptions are slow (a 39 x 39 disk dilation of a 2-Mpixel image): first k pairs
    t_ref_f = best_of(lambda: [ref.davis_f_measure(a, b) for a, b in sub], 1)
    t_ref_b = best_of(lambda: [ref.cheng_boundary_iou(b, a) for a, b in sub], 1)
    t_f_sub = best_of(lambda: ours_f(sub, sub_wins, tol, SEG2BMAP), args.repeat)
    t_f_inner = best_of(lambda: ours_f(sub, sub_wins, 2.0, INNER), args.repeat)
    t_b_sub = best_of(lambda: ours_biou(sub, sub_wins, dil, True), args.repeat)
    t_pair = best_of(lambda: ours_pair(sub, sub_wins), args.repeat)
    row("boundary F (DAVIS, 19 px): scipy transcription vs kernels on the window", t_ref_f, t_f_sub, k)
    row("boundary IoU (Cheng, d = 46 px): scipy transcription vs kernels on the window", t_ref_b, t_b_sub, k)
    row("boundary F at 2 px (inner boundaries, our default) vs the DAVIS scipy transcription", t_ref_f,
        t_f_inner, k)
    row("`boundary_pair` (F and NSD at 1/2/4 px, BIoU, ASSD, HD95, offset) vs DAVIS + Cheng scipy",
        t_ref_f + t_ref_b, t_pair, k)

    import numba
    import scipy
    import skimage

    print(f"{n} mask pairs ({k} for the scipy rows) in {SHAPE[0]}x{SHAPE[1]} images; window side {min(sizes)}-{max(sizes)} px "
          f"(median {int(np.median(sizes))}); best of {args.repeat}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
          f"scipy {scipy.__version__}, scikit-image {skimage.__version__}, "
          f"opencv {cv2.__version__ if cv2 is not None else 'not installed'}; {platform.machine()}, "
          f"{len(__import__('os').sched_getaffinity(0))} cores")
    print()
    print("| comparison | pairs | baseline ms/pair | ours ms/pair | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for name, count, base, ours, ratio in rows:
        print(f"| {name} | {count} | {base:.1f} | {ours:.3f} | {ratio:.0f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
