"""The run's memory: which allocator Arrow uses, and freed memory given back between stages.

**Arrow's pool.** pyarrow's default pool on Linux is mimalloc, which keeps the pages of the buffers a run
frees: a run's main process held up to 115 MB in mimalloc's region for an Arrow peak of 22 MB, and peaked
at 642 / 947 MB at 1,000 / 20,000 images against 459 / 722 MB with jemalloc (Arrow's other allocator in
its Linux builds), at the same speed (``benchmarks/README.md``, "The Arrow memory pool"). Arrow reads its
choice from ``ARROW_DEFAULT_MEMORY_POOL`` once, when pyarrow is imported, so ``import qa`` sets it
(:func:`prefer_jemalloc`) when pyarrow is not imported yet; the run's workers inherit it. A value already
in the environment (``mimalloc``, ``jemalloc``, ``system``) is the user's choice and stays. Elsewhere than
Linux nothing is set (pyarrow's macOS and Windows wheels have no jemalloc).

**Between stages.** A stage's temporaries (numpy arrays, pandas frames) leave free pages inside glibc's
heap, between blocks still in use, and glibc gives back only the free memory at the top of the heap:
at 20,000 images 92 MB were free in the heap after the pass and 181 MB before the store. The pipeline
calls :func:`give_back` after each stage so the next one starts from what is in use.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

ENV = "ARROW_DEFAULT_MEMORY_POOL"
"""pyarrow's own variable naming its default pool."""


def prefer_jemalloc() -> bool:
    """Name jemalloc in ``ARROW_DEFAULT_MEMORY_POOL`` unless the variable is set, pyarrow is already
    imported (its pool is chosen then) or this is not Linux. Returns whether the variable was set."""
    if ENV in os.environ or "pyarrow" in sys.modules or not sys.platform.startswith("linux"):
        return False
    os.environ[ENV] = "jemalloc"
    return True


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None (another C library, or not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others: no malloc_trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def give_back() -> None:
    """Give the memory that this process's allocators hold free back to the system: every free page of
    glibc's heap (``malloc_trim(0)``, a few milliseconds) and the unused memory of Arrow's pool."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
    if "pyarrow" in sys.modules:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
