"""Read XML exports safely and as a stream.

:func:`iterparse` parses with defusedxml, whose expat handlers refuse a document type declaration
(``<!DOCTYPE``), entity declarations and external references wherever they appear, so no entity is
ever expanded and nothing outside the file is read. Syntax errors, refused declarations and unknown
encodings become :class:`~qa.errors.InputError` naming the file (and the line and column where expat
gives them). :func:`sniff_root` looks at the first few kilobytes only, to tell formats apart; it never
parses and never expands anything.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from pathlib import Path

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse as _defused_iterparse

from qa.errors import InputError
from qa.formats._safe import open_regular

_ROOT_START = re.compile(rb"<([A-Za-z_][\w.\-:]*)")


def _prolog(head: bytes) -> tuple[bytes, str | None]:
    """The bytes before the root element and the root's tag (None when not found in ``head``).

    Declarations (``<!DOCTYPE ... [ ... ]>``) are part of the prolog and are skipped over. Used to
    sniff the format only: whether a document is safe to read is decided by the parser.

    Examples
    --------
    >>> _prolog(b'<?xml version="1.0"?><!-- c --><annotations>')[1]
    'annotations'
    >>> _prolog(b"<!--> <annotations> --><other>")[1]  # "<!-->" does not end the comment
    'other'
    """
    pos = 0
    while True:
        lt = head.find(b"<", pos)
        if lt < 0:
            return head, None
        if head.startswith(b"<?", lt):
            end, skip = head.find(b"?>", lt + 2), 2
        elif head.startswith(b"<!--", lt):
            end, skip = head.find(b"-->", lt + 4), 3
        elif head.startswith(b"<!", lt):  # a declaration, with or without an internal subset [...]
            bracket, close = head.find(b"[", lt), head.find(b">", lt)
            if 0 <= bracket < close:
                close_bracket = head.find(b"]", bracket)
                close = head.find(b">", close_bracket) if close_bracket >= 0 else -1
            end, skip = close, 1
        else:
            m = _ROOT_START.match(head, lt)
            return head[:lt], (m.group(1).decode("ascii", "replace") if m else None)
        if end < 0:
            return head, None
        pos = end + skip


def _as_utf8(head: bytes) -> bytes:
    """UTF-16 heads (with a byte-order mark) re-encoded so the byte patterns below apply."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head[: len(head) // 2 * 2].decode("utf-16", "replace").encode("utf-8")
    return head


def read_head(path: Path, size: int = 4096) -> bytes:
    """The first ``size`` bytes of a file, or b"" when it cannot be read (for sniffing)."""
    try:
        with open_regular(path) as fh:
            return fh.read(size)
    except (OSError, InputError):
        return b""


def sniff_root(path: Path) -> tuple[str | None, bytes]:
    """The root element's tag from the first 4 KB of a file, and those bytes; never raises."""
    head = _as_utf8(read_head(path))
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    _, root = _prolog(head)
    return root, head


@contextmanager
def _xml_errors(path):
    """Turn what reading and parsing a hostile or broken XML file raise into one-line errors naming it."""
    try:
        yield
    except DefusedXmlException as exc:
        word = "DOCTYPE" if type(exc).__name__ == "DTDForbidden" else "ENTITY"
        raise InputError(f"XML with a {word} declaration is refused (entities and DTDs are not "
                         "expanded); remove the declaration", path=path) from None
    except ET.ParseError as exc:
        line, column = getattr(exc, "position", (None, None))
        reason = str(exc).split(":")[0]
        raise InputError(f"invalid XML at line {line} column {column}: {reason}", path=path) from None
    except LookupError as exc:  # expat asks Python for an encoding named in the XML declaration
        raise InputError(f"the XML declaration names an unknown encoding ({exc}); save the file as UTF-8",
                         path=path) from None
    except ValueError as exc:  # "multi-byte encodings are not supported" (expat)
        raise InputError(f"cannot read the XML: {exc}; save the file as UTF-8", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=path) from None


def iterparse(path: Path, events=("start", "end")):
    """Stream ``(event, element)`` pairs from an XML file; see the module docstring.

    Raises
    ------
    InputError
        When the file cannot be opened or read, declares a DTD or entities, names an encoding Python
        does not know (or a multi-byte one expat cannot read), or is not well-formed XML.
    """
    from qa.formats._location import location

    path = location(path)
    fh = open_regular(path)
    with fh:
        with _xml_errors(path):
            for event, elem in _defused_iterparse(fh, events=events, forbid_dtd=True, forbid_entities=True,
                                                  forbid_external=True):
                yield event, elem


class _Target(ET.TreeBuilder):
    """Builds the tree and notes each event with the byte where expat saw it."""

    def __init__(self):
        super().__init__()
        self.expat = None
        self.events: list = []

    def start(self, tag, attrs):
        elem = super().start(tag, attrs)
        self.events.append(("start", elem, self.expat.CurrentByteIndex))
        return elem

    def end(self, tag):
        elem = super().end(tag)
        self.events.append(("end", elem, self.expat.CurrentByteIndex))
        return elem


def _tag_end(data: bytes, at: int) -> int:
    """The offset just past the ``>`` closing the tag that starts at ``data[at]`` (quotes respected)."""
    quote = None
    for k in range(at, len(data)):
        c = data[k]
        if quote is not None:
            if c == quote:
                quote = None
        elif c in (34, 39):
            quote = c
        elif c == 62:
            return k + 1
    return -1


def iterparse_spans(path: Path, *, block: int = 1 << 20):
    """:func:`iterparse`'s ``(event, element)`` pairs with, for the end of a child of the root, the byte
    span ``(start, end)`` of that child in the file (None for other events): ``(event, element, span)``.

    Parsed by defusedxml's expat parser (a DOCTYPE or entity declaration is refused, as by
    :func:`iterparse`, with the same errors), fed a block at a time; only the current child of the root
    is kept in memory (the caller clears the root as it goes).
    """
    from defusedxml.ElementTree import DefusedXMLParser

    from qa.formats._location import location

    path = location(path)
    target = _Target()
    parser = DefusedXMLParser(target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    target.expat = parser.parser
    fh = open_regular(path)
    kept = bytearray()
    kept_from = 0
    pos = 0
    depth = 0
    child_start = 0
    with fh:
        with _xml_errors(path):
            while True:
                data = fh.read(block)
                kept += data
                if data:
                    parser.feed(data)
                else:
                    parser.close()
                pos += len(data)
                for event, elem, at in target.events:
                    span = None
                    if event == "start":
                        depth += 1
                        if depth == 2:
                            child_start = at
                    else:
                        depth -= 1
                        if depth == 1:
                            end = _tag_end(kept, at - kept_from)
                            span = (child_start, end + kept_from)
                    yield event, elem, span
                target.events = []
                need = child_start if depth >= 2 else pos
                if need > kept_from:
                    del kept[:need - kept_from]
                    kept_from = need
                if not data:
                    break


def fragment(prolog: bytes, data: bytes) -> ET.Element:
    """One element from its bytes (``data``, a span :func:`iterparse_spans` gave), read as the file read
    it: after the file's XML declaration (``prolog``), by defusedxml."""
    from defusedxml.ElementTree import fromstring

    return fromstring(prolog + data, forbid_dtd=True, forbid_entities=True, forbid_external=True)


def declaration(head: bytes) -> bytes | None:
    """The XML declaration (``<?xml ...?>``) at the start of ``head``, b"" when there is none, or None
    when the bytes are not ASCII-compatible (UTF-16: a span cannot be read on its own)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(head) > 1 and head[1:2] == b"\x00"):
        return None
    start = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    if not head.startswith(b"<?xml", start):
        return b""
    end = head.find(b"?>", start)
    return head[start:end + 2] if end >= 0 else None


def parse(path: Path) -> ET.Element:
    """The whole document's root element (for small files such as one LabelMe XML per image)."""
    root = None
    for event, elem in iterparse(path, events=("start",)):
        if root is None:
            root = elem
    if root is None:  # pragma: no cover - expat reports an empty document as a ParseError
        raise InputError("empty XML document", path=path)
    return root


def text(elem: ET.Element | None, child: str, default: str = "") -> str:
    """The stripped text of ``elem/child``, or ``default``."""
    if elem is None:
        return default
    found = elem.find(child)
    if found is None or found.text is None:
        return default
    return found.text.strip()
