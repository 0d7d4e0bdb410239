"""Read a JSON export once, for both format detection and loading."""

from __future__ import annotations

import json
import os
from pathlib import Path

from qa.errors import InputError
from qa.formats._safe import is_regular, open_regular

_last: tuple[tuple, object] | None = None  # ((path, size, mtime), document): detect then load reads once


def read_json(path: Path):
    """Parse a JSON file, raising :class:`InputError` with the line and column of a syntax error."""
    global _last
    from qa.formats._location import Url, location

    path = location(path)
    try:
        stat = path.stat() if isinstance(path, Url) else os.stat(path)
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror or exc}", path=path) from None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if _last is not None and _last[0] == key:
        return _last[1]
    try:
        with open_regular(path) as fh:
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
    except ValueError:  # an integer longer than Python converts (sys.get_int_max_str_digits, 4300 digits)
        document = _loads_long_integers(text, path)
    _last = (key, document)
    return document


def _long_integer(text: str):
    """An integer of the JSON text as ``int``, or as a float (``inf``) when it is too long for ``int``."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _loads_long_integers(text: str, path: Path):
    """Parse again with integers too long for Python read as infinite floats, so the object holding one
    becomes a finding (not a number, not finite) rather than the whole file an error.

    Only used after the fast parse failed: a Python ``parse_int`` hook halves the parser's speed.
    """
    try:
        return json.loads(text, parse_int=_long_integer)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", path=path) from None
    except (RecursionError, ValueError) as exc:
        raise InputError(f"invalid JSON: {exc}", path=path) from None


def sniff_json(path: Path):
    """The document of a ``.json`` file with each list cut to its first five elements, for a loader's
    ``sniff`` (:func:`qa.formats._jsonscan.preview`: a large export is not parsed whole to tell its
    format); None when ``path`` is not a ``.json`` file or that part cannot be read or parsed (the
    loader's ``read`` then reports why)."""
    from qa.formats._jsonscan import Broken, preview
    from qa.formats._location import location

    path = location(path)
    if path.suffix.lower() != ".json" or not is_regular(path):
        return None
    try:
        with open_regular(path) as fh:
            return preview(fh)
    except (InputError, Broken, OSError):
        return None
