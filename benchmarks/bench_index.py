"""The streamed index of a batch: main-process memory at 1,000 / 10,000 / 20,000 images, and its speed.

``.venv/bin/python -m benchmarks.bench_index [--sizes 1000 10000 20000] [--workers 2]``

Setup (not timed, cached under ``.cache/bench_index/``): ``qa synth`` writes a 1,000-image batch (three
annotators, COCO polygons, 512x1024, about 90 objects per image over the three); the larger batches are
that batch repeated (images and annotations copied under new ids and file names ``r<k>/<name>``), so
every size has the same objects per image.

Each size runs in a fresh process, which reports its own peak RSS (``VmHWM``) after each step:

1. ``index``: :func:`qa.pipeline._load` with ``streamed=True`` (one streaming pass per export, the
   alignment and the summary's counts);
2. ``chunks``: every chunk of 16 images sent to a local pool of ``--workers`` processes, each worker
   loading its chunk from the exports (``IndexedChunk.load``) and returning its object count, as a run's
   per-image task does before its work; the main process keeps only the counts.

Timed in the 1,000-image process, on the same batch: the whole load (:func:`qa.load`), the index pass,
and the chunk loads in this process, per image.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._common import machine, repeated_batch, synth_batch, versions

CACHE = Path(".cache/bench_index")


def _peak_mb() -> float:
    """This process's peak RSS (``VmHWM``: unlike ``ru_maxrss``, not inherited from the process that
    started it, which may have written a large batch)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def count_chunk(chunk, _cfg):
    """A chunk's object count, read by the worker from the exports (the map side of a run)."""
    batch = chunk.load()
    return sum(len(e.objects) for e in batch.exports.values())


def measure(manifest: str, workers: int, timing: bool) -> dict:
    """One size, in this process (run by :func:`main` in a fresh one per size)."""
    from benchmarks.bench_index import count_chunk  # by its module's name: workers import it
    from qa.engine import _executors, _pool
    from qa.engine.chunks import chunks_of
    from qa.pipeline import _load, summarise

    out: dict = {"start_mb": _peak_mb()}
    if timing:  # warm the kernels and the imports on a small part first
        import qa  # noqa: F401
    t = time.perf_counter()
    batch, report, _ = _load(manifest=manifest, streamed=True)
    summary = summarise(batch, alias_report=report)
    out["index_s"] = time.perf_counter() - t
    out["index_mb"] = _peak_mb()
    out["index_bytes"] = batch.index.nbytes
    out["images"] = len(batch.images)
    out["objects"] = sum(a["objects"] for a in summary["annotators"])
    t = time.perf_counter()
    total = 0
    with _executors.using(None, workers=workers) as pool:
        for count in pool.map_chunks(count_chunk, chunks_of(batch, _pool.chunks(list(batch.images), 16)), None):
            total += count
    out["chunks_s"] = time.perf_counter() - t
    out["chunks_mb"] = _peak_mb()
    assert total == out["objects"], (total, out["objects"])
    if timing:
        t = time.perf_counter()
        for chunk in chunks_of(batch, _pool.chunks(list(batch.images), 16)):
            count_chunk(chunk, None)
        out["chunk_load_s"] = time.perf_counter() - t
        del batch
        import qa

        t = time.perf_counter()
        whole = qa.load(manifest=manifest)
        out["whole_s"] = time.perf_counter() - t
        out["whole_mb"] = _peak_mb()
        del whole
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 20000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--timing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.workers, args.timing)))
        return
    base = synth_batch(CACHE / "1000", 1000, (512, 1024), 0)
    print(f"# {machine()}; {versions()}")
    print(f"# {args.workers} workers; chunks of 16 images; peak RSS of the main process (MB)")
    print(f"{'images':>7} {'objects':>8} {'index MB':>9} {'chunks MB':>10} {'index bytes':>12} "
          f"{'index s':>8} {'chunks s':>9}")
    rows = []
    for size in args.sizes:
        manifest = base if size == 1000 else repeated_batch(base, size, CACHE / str(size))
        cmd = [sys.executable, "-m", "benchmarks.bench_index", "--measure", str(manifest),
               "--workers", str(args.workers)] + (["--timing"] if size == args.sizes[0] else [])
        result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        rows.append(result)
        print(f"{result['images']:>7} {result['objects']:>8} {result['index_mb']:>9.0f} {result['chunks_mb']:>10.0f} "
              f"{result['index_bytes']:>12} {result['index_s']:>8.1f} {result['chunks_s']:>9.1f}")
    first = rows[0]
    print(f"# peak at {rows[-1]['images']} images / at {first['images']}: "
          f"{max(rows[-1]['index_mb'], rows[-1]['chunks_mb']) / max(first['index_mb'], first['chunks_mb']):.2f}")
    n = first["images"]
    print(f"# per image at {n}: whole load {1000 * first['whole_s'] / n:.2f} ms (peak {first['whole_mb']:.0f} MB), "
          f"index pass {1000 * first['index_s'] / n:.2f} ms, chunk load (one process) "
          f"{1000 * first['chunk_load_s'] / n:.2f} ms")


if __name__ == "__main__":
    main()
