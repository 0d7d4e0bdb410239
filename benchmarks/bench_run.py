"""The whole of ``qa run`` on a batch, stage by stage: time per image, and memory as the run goes.

``.venv/bin/python -m benchmarks.bench_run [--images 1000] [--size 512x1024] [--workers 2]``

Setup (not timed): ``qa synth`` writes the batch (three annotators, COCO instance polygons, about 30
overlapping objects per image) into ``--folder``, reused when it already holds the same batch.

Timed, in this process, on the same batch:

1. each stage of :func:`qa.run` (``store=False``), read from its progress callback: load, compare, the
   boundary stage, the rules (default pack), pixel alpha and the consensus, and the rest of the
   analytics (aggregates, review queue); the main process's RSS when each stage ends and its peak;
2. the baseline: rasterising every object of ``--baseline-images`` images to a full-image mask with
   pycocotools (``frPyObjects`` and ``decode``), which is where a straightforward tool would start. Each
   stage is given as a multiple of that, per image.

Wall time on a machine shared with other jobs measures the load as much as the run; so the CPU seconds of
the run (this process and every worker, :class:`benchmarks._common.CpuMeter`) are given too, against the
baseline's CPU seconds: ``CPU x baseline`` is the run's CPU per image over the baseline's, divided by
``--workers`` (the run's wall time on that many idle cores, if its work divided evenly).
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

from benchmarks._common import CpuMeter, machine, rasterise_baseline, synth_batch, versions


def _rss_mb() -> float:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Clock:
    """Progress callback that notes when each stage is first and last heard of."""

    def __init__(self):
        self.start = time.perf_counter()
        self.stages: dict[str, list] = {}   # stage -> [first, last, rss at last, peak at last]

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        entry = self.stages.setdefault(stage, [now, now, 0.0, 0.0])
        entry[1] = now
        if done >= total:
            entry[2], entry[3] = _rss_mb(), _peak_mb()


def _baseline(manifest: Path, images: int) -> tuple[float, float]:
    """Seconds per image to rasterise every object of the first ``images`` images with pycocotools: wall
    and CPU."""
    import qa

    batch = qa.load(manifest=manifest)
    return rasterise_baseline(batch, list(batch.images)[:images])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", default="512x1024", help="HxW of the scenes")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-images", type=int, default=100)
    parser.add_argument("--folder", type=Path, default=Path(".cache/bench_run"))
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.lower().split("x"))
    manifest = synth_batch(args.folder / f"{args.images}-{h}x{w}-{args.seed}", args.images, (h, w), args.seed)

    import qa

    clock = _Clock()
    with CpuMeter() as cpu:
        t0 = time.perf_counter()
        run = qa.run(manifest=manifest, store=False, workers=args.workers, progress=clock)
        total = time.perf_counter() - t0
    objects = sum(len(e.objects) for e in run.batch.exports.values())
    per_image, cpu_per_image = _baseline(manifest, min(args.baseline_images, args.images))

    print(f"# {machine()}")
    print(f"# {versions()}")
    print(f"# {args.images} images at {h}x{w}, 3 annotators, {objects} objects; {args.workers} workers; "
          f"baseline (pycocotools full masks of every object) {1000 * per_image:.1f} ms per image")
    print(f"{'stage':<12} {'s':>7} {'ms/image':>9} {'x baseline':>11} {'RSS MB':>7} {'peak MB':>8}")
    stages = sorted(clock.stages.items(), key=lambda kv: kv[1][0])
    previous_end = clock.start
    for name, (first, last, rss, peak) in stages:
        # a stage runs from the end of the one before it to its last report (setup before its first
        # report, such as decoding alpha's first image, belongs to it)
        seconds = last - previous_end
        previous_end = last
        print(f"{name:<12} {seconds:7.1f} {1000 * seconds / args.images:9.1f} "
              f"{seconds / args.images / per_image:11.2f} {rss:7.0f} {peak:8.0f}")
    rest = t0 + total - previous_end
    print(f"{'(rest)':<12} {rest:7.1f} {1000 * rest / args.images:9.1f} {rest / args.images / per_image:11.2f} "
          f"{_rss_mb():7.0f} {_peak_mb():8.0f}")
    print(f"{'qa run':<12} {total:7.1f} {1000 * total / args.images:9.1f} {total / args.images / per_image:11.2f}")
    ratio = cpu.seconds / args.images / cpu_per_image / args.workers
    print(f"# CPU: qa run {cpu.seconds:.1f} s ({1000 * cpu.seconds / args.images:.1f} ms per image, every process), "
          f"baseline {1000 * cpu_per_image:.1f} ms per image; CPU x baseline / {args.workers} workers: {ratio:.2f}")
    print(f"# CPU of the main process alone (index scan, reduce, batch-level work: the part more workers do not "
          f"shorten): {cpu.main_seconds:.1f} s ({1000 * cpu.main_seconds / args.images:.1f} ms per image)")
    print(f"# load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
