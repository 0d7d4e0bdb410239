"""Module-level work functions for the executor tests (worker processes import them by name)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def squares(chunk, cfg):
    """The squares of a chunk of numbers, and the process that computed them."""
    if cfg:
        time.sleep(cfg)
    return [x * x for x in chunk], os.getpid()


def die_once(chunk, folder):
    """:func:`squares`, except that the first chunk holding 3 kills its own process (a marker file in
    ``folder`` records that it did)."""
    marker = Path(folder) / "died"
    if 3 in chunk and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return squares(chunk, 0)


def die_always(chunk, folder):
    """:func:`squares`, except that a chunk holding 3 always kills its process."""
    if 3 in chunk:
        os.kill(os.getpid(), signal.SIGKILL)
    return squares(chunk, 0)


def arrow_pool(chunk, cfg):
    """The backend of pyarrow's default pool in the worker, and its process."""
    import pyarrow as pa

    return pa.default_memory_pool().backend_name, os.getpid()
