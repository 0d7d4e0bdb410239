"""A whole ``qa run`` as the batch grows: the main process's peak memory and the time per image.

``.venv/bin/python -m benchmarks.bench_scale [--sizes 1000 10000 20000] [--size 128x256] [--workers 2]``
``[--stages [--steps] | --command]``

Setup (not timed, cached under ``.cache/bench_scale/``): ``qa synth`` writes a 1,000-image batch (three
annotators, COCO polygons, about 30 objects per annotator and image); the larger batches are that batch
repeated (images and annotations copied under new ids and file names ``r<k>/<name>``), so every size
has the same objects per image.

Each size runs in a fresh process: ``qa.run(manifest, workers=N, db=...)`` with the default pack and
analytics, stored into a new store, as ``qa run`` does. The process reports its peak RSS (``VmHWM``)
after the load and at the end, the run's wall time and its CPU seconds (this process and every worker);
with ``--stages``, each stage's own peak RSS (the peak is reset as it starts), the RSS after it and the
CPU seconds this process spent in it (the workers' are in the run's CPU); with ``--steps`` as well, the
same for a few steps inside the stages (:data:`_STEPS`), each stage's peak still the peak over all of it.
The peak's growth from the smallest size is the figure to read: the issue's target is a main-process
peak at 20,000 images within 1.3 times the one at 1,000.

``--command`` measures the ``qa run`` command instead, as a release pipeline calls it: in a fresh process
with the ``qa`` command's allocator setting (``qa.__main__.ALLOCATOR_ENV``), ``qa.cli.main(["run",
"--manifest", ..., "--format", "json", "--json", PATH])`` with its default HTML report, stdout sent
nowhere; the process's peak RSS, and the sizes of the report and the JSON it wrote.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import machine, repeated_batch, synth_batch, versions

CACHE = Path(".cache/bench_scale")


def _peak_mb() -> float:
    """This process's peak RSS (``VmHWM``, not inherited from the process that started it)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _reset_peak() -> None:
    """Start a new peak RSS (``VmHWM`` back to the current RSS; Linux ``clear_refs`` 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


_STAGES = (("pass", "qa.task", "map_reduce"), ("boundaries", "qa.analytics.boundaries", "boundary_stage"),
           ("analytics", "qa.pipeline", "analytics_stage"), ("report", "qa.pipeline", "report_stage"),
           ("store", "qa.pipeline", "store_stage"))

_STEPS = (("offsets", "qa.analytics.boundaries", "offset_distribution"),
          ("disagreement table", "qa.analytics.boundaries", "disagreement_table"),
          ("aggregates", "qa.analytics", "_aggregates"), ("alpha", "qa.analytics", "_alpha"),
          ("review sort", "qa.analytics.review", "_spilled"), ("match rows", "qa.store", "stored_match_rows"),
          ("attributes", "qa.analytics.attributes", "attribute_agreement"),
          ("requeue", "qa.analytics.review", "requeue"))
"""Steps inside the stages, and between them (``--steps``): the boundary stage's offsets and figures'
table, the analytics' aggregates, alpha and review queue sort, the store's match rows, attribute agreement
and the requeue of its rows."""


def _staged(stages: dict, wrapped=_STAGES) -> None:
    """Wrap the run's stages (and any step inside one) so each records its own peak RSS, the RSS after it
    (MB) and this process's CPU seconds in it.

    A step's own peak is measured from its start (the peak is reset there); the peak an enclosing stage
    had reached by then is kept on a stack, so the stage's figure is still the peak over all of it."""
    import functools
    import importlib

    open_peaks: list[float] = []  # the peak of each stage or step in progress, outermost first

    for name, module, attr in wrapped:
        mod = importlib.import_module(module)
        fn = getattr(mod, attr)

        @functools.wraps(fn)
        def wrapper(*args, _fn=fn, _name=name, **kwargs):
            now = _peak_mb()
            if not open_peaks:
                stages["between"] = max(stages.get("between", 0.0), now)  # the work since the last stage
            open_peaks[:] = [max(p, now) for p in open_peaks]
            open_peaks.append(0.0)
            _reset_peak()
            cpu = time.process_time()
            try:
                return _fn(*args, **kwargs)
            finally:
                peak = max(open_peaks.pop(), _peak_mb())
                open_peaks[:] = [max(p, peak) for p in open_peaks]
                before = stages.get(_name, (0.0, 0.0, 0.0))  # called more than once: the highest peak, all CPU
                stages[_name] = (max(before[0], peak), _rss_mb(), before[2] + time.process_time() - cpu)
        setattr(mod, attr, wrapper)


def measure(manifest: str, workers: int, stages: bool = False, steps: bool = False) -> dict:
    """One whole run in this process (call in a fresh one)."""
    import qa
    from benchmarks._common import CpuMeter

    marks = {}
    per_stage: dict = {}
    if stages or steps:
        _staged(per_stage, _STAGES + (_STEPS if steps else ()))

    def progress(stage, done, total):
        if stage == "images" and done == 0 and "loaded" not in marks:
            marks["loaded"] = _peak_mb()

    with tempfile.TemporaryDirectory() as tmp, CpuMeter() as cpu:
        t = time.perf_counter()
        run = qa.run(manifest=manifest, workers=workers, db=Path(tmp) / "qa.duckdb", progress=progress)
        wall = time.perf_counter() - t
    between = per_stage.pop("between", 0.0)
    peak = max([_peak_mb(), between, marks.get("loaded") or 0] + [p for p, *_ in per_stage.values()])
    return {"images": len(run.batch.images), "objects": sum(len(e.objects) for e in run.batch.exports.values()),
            "wall": wall, "cpu": cpu.seconds, "loaded_mb": marks.get("loaded"), "peak_mb": peak,
            "stages": per_stage}


def measure_command(manifest: str, workers: int) -> dict:
    """One ``qa run`` command in this process (call in a fresh one, with the command's environment)."""
    import contextlib
    import os

    from qa.cli import main as qa_main

    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        t = time.perf_counter()
        code = qa_main(["run", "--manifest", manifest, "--workers", str(workers), "--db", f"{tmp}/qa.duckdb",
                        "--format", "json", "--json", f"{tmp}/summary.json"])
        wall = time.perf_counter() - t
        sizes = {name: os.path.getsize(f"{tmp}/{name}") / 2 ** 20 for name in ("report.html", "summary.json")}
    return {"code": code, "wall": wall, "peak_mb": _peak_mb(), "report_mb": sizes["report.html"],
            "json_mb": sizes["summary.json"]}


def _commands(args, manifests: dict) -> None:
    """``--command``: each size's ``qa run`` command in a fresh process."""
    import os

    from qa.__main__ import ALLOCATOR_ENV

    print(f"{'images':>7} {'wall s':>7} {'peak MB':>8} {'x first':>8} {'report MB':>10} {'JSON MB':>8}")
    first = None
    for images, manifest in manifests.items():
        out = subprocess.run([sys.executable, "-m", "benchmarks.bench_scale", "--measure-command", str(manifest),
                              "--workers", str(args.workers)], capture_output=True, text=True,
                             env={**os.environ, **ALLOCATOR_ENV})
        if out.returncode:
            sys.exit(f"{images} images: the command failed (exit status {out.returncode}):\n{out.stderr[-4000:]}")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        first = first or row["peak_mb"]
        print(f"{images:7d} {row['wall']:7.1f} {row['peak_mb']:8.0f} {row['peak_mb'] / first:8.2f} "
              f"{row['report_mb']:10.1f} {row['json_mb']:8.1f}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 20000])
    parser.add_argument("--size", default="128x256", help="HxW of the scenes")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stages", action="store_true",
                        help="also each stage's own peak RSS and the RSS after it (MB), and its CPU in this process")
    parser.add_argument("--steps", action="store_true",
                        help="with the stages, a few steps inside and between them (offsets, disagreement table, "
                             "aggregates, alpha, review sort, match rows, attributes, requeue)")
    parser.add_argument("--command", action="store_true",
                        help="measure the qa run command (report, --format json, --json) instead of qa.run")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--measure-command", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.workers, args.stages, args.steps)))
        return
    if args.measure_command:
        print(json.dumps(measure_command(args.measure_command, args.workers)))
        return
    h, w = (int(v) for v in args.size.lower().split("x"))
    base = synth_batch(CACHE / f"1000-{h}x{w}-0", 1000, (h, w), 0)
    print(f"# {machine()}")
    print(f"# {versions()}")
    manifests = {images: base if images == 1000 else
                 repeated_batch(base, images, CACHE / f"{base.parent.name}-x{images}") for images in args.sizes}
    if args.command:
        print(f"# the qa run command (default pack, analytics, stored, HTML report, --format json, --json) at "
              f"{h}x{w}, 3 annotators, {args.workers} workers; each size in a fresh process")
        _commands(args, manifests)
        return
    print(f"# whole qa run (default pack, analytics, stored) at {h}x{w}, 3 annotators, {args.workers} workers; "
          f"each size in a fresh process")
    print(f"{'images':>7} {'objects':>9} {'wall s':>7} {'ms/image':>9} {'CPU s':>7} {'loaded MB':>10} "
          f"{'peak MB':>8} {'x first':>8}")
    first = None
    for images, manifest in manifests.items():
        out = subprocess.run([sys.executable, "-m", "benchmarks.bench_scale", "--measure", str(manifest),
                              "--workers", str(args.workers)] + (["--stages"] if args.stages else [])
                             + (["--steps"] if args.steps else []),
                             capture_output=True, text=True)
        if out.returncode:  # the run's own error, not only the exit status
            sys.exit(f"{images} images: the run failed (exit status {out.returncode}):\n{out.stderr[-4000:]}")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        first = first or row["peak_mb"]
        print(f"{row['images']:7d} {row['objects']:9d} {row['wall']:7.1f} {1000 * row['wall'] / row['images']:9.1f} "
              f"{row['cpu']:7.1f} {row['loaded_mb'] or float('nan'):10.0f} {row['peak_mb']:8.0f} "
              f"{row['peak_mb'] / first:8.2f}", flush=True)
        staged = {k: v for k, v in row["stages"].items() if k in {name for name, *_ in _STAGES}}
        stepped = {k: v for k, v in row["stages"].items() if k not in staged}
        if staged:
            print("        stage peak / after (MB): " + ", ".join(
                f"{name} {peak:.0f} / {after:.0f}" for name, (peak, after, _) in staged.items()), flush=True)
            print("        stage CPU of this process (s): " + ", ".join(
                f"{name} {cpu:.1f}" for name, (_, _, cpu) in staged.items()), flush=True)
        if stepped:
            print("        step peak / after (MB): " + ", ".join(
                f"{name} {peak:.0f} / {after:.0f}" for name, (peak, after, _) in stepped.items()), flush=True)
    import os

    print(f"# load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
