"""Where a streamed reader's objects go: kept (a whole load), recorded (an index) or collected (a chunk).

A reader that streams reads its export as a sequence of **units**: an element of a JSON list (a COCO
annotation, a Label Studio task), an XML element (a CVAT ``<image>``) or a file of a folder. It wraps the
work of each unit in ``with units.unit(index, span):`` and says which image of which export the unit
belongs to with :meth:`Keep.touch` (objects it appends to an export touch their image too). The same
reader code then serves three purposes, so each format's objects are parsed by one implementation:

- :class:`Keep` (a whole load): the objects stay in ``export.objects``, as they always did.
- :class:`Recorder` (the index pass): after each unit its objects are held to the bounds
  (:func:`qa.formats._bounds.check_objects`, findings kept aside and appended to the export at the end, where
  a whole load's check puts them), counted, and dropped; what is kept is a :class:`Runs` table saying, for
  each export and image, which units hold its objects and which positions (ordinals) they take in the
  export.
- :class:`Collector` (a chunk's load, in a worker): only the recorded units of the chunk's images are read
  again, through the same reader code, and their objects kept with the ordinals the index gave them.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from qa.errors import InputError
from qa.formats._bounds import check_objects
from qa.model import Census

# columns of a Runs table
R_START, R_STOP, R_UNIT, R_UNITS, R_EXPORT, R_IMAGE, R_KEPT, R_ORDINAL = range(8)
COLUMNS = 8


@dataclass
class Runs:
    """Where the objects of each (export, image) are: rows of int64 columns (see the ``R_`` constants).

    A row is a run of consecutive units (``unit`` .. ``unit + units - 1``; byte span ``start`` .. ``stop``
    of the file, -1 for units that are files) of one export and one image; ``kept`` objects of that export
    come from it, taking the export's ordinals ``ordinal`` .. ``ordinal + kept - 1``. ``extra`` holds a
    format's own per-run state (for example CVAT's shape counters where the run starts). ``keys`` are the
    image keys the ``image`` column points into, each string held once.
    """

    table: np.ndarray
    extra: np.ndarray
    keys: list[str]

    def __len__(self) -> int:
        return len(self.table)

    def rows_of(self, codes) -> np.ndarray:
        """Row numbers of the runs of the images ``codes`` (indices into ``keys``), in file order."""
        mask = np.isin(self.table[:, R_IMAGE], np.asarray(list(codes), np.int64))
        return np.flatnonzero(mask)

    @property
    def nbytes(self) -> int:
        return int(self.table.nbytes + self.extra.nbytes)


class _Growing:
    """An int64 table that grows by doubling (a row costs a few bytes, not a Python object)."""

    def __init__(self, width: int, capacity: int = 1024):
        self.data = np.zeros((capacity, width), np.int64)
        self.n = 0

    def append(self, row) -> int:
        if self.n == len(self.data):
            self.data = np.concatenate([self.data, np.zeros_like(self.data)])
        self.data[self.n] = row
        self.n += 1
        return self.n - 1

    def array(self) -> np.ndarray:
        return self.data[:self.n].copy()


class Keep:
    """A whole load: objects stay where the reader puts them."""

    recording = False

    @contextmanager
    def unit(self, index: int, span: tuple[int, int] | None = None, extra=()):
        """The work of one unit (:meth:`begin` and :meth:`end` around it)."""
        self.begin(index, span, extra)
        yield
        self.end()

    def begin(self, index: int, span: tuple[int, int] | None = None, extra=()) -> None:
        """A unit starts: element ``index`` of its list (or file number), at byte ``span`` of the file."""

    def end(self) -> None:
        """The unit's objects are all in their exports."""

    def touch(self, export, key: str) -> None:
        pass

    def adopt(self, export, ident) -> None:
        pass

    def remember(self, name: str, value) -> None:
        """Keep reader state a chunk's reader needs (the index keeps it; a whole load has no use for it)."""

    def finish(self) -> None:
        pass


KEEP = Keep()


class Recorder(Keep):
    """The index pass: records each unit's objects as runs and drops them (see the module docstring).

    Objects wait in a short queue and are held to the bounds a few thousand at a time (each object is
    judged on its own, so the kept objects and the findings are those of one check of the whole export).
    """

    recording = True
    QUEUE = 4096

    def __init__(self, extra_width: int = 0):
        self.exports: list = []           # in the order the reader made them
        self.idents: list = []
        self._code: dict[int, int] = {}   # id(export) -> its position
        self._touched: list = []
        self._runs = _Growing(COLUMNS)
        self._extra = None                # made on the first run: as wide as the reader's extra state
        self._last: dict[tuple[int, int], int] = {}   # (export, image) -> its last run's row
        self._keys: dict[str, int] = {}
        self._ordinals: list[int] = []
        self.census: list[Census] = []
        self.bounds_findings: list[list] = []
        self.context: dict = {}
        self._units: list = []            # (index, span, extra, {(export, key): 0}) of the units queued
        self._queued: list[list] = []     # per export: (unit number in _units, object)
        self._count = 0

    def remember(self, name: str, value) -> None:
        self.context[name] = value

    def adopt(self, export, ident) -> None:
        if id(export) in self._code:
            return
        self._code[id(export)] = len(self.exports)
        self.exports.append(export)
        self.idents.append(ident)
        self._ordinals.append(0)
        self.census.append(Census())
        self.bounds_findings.append([])
        self._queued.append([])

    def touch(self, export, key: str) -> None:
        self._touched.append((export, key))

    def begin(self, index: int, span: tuple[int, int] | None = None, extra=()) -> None:
        self._touched = []
        self._current = (index, span, extra)

    def end(self) -> None:
        index, span, extra = self._current
        touched: dict[tuple[int, str], int] = {}
        for export, key in self._touched:
            touched.setdefault((self._code[id(export)], key), 0)
        number = len(self._units)
        self._units.append((index, span, extra, touched))
        for code, export in enumerate(self.exports):
            if export.objects:
                self._queued[code].extend((number, obj) for obj in export.objects)
                self._count += len(export.objects)
                export.objects = []
        if self._count >= self.QUEUE:
            self._flush()

    def _flush(self) -> None:
        for code, export in enumerate(self.exports):
            queued = self._queued[code]
            if not queued:
                continue
            kept, findings = check_objects([obj for _n, obj in queued], export.images)
            self.bounds_findings[code].extend(findings)
            kept_ids = {id(obj) for obj in kept}
            census = self.census[code]
            for number, obj in queued:
                if id(obj) not in kept_ids:
                    continue
                touched = self._units[number][3]
                touched[(code, obj.image)] = touched.get((code, obj.image), 0) + 1
                census.objects += 1
                census.crowd += bool(obj.iscrowd)
                census.per_category[obj.category] = census.per_category.get(obj.category, 0) + 1
            self._queued[code] = []
        for index, span, extra, touched in self._units:
            self._record(index, span, extra, touched)
        self._units = []
        self._count = 0

    def _record(self, index, span, extra, touched) -> None:
        start, stop = span if span is not None else (-1, -1)
        for (code, key), kept in touched.items():
            image = self._keys.setdefault(key, len(self._keys))
            last = self._last.get((code, image))
            data = self._runs.data
            if last is not None and data[last, R_UNIT] + data[last, R_UNITS] == index and start >= 0:
                data[last, R_STOP] = stop
                data[last, R_UNITS] += 1
                data[last, R_KEPT] += kept
            else:
                self._last[(code, image)] = self._runs.append(
                    (start, stop, index, 1, code, image, kept, self._ordinals[code]))
                row = tuple(extra) or (0,)
                if self._extra is None:
                    self._extra = _Growing(len(row))
                self._extra.append(row)
            self._ordinals[code] += kept

    def finish(self) -> None:
        """Check what is queued; append each export's bounds findings after its own (where a whole load's
        check puts them)."""
        self._flush()
        for export, findings in zip(self.exports, self.bounds_findings):
            export.findings.extend(findings)
            export.objects = []

    def runs(self) -> Runs:
        keys = [None] * len(self._keys)
        for key, code in self._keys.items():
            keys[code] = key
        extra = self._extra.array() if self._extra is not None else np.zeros((0, 1), np.int64)
        return Runs(self._runs.array(), extra, keys)


class Collector(Keep):
    """A chunk's load: keeps the objects of the recorded runs, with the ordinals the index gave them.

    ``table`` holds the chunk's rows of the source's :class:`Runs` (their ``image`` column pointing into
    ``keys``); ``ident_codes`` maps an export's identity (what the reader passes to :meth:`adopt`) to
    its position, the ``export`` column's code.
    """

    def __init__(self, table: np.ndarray, keys: list[str], ident_codes: dict, where: str):
        self.table = table
        self.keys = keys
        self.ident_codes = ident_codes
        self.where = where
        self._code: dict[int, int] = {}
        self.exports: dict[int, object] = {}
        self._queued: dict[int, list] = {}    # export code -> [(unit index, object)]
        self._rows: dict[tuple[int, str], list[int]] = {}
        self._done: dict[int, tuple[list, list]] | None = None
        for row, r in enumerate(table.tolist()):
            self._rows.setdefault((r[R_EXPORT], keys[r[R_IMAGE]]), []).append(row)

    def adopt(self, export, ident) -> None:
        code = self.ident_codes.get(ident)
        if code is None:
            return  # an export the index has no runs of in this chunk
        self._code[id(export)] = code
        self.exports[code] = export
        self._queued.setdefault(code, [])

    def begin(self, index: int, span: tuple[int, int] | None = None, extra=()) -> None:
        self._index = index

    def end(self) -> None:
        index = self._index
        for code, export in self.exports.items():
            if export.objects:
                self._queued[code].extend((index, obj) for obj in export.objects)
                export.objects = []

    def _row(self, code: int, key: str, index: int):
        for row in self._rows.get((code, key), ()):
            r = self.table[row]
            if r[R_UNIT] <= index < r[R_UNIT] + r[R_UNITS]:
                return row
        return None

    def _changed(self):
        raise InputError("changed since it was indexed (its objects differ from the index pass's); "
                         "run again", path=self.where)

    def _finish(self) -> None:
        self._done = {}
        used = np.zeros(len(self.table), np.int64)
        for code, queued in self._queued.items():
            kept, _findings = check_objects([obj for _i, obj in queued], self.exports[code].images)
            kept_ids = {id(obj) for obj in kept}
            out = []
            for index, obj in queued:
                if id(obj) not in kept_ids:
                    continue
                row = self._row(code, obj.image, index)
                if row is None:
                    continue  # an image of another chunk (a unit can name several images)
                r = self.table[row]
                if used[row] >= r[R_KEPT]:
                    self._changed()
                out.append((int(r[R_ORDINAL] + used[row]), obj))
                used[row] += 1
            out.sort(key=lambda item: item[0])
            self._done[code] = ([obj for _o, obj in out], [o for o, _obj in out])
        if not np.array_equal(used, self.table[:, R_KEPT]):
            self._changed()

    def objects(self, code: int) -> list:
        """The kept objects of export ``code``, in export order; checks every run gave its count."""
        if self._done is None:
            self._finish()
        return self._done.get(code, ([], []))[0]

    def ordinals(self, code: int) -> np.ndarray:
        if self._done is None:
            self._finish()
        return np.asarray(self._done.get(code, ([], []))[1], np.int64)
