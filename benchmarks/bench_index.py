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

The index pass runs on a local pool of ``--workers`` processes, as ``qa run`` runs it (the COCO
annotations parsed in pieces by the workers, :mod:`qa.formats._index_pieces`); the pool is started (a
no-op task) before the clock starts, as a run's pool serves its index and then its chunks. With
``--ab`` (always at the first size), the same process also times the serial pass (no executor, today's
one-process index) and the pass on a pool of one worker, and checks that all three give the same
summary: wall time and the main process's CPU time (``time.process_time``) for each.

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


def nothing(_chunk, _cfg):
    """A no-op task (starts a pool's workers before the clock does)."""
    return None


def _children_cpu() -> dict:
    import psutil

    out = {}
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def _index(manifest: str, executor) -> tuple:
    """The index pass (with the alignment and the summary), timed: ``(batch, summary, wall s, main CPU s,
    CPU s of the main process and its workers)``. The pool's workers live through the pass, so their CPU
    time before and after it is all they spent on it."""
    from qa.pipeline import _load, summarise

    before = _children_cpu()
    t, c = time.perf_counter(), time.process_time()
    batch, report, _ = _load(manifest=manifest, streamed=True, executor=executor)
    summary = summarise(batch, alias_report=report)
    wall, main = time.perf_counter() - t, time.process_time() - c
    workers = sum(v - before.get(pid, 0.0) for pid, v in _children_cpu().items())
    return batch, summary, wall, main, main + workers


def _pool_of(n: int, warm: Path | None = None):
    """A local pool of ``n`` workers, started (and, given a small ``warm`` manifest, its workers' imports
    and kernels loaded by an index of it) before any clock starts."""
    from benchmarks.bench_index import nothing
    from qa.engine._executors import LocalPool

    pool = LocalPool(n)
    list(pool.map_chunks(nothing, range(2 * n), None))
    if warm is not None:
        _load_pieces(warm, pool)
    return pool


def _load_pieces(manifest: Path, executor) -> None:
    from qa.formats import _index_pieces
    from qa.pipeline import _load

    inline, _index_pieces.INLINE_BELOW = _index_pieces.INLINE_BELOW, 0
    try:
        _load(manifest=manifest, streamed=True, executor=executor)
    finally:
        _index_pieces.INLINE_BELOW = inline


def _small(folder: Path) -> Path:
    """A manifest of the 1,000-image batch's first 20 images, for warming up (read from the small batch,
    so that no size's process holds a large export whole)."""
    import shutil

    manifest = CACHE / "1000" / "batch.toml"
    source = manifest.parent
    if (folder / "batch.toml").is_file():
        return folder / "batch.toml"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "coco").mkdir(exist_ok=True)
    for path in sorted((source / "coco").glob("*.json")):
        doc = json.loads(path.read_text())
        doc["images"] = doc["images"][:20]
        keep = {im["id"] for im in doc["images"]}
        doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] in keep]
        (folder / "coco" / path.name).write_text(json.dumps(doc))
    shutil.copy(manifest, folder / "batch.toml")
    return folder / "batch.toml"


def measure(manifest: str, workers: int, timing: bool, ab: bool) -> dict:
    """One size, in this process (run by :func:`main` in a fresh one per size)."""
    from benchmarks.bench_index import count_chunk  # by its module's name: workers import it
    from qa.engine import _executors, _pool
    from qa.engine.chunks import chunks_of

    out: dict = {"start_mb": _peak_mb()}
    if timing:  # warm the kernels and the imports on a small part first
        import qa  # noqa: F401
    warm = _small(CACHE / "warm")
    _load_pieces(warm, None)  # this process's imports and kernels
    pool = _pool_of(workers, warm)
    batch, summary, out["index_s"], out["index_cpu_s"], out["index_all_s"] = _index(manifest, pool)
    pool.close()
    out["index_mb"] = _peak_mb()
    if ab or timing:
        for name, n in (("serial", 0), ("one", 1)):
            executor = _pool_of(n, warm) if n else None
            other, other_summary, out[f"{name}_s"], out[f"{name}_cpu_s"], out[f"{name}_all_s"] = \
                _index(manifest, executor)
            if executor is not None:
                executor.close()
            assert other_summary == summary, name  # the same findings, counts and images
            del other
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
    parser.add_argument("--ab", action="store_true",
                        help="at every size, also time the serial index pass and one worker's")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--timing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.workers, args.timing, args.ab)))
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
               "--workers", str(args.workers)] + (["--timing"] if size == args.sizes[0] else []) + \
            (["--ab"] if args.ab else [])
        result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        rows.append(result)
        print(f"{result['images']:>7} {result['objects']:>8} {result['index_mb']:>9.0f} {result['chunks_mb']:>10.0f} "
              f"{result['index_bytes']:>12} {result['index_s']:>8.1f} {result['chunks_s']:>9.1f}")
    print(f"# index pass per image (ms): wall, and CPU of the main process; serial = no executor, the "
          f"one-process pass")
    print(f"{'images':>7} {'serial wall':>12} {'serial CPU':>11} {'1 worker wall':>14} {'1w main CPU':>12} "
          f"{'1w all CPU':>11} {f'{args.workers} workers wall':>16} {f'{args.workers}w main CPU':>12} "
          f"{f'{args.workers}w all CPU':>11}")
    for r in rows:
        n = r["images"]

        def ms(key):
            return f"{1000 * r[key] / n:.2f}" if key in r else "-"

        print(f"{n:>7} {ms('serial_s'):>12} {ms('serial_cpu_s'):>11} {ms('one_s'):>14} {ms('one_cpu_s'):>12} "
              f"{ms('one_all_s'):>11} {ms('index_s'):>16} {ms('index_cpu_s'):>12} {ms('index_all_s'):>11}")
    first = rows[0]
    print(f"# peak at {rows[-1]['images']} images / at {first['images']}: "
          f"{max(rows[-1]['index_mb'], rows[-1]['chunks_mb']) / max(first['index_mb'], first['chunks_mb']):.2f}")
    n = first["images"]
    print(f"# per image at {n}: whole load {1000 * first['whole_s'] / n:.2f} ms (peak {first['whole_mb']:.0f} MB), "
          f"index pass {1000 * first['index_s'] / n:.2f} ms, chunk load (one process) "
          f"{1000 * first['chunk_load_s'] / n:.2f} ms")


if __name__ == "__main__":
    main()
