"""A JSON export as a reader sees it: its top-level values, and its lists one element at a time.

:class:`Whole` wraps a document parsed whole (:func:`qa.formats._json.read_json`); :class:`Streamed` reads
the file through :mod:`qa.formats._jsonscan`, one element at a time, and gives each element's byte span,
so an index can say where it was. Both raise the same :class:`~qa.errors.InputError` for a missing or
mistyped top-level list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from qa.errors import InputError
from qa.formats import _jsonscan


class Whole:
    """A parsed document."""

    def __init__(self, doc, path):
        self.doc = doc
        self.path = path

    @property
    def kind(self) -> str:
        """``dict``, ``list``, or the Python name of another top-level value."""
        return type(self.doc).__name__

    def has(self, key: str) -> bool:
        return key in self.doc

    def type_of(self, key: str) -> str:
        return type(self.doc[key]).__name__

    def get(self, key: str, default=None):
        return self.doc.get(key, default)

    def require_list(self, key: str) -> None:
        """Raise the COCO reader's error when ``key`` is missing or not a list."""
        if not self.has(key):
            raise InputError(f"missing top-level key {key!r}; is this a COCO export?", path=self.path)
        kind = self.type_of(key)
        if kind != "list":
            raise InputError(f"top-level {key!r} is {kind}, expected a list", path=self.path)

    def items(self, key: str | None = None) -> Iterator[tuple[int, tuple[int, int] | None, object]]:
        """``(index, span, element)`` of the list ``key`` (the top-level list when None); no spans."""
        values = self.doc if key is None else self.doc[key]
        for index, raw in enumerate(values):
            yield index, None, raw

    def element(self, span):
        raise TypeError("a whole document has no element spans")


class Streamed(Whole):
    """A document read a piece at a time from an open binary file (see :mod:`qa.formats._jsonscan`)."""

    def __init__(self, fh, path):
        self.fh = fh
        self.path = path
        self._kind = _jsonscan.root_kind(fh)
        if self._kind is None:
            raise _jsonscan.Broken("top level is not an object or a list")
        self.outline = _jsonscan.outline(fh) if self._kind == "object" else None

    @classmethod
    def outlined(cls, fh, path, outline: "_jsonscan.Outline") -> "Streamed":
        """An object file whose :class:`~qa.formats._jsonscan.Outline` is known already (not scanned again)."""
        document = cls.__new__(cls)
        document.fh, document.path, document._kind, document.outline = fh, path, "object", outline
        return document

    @property
    def kind(self) -> str:
        return "dict" if self._kind == "object" else "list"

    def has(self, key: str) -> bool:
        return self.outline is not None and key in self.outline.members

    def type_of(self, key: str) -> str:
        return self.outline.kind(self.fh, key)

    def get(self, key: str, default=None):
        if not self.has(key):
            return default
        return _jsonscan.value(self.fh, self.outline.members[key])

    def items(self, key: str | None = None):
        span = (0, None) if key is None else self.outline.members[key]
        return _jsonscan.elements(self.fh, span)

    def element(self, span: tuple[int, int]):
        """The element at ``span``, parsed."""
        return _jsonscan.value(self.fh, span)


def check_members(document: Whole, keys) -> None:
    """Parse the top-level members a reader does not read (``info``, ``licenses``, ...) so that a syntax
    error anywhere in a streamed file is found, as a whole-file parse finds it; nothing is kept."""
    if not isinstance(document, Streamed) or document.outline is None:
        return
    for key, span in document.outline.members.items():
        if key in keys:
            continue
        document.fh.seek(span[0])
        if document.fh.read(1) == b"[":
            for _ in _jsonscan.elements(document.fh, span):
                pass
        else:
            _jsonscan.value(document.fh, span)


def open_document(path: Path, *, streamed: bool, opener=None) -> Whole:
    """The document of ``path``: parsed whole, or :class:`Streamed` over the file ``opener(path)`` opens
    (:func:`qa.formats._safe.open_regular` by default). The streamed file is closed with
    :func:`close_document`."""
    if not streamed:
        from qa.formats._json import read_json

        return Whole(read_json(path), path)
    if opener is None:
        from qa.formats._safe import open_regular

        opener = open_regular
    fh = opener(path)
    try:
        return Streamed(fh, path)
    except BaseException:
        fh.close()
        raise


def close_document(document: Whole) -> None:
    if isinstance(document, Streamed):
        document.fh.close()
