"""Read XML exports safely and as a stream.

:func:`iterparse` refuses documents with a ``<!DOCTYPE`` or ``<!ENTITY`` declaration (no entity
expansion, no external resources: a DTD can only sit in the prolog, before the root element, so the
prolog is checked before parsing starts) and turns syntax errors into :class:`~qa.errors.InputError`
naming the file, line and column. :func:`sniff_root` looks at the first few kilobytes only.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from qa.errors import InputError

_PROLOG_LIMIT = 1 << 20
"""How far the prolog (XML declaration, comments, processing instructions) may run before the root."""

_ROOT_START = re.compile(rb"<([A-Za-z_][\w.\-:]*)")


def _prolog(head: bytes) -> tuple[bytes, str | None]:
    """The bytes before the root element and the root's tag (None when not found in ``head``).

    Declarations (``<!DOCTYPE ... [ ... ]>``) are part of the prolog and are skipped over.
    """
    pos = 0
    while True:
        lt = head.find(b"<", pos)
        if lt < 0:
            return head, None
        if head.startswith(b"<?", lt):
            end, skip = head.find(b"?>", lt), 2
        elif head.startswith(b"<!--", lt):
            end, skip = head.find(b"-->", lt), 3
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


def _declaration(head: bytes) -> str | None:
    prolog, _ = _prolog(_as_utf8(head))
    for word in (b"<!DOCTYPE", b"<!ENTITY"):
        if word in prolog.upper():
            return word.decode()
    return None


def read_head(path: Path, size: int = 4096) -> bytes:
    """The first ``size`` bytes of a file, or b"" when it cannot be read (for sniffing)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return b""


def sniff_root(path: Path) -> tuple[str | None, bytes]:
    """The root element's tag from the first 4 KB of a file, and those bytes; never raises."""
    head = _as_utf8(read_head(path))
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    _, root = _prolog(head)
    return root, head


def iterparse(path: Path, events=("start", "end")):
    """Stream ``(event, element)`` pairs from an XML file; see the module docstring.

    Raises
    ------
    InputError
        When the file cannot be opened, declares a DTD or entities, or is not well-formed XML.
    """
    path = Path(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror}", path=path) from None
    with fh:
        head = fh.read(_PROLOG_LIMIT)
        word = _declaration(head)
        if word is not None:
            raise InputError(f"XML with a {word} declaration is refused (entities and DTDs are not "
                             "expanded); remove the declaration", path=path)
        fh.seek(0)
        try:
            for event, elem in ET.iterparse(fh, events=events):
                yield event, elem
        except ET.ParseError as exc:
            line, column = getattr(exc, "position", (None, None))
            reason = str(exc).split(":")[0]
            raise InputError(f"invalid XML at line {line} column {column}: {reason}", path=path) from None
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", path=path) from None


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
