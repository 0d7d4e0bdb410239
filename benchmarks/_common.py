"""Timing and environment helpers shared by the engine benchmarks, and the tests' reference code."""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
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
