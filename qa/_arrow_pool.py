"""The Arrow memory pool: jemalloc, which gives the memory of freed buffers back to the system.

pyarrow's default pool on Linux is mimalloc, which keeps the pages of the buffers a run frees: a run's
main process held up to 115 MB in mimalloc's region for an Arrow peak of 22 MB, and peaked at 642 / 947
MB at 1,000 / 20,000 images against 459 / 722 MB with jemalloc (Arrow's other allocator in its Linux
builds), at the same speed (``benchmarks/README.md``, "The Arrow memory pool").

Arrow reads its choice from ``ARROW_DEFAULT_MEMORY_POOL`` once, when pyarrow is imported, so ``import
qa`` sets it (:func:`prefer_jemalloc`) when pyarrow is not imported yet; the run's workers inherit it.
A value already in the environment (``mimalloc``, ``jemalloc``, ``system``) is the user's choice and
stays. Elsewhere than Linux nothing is set (pyarrow's macOS and Windows wheels have no jemalloc).
"""

from __future__ import annotations

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


def pool_name() -> str:
    """The backend of pyarrow's default pool (``"jemalloc"``, ``"mimalloc"``, ``"system"``)."""
    import pyarrow as pa

    return pa.default_memory_pool().backend_name
