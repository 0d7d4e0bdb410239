"""Spreading per-image work over worker processes, chunk by chunk, results in order.

The instance engine (:mod:`qa.engine.compare`), the label-map engine (:mod:`qa.engine.semantic`), the
rules (:mod:`qa.rules.check`), pixel alpha and the consensus (:mod:`qa.analytics`) cut their images into
chunks, send each chunk to a worker and read the results back in order with a bounded number of chunks
in flight, so the memory of the work never depends on the size of the batch. A chunk is either a list
of compact per-image tasks or the batch narrowed to the chunk's images (:func:`batch_chunks`).
"""

from __future__ import annotations

import math
import os
from collections import deque
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, TypeVar

from qa.errors import ConfigError

if TYPE_CHECKING:
    from qa.model import Batch

T = TypeVar("T")
R = TypeVar("R")

CHUNK_MAX = 16
"""Most images sent to a worker at once."""

SERIAL_BELOW = 8
"""With the default number of workers, batches of fewer images than this run in this process: starting
workers (a fork server that imports the package and loads the compiled kernels) costs a second or two,
more than comparing a handful of images."""


def default_workers() -> int:
    """The CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def plan(total: int, workers: int | None) -> tuple[int, int]:
    """``(chunk size, workers)`` for ``total`` images.

    ``workers=None`` means one per CPU, except for batches under :data:`SERIAL_BELOW` images; a batch that
    fits in one chunk never starts a pool. Raises :class:`qa.errors.ConfigError` when ``workers < 1``.
    """
    chosen = default_workers() if workers is None else int(workers)
    if chosen < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if workers is None and total < SERIAL_BELOW:
        chosen = 1
    size = max(1, min(CHUNK_MAX, math.ceil(total / max(1, chosen * 4))))
    if total <= size:
        chosen = 1  # one chunk: a pool would only add start-up time
    return size, chosen


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def pool_context():
    """A fork server that preloads the package and its kernels once (spawn where there is none)."""
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["qa.engine._preload"])
        return ctx
    return mp.get_context("spawn")


def run_chunks(work: Callable[..., R], chunked: Iterable[list], cfg, workers: int) -> Iterator[R]:
    """``work(chunk, cfg)`` for each chunk, in order; with ``workers > 1`` in a process pool with at most
    ``2 * workers`` chunks in flight (``work`` must be a module-level function)."""
    if workers <= 1:
        for chunk in chunked:
            yield work(chunk, cfg)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=pool_context()) as pool:
        pending: deque = deque()
        for chunk in chunked:
            pending.append(pool.submit(work, chunk, cfg))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def batch_chunks(batch: "Batch", chunks: Iterable[list[str]]) -> Iterator["Batch"]:
    """For each list of image keys in ``chunks``, the batch narrowed to those images: every annotator
    kept, each export holding the objects, images and id maps of the chunk only (objects in export
    order within an image, which is their drawing order), no findings. The objects are shared, not
    copied; a narrowed batch pickles to a worker with the chunk's objects only."""
    from dataclasses import replace

    grouped = {}
    for name, export in batch.exports.items():
        per_image: dict[str, list] = {}
        for obj in export.objects:
            per_image.setdefault(obj.image, []).append(obj)
        grouped[name] = per_image
    for keys in chunks:
        exports = {}
        for name, export in batch.exports.items():
            per_image = grouped[name]
            exports[name] = replace(
                export, findings=[],
                images={k: export.images[k] for k in keys if k in export.images},
                objects=[o for k in keys for o in per_image.get(k, ())],
                id_maps={k: export.id_maps[k] for k in keys if k in export.id_maps})
        yield replace(batch, exports=exports, findings=[], images={k: batch.images[k] for k in keys},
                      coverage={k: batch.coverage[k] for k in keys if k in batch.coverage})
