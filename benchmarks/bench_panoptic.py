"""PQ per image pair: the engine's one-pass pair-area count vs panopticapi's np.unique confusion count.

Run: ``.venv/bin/python -m benchmarks.bench_panoptic [--scenes N]``

Scenes: ``qa synth`` street scenes at 1024x2048 (about 35 to 40 panoptic segments: stuff regions and
about 30 things), three annotators each (``benchmarks/_scenes.py``), so three image pairs per scene. Both sides start from the
decoded id maps and the ``segments_info`` lists and end with per-category TP/FP/FN/IoU sums; the
baseline is panopticapi's ``pq_compute_single_core`` body (github.com/cocodataset/panopticapi,
``panopticapi/evaluation.py``; transcribed as ``panopticapi_stat`` in ``tests/reference.py``), with the
ground truth's areas precomputed as its JSON would give them.
The results are checked equal before timing.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._common import load_reference, machine, timed, versions
from benchmarks._scenes import segments_info, synth_batches

panopticapi_stat = load_reference().panopticapi_stat


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
        ref = {k: v for k, v in panopticapi_stat(a, b, sa, sb).items() if sum(v[:3])}
        ours = engine_counts(a, b, sa, sb)
        assert set(ref) == set(ours), (ref, ours)
        for k in ref:
            assert list(ref[k][:3]) == ours[k][:3] and abs(ref[k][3] - ours[k][3]) < 1e-9

    t_ref = np.median([timed(lambda: panopticapi_stat(*p), repeat=args.repeat) for p in pairs])
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
