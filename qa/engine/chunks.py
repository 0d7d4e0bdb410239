"""What one task receives: a chunk of images, and how to get their objects.

A per-image task is given a :class:`Chunk` and calls ``chunk.load()`` first, in the worker: the batch
narrowed to the chunk's images (every annotator; each export holding only these images, their objects
in export order, their id maps, and in ``Export.ordinals`` each object's position in the whole export;
no batch-level findings). The task never touches anything else of the batch, and never relies on its
objects being the main process's own (a streamed chunk reads them again in the worker). Two kinds:

- :class:`InMemoryChunk`: the narrowed batch itself, pickled to the worker with its objects (a batch
  loaded whole, :func:`qa.load`).
- :class:`IndexedChunk`: where the chunk's objects are in the exports (byte spans, files) and the
  alignment the main process decided; its ``load()`` reads those objects, through the readers' own code,
  from the export files (:mod:`qa.formats._index`), so the main process never holds them. The objects are
  equal to a whole load's, with the same :class:`~qa.model.Source`, in the same order, and each
  narrowed export's ``ordinals`` gives every object's position in the whole export.

:func:`chunks_of` yields the one or the other, whichever the batch is (:attr:`qa.model.Batch.index`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Iterable, Iterator, Protocol

if TYPE_CHECKING:
    from qa.formats._index import SourceIndex, SourcePart
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


@dataclass(frozen=True)
class IndexedChunk:
    """A chunk of a streamed batch: its images' places in the exports (see the module docstring).

    ``shell`` is the batch narrowed to the chunk's images with no objects; ``parts`` each export file's
    share of the chunk; ``aliases`` the category names the alignment rewrote; ``rekeyed`` per annotator
    ``{key as the reader named it: key in the batch}`` where the alignment paired images by base name or
    file stem.
    """

    keys: tuple[str, ...]
    shell: "Batch"
    parts: tuple["SourcePart", ...]
    aliases: dict = field(default_factory=dict)
    rekeyed: dict = field(default_factory=dict)

    def load(self) -> "Batch":
        exports = {name: copy.copy(e) for name, e in self.shell.exports.items()}
        for part in self.parts:
            for read in part.load():
                target = exports[read.annotator]
                rekey = self.rekeyed.get(read.annotator, {})
                for obj in read.objects:
                    obj.category = self.aliases.get(obj.category, obj.category)
                    obj.image = rekey.get(obj.image, obj.image)
                target.objects = read.objects
                target.ordinals = read.ordinals
        return replace(self.shell, exports=exports)


@dataclass
class BatchIndex:
    """A streamed batch's index: each export file's :class:`~qa.formats._index.SourceIndex`, and how the
    alignment renamed categories and images (see :class:`IndexedChunk`)."""

    sources: list["SourceIndex"]
    owner: dict[str, int]
    rekeyed: dict[str, dict[str, str]]
    aliases: dict[str, str]

    @classmethod
    def before_alignment(cls, sources: list["SourceIndex"]) -> "BatchIndex":
        """Note each export's image keys before :func:`qa.align.align` may re-key them; call
        :meth:`after_alignment` once it has."""
        index = cls(sources=sources, owner={}, rekeyed={}, aliases={})
        index._raw = {id(e): list(e.images.items()) for s in sources for e in s.exports}
        return index

    def after_alignment(self, batch: "Batch") -> "BatchIndex":
        for number, source in enumerate(self.sources):
            for export in source.exports:
                self.owner[export.annotator] = number
                # the alignment re-keys an image in place (its Image keeps its identity, its key changes)
                renamed = {raw: image.key for raw, image in self._raw[id(export)]}
                if any(raw != key for raw, key in renamed.items()):  # paired by base name or file stem
                    self.rekeyed[export.annotator] = renamed
        del self._raw
        self.aliases = dict(batch.aliases)
        return self

    @property
    def nbytes(self) -> int:
        """Bytes of the run tables (the part of the index that grows with the objects)."""
        return sum(s.nbytes for s in self.sources)

    def chunk(self, batch: "Batch", keys: Iterable[str]) -> IndexedChunk:
        """The :class:`IndexedChunk` of ``keys`` (image keys of ``batch``)."""
        keys = tuple(keys)
        shell_exports = {}
        for name, export in batch.exports.items():
            shell_exports[name] = replace(export, findings=[], objects=[], census=None,
                                          images={k: export.images[k] for k in keys if k in export.images},
                                          id_maps={k: export.id_maps[k] for k in keys if k in export.id_maps})
        shell = replace(batch, exports=shell_exports, findings=[], index=None,
                        images={k: batch.images[k] for k in keys},
                        coverage={k: batch.coverage[k] for k in keys if k in batch.coverage})
        parts = []
        rekeyed = {}
        for number, source in enumerate(self.sources):
            wanted = {}
            for export in source.exports:
                back = self.rekeyed.get(export.annotator)
                if back is None:
                    wanted[export.annotator] = [(k, k) for k in keys if k in export.images]
                else:
                    forward = {key: raw for raw, key in back.items()}
                    wanted[export.annotator] = [(forward[k], k) for k in keys if k in export.images]
                    rekeyed[export.annotator] = {raw: k for raw, k in wanted[export.annotator]}
            parts.append(source.part(wanted))
        return IndexedChunk(keys=keys, shell=shell, parts=tuple(parts), aliases=self.aliases, rekeyed=rekeyed)


def chunks_of(batch: "Batch", chunks: Iterable[list[str]]) -> Iterator[Chunk]:
    """A :class:`Chunk` for each list of image keys in ``chunks``: indexed when the batch is streamed
    (``batch.index``), in memory otherwise (:func:`qa.engine._pool.batch_chunks`)."""
    if batch.index is None:
        from qa.engine._pool import batch_chunks

        chunks = [list(keys) for keys in chunks]
        for keys, narrowed in zip(chunks, batch_chunks(batch, chunks)):
            yield InMemoryChunk(tuple(keys), narrowed)
        return
    for keys in chunks:
        yield batch.index.chunk(batch, keys)


MATERIALISE_CHUNK = 256
"""Images per chunk read when a streamed batch is loaded whole (:func:`materialise`)."""


def materialise(batch: "Batch") -> "Batch":
    """A streamed batch loaded whole: every export's objects read from its index, in export order, so the
    batch equals the one a whole load (:func:`qa.load`) gives. A batch held in memory is returned as it is.
    """
    if batch.index is None:
        return batch
    from qa.engine._pool import chunks as cut

    gathered: dict[str, list] = {name: [] for name in batch.exports}
    for chunk in chunks_of(batch, cut(list(batch.images), MATERIALISE_CHUNK)):
        narrowed = chunk.load()
        for name, export in narrowed.exports.items():
            gathered[name].extend(zip(export.ordinals.tolist(), export.objects))
    exports = {}
    for name, export in batch.exports.items():
        objects = [obj for _ordinal, obj in sorted(gathered[name], key=lambda item: item[0])]
        exports[name] = replace(export, objects=objects, census=None, ordinals=None)
    return replace(batch, exports=exports, index=None)


def with_geometry(batch: "Batch", keys: Iterable[str]) -> "Batch":
    """The batch with the objects of the images ``keys`` read again with their geometry, the others as
    they are: for a streamed batch whose objects came back from the run's pass without it
    (:func:`qa.task.bare_objects`), before a few of its images are drawn. A batch held whole is returned
    as it is. Each export's objects become a :class:`WithGeometry` over the ones it had: the objects
    are not copied (a list of every object, with the report's read of the whole ``object_pairs``, took
    630 MB of the ``qa run`` command's peak at 10,000 images)."""
    if batch.index is None:
        return batch
    keys = [k for k in dict.fromkeys(keys) if k in batch.images]
    if not keys:
        return batch
    narrowed = next(chunks_of(batch, [keys])).load()
    exports = {}
    for name, export in batch.exports.items():
        part = narrowed.exports[name]
        exports[name] = replace(export, objects=WithGeometry(export.objects, part.positions().tolist(), part.objects))
    return replace(batch, exports=exports)


class WithGeometry(Sequence):
    """An export's objects with those at some positions replaced (``len``, ``[k]``, slices, iteration,
    :meth:`take` and :meth:`of_image`, as :class:`qa.pickled.PackedObjects` reads them): the few images
    read again with their geometry over the many without it, none of which is copied."""

    def __init__(self, objects, positions: list[int], replacements: list):
        self.objects = objects
        self.replaced = dict(zip(positions, replacements))
        self.images: dict = {}  # the replaced objects of each image, in export order
        for position in sorted(self.replaced):
            self.images.setdefault(self.replaced[position].image, []).append(self.replaced[position])

    def __len__(self) -> int:
        return len(self.objects)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        k = int(k)
        position = k + len(self) if k < 0 else k
        return self.replaced[position] if position in self.replaced else self.objects[k]

    def __iter__(self):
        for position, obj in enumerate(self.objects):
            yield self.replaced.get(position, obj)

    def take(self, indices) -> list:
        """The objects at ``indices``, in that order."""
        import numpy as np

        indices = [int(k) + len(self) if k < 0 else int(k) for k in np.asarray(indices, dtype=np.int64).reshape(-1)]
        base = [k for k in indices if k not in self.replaced]
        found = dict(zip(base, self.objects.take(base) if hasattr(self.objects, "take")
                         else [self.objects[k] for k in base]))
        return [self.replaced[k] if k in self.replaced else found[k] for k in indices]

    def of_image(self, key: str) -> list:
        """The objects of image ``key``, in export order."""
        if key in self.images:
            return list(self.images[key])
        if hasattr(self.objects, "of_image"):
            return self.objects.of_image(key)
        return [o for o in self.objects if o.image == key]
