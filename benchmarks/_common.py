"""Timing and environment helpers shared by the engine benchmarks."""

from __future__ import annotations

import os
import platform
import statistics
import time


def timed(fn, *, repeat: int = 5) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


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
