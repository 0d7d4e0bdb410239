"""What one task receives: a chunk of images, and how to get their objects.

A per-image task is given a :class:`Chunk` and calls ``chunk.load()`` first, in the worker: the batch
narrowed to the chunk's images (every annotator; each export holding only these images, their objects
in export order, their id maps, and in ``Export.ordinals`` each object's position in the whole export;
no batch-level findings). The task never touches anything else of the batch, and never relies on its
objects being the main process's own (a streamed chunk reads them again in the worker).

- :class:`InMemoryChunk`: the narrowed batch itself, pickled to the worker with its objects (a batch
  loaded whole, :func:`qa.load`).

:func:`chunks_of` yields one per list of image keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Protocol

if TYPE_CHECKING:
    from qa.model import Batch


class Chunk(Protocol):
    """What one task receives: which images, and how to get their objects."""

    keys: tuple[str, ...]

    def load(self) -> "Batch":
        """The batch narrowed to these images; called inside the worker."""


@dataclass(frozen=True)
class InMemoryChunk:
    """The narrowed batch, pickled to the worker with its objects."""

    keys: tuple[str, ...]
    batch: "Batch"

    def load(self) -> "Batch":
        return self.batch


def chunks_of(batch: "Batch", chunks: Iterable[list[str]]) -> Iterator[Chunk]:
    """A :class:`Chunk` for each list of image keys in ``chunks``
    (:func:`qa.engine._pool.batch_chunks`)."""
    from qa.engine._pool import batch_chunks

    chunks = [list(keys) for keys in chunks]
    for keys, narrowed in zip(chunks, batch_chunks(batch, chunks)):
        yield InMemoryChunk(tuple(keys), narrowed)
