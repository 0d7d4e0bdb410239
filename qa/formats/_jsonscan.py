"""Read a JSON export a piece at a time: where each top-level member and each list element is, by byte.

A COCO export of 200,000 images is gigabytes of JSON; parsing it whole holds all of it as Python objects.
Here a numba scanner (:mod:`qa.formats._kernels_jsonscan`) reads the file in blocks and finds the byte
span of each child of a value (a member of the top-level object, an element of a list) without parsing
it; each child is then parsed on its own, by the same ``json`` module as a whole-file load, and dropped.
Memory is one block plus the largest child.

Every byte of a document read this way is checked: the structure around the children by the scanner,
each child by ``json.loads``. When either finds something wrong, :class:`Broken` is raised and the caller
reads the file whole with :func:`qa.formats._json.read_json`, whose message (line and column) is the
one a whole-file load gives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

BLOCK = 1 << 20
"""Bytes read at a time."""

_ROWS = 8192
_BOM = b"\xef\xbb\xbf"


class Broken(Exception):
    """The bytes are not the JSON expected here (the file is read whole to say where and why)."""


def loads(raw: bytes):
    """One JSON value from its bytes (UTF-8), as :func:`qa.formats._json.read_json` parses a file:
    integers too long for Python become infinite floats. Raises :class:`Broken` on anything else."""
    from qa.formats._json import _long_integer

    try:
        text = raw.decode("utf-8")
        try:
            return json.loads(text)
        except ValueError as exc:
            if isinstance(exc, json.JSONDecodeError):
                raise
            return json.loads(text, parse_int=_long_integer)
    except (ValueError, RecursionError) as exc:
        raise Broken(str(exc)) from None


def children(fh, start: int = 0, end: int | None = None, *, block: int = BLOCK, values: bool = True
             ) -> Iterator[tuple[int, int, bytes | None, bytes | None]]:
    """The children of the JSON value at ``[start, end)`` of the binary file ``fh``, in order.

    Yields ``(start, end, key, value)``: the child's byte span (absolute, end exclusive), the raw bytes of
    its key (a member of an object; None for a list element) and of its value (None unless ``values``:
    then only keys are kept, so memory stays one block however long a child is). Raises :class:`Broken`
    when the value is not an object or a list, its structure is broken, or it ends before ``end`` (or
    the file).
    """
    from qa.formats._kernels_jsonscan import S_ERROR, S_EXPECT, S_KEY_END, S_KEY_START, S_NEXT, S_PHASE, \
        S_ROOT, S_SCALAR, S_START, S_STRING, _scan, new_state

    if start == 0:
        fh.seek(0)
        if fh.read(3) == _BOM:
            start = 3
    state = new_state()
    out = np.empty((_ROWS, 4), np.int64)
    kept = bytearray()          # the bytes from `kept_from` on: children not yet whole
    kept_from = start
    early_keys: dict[int, bytes] = {}  # keys whose bytes were dropped before their child ended
    pos = start
    fh.seek(start)
    while end is None or pos < end:
        data = fh.read(block if end is None else min(block, end - pos))
        if not data:
            break
        arr = np.frombuffer(data, np.uint8)
        kept += data
        done = 0
        while done < len(arr):
            n = _scan(arr[done:], pos + done, state, out)
            if state[S_ERROR] >= 0:
                raise Broken(f"unexpected byte at offset {int(state[S_ERROR])}")
            for s, e, ks, ke in out[:n].tolist():
                if ks < 0:
                    key = None
                elif ks >= kept_from:
                    key = bytes(kept[ks - kept_from:ke - kept_from])
                else:
                    key = early_keys.pop(ks)
                yield s, e, key, bytes(kept[s - kept_from:e - kept_from]) if values else None
            done += int(state[S_NEXT])
        pos += len(data)
        # keep only what a child still to come needs: its start, and the key before it
        need = pos
        inside = state[S_STRING] in (2, 3) or state[S_SCALAR] == 1 or state[S_PHASE] == 2
        key_pending = state[S_ROOT] == 1 and state[S_KEY_START] >= 0 and (
            inside or state[S_STRING] == 1 or state[S_EXPECT] in (2, 3))
        if inside and values:
            need = min(need, int(state[S_START]))
        if key_pending:
            ks, ke = int(state[S_KEY_START]), int(state[S_KEY_END])
            if values or state[S_STRING] == 1 or ke < ks:
                need = min(need, ks)  # a key still being read stays whole
            elif ks >= kept_from and ks not in early_keys:
                early_keys[ks] = bytes(kept[ks - kept_from:ke - kept_from])
        if need > kept_from:
            del kept[:need - kept_from]
            kept_from = need
    if state[S_PHASE] != 3:
        raise Broken("the value ends before its closing bracket")


def root_kind(fh) -> str | None:
    """``"object"`` or ``"list"`` from the first byte that is not whitespace (after a BOM); None otherwise."""
    fh.seek(0)
    head = fh.read(4096)
    if head.startswith(_BOM):
        head = head[3:]
    head = head.lstrip(b" \t\r\n")
    while not head:
        more = fh.read(4096)
        if not more:
            return None
        head = more.lstrip(b" \t\r\n")
    return {ord("{"): "object", ord("["): "list"}.get(head[0])


@dataclass
class Outline:
    """The top level of a JSON object file: each member's value span (the last one of a repeated key
    wins, as ``json.loads`` does), in the order the keys first appear."""

    members: dict[str, tuple[int, int]] = field(default_factory=dict)

    def kind(self, fh, key: str) -> str:
        """The JSON type of a member's value, as Python names it (``list``, ``dict``, ``str``, ...)."""
        start, end = self.members[key]
        fh.seek(start)
        first = fh.read(1)
        if first == b"[":
            return "list"
        if first == b"{":
            return "dict"
        fh.seek(start)
        return type(loads(fh.read(end - start))).__name__


def outline(fh) -> Outline:
    """The :class:`Outline` of a file whose top level is an object; :class:`Broken` otherwise."""
    result = Outline()
    for start, end, key, _value in children(fh, values=False):
        name = loads(key)
        result.members.pop(name, None)
        result.members[name] = (start, end)
    return result


def elements(fh, span: tuple[int, int]) -> Iterator[tuple[int, tuple[int, int], object]]:
    """``(index, (start, end), value)`` of each element of the list at ``span``, each parsed on its own."""
    for index, (start, end, _key, raw) in enumerate(children(fh, span[0], span[1])):
        yield index, (start, end), loads(raw)


def value(fh, span: tuple[int, int]):
    """The parsed value at ``span``."""
    fh.seek(span[0])
    return loads(fh.read(span[1] - span[0]))


def preview(fh, *, items: int = 5):
    """The document with each list cut to its first ``items`` elements (for telling formats apart
    without reading a whole export); :class:`Broken` when those parts are not JSON."""
    kind = root_kind(fh)
    if kind == "list":
        out = []
        for _index, _span, element in elements(fh, (0, None)):
            out.append(element)
            if len(out) >= items:
                break
        return out
    if kind != "object":
        raise Broken("top level is not an object or a list")
    doc = {}
    found = outline(fh)
    for key, span in found.members.items():
        fh.seek(span[0])
        if fh.read(1) == b"[":
            doc[key] = [element for _, _, element in _first(elements(fh, span), items)]
        else:
            doc[key] = value(fh, span)
    return doc


def _first(iterator, n):
    for k, item in enumerate(iterator):
        if k >= n:
            return
        yield item
