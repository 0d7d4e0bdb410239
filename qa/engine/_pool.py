"""Spreading per-image work over worker processes, chunk by chunk, results in order.

The instance engine (:mod:`qa.engine.compare`), the label-map engine (:mod:`qa.engine.semantic`), the
rules (:mod:`qa.rules.check`), pixel alpha and the consensus (:mod:`qa.analytics`) cut their images into
chunks, send each chunk to a worker and read the results back in order with a bounded number of chunks
in flight, so the memory of the work never depends on the size of the batch. The chunks go to the run's
executor (:mod:`qa.engine._executors`: this process, the local pool or a Dask cluster). A chunk is either
a list of compact per-image tasks or the batch narrowed to the chunk's images (:func:`batch_chunks`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, TypeVar

from qa.errors import ConfigError

if TYPE_CHECKING:
    from qa.engine._executors import Executor
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
    from qa.engine._executors import default_workers as cpus

    return cpus()


def plan(total: int, workers: int | None, executor: "Executor | None" = None) -> tuple[int, int]:
    """``(chunk size, workers)`` for ``total`` images.

    ``workers=None`` means one per CPU, except for batches under :data:`SERIAL_BELOW` images; a batch that
    fits in one chunk never starts a pool. With an ``executor`` (:mod:`qa.engine._executors`) its own
    number of workers is used and ``workers`` is ignored; a cluster gets even a one-chunk batch.
    Raises :class:`qa.errors.ConfigError` when ``workers < 1``.
    """
    if executor is not None:
        workers = executor.workers if executor.explicit else None
        inline = executor.inline_small
        chosen = executor.workers
    else:
        inline = True
        chosen = default_workers() if workers is None else int(workers)
    if chosen < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if workers is None and total < SERIAL_BELOW and inline:
        chosen = 1
    size = max(1, min(CHUNK_MAX, math.ceil(total / max(1, chosen * 4))))
    if total <= size and inline:
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


def run_chunks(work: Callable[..., R], chunked: Iterable[list], cfg, workers: int,
               executor: "Executor | None" = None) -> Iterator[R]:
    """``work(chunk, cfg)`` for each chunk, in order (``work`` must be a module-level function).

    With an ``executor`` (the run's, :func:`qa.engine._executors.open_executor`) the chunks go to it, except
    that a local one given ``workers <= 1`` by :func:`plan` keeps them in this process. Without one,
    ``workers > 1`` starts a local pool for this call only; either way at most ``2 * workers`` chunks are
    in flight.
    """
    if executor is not None and not (executor.inline_small and workers <= 1):
        yield from executor.map_chunks(work, chunked, cfg)
        return
    if workers <= 1:
        for chunk in chunked:
            yield work(chunk, cfg)
        return
    from qa.engine._executors import LocalPool

    with LocalPool(workers) as pool:
        yield from pool.map_chunks(work, chunked, cfg)


def on_executor(work: Callable[..., R], items: Iterable, cfg, executor: "Executor | None") -> Iterator[R]:
    """``work(item, cfg)`` for each item, in order: on the run's ``executor`` when there is one (all its
    workers), else in this process (:func:`run_chunks` with one worker)."""
    return run_chunks(work, items, cfg, 1 if executor is None else executor.workers, executor)


def batch_chunks(batch: "Batch", chunks: Iterable[list[str]]) -> Iterator["Batch"]:
    """For each list of image keys in ``chunks``, the batch narrowed to those images: every annotator
    kept, each export holding the objects, images and id maps of the chunk only (objects in export
    order within an image, which is their drawing order), no findings, and each object's position in the
    whole export (``Export.ordinals``). The objects are shared, not copied; a narrowed batch pickles to a
    worker with the chunk's objects only."""
    from dataclasses import replace

    import numpy as np

    grouped = {}
    for name, export in batch.exports.items():
        per_image: dict[str, list] = {}
        positions = export.positions().tolist()
        for obj, position in zip(export.objects, positions):
            per_image.setdefault(obj.image, []).append((obj, position))
        grouped[name] = per_image
    for keys in chunks:
        exports = {}
        for name, export in batch.exports.items():
            per_image = grouped[name]
            pairs = [p for k in keys for p in per_image.get(k, ())]
            exports[name] = replace(
                export, findings=[],
                images={k: export.images[k] for k in keys if k in export.images},
                objects=[o for o, _ in pairs],
                id_maps={k: export.id_maps[k] for k in keys if k in export.id_maps},
                ordinals=np.fromiter((p for _, p in pairs), dtype=np.int64, count=len(pairs)))
        yield replace(batch, exports=exports, findings=[], images={k: batch.images[k] for k in keys},
                      coverage={k: batch.coverage[k] for k in keys if k in batch.coverage})
