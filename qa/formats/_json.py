"""Read a JSON export once, for both format detection and loading."""

from __future__ import annotations

import json
import os
from pathlib import Path

from qa.errors import InputError

_last: tuple[tuple, object] | None = None  # ((path, size, mtime), document): detect then load reads once


def read_json(path: Path):
    """Parse a JSON file, raising :class:`InputError` with the line and column of a syntax error."""
    global _last
    path = Path(path)
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror}", path=path) from None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if _last is not None and _last[0] == key:
        return _last[1]
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", path=path) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", path=path) from None
    except RecursionError:
        raise InputError("invalid JSON: nested too deeply", path=path) from None
    _last = (key, document)
    return document


def sniff_json(path: Path):
    """The parsed document of a ``.json`` file, for a loader's ``sniff``; None when ``path`` is not a
    ``.json`` file or cannot be read or parsed (the loader's ``read`` then reports why)."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() != ".json":
        return None
    try:
        return read_json(path)
    except InputError:
        return None
