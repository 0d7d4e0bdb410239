"""Sequences kept as pickled blocks instead of Python objects: a run's objects without their geometry
(:class:`PackedObjects`, :mod:`qa.task`) and its rule violations (:mod:`qa.rules.violations`).

A Python object with its attributes takes hundreds of bytes; pickled in blocks of a chunk's worth, the
same values take tens, and in a file of the run's folder (:class:`FileBlocks`) none of the main
process's memory. A block is unpickled when one of its items is read.
"""

from __future__ import annotations


class FileBlocks:
    """Byte blocks appended to one file, read back by number (``len``, ``[b]``, iteration): where a run keeps
    its pickled blocks (:class:`PackedObjects`) out of memory. Pickles as the list of its blocks,
    so a copy sent elsewhere needs no file; ``owner`` keeps the file's folder alive."""

    __slots__ = ("path", "offsets", "lengths", "owner", "_end")

    def __init__(self, path, owner=None):
        self.path = path
        self.offsets: list = []
        self.lengths: list = []
        self.owner = owner
        self._end = 0

    @classmethod
    def create(cls, path, owner=None) -> "FileBlocks":
        """An empty file of blocks at ``path`` (its folder made)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        return cls(path, owner)

    def append(self, block: bytes) -> None:
        with open(self.path, "ab") as f:  # opened per block: a run that fails leaves no file open
            f.write(block)
        self.offsets.append(self._end)
        self.lengths.append(len(block))
        self._end += len(block)

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, b: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(self.offsets[b])
            return f.read(self.lengths[b])

    def __iter__(self):
        with open(self.path, "rb") as f:
            for offset, length in zip(self.offsets, self.lengths):
                f.seek(offset)
                yield f.read(length)

    def __reduce__(self):
        return list, (list(self),)


class Reordered:
    """A sequence of blocks read in another order (``len``, ``[b]``, iteration); pickles as the list of its
    blocks in that order, as :class:`FileBlocks` does."""

    __slots__ = ("blocks", "order")

    def __init__(self, blocks, order: list):
        self.blocks = blocks
        self.order = order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, b: int) -> bytes:
        return self.blocks[self.order[b]]

    def __iter__(self):
        return (self.blocks[b] for b in self.order)

    def __reduce__(self):
        return list, (list(self),)


class PackedObjects:
    """A read-only sequence of objects kept as pickled blocks, unpickled when read: ``len``, iteration,
    ``[k]`` and slices give equal objects (the same values; a new ``Object`` at each read, so changes to
    one are not kept). A streamed run's exports hold their objects so (:func:`qa.task.map_reduce`), which
    keeps the main process's memory small where a list of ``Object`` s would take hundreds of bytes per
    object; with the run's folder the blocks are in a file there (:class:`FileBlocks`), read as they are
    needed. :class:`qa.rules.violations.PackedFindings` reads a run's violations through one.
    """

    __slots__ = ("_blocks", "_starts", "_cached", "_images")

    def __init__(self, blocks: list, counts: list, images: list | None = None):
        import numpy as np

        self._blocks = blocks
        self._images = images  # each block's image keys, so one image's objects unpickle its blocks only
        self._starts = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=self._starts[1:])
        self._cached = (-1, None)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _block(self, b: int) -> list:
        import pickle

        if self._cached[0] != b:
            self._cached = (b, pickle.loads(self._blocks[b]))
        return self._cached[1]

    def __getitem__(self, k):
        import numpy as np

        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        k = int(k)  # numpy integers too
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError("object index out of range")
        b = int(np.searchsorted(self._starts, k, side="right")) - 1
        return self._block(b)[k - int(self._starts[b])]

    def __iter__(self):
        import pickle

        for block in self._blocks:
            yield from pickle.loads(block)

    def __bool__(self) -> bool:
        return len(self) > 0

    def take(self, indices) -> list:
        """The objects at ``indices`` (in that order, any order), each block that holds one unpickled once."""
        import numpy as np

        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        indices = np.where(indices < 0, indices + len(self), indices)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError("object index out of range")
        blocks = np.searchsorted(self._starts, indices, side="right") - 1
        out = [None] * len(indices)
        for b in np.unique(blocks):
            objects, start = self._block(int(b)), int(self._starts[b])
            for k in np.flatnonzero(blocks == b):
                out[k] = objects[int(indices[k]) - start]
        return out

    def of_image(self, key: str) -> list:
        """The objects of image ``key``, in order, unpickling only the blocks that hold it."""
        if self._images is None:
            return [o for o in self if o.image == key]
        return [o for b, keys in enumerate(self._images) if key in keys for o in self._block(b) if o.image == key]

    def __repr__(self) -> str:
        return f"PackedObjects({len(self)} objects in {len(self._blocks)} blocks)"
