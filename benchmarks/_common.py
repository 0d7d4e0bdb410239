"""Timing and environment helpers shared by the engine benchmarks, and the tests' reference code."""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"


def load_reference():
    """``tests/reference.py`` as a module: the tests' transcriptions of published code, which the
    benchmarks time as baselines.

    ``tests/`` is not a package (pytest puts it on ``sys.path``, and the tests import ``reference``
    by name); its folder goes on ``sys.path`` here, once.
    """
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import reference

    return reference


def timed(fn, *, repeat: int = 5) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def best_of(fn, repeat: int) -> float:
    """Shortest wall time of ``fn()`` in seconds over ``repeat`` calls."""
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return f"{cpu}, {cores} cores, {platform.system()} {platform.release()}"


def versions() -> str:
    from importlib.metadata import version

    names = ("numpy", "numba", "scipy", "pycocotools", "pillow", "pandas")
    return "Python " + platform.python_version() + ", " + ", ".join(f"{n} {version(n)}" for n in names)


def synth_batch(folder: Path, images: int, size: tuple[int, int], seed: int) -> Path:
    """The manifest of a ``qa synth`` batch (three annotators, COCO instances) in ``folder``, written in a
    child process (so the caller's peak memory is its own) unless ``folder`` already holds that batch."""
    import json
    import subprocess

    manifest = folder / "batch.toml"
    stamp = folder / "bench_batch.json"
    wanted = {"images": images, "size": list(size), "seed": seed}
    if manifest.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return manifest
    code = (f"from qa.synth import synthesize; synthesize({str(folder)!r}, images={images}, "
            f"size={tuple(size)}, annotators=3, seed={seed}, formats=('coco',), force=True)")
    subprocess.run([sys.executable, "-c", code], check=True)
    stamp.write_text(json.dumps(wanted))
    return manifest


def rasterise_baseline(batch, keys) -> tuple[float, float]:
    """Wall and CPU seconds per image to rasterise every object of the images ``keys`` of a loaded batch to
    a full-image mask with pycocotools (``frPyObjects``, ``merge``, ``decode``): the baseline of the whole
    run (bench_run) and of its per-image task (bench_task)."""
    import warnings

    from pycocotools import mask as mask_utils

    grouped = batch.by_image()
    t, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        for key in keys:
            image = batch.images[key]
            for objs in grouped.get(key, {}).values():
                for o in objs:
                    polygons = [p.ravel().tolist() for p in o.polygons]
                    mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, image.height, image.width)))
    return (time.perf_counter() - t) / len(keys), (time.process_time() - cpu) / len(keys)


class CpuMeter:
    """CPU seconds (user + system) of this process and of every process under it (pool workers, Dask
    workers), sampled every 0.1 s while the meter runs: the work each executor does, which a machine
    shared with other jobs distorts less than wall time."""

    def __init__(self):
        import psutil

        self.me = psutil.Process()
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()

    def _sample(self, into: dict) -> None:
        import psutil

        for p in self.me.children(recursive=True):
            try:
                t = p.cpu_times()
                into[p.pid] = t.user + t.system
            except psutil.Error:
                pass

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            self._sample(self.last)
        self.sampling = time.thread_time()  # this thread's own CPU, not the run's

    def __enter__(self):
        self._sample(self.first)
        self.own = time.process_time()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._sample(self.last)
        self._stop.set()
        self._thread.join()
        # this process alone, without the sampling thread: what more workers do not shorten
        self.main_seconds = time.process_time() - self.own - self.sampling
        self.seconds = self.main_seconds + sum(
            t - self.first.get(pid, 0.0) for pid, t in self.last.items())


def repeated_batch(base: Path, images: int, folder: Path) -> Path:
    """The manifest of a batch of ``images`` images in ``folder``: the COCO batch of the manifest ``base``
    repeated, images and annotations copied under new ids and file names ``r<k>/...`` (kept in ``folder``
    and reused when it holds the same batch)."""
    import json

    manifest = folder / "batch.toml"
    stamp = folder / "bench_batch.json"
    wanted = {"images": images, "from": str(base)}
    if manifest.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return manifest
    (folder / "coco").mkdir(parents=True, exist_ok=True)
    for source in sorted((base.parent / "coco").glob("*.json")):
        doc = json.loads(source.read_text())
        n = len(doc["images"])
        image_step = max(im["id"] for im in doc["images"]) + 1
        ann_step = max(a["id"] for a in doc["annotations"]) + 1
        out_images, out_annotations = [], []
        for k in range(-(-images // n)):
            take = doc["images"][:images - len(out_images)]
            out_images.extend({**im, "id": im["id"] + k * image_step, "file_name": f"r{k}/{im['file_name']}"}
                              for im in take)
            kept = {im["id"] for im in take}
            out_annotations.extend({**a, "id": a["id"] + k * ann_step, "image_id": a["image_id"] + k * image_step}
                                   for a in doc["annotations"] if a["image_id"] in kept)
        doc["images"], doc["annotations"] = out_images, out_annotations
        (folder / "coco" / source.name).write_text(json.dumps(doc))
    manifest.write_text(base.read_text())
    stamp.write_text(json.dumps(wanted))
    return manifest
