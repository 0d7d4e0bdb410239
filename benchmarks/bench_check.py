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

``--crowded N`` instead times the overlaps of one image holding N small objects (squares of 4 to 12
px placed at random on a 4096 x 4096 image), in a fresh
process: :attr:`qa.rules._context.ExportContext.overlaps` and the process's peak memory.
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


def _crowded_export(n: int, seed: int = 0):
    """One 4096 x 4096 image with ``n`` small squares at random places (a fixed seed)."""
    import numpy as np

    from qa.model import Export, Image, Object, Source

    rng = np.random.default_rng(seed)
    side = 4096
    export = Export(annotator="a", path=Path("crowded.json"), format="coco")
    export.images["crowded.png"] = Image(key="crowded.png", file_name="crowded.png", width=side, height=side)
    xs, ys = rng.uniform(0, side - 12, n), rng.uniform(0, side - 12, n)
    sizes = rng.uniform(4, 12, n)
    for k in range(n):
        x, y, d = xs[k], ys[k], sizes[k]
        square = np.array([[x, y], [x + d, y], [x + d, y + d], [x, y + d]])
        export.objects.append(Object(annotator="a", image="crowded.png", category="car", kind="polygon",
                                     source=Source("crowded.json", k, k), polygons=(square,)))
    return export


def _measure_crowded(n: int, queue) -> None:
    from qa.rules._context import ExportContext

    export = _crowded_export(n)
    ExportContext(_crowded_export(10)).overlaps  # compile (numba cache) outside the timing
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    ctx = ExportContext(export)
    pairs = ctx.overlaps
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    digest = hashlib.sha256(np_bytes(pairs)).hexdigest()
    queue.put((seconds, before, peak, len(pairs.i), digest))


def np_bytes(pairs) -> bytes:
    return pairs.i.tobytes() + pairs.j.tobytes() + pairs.inter.tobytes()


def crowded(n: int) -> None:
    """Print the time and peak memory of one image's overlaps with ``n`` objects on it."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure_crowded, args=(n, queue))
    proc.start()
    seconds, before, peak, pairs, digest = queue.get()
    proc.join()
    print(f"# {machine()}")
    print(f"# {versions()}")
    print(f"{'objects on one image':>20} {'s':>8} {'peak MB':>8} {'above start MB':>15} {'overlapping pairs':>18}  digest")
    print(f"{n:>20} {seconds:8.2f} {peak:8.0f} {peak - before:15.0f} {pairs:>18}  {digest[:12]}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", default="512x1024", help="HxW of the scenes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", type=Path, default=Path(".cache/bench_run"))
    parser.add_argument("--crowded", type=int, metavar="N", help="time one image's overlaps with N objects instead")
    args = parser.parse_args(argv)
    if args.crowded:
        crowded(args.crowded)
        return
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
