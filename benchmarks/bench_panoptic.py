"""PQ per image pair: the engine's one-pass pair-area count vs panopticapi's np.unique confusion count.

Run: ``.venv/bin/python -m benchmarks.bench_panoptic [--scenes N]``

Scenes: ``qa synth`` street scenes at 1024x2048 (about 35 to 40 panoptic segments: stuff regions and
about 30 things), three annotators each (``benchmarks/_scenes.py``), so three image pairs per scene. Both sides start from the
decoded id maps and the ``segments_info`` lists and end with per-category TP/FP/FN/IoU sums; the
baseline is panopticapi's ``pq_compute_single_core`` body (github.com/cocodataset/panopticapi,
``panopticapi/evaluation.py``), with the ground truth's areas precomputed as its JSON would give them.
The results are checked equal before timing.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks._common import machine, timed, versions
from benchmarks._scenes import segments_info, synth_batches

OFFSET = 256 * 256 * 256
VOID = 0


def panopticapi_counts(pan_gt, pan_pred, gt_segments, pred_segments):
    """panopticapi's per-image PQ statistics, as ``{category: [tp, fp, fn, iou]}``."""
    gt_segms = {el["id"]: el for el in gt_segments}
    pred_segms = {el["id"]: dict(el) for el in pred_segments}
    labels, labels_cnt = np.unique(pan_pred, return_counts=True)
    for label, label_cnt in zip(labels, labels_cnt):
        if label not in pred_segms:
            if label == VOID:
                continue
            raise KeyError(label)
        pred_segms[label]["area"] = label_cnt
    pan_gt_pred = pan_gt.astype(np.uint64) * OFFSET + pan_pred.astype(np.uint64)
    gt_pred_map = {}
    labels, labels_cnt = np.unique(pan_gt_pred, return_counts=True)
    for label, intersection in zip(labels, labels_cnt):
        gt_pred_map[(label // OFFSET, label % OFFSET)] = intersection
    stat = defaultdict(lambda: [0, 0, 0, 0.0])
    gt_matched, pred_matched = set(), set()
    for (gt_label, pred_label), intersection in gt_pred_map.items():
        if gt_label not in gt_segms or pred_label not in pred_segms:
            continue
        if gt_segms[gt_label]["iscrowd"] == 1:
            continue
        if gt_segms[gt_label]["category_id"] != pred_segms[pred_label]["category_id"]:
            continue
        union = pred_segms[pred_label]["area"] + gt_segms[gt_label]["area"] - intersection - \
            gt_pred_map.get((VOID, pred_label), 0)
        iou = intersection / union
        if iou > 0.5:
            stat[gt_segms[gt_label]["category_id"]][0] += 1
            stat[gt_segms[gt_label]["category_id"]][3] += iou
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)
    crowd_labels_dict = {}
    for gt_label, gt_info in gt_segms.items():
        if gt_label in gt_matched:
            continue
        if gt_info["iscrowd"] == 1:
            crowd_labels_dict[gt_info["category_id"]] = gt_label
            continue
        stat[gt_info["category_id"]][2] += 1
    for pred_label, pred_info in pred_segms.items():
        if pred_label in pred_matched:
            continue
        intersection = gt_pred_map.get((VOID, pred_label), 0)
        if pred_info["category_id"] in crowd_labels_dict:
            intersection += gt_pred_map.get((crowd_labels_dict[pred_info["category_id"]], pred_label), 0)
        if intersection / pred_info["area"] > 0.5:
            continue
        stat[pred_info["category_id"]][1] += 1
    return stat


def engine_counts(pan_gt, pan_pred, gt_segments, pred_segments):
    from qa.engine.panoptic import Segments, add_counts, panoptic_counts

    counts = panoptic_counts(pan_gt, pan_pred, Segments.from_info(gt_segments), Segments.from_info(pred_segments),
                             form="reference")
    return add_counts({}, counts)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    from qa.formats.coco_panoptic import read_id_map
    from qa.model import Limits

    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        _, batch = synth_batches(tmp, images=args.scenes)
        names = sorted(batch.annotators)
        for image in batch.images:
            maps = {n: read_id_map(Path(batch.exports[n].id_maps[image]), Limits()) for n in names}
            for i, j in ((0, 1), (0, 2), (1, 2)):
                a, b = maps[names[i]], maps[names[j]]
                sa = segments_info(batch, names[i], image)
                sb = segments_info(batch, names[j], image)
                sa = [dict(s, area=int((a == s["id"]).sum())) for s in sa]  # the ground truth's JSON areas
                pairs.append((a, b, sa, sb))
    segments = np.mean([len(p[2]) for p in pairs])

    for a, b, sa, sb in pairs:  # same numbers, and numba warmed up
        ref = {k: v for k, v in panopticapi_counts(a, b, sa, sb).items() if sum(v[:3])}
        ours = engine_counts(a, b, sa, sb)
        assert set(ref) == set(ours), (ref, ours)
        for k in ref:
            assert list(ref[k][:3]) == ours[k][:3] and abs(ref[k][3] - ours[k][3]) < 1e-9

    t_ref = np.median([timed(lambda: panopticapi_counts(*p), repeat=args.repeat) for p in pairs])
    t_ours = np.median([timed(lambda: engine_counts(*p), repeat=args.repeat) for p in pairs])
    h, w = pairs[0][0].shape
    print(f"PQ per image pair, {h}x{w}, {segments:.0f} segments per map on average, {len(pairs)} image pairs")
    print(f"  panopticapi np.unique confusion count: {t_ref * 1e3:8.2f} ms")
    print(f"  engine one-pass pair-area count:       {t_ours * 1e3:8.2f} ms")
    print(f"  speed-up: {t_ref / t_ours:.1f}x")
    print(f"machine: {machine()}")
    print(f"versions: {versions()}")


if __name__ == "__main__":
    main()
