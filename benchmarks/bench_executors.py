"""The run's executor: one batch on the local pool and on a Dask LocalCluster of 1 and 2 workers, and what
one pool per run (instead of one per stage) saves on a small batch.

``.venv/bin/python -m benchmarks.bench_executors [--images 200] [--size 512x1024] [--small 24]``
(``--images 0``: the pool comparison only)

Setup (not timed): ``qa synth`` writes the batches (three annotators, COCO instance polygons) into
``--folder``, reused when they are already there. Each Dask cluster is started, and every worker warmed up
on a one-chunk run of the small batch (each worker process imports the package and loads the compiled
kernels once), before its timed run; its start-up is given on its own line.

Timed (``qa.run(manifest, store=False)``, the default pack and analytics, best of ``--repeat``):

1. strong scaling: the batch in this process, on the local pool of 2 workers, and on LocalClusters of
   1 and 2 worker processes (``--dask local:N``); the scores, object and image tables and the rule
   violations are asserted equal to the in-process run's;
2. the small batch with one local pool for the run (``workers=2``) and with a pool started for each
   stage (compare, rules, alpha, consensus), as every stage did before the run had one executor:
   medians of ``--alternations`` runs of each, alternated.
"""

from __future__ import annotations

import argparse
import operator
import os
import statistics
import time
from pathlib import Path

from benchmarks._common import CpuMeter as _CpuMeter
from benchmarks._common import machine, synth_batch, versions
from qa.engine._executors import Executor, LocalPool


class _PoolPerStage(Executor):
    """Starts a local pool for each stage (each ``map_chunks`` call), as the stages did before."""

    def __init__(self, workers: int):
        self.workers = workers

    def map_chunks(self, work, chunks, cfg):
        with LocalPool(self.workers) as pool:
            yield from pool.map_chunks(work, chunks, cfg)


def _run(manifest: Path, **options):
    import qa

    with _CpuMeter() as cpu:
        t = time.perf_counter()
        result = qa.run(manifest=manifest, store=False, **options)
        wall = time.perf_counter() - t
    return (wall, cpu.seconds), result


def _best(manifest: Path, repeat: int, **options):
    best, result = None, None
    for _ in range(repeat):
        seconds, result = _run(manifest, **options)
        best = seconds if best is None else (min(best[0], seconds[0]), min(best[1], seconds[1]))
    return best, result


def _assert_equal(a, b, name: str) -> None:
    import pandas as pd

    pd.testing.assert_frame_equal(a.scores, b.scores, check_exact=True, obj=f"{name} scores")
    pd.testing.assert_frame_equal(a.comparison.object_pairs, b.comparison.object_pairs, check_exact=True,
                                  obj=f"{name} object_pairs")
    pd.testing.assert_frame_equal(a.comparison.image_pairs, b.comparison.image_pairs, check_exact=True,
                                  obj=f"{name} image_pairs")
    assert list(map(repr, a.violations)) == list(map(repr, b.violations)), name


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", default="512x1024")
    parser.add_argument("--small", type=int, default=24, help="images of the pool-per-run batch")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--alternations", type=int, default=6, help="runs of each pool setting on --small")
    parser.add_argument("--folder", type=Path, default=Path(".cache/bench_executors"))
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))
    big = synth_batch(args.folder / f"{args.images}_{args.size}", args.images, (h, w), seed=0) if args.images \
        else None
    small = synth_batch(args.folder / f"{args.small}_{args.size}", args.small, (h, w), seed=0)

    print(f"# {machine()}; {versions()}")
    _run(small, workers=1)  # numba's cache loaded in this process
    if args.images:
        _scaling(big, small, args)
    print(f"# one pool per run vs one per stage: {args.small} images at {args.size}, 2 workers; "
          f"medians of {args.alternations} runs each, alternated")
    _pools(small, args)


def _scaling(big: Path, small: Path, args) -> None:
    from qa.engine import _executors

    print(f"# strong scaling: {args.images} images at {args.size}, 3 annotators; best of {args.repeat}")
    load = f"{os.getloadavg()[0]:.2f}"
    here, ref = _best(big, args.repeat, workers=1)
    rows = [("this process", here)]
    pool, result = _best(big, args.repeat, workers=2)
    _assert_equal(ref, result, "local pool")
    rows.append(("local pool, 2 workers", pool))
    for n in (1, 2):
        t = time.perf_counter()
        with _executors.open_executor(f"local:{n}") as dask:
            started = time.perf_counter() - t
            t = time.perf_counter()
            _run(small, executor=dask)  # every worker imports the package and loads the kernels
            warm = time.perf_counter() - t
            seconds, result = _best(big, args.repeat, executor=dask)
        _assert_equal(ref, result, f"local:{n}")
        rows.append((f"LocalCluster, {n} worker{'s' if n > 1 else ''}", seconds))
        print(f"#   local:{n}: cluster start {started:.1f} s, warm-up run on {args.small} images {warm:.1f} s "
              "(not in the times below)")
    print(f"# load average before: {load}; after: {os.getloadavg()[0]:.2f}")
    print(f"{'executor':28} {'wall s':>7} {'ms/image':>9} {'speed-up':>9} {'CPU s':>7} {'CPU x':>6}")
    for name, (wall, cpu) in rows:
        print(f"{name:28} {wall:7.1f} {1000 * wall / args.images:9.1f} {here[0] / wall:9.2f} {cpu:7.1f} "
              f"{cpu / here[1]:6.2f}")
    print("results equal to the in-process run's (scores, object_pairs, image_pairs, violations)")
    print()


def _pools(small: Path, args) -> None:
    runs: dict = {"per run": [], "per stage": []}
    for _ in range(args.alternations):  # alternated, so that both see the same load
        seconds, a = _run(small, workers=2)
        runs["per run"].append(seconds)
        seconds, b = _run(small, executor=_PoolPerStage(2))
        runs["per stage"].append(seconds)
        _assert_equal(a, b, "pool per stage")
    per_run, per_stage = ((statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
                          for v in runs.values())
    starts = []
    for _ in range(5):
        t = time.perf_counter()
        with LocalPool(2) as pool:
            list(pool.map_chunks(operator.getitem, [[0], [1]], 0))  # workers do not import __main__
        starts.append(time.perf_counter() - t)
    print(f"# starting a pool of 2 workers and running a trivial chunk on each: median "
          f"{sorted(starts)[2]:.2f} s of 5 (the fork server already running)")
    print(f"{'pools':28} {'wall s':>7} {'CPU s':>7}")
    print(f"{'one per run':28} {per_run[0]:7.2f} {per_run[1]:7.2f}")
    print(f"{'one per stage':28} {per_stage[0]:7.2f} {per_stage[1]:7.2f}")
    print(f"saved: {per_stage[0] - per_run[0]:.2f} s wall, {per_stage[1] - per_run[1]:.2f} CPU s")


if __name__ == "__main__":
    main()
