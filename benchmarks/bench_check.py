"""The rules (``qa check``'s default pack) on a batch: chunks of images against one pass over the whole batch.

``.venv/bin/python -m benchmarks.bench_check [--images 1000] [--size 512x1024]``

Setup (not timed): the ``qa synth`` batch of :mod:`benchmarks.bench_run` (three annotators, COCO
instance polygons, about 30 overlapping objects per image), reused from ``--folder``.

Each mode runs in a fresh child process (so each peak is its own) that loads the batch and times
:func:`qa.rules.check.check`:

- baseline: every rule over the whole batch at once in one process (the batch as a single chunk:
  each rule's pass over the masks covers every image before the next rule starts, so the crops an
  image needs are painted again by later rules once the cache has moved on);
- ``check(workers=1)`` and ``check(workers=2)``: a chunk of images at a time (at most
  :data:`qa.rules.check.CHUNK_PIXELS`), every rule of a chunk reading crops painted once.

The three must report the same findings (checked).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import resource
import time
from pathlib import Path

from benchmarks._common import machine, synth_batch, versions


def _measure(manifest: str, mode: str, queue) -> None:
    import qa
    from qa.rules.check import _check_chunk, check, sort_findings
    from qa.rules.packs import read

    batch = qa.load(manifest=Path(manifest))
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pack = read("default")
    t = time.perf_counter()
    if mode == "whole":
        findings = sort_findings(_check_chunk(batch, pack)[0], batch.annotators)
    else:
        findings = check(batch, pack, workers=int(mode))
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [(f.code, f.annotator, f.image, f.source, f.value, f.message) for f in findings]
    digest = hashlib.sha256(repr(rows).encode()).hexdigest()  # str hashes differ between processes
    queue.put((seconds, loaded, peak, len(batch.images), digest, len(rows)))


def _run(manifest: Path, mode: str) -> tuple:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(str(manifest), mode, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", default="512x1024", help="HxW of the scenes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", type=Path, default=Path(".cache/bench_run"))
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.lower().split("x"))
    manifest = synth_batch(args.folder / f"{args.images}-{h}x{w}-{args.seed}", args.images, (h, w), args.seed)

    results = {mode: _run(manifest, mode) for mode in ("whole", "1", "2")}
    digests = {r[4] for r in results.values()}
    if len(digests) != 1:
        raise SystemExit("the modes report different findings")
    base = results["whole"][0]
    print(f"# {machine()}")
    print(f"# {versions()}")
    print(f"# {args.images} images at {h}x{w}, 3 annotators; {results['whole'][5]} findings in every mode")
    print(f"{'mode':<42} {'s':>7} {'ms/image':>9} {'speed-up':>9} {'peak MB':>8} {'loaded MB':>10}")
    names = {"whole": "baseline: every rule over the whole batch",
             "1": "chunks of images, workers=1", "2": "chunks of images, workers=2"}
    for mode, (seconds, loaded, peak, images, _, _) in results.items():
        print(f"{names[mode]:<42} {seconds:7.1f} {1000 * seconds / images:9.1f} {base / seconds:8.2f}x "
              f"{peak:8.0f} {loaded:10.0f}")


if __name__ == "__main__":
    main()
