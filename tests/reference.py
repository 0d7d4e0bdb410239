"""Slow, obvious numpy versions of the kernels, for the tests to compare against.

Each section belongs to one part of the engine; keep them apart so parallel work merges cleanly.
"""

from __future__ import annotations

import numpy as np

# =====================================================================================================
# Comparison engine: masks, intersections, pair-area counts (qa/engine/_masks.py, _kernels_iou.py,
# _kernels_panoptic.py)
# =====================================================================================================


def ref_runs(mask: np.ndarray) -> list[int]:
    """COCO RLE run lengths of a full mask, read column by column, starting with a run of zeros."""
    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    runs, current, count = [], 0, 0
    for v in flat:
        if v == current:
            count += 1
        else:
            runs.append(count)
            current, count = v, 1
    runs.append(count)
    return runs


def coco_decode(rle) -> np.ndarray:
    """pycocotools' ``mask.decode`` of one RLE: the published decoder, for tests that pin ours to it.

    pycocotools <= 2.0.11 (Cython) passes ``copy=False`` to an ``__array__`` that does not take it, which
    numpy 2 reports as a DeprecationWarning (an error in this suite); the decoded mask is unaffected, so
    the warning is silenced here and nowhere else.
    """
    import warnings

    from pycocotools import mask as mask_utils

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        return mask_utils.decode(rle)


def ref_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight end-exclusive bbox (x0, y0, x1, y1), zeros when empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return 0, 0, 0, 0
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def ref_window(mask: np.ndarray, window) -> np.ndarray:
    """The mask cut to an end-exclusive window that may reach outside the image (zeros there)."""
    x0, y0, x1, y1 = window
    out = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    h, w = mask.shape
    for y in range(y0, y1):
        for x in range(x0, x1):
            if 0 <= y < h and 0 <= x < w:
                out[y - y0, x - x0] = mask[y, x]
    return out


def ref_intersection_counts(masks_a, masks_b) -> np.ndarray:
    """All-pairs pixel intersections of two lists of full masks."""
    out = np.zeros((len(masks_a), len(masks_b)), dtype=np.int64)
    for i, a in enumerate(masks_a):
        for j, b in enumerate(masks_b):
            out[i, j] = int(np.logical_and(a, b).sum())
    return out


def ref_pair_area_counts(a: np.ndarray, b: np.ndarray) -> dict[tuple[int, int], int]:
    """``{(id in a, id in b): pixels}`` by the np.unique confusion count panopticapi uses."""
    offset = np.uint64(2 ** 32)
    keys = a.astype(np.int64).astype(np.uint64) * offset + b.astype(np.int64).astype(np.uint64)
    labels, counts = np.unique(keys, return_counts=True)
    return {(int(k // offset), int(k % offset)): int(c) for k, c in zip(labels, counts)}


# =====================================================================================================
# Metrics: the published definitions on whole images (qa/metrics.py, qa/engine/boundary.py,
# _kernels_boundary.py, _kernels_sdf.py). Each function transcribes the reference code named in its
# docstring, with OpenCV replaced by the scipy.ndimage operation that does the same thing; they work on
# whole images with no cropping, so they are easy to check by eye and slow on purpose.
# =====================================================================================================

import math  # noqa: E402
from collections import defaultdict  # noqa: E402

from scipy import ndimage  # noqa: E402
from skimage.morphology import disk  # noqa: E402

# --------------------------------------------------------------------------------------------------
# DAVIS 2017: davisvideochallenge/davis2017-evaluation, davis2017/metrics.py (f_measure, _seg2bmap)


def davis_seg2bmap(seg):
    """``_seg2bmap`` for ``width``/``height`` equal to the mask's (the only case f_measure uses)."""
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def davis_dilate(boundary, selem):
    """``cv2.dilate(img, disk(r))`` is ``ndimage.binary_dilation(img, disk(r))``: both take the maximum
    over the (symmetric) disk, and both treat outside the image as 0 for a dilation."""
    return ndimage.binary_dilation(boundary, structure=selem.astype(bool))


def davis_f_measure(foreground_mask, gt_mask, bound_th=0.008, dilate=davis_dilate):
    """``f_measure(foreground_mask, gt_mask, void_pixels=None, bound_th)``.

    ``dilate(boundary, disk(bound_pix))`` stands for ``cv2.dilate``; by default ``davis_dilate`` (scipy).
    The benchmarks pass ``cv2.dilate`` itself to time the reference code verbatim.
    """
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(foreground_mask.shape))
    fg_boundary = davis_seg2bmap(foreground_mask)
    gt_boundary = davis_seg2bmap(gt_mask)
    selem = disk(bound_pix)
    fg_dil = dilate(fg_boundary, selem)
    gt_dil = dilate(gt_boundary, selem)
    gt_match = gt_boundary * fg_dil
    fg_match = fg_boundary * gt_dil
    n_fg = np.sum(fg_boundary)
    n_gt = np.sum(gt_boundary)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.sum(fg_match) / float(n_fg)
        recall = np.sum(gt_match) / float(n_gt)
    if precision + recall == 0:
        return 0
    return 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------------------------------
# Boundary IoU: bowenc0221/boundary-iou-api, boundary_iou/utils/boundary_utils.py (mask_to_boundary)


def cheng_mask_to_boundary(mask, dilation_ratio=0.02, dilation=None):
    """``mask_to_boundary``; ``dilation`` overrides the ratio (the reference derives it from the ratio).

    ``cv2.copyMakeBorder(..., 1, 1, 1, 1, BORDER_CONSTANT, 0)`` is ``np.pad`` with one zero pixel;
    ``cv2.erode(x, ones((3, 3)), iterations=d)`` is ``ndimage.binary_erosion`` with a 3x3 square,
    ``d`` iterations and ``border_value=1`` (OpenCV's default border for an erosion is the maximum).
    """
    h, w = mask.shape
    if dilation is None:
        img_diag = np.sqrt(h ** 2 + w ** 2)
        dilation = int(round(dilation_ratio * img_diag))
        if dilation < 1:
            dilation = 1
    new_mask = np.pad(mask.astype(np.uint8), 1, mode="constant", constant_values=0)
    new_mask_erode = ndimage.binary_erosion(new_mask, structure=np.ones((3, 3), bool),
                                            iterations=dilation, border_value=1).astype(np.uint8)
    mask_erode = new_mask_erode[1:h + 1, 1:w + 1]
    return mask.astype(np.uint8) - mask_erode


def cheng_boundary_iou(gt, dt, dilation_ratio=0.02, dilation=None):
    """The boundary IoU of the Boundary IoU API's README, with two empty bands scoring 0 (as
    ``maskUtils.iou`` on the band RLEs, which its COCO evaluation uses, returns)."""
    gt_boundary = cheng_mask_to_boundary(gt, dilation_ratio, dilation)
    dt_boundary = cheng_mask_to_boundary(dt, dilation_ratio, dilation)
    intersection = ((gt_boundary * dt_boundary) > 0).sum()
    union = ((gt_boundary + dt_boundary) > 0).sum()
    return 0.0 if union == 0 else intersection / union


# --------------------------------------------------------------------------------------------------
# Surface distances: google-deepmind/surface-distance, surface_distance/metrics.py and lookup_tables.py


def _contour_length_table(spacing_mm=(1.0, 1.0)):
    table = np.zeros([16])
    vertical, horizontal = spacing_mm[0], spacing_mm[1]
    diag = 0.5 * math.sqrt(spacing_mm[0] ** 2 + spacing_mm[1] ** 2)
    table[int("0001", 2)] = diag
    table[int("0010", 2)] = diag
    table[int("0011", 2)] = horizontal
    table[int("0100", 2)] = diag
    table[int("0101", 2)] = vertical
    table[int("0110", 2)] = 2 * diag
    table[int("0111", 2)] = diag
    table[int("1000", 2)] = diag
    table[int("1001", 2)] = 2 * diag
    table[int("1010", 2)] = vertical
    table[int("1011", 2)] = diag
    table[int("1100", 2)] = horizontal
    table[int("1101", 2)] = diag
    table[int("1110", 2)] = diag
    return table


def deepmind_surface_distances(mask_gt, mask_pred, spacing_mm=(1.0, 1.0)):
    """``compute_surface_distances`` for 2-D masks."""
    mask_gt = mask_gt.astype(bool)
    mask_pred = mask_pred.astype(bool)
    table = _contour_length_table(spacing_mm)
    kernel = np.array([[8, 4], [2, 1]])
    union = mask_gt | mask_pred
    if not union.any():
        empty = np.array([])
        return {"distances_gt_to_pred": empty, "distances_pred_to_gt": empty,
                "surfel_areas_gt": empty, "surfel_areas_pred": empty}
    rows = np.nonzero(union.any(axis=1))[0]
    cols = np.nonzero(union.any(axis=0))[0]
    bbox_min = np.array([rows.min(), cols.min()])
    bbox_max = np.array([rows.max(), cols.max()])

    def crop(mask):
        out = np.zeros((bbox_max - bbox_min) + 2, np.uint8)
        out[0:-1, 0:-1] = mask[bbox_min[0]:bbox_max[0] + 1, bbox_min[1]:bbox_max[1] + 1]
        return out

    code_gt = ndimage.correlate(crop(mask_gt).astype(np.uint8), kernel, mode="constant", cval=0)
    code_pred = ndimage.correlate(crop(mask_pred).astype(np.uint8), kernel, mode="constant", cval=0)
    borders_gt = (code_gt != 0) & (code_gt != 0b1111)
    borders_pred = (code_pred != 0) & (code_pred != 0b1111)
    if borders_gt.any():
        distmap_gt = ndimage.distance_transform_edt(~borders_gt, sampling=spacing_mm)
    else:
        distmap_gt = np.inf * np.ones(borders_gt.shape)
    if borders_pred.any():
        distmap_pred = ndimage.distance_transform_edt(~borders_pred, sampling=spacing_mm)
    else:
        distmap_pred = np.inf * np.ones(borders_pred.shape)
    area_gt = table[code_gt]
    area_pred = table[code_pred]
    d_gt_to_pred = distmap_pred[borders_gt]
    d_pred_to_gt = distmap_gt[borders_pred]
    s_gt = area_gt[borders_gt]
    s_pred = area_pred[borders_pred]

    def sort(distances, areas):
        pairs = np.array(sorted(zip(distances, areas)))
        return pairs[:, 0], pairs[:, 1]

    if d_gt_to_pred.shape != (0,):
        d_gt_to_pred, s_gt = sort(d_gt_to_pred, s_gt)
    if d_pred_to_gt.shape != (0,):
        d_pred_to_gt, s_pred = sort(d_pred_to_gt, s_pred)
    return {"distances_gt_to_pred": d_gt_to_pred, "distances_pred_to_gt": d_pred_to_gt,
            "surfel_areas_gt": s_gt, "surfel_areas_pred": s_pred}


def deepmind_surface_dice(sd, tolerance_mm):
    """``compute_surface_dice_at_tolerance``."""
    overlap_gt = np.sum(sd["surfel_areas_gt"][sd["distances_gt_to_pred"] <= tolerance_mm])
    overlap_pred = np.sum(sd["surfel_areas_pred"][sd["distances_pred_to_gt"] <= tolerance_mm])
    return (overlap_gt + overlap_pred) / (np.sum(sd["surfel_areas_gt"]) + np.sum(sd["surfel_areas_pred"]))


def deepmind_robust_hausdorff(sd, percent):
    """``compute_robust_hausdorff``."""
    out = []
    for d, s in (("distances_gt_to_pred", "surfel_areas_gt"), ("distances_pred_to_gt", "surfel_areas_pred")):
        distances, areas = sd[d], sd[s]
        if len(distances) > 0:
            cum = np.cumsum(areas) / np.sum(areas)
            idx = np.searchsorted(cum, percent / 100.0)
            out.append(distances[min(idx, len(distances) - 1)])
        else:
            out.append(np.inf)
    return max(out)


def deepmind_average_surface_distance(sd):
    """``compute_average_surface_distance``: the two directed averages."""
    return (np.sum(sd["distances_gt_to_pred"] * sd["surfel_areas_gt"]) / np.sum(sd["surfel_areas_gt"]),
            np.sum(sd["distances_pred_to_gt"] * sd["surfel_areas_pred"]) / np.sum(sd["surfel_areas_pred"]))


def assd(sd):
    """Average symmetric surface distance: length-weighted mean over both surfaces' elements."""
    total = np.sum(sd["surfel_areas_gt"]) + np.sum(sd["surfel_areas_pred"])
    return (np.sum(sd["distances_gt_to_pred"] * sd["surfel_areas_gt"])
            + np.sum(sd["distances_pred_to_gt"] * sd["surfel_areas_pred"])) / total


# --------------------------------------------------------------------------------------------------
# Our default conventions, spelled out on the full image with scipy.


def inner_boundary(mask):
    """Mask pixels with an edge neighbour outside the mask; outside the image counts as mask."""
    m = mask.astype(bool)
    cross = ndimage.generate_binary_structure(2, 1)
    return m & ~ndimage.binary_erosion(m, structure=cross, border_value=1)


def boundary_f(a, b, tolerance):
    """Boundary F on inner boundaries: a pixel matches when within ``tolerance`` (Euclidean) of the
    other boundary; DAVIS's conventions for empty boundaries."""
    ba, bb = inner_boundary(a), inner_boundary(b)
    na, nb = int(ba.sum()), int(bb.sum())
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    da = ndimage.distance_transform_edt(~ba)
    db = ndimage.distance_transform_edt(~bb)
    precision = np.sum(db[ba] <= tolerance) / float(na)
    recall = np.sum(da[bb] <= tolerance) / float(nb)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def band(mask, dilation):
    """Mask pixels within chessboard distance ``dilation`` of in-image background."""
    m = mask.astype(bool)
    eroded = ndimage.binary_erosion(m, structure=np.ones((3, 3), bool), iterations=dilation, border_value=1)
    return m & ~eroded


def boundary_iou(a, b, dilation):
    """Boundary IoU with the image border never boundary; two empty bands score 1."""
    ba, bb = band(a, dilation), band(b, dilation)
    union = (ba | bb).sum()
    return 1.0 if union == 0 else (ba & bb).sum() / union


def signed_offsets(reference, other):
    """Signed distance of each inner-boundary pixel of ``other`` to ``reference``'s inner boundary
    (negative inside ``reference``)."""
    br, bo = inner_boundary(reference), inner_boundary(other)
    if not br.any() or not bo.any():
        return np.array([])
    d = ndimage.distance_transform_edt(~br)
    values = d[bo]
    return np.where(reference.astype(bool)[bo], -values, values)


# --------------------------------------------------------------------------------------------------
# Panoptic quality: cocodataset/panopticapi, panopticapi/evaluation.py (pq_compute_single_core and
# PQStat.pq_average), on one image pair given as id maps plus segments_info lists.

OFFSET = 256 * 256 * 256
VOID = 0


def panopticapi_areas(pan, segments):
    """``segments_info`` copies with each ``area`` counted from the id map (0 for a listed id the map
    lacks), as a valid export declares them."""
    segms = {el["id"]: dict(el) for el in segments}
    labels, counts = np.unique(pan, return_counts=True)
    for label, count in zip(labels, counts):
        if label in segms:
            segms[label]["area"] = count
    for el in segms.values():
        el.setdefault("area", 0)
    return list(segms.values())


def panopticapi_stat(pan_gt, pan_pred, gt_segments, pred_segments):
    """``pq_compute_single_core``'s body on one image pair: ``{category_id: [tp, fp, fn, iou]}``.

    ``gt_segments`` and ``pred_segments`` are ``segments_info`` lists (``id``, ``category_id``,
    ``iscrowd``); the ground truth's carry their ``area``, as in panopticapi's JSON (see
    ``panopticapi_areas``), the prediction's areas are counted from ``pan_pred``. As in panopticapi, a
    prediction id in the map but not in the list, or listed but not in the map, is a KeyError.
    """
    gt_segms = {el["id"]: el for el in gt_segments}
    pred_segms = {el["id"]: dict(el) for el in pred_segments}

    # predicted segments area calculation + prediction sanity checks
    pred_labels_set = set(el["id"] for el in pred_segments)
    labels, labels_cnt = np.unique(pan_pred, return_counts=True)
    for label, label_cnt in zip(labels, labels_cnt):
        if label not in pred_segms:
            if label == VOID:
                continue
            raise KeyError(f"segment with ID {label} is presented in PNG and not presented in JSON")
        pred_segms[label]["area"] = label_cnt
        pred_labels_set.remove(label)
    if len(pred_labels_set) != 0:
        raise KeyError(f"segments with IDs {sorted(pred_labels_set)} are presented in JSON and not in PNG")

    # confusion matrix calculation
    pan_gt_pred = pan_gt.astype(np.uint64) * OFFSET + pan_pred.astype(np.uint64)
    gt_pred_map = {}
    labels, labels_cnt = np.unique(pan_gt_pred, return_counts=True)
    for label, intersection in zip(labels, labels_cnt):
        gt_pred_map[(label // OFFSET, label % OFFSET)] = intersection

    # count all matched pairs
    stat = defaultdict(lambda: [0, 0, 0, 0.0])  # tp, fp, fn, iou
    gt_matched, pred_matched = set(), set()
    for (gt_label, pred_label), intersection in gt_pred_map.items():
        if gt_label not in gt_segms or pred_label not in pred_segms:
            continue
        if gt_segms[gt_label]["iscrowd"] == 1:
            continue
        if gt_segms[gt_label]["category_id"] != pred_segms[pred_label]["category_id"]:
            continue
        union = (pred_segms[pred_label]["area"] + gt_segms[gt_label]["area"] - intersection
                 - gt_pred_map.get((VOID, pred_label), 0))
        iou = intersection / union
        if iou > 0.5:
            stat[gt_segms[gt_label]["category_id"]][0] += 1
            stat[gt_segms[gt_label]["category_id"]][3] += iou
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)

    # count false negatives
    crowd_labels_dict = {}
    for gt_label, gt_info in gt_segms.items():
        if gt_label in gt_matched:
            continue
        # crowd segments are ignored
        if gt_info["iscrowd"] == 1:
            crowd_labels_dict[gt_info["category_id"]] = gt_label
            continue
        stat[gt_info["category_id"]][2] += 1

    # count false positives
    for pred_label, pred_info in pred_segms.items():
        if pred_label in pred_matched:
            continue
        # intersection of the segment with VOID, plus with the ground truth's crowd region of its category
        intersection = gt_pred_map.get((VOID, pred_label), 0)
        if pred_info["category_id"] in crowd_labels_dict:
            intersection += gt_pred_map.get((crowd_labels_dict[pred_info["category_id"]], pred_label), 0)
        # predictions that are mostly (>0.5) in VOID or CROWD are ignored
        if intersection / pred_info["area"] > 0.5:
            continue
        stat[pred_info["category_id"]][1] += 1
    return stat


def panopticapi_pq(pan_gt, pan_pred, gt_segments, pred_segments):
    """Per-category ``{tp, fp, fn, iou}`` (``panopticapi_stat``) and the ``pq_average`` over them.

    ``gt_segments`` and ``pred_segments`` are ``segments_info`` lists (``id``, ``category_id``,
    ``iscrowd``); areas are counted from the id maps, as a valid export declares them.
    """
    stat = panopticapi_stat(pan_gt, pan_pred, panopticapi_areas(pan_gt, gt_segments), pred_segments)
    pq = sq = rq = 0.0
    n = 0
    per_class = {}
    for label in sorted(stat):
        tp, fp, fn, iou = stat[label]
        if tp + fp + fn == 0:
            continue
        n += 1
        pq_c = iou / (tp + 0.5 * fp + 0.5 * fn)
        sq_c = iou / tp if tp != 0 else 0
        rq_c = tp / (tp + 0.5 * fp + 0.5 * fn)
        per_class[label] = {"pq": pq_c, "sq": sq_c, "rq": rq_c, "tp": tp, "fp": fp, "fn": fn, "iou": iou}
        pq += pq_c
        sq += sq_c
        rq += rq_c
    if n == 0:
        return {"pq": math.nan, "sq": math.nan, "rq": math.nan, "n": 0, "per_class": per_class}
    return {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n, "per_class": per_class}


# =====================================================================================================
# Consensus: pixel vote and STAPLE (qa/engine/_kernels_consensus.py, qa/engine/consensus.py)
# =====================================================================================================


def majority_vote(masks, voters=None, include_ties=False):
    """Pixels marked by more than half of ``voters`` (default: the number of masks); ties optional."""
    stack = np.asarray(masks) != 0
    voters = len(stack) if voters is None else voters
    votes = stack.sum(axis=0)
    out = 2 * votes > voters
    if include_ties:
        out |= (2 * votes == voters) & (votes > 0)
    return out.astype(np.uint8)


def staple(masks, prior=None, max_iter=1000, tol=1e-7):
    """Binary STAPLE (Warfield, Zou, Wells 2004), whole-array numpy, started and stopped as ITK's
    STAPLEImageFilter: W0 = mean of the masks, prior = mean of W0, then M-step (p, q) and E-step (W)
    until no p or q moves by more than ``tol`` (from the second iteration on).

    Returns (W, p, q, prior, iterations). Zero denominators give a rate of 1 and 0/0 posteriors the
    prior, as the kernel documents.
    """
    d = (np.asarray(masks) != 0).astype(np.float64)  # (k, h, w): D_ij
    k = d.shape[0]
    w = d.mean(axis=0)
    f = w.mean() if prior is None else prior
    last_p = np.full(k, -10.0)
    last_q = np.full(k, -10.0)
    it = 0
    while it < max_iter:
        sw, sb = w.sum(), (1 - w).sum()
        p = np.array([(w * d[j]).sum() / sw if sw > 0 else 1.0 for j in range(k)])
        q = np.array([((1 - w) * (1 - d[j])).sum() / sb if sb > 0 else 1.0 for j in range(k)])
        a = f * np.prod(np.where(d == 1, p[:, None, None], 1 - p[:, None, None]), axis=0)
        b = (1 - f) * np.prod(np.where(d == 1, 1 - q[:, None, None], q[:, None, None]), axis=0)
        total = a + b
        w = np.divide(a, total, out=np.full_like(a, f), where=total > 0)
        it += 1
        done = it > 1 and np.all(np.abs(p - last_p) <= tol) and np.all(np.abs(q - last_q) <= tol)
        last_p, last_q = p, q
        if done:
            break
    return w, p, q, f, it


# =====================================================================================================
# Boundary metrics through dense distance transforms of the whole window (qa/engine/boundary.py before
# it measured distances between outline points): the figures boundary_pair must reproduce to the bit.
# =====================================================================================================


def dense_boundary_pair(a_crop, b_crop, *, tolerances=(1.0, 2.0, 4.0), offset=(0, 0), image_shape=None,
                        biou_dilation=2):
    """boundary_pair computed with exact EDTs of the whole window (the engine's earlier algorithm)."""
    from qa.engine import _kernels_boundary as kb
    from qa.engine import _kernels_sdf as ks
    from qa.engine.boundary import boundary_iou_counts, edges_of, pair_values_dict, surface_stats

    a_crop = np.ascontiguousarray(a_crop, dtype=np.uint8)
    b_crop = np.ascontiguousarray(b_crop, dtype=np.uint8)
    tol = np.ascontiguousarray(tolerances, dtype=np.float64).reshape(-1)
    edges = edges_of(a_crop.shape, offset, image_shape)
    ba = kb._inner_boundary(a_crop, 4, *edges)
    bb = kb._inner_boundary(b_crop, 4, *edges)
    d2a = ks._edt_squared(ba)
    d2b = ks._edt_squared(bb)
    counts_a, counts_b = (np.append([np.count_nonzero(d <= t) for t in tol], d.shape[0])
                          for d in (np.sqrt(d2b[ba != 0]), np.sqrt(d2a[bb != 0])))
    inter, union = boundary_iou_counts(a_crop, b_crop, edges, biou_dilation, False)
    stats_a, stats_b = surface_stats(a_crop, b_crop, tol)
    mean, median, n = kb._offset_stats(ba, d2b, b_crop)
    return pair_values_dict(tol, counts_a, counts_b, stats_a, stats_b, inter=inter, union=union,
                            offset_mean=mean, offset_median=median, offset_n=n)


# =====================================================================================================
# Formats: Label Studio brush RLE (qa/formats/_ls_rle.py)
# =====================================================================================================


def ls_decode_rle(rle) -> np.ndarray:
    """label-studio-converter ``brush.decode_rle`` (the decoder users rely on), written out: the bytes
    expanded to a string of '0'/'1' characters, then each field read with ``int(bits[i:i + n], 2)``.

    Returns the flat uint8 values (RGBA pixels for a brush export).
    """
    bits = "".join(str((rle[i // 8] >> (7 - i % 8)) & 1) for i in range(len(rle) * 8))
    pos = 0

    def read(n):
        nonlocal pos
        pos += n
        return int(bits[pos - n:pos], 2)

    num = read(32)
    word_size = read(5) + 1
    rle_sizes = [read(4) + 1 for _ in range(4)]
    out = np.zeros(num, dtype=np.uint8)
    i = 0
    while i < num:
        x = read(1)
        j = i + 1 + read(rle_sizes[read(2)])
        if x:
            out[i:j] = read(word_size)
            i = j
        else:
            while i < j:
                out[i] = read(word_size)
                i += 1
    return out
