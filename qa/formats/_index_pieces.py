"""The index pass spread over a run's executor: a cheap scan here, the parsing in the workers.

:func:`index_exports` indexes a batch's exports as :func:`qa.formats._index.index_export` indexes each
one, with the same result to the bit (the exports' images and categories, every load-time finding in
the order a whole load gives it, each export's :class:`~qa.model.Census` and :class:`~qa.formats._units.Runs`
table), but the work that grows with the objects runs as tasks on an executor
(:mod:`qa.engine._executors`: this process, the local pool or a Dask cluster):

- **COCO**: this process reads the file's outline, its categories and images (small), and scans the
  bytes of the ``annotations`` list for its element boundaries without parsing them (the numba scanner of
  :mod:`qa.formats._jsonscan`); the list is cut into pieces of about :data:`PIECE_BYTES`, and each piece is
  a task (:func:`_coco_piece`) that reads its own bytes from the file (a path or an fsspec URL), parses its
  annotations through the reader's own code (:class:`qa.formats.coco.AnnotationReader`) into a
  :class:`~qa.formats._units.Recorder` and returns its findings, counts and runs, each tagged so they
  merge back in file order. What spans pieces is settled here, on what the pieces return: the duplicate
  annotation ids (a piece logs each id with where its finding would go; the duplicates of the whole file
  are found here and their findings put in place), the skipped-annotation tallies (``FMT012``), the run
  table (ordinals and image codes renumbered, a run cut by a piece boundary joined again).
- **Label Studio, CVAT**: their readers carry state from one unit to the next, so each export is one task
  (:func:`_whole`) running :func:`~qa.formats._index.index_export` in a worker; exports are indexed at the
  same time.
- Other formats, and any export when the executor would only run the tasks in this process one after the
  other, are indexed here as before.

A piece that meets bytes the scanner and the parser disagree on, or broken JSON, makes the export be
indexed here again by :func:`~qa.formats._index.index_export`, whose error (the whole-file parser's, with
its line and column) or fallback is the serial pass's.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.errors import InputError, QAError
from qa.model import Census, Limits

PIECE_BYTES = 16 << 20
"""Largest piece of a COCO ``annotations`` list one task parses (it is cut smaller to give every worker
several pieces)."""

PIECE_MIN = 1 << 20
"""Smallest piece worth a task of its own."""

INLINE_BELOW = 8 << 20
"""Exports smaller than this in all (bytes) are indexed in this process when the executor is the local
pool: starting its workers would cost more than the parse."""


@dataclass(frozen=True)
class Job:
    """One export as the batch names it (:func:`qa.formats._index.index_export`'s arguments)."""

    path: object
    annotator: str | None = None
    format: str | None = None
    options: dict | None = None
    format_options: dict | None = None


@dataclass(frozen=True)
class _Whole:
    """A task: index one export in the worker."""

    job: Job
    limits: Limits


@dataclass(frozen=True)
class _Piece:
    """A task: parse elements ``first`` .. ``first + count - 1`` of a COCO ``annotations`` list, at bytes
    ``start`` .. ``stop`` of the file (from an element's first byte to the last one's end)."""

    path: object
    limits: Limits
    stamp: tuple | None
    members: dict
    first: int
    count: int
    start: int
    stop: int


@dataclass
class _Parsed:
    """What a piece returns, per export code (the reader's adoption order)."""

    findings: list              # per export: the reader's findings, in order
    tallies: list               # per export: its SkipTally or None
    bounds: list                # per export: the bounds findings, in order
    census: list                # per export: Census
    runs: object                # Runs of the piece (ordinals from 0, image codes into runs.keys)
    ids: np.ndarray             # int64: each id the duplicate check saw, in order (ints only)
    others: list                # (row, id) of the ids that are no int64
    where: np.ndarray           # int64 (n, 4): index, export code, finding position, key code
    keys: list                  # the log's image keys


def index_exports(jobs: list[Job], *, limits: Limits, executor=None, piece_bytes: int | None = None,
                  progress=None) -> list:
    """:func:`qa.formats._index.index_export` of each job, in order (a flat list of its sources), with the
    parsing on ``executor`` (see the module docstring). ``piece_bytes`` overrides the piece size.

    Raises what the serial pass raises, with the same message, for the first export (in order) that
    fails.
    """
    if progress:
        progress("load", 0, len(jobs))
    if not _spread(jobs, executor, piece_bytes):
        out = []
        for done, job in enumerate(jobs):
            if progress and done:
                progress("load", done, len(jobs))
            out.extend(_serial(job, limits))
        if progress:
            progress("load", len(jobs), len(jobs))
        return out
    from qa.formats._jsonscan import Broken

    executor.warm()  # the workers get ready while the exports are scanned here
    plans: list = [None] * len(jobs)    # per job: _HERE, _Failed, a _CocoPlan or the list of its sources
    order: list[tuple[int, int]] = []   # (job, piece number) of each task sent, in order
    left = [0] * len(jobs)              # tasks of each job not back yet

    def tasks():
        for k, job in enumerate(jobs):
            try:
                plan = _plan(job, limits, executor, piece_bytes)
            except QAError as exc:
                plans[k] = _Failed(exc)
                continue
            plans[k] = plan
            if isinstance(plan, _CocoPlan):
                try:
                    for number, piece in enumerate(plan.cut()):
                        order.append((k, number))
                        left[k] += 1
                        yield piece
                except Broken:  # read again here, where the serial pass says why
                    plans[k] = _Failed(again=True)
            elif plan is _WHOLE:
                order.append((k, 0))
                left[k] += 1
                yield _Whole(job, limits)

    done = 0
    try:
        for sent, result in enumerate(executor.map_chunks(_work, tasks(), None)):
            k, number = order[sent]
            if isinstance(result, _Failed):
                if not isinstance(plans[k], _Failed):  # the first failure of a job is its error
                    plans[k] = result
            elif isinstance(plans[k], _CocoPlan):
                plans[k].add(number, result)
            elif plans[k] is _WHOLE:
                plans[k] = result
            left[k] -= 1
            while progress and done + 1 < len(jobs) and plans[done] is not None and not left[done]:
                done += 1
                progress("load", done, len(jobs))
    finally:
        _HEADERS.clear()  # an executor in this process (threads) kept its last file's images there
    out = []
    for k, job in enumerate(jobs):
        plan = plans[k]
        if isinstance(plan, _Failed):
            if plan.again:  # broken bytes: indexed here, where the serial pass says why (or reads it whole)
                out.extend(_serial(job, limits))
                continue
            raise plan.error
        if plan is _HERE:
            out.extend(_serial(job, limits))
        elif isinstance(plan, _CocoPlan):
            out.extend(plan.finish(job))
        else:
            out.extend(plan)
    if progress:
        progress("load", len(jobs), len(jobs))
    return out


_HERE = "here"
_WHOLE = "whole"


class _Failed:
    """A job that failed: its error (raised in job order), or ``again`` when its bytes are to be read
    by the serial pass (which says why they are broken, or reads the export whole)."""

    def __init__(self, error: Exception | None = None, *, again: bool = False):
        self.error = error
        self.again = again


def _plan(job: Job, limits: Limits, executor, piece_bytes: int | None):
    """How a job is indexed: :data:`_HERE`, :data:`_WHOLE` (one task), a :class:`_CocoPlan` (pieces) or
    a :class:`_Failed` (the scan met broken bytes)."""
    from qa.formats import detect
    from qa.formats._index import STREAMED
    from qa.formats._location import location

    path = location(job.path)
    if not path.exists():
        raise InputError("no such file or folder", path=path)
    name = job.format or detect(path)
    if name not in STREAMED:
        return _HERE
    if name != "coco":
        return _WHOLE
    plan = _plan_coco(job, path, limits, executor, piece_bytes)
    return _Failed(again=True) if plan is None else plan


def _serial(job: Job, limits: Limits) -> list:
    from qa.formats._index import index_export

    return index_export(job.path, job.annotator, format=job.format, limits=limits, options=job.options,
                        format_options=job.format_options)


def _spread(jobs: list[Job], executor, piece_bytes: int | None) -> bool:
    """Whether the index is worth sending to ``executor``: it has several workers (or is a cluster, which
    was asked for, or pieces were asked for), and on the local pool, the exports are big enough to pay
    for starting it."""
    if executor is None:
        return False
    if not executor.inline_small or piece_bytes is not None:
        return True
    if getattr(executor, "in_process", False):
        return False
    from qa.formats._location import location

    total = 0
    for job in jobs:
        try:
            path = location(job.path)
            if path.is_file():
                total += path.stat().st_size
        except Exception:  # noqa: BLE001 - only a size hint; the pass itself says what is wrong
            continue
    return total >= INLINE_BELOW


def _work(task, _cfg):
    """The task function sent to the executor: a job's sources or a piece's :class:`_Parsed`, or
    :class:`_Failed` (the serial pass's errors are raised in job order by :func:`index_exports`)."""
    try:
        if isinstance(task, _Whole):
            return _serial(task.job, task.limits)
        return _coco_piece(task)
    except _BrokenPiece:
        return _Failed(again=True)
    except QAError as exc:
        return _Failed(exc)


# --- COCO: the plan here, the pieces in the workers -----------------------------------------------------

class _CocoPlan:
    """One COCO export: what this process read of it and its pieces; :meth:`add` merges each piece's
    result as it comes back (in piece order) and drops it, so what is held is what the serial pass holds
    (the findings, the counts, the run table, the ids met)."""

    def __init__(self, path, limits: Limits, options: dict, stamp, exports: dict, recorder, categories: dict):
        self.path, self.limits, self.options, self.stamp = path, limits, options, stamp
        self.exports, self.recorder, self.categories = exports, recorder, categories
        self.pieces: list[_Piece] = []
        n = len(recorder.exports)
        self.seen = _SeenIds()
        self.tallies: list = [None] * n
        self.census = [Census() for _ in range(n)]
        self.bounds: list[list] = [[] for _ in range(n)]
        self.runs = _RunsMerger(n)
        self.added = 0
        self.document = self.span = self.size = None  # set by _plan_coco, for cut()

    def cut(self):
        """The pieces, yielded as the scan finds them (so the workers start on the first while the rest
        is scanned), then the other top-level members checked; :class:`~qa.formats._jsonscan.Broken` when
        the bytes are not JSON. Closes the file."""
        from qa.formats._document import check_members, close_document
        from qa.formats._jsonscan import children

        document, span, size = self.document, self.span, self.size
        members = dict(document.outline.members)
        path, limits, stamp = self.path, self.limits, self.stamp
        try:
            first = count = 0
            start = stop = -1
            for index, (s, e, _key, _value) in enumerate(children(document.fh, span[0], span[1], values=False)):
                if count and e - start > size:
                    self.pieces.append(_Piece(path, limits, stamp, members, first, count, start, stop))
                    yield self.pieces[-1]
                    first, count = index, 0
                if count == 0:
                    start = s
                stop = e
                count += 1
            if count:
                self.pieces.append(_Piece(path, limits, stamp, members, first, count, start, stop))
                yield self.pieces[-1]
            check_members(document, ("images", "annotations", "categories"))
        finally:
            close_document(document)
            self.document = None

    def add(self, number: int, parsed: _Parsed) -> None:
        from qa.formats._tally import SkipTally

        assert number == self.added, (number, self.added)  # the executor gives results in order
        self.added += 1
        duplicates = self.seen.duplicates(parsed, str(self.path))
        for code, export in enumerate(self.recorder.exports):
            export.findings.extend(_with_inserted(parsed.findings[code], duplicates.get(code, ())))
            if parsed.tallies[code] is not None:
                if self.tallies[code] is None:
                    self.tallies[code] = SkipTally()
                self.tallies[code].merge(parsed.tallies[code])
            _add_census(self.census[code], parsed.census[code])
            self.bounds[code].extend(parsed.bounds[code])
        self.runs.add(parsed.runs, self.pieces[number].first)

    def finish(self, job: Job) -> list:
        from qa.formats import name_exports
        from qa.formats._index import SourceIndex
        from qa.formats.coco import _NOT_AREAS

        assert self.added == len(self.pieces)
        for code, export in enumerate(self.recorder.exports):
            if self.tallies[code] is not None:  # after the reader's findings, as the reader's finish() puts them
                export.findings.extend(self.tallies[code].findings(_NOT_AREAS, noun="annotation"))
            export.findings.extend(self.bounds[code])  # then the bounds', as the Recorder's finish() puts them
            export.census = self.census[code]
        exports = list(self.exports.values())
        name_exports(exports, job.annotator, self.path)
        return [SourceIndex(path=self.path, format="coco", limits=self.limits, options=self.options,
                            exports=exports, idents=list(self.recorder.idents), runs=self.runs.finish(),
                            context={"categories": self.categories}, stamp=self.stamp)]


def _plan_coco(job: Job, path, limits: Limits, executor, piece_bytes: int | None):
    """Read a COCO file's outline, categories and images here: its :class:`_CocoPlan`, whose
    :meth:`~_CocoPlan.cut` then scans the annotations' boundaries; None when the bytes are broken (the
    export is then indexed here)."""
    from qa.formats import coco
    from qa.formats._document import close_document, open_document
    from qa.formats._index import _stamp
    from qa.formats._jsonscan import Broken
    from qa.formats._units import Recorder

    options = {**(job.options or {}), **(job.format_options or {}).get("coco", {})}
    stamp = _stamp(path)
    try:
        document = open_document(path, streamed=True)
    except Broken:
        return None
    try:
        header = coco.read_header(document, path, limits)
        recorder = Recorder()
        exports, _reader = coco.open_exports(path, header, recorder)
    except BaseException:
        close_document(document)
        raise
    plan = _CocoPlan(path, limits, options, stamp, exports, recorder, header[0])
    span = document.outline.members["annotations"]
    plan.document, plan.span = document, span
    plan.size = piece_bytes or _piece_size(span[1] - span[0], executor)
    return plan


def _piece_size(total: int, executor) -> int:
    """About four pieces per worker, each between :data:`PIECE_MIN` and :data:`PIECE_BYTES`."""
    workers = max(1, getattr(executor, "workers", 1))
    return int(min(PIECE_BYTES, max(PIECE_MIN, total // (4 * workers) + 1)))


_HEADERS: dict = {}
"""A worker's last COCO header (categories, images), by file and stamp: the pieces of one file a
worker parses read it once."""


def _coco_piece(piece: _Piece) -> _Parsed:
    """Parse one piece in a worker (see the module docstring)."""
    from qa.formats import coco
    from qa.formats._document import Streamed
    from qa.formats._index import _stamp
    from qa.formats._jsonscan import Broken, Outline, children, loads
    from qa.formats._safe import open_regular
    from qa.formats._units import Recorder

    if piece.stamp is not None and _stamp(piece.path) != piece.stamp:
        raise InputError("changed since it was indexed; run again", path=piece.path)
    with open_regular(piece.path) as fh:
        token = (str(piece.path), piece.stamp)
        header = _HEADERS.get(token)
        if header is None:
            _HEADERS.clear()
            document = Streamed.outlined(fh, piece.path, Outline(members=dict(piece.members)))
            header = _HEADERS[token] = coco.read_header(document, piece.path, piece.limits)
        fh.seek(piece.start)
        data = fh.read(piece.stop - piece.start)
    recorder = Recorder()
    exports, reader = coco.open_exports(piece.path, header, recorder)
    for export in recorder.exports:
        export.findings.clear()  # the file's own findings are this process's, not the piece's
    log = _IdLog()
    reader.duplicate = log.add
    codes = {id(export): code for code, export in enumerate(recorder.exports)}
    log.codes = codes
    count = 0
    try:
        for j, (s, e, _key, raw) in enumerate(children(io.BytesIO(b"[" + data + b"]"))):
            index = piece.first + j
            recorder.begin(index, (piece.start + s - 1, piece.start + e - 1))
            reader.annotation(index, loads(raw), recorder)
            recorder.end()
            count += 1
    except Broken:
        raise _BrokenPiece(str(piece.path)) from None
    if count != piece.count:
        raise InputError("changed while it was indexed; run again", path=piece.path)
    findings = [list(export.findings) for export in recorder.exports]
    tallies = [None] * len(recorder.exports)
    for export, tally in reader.skipped.values():
        tallies[codes[id(export)]] = tally
    recorder.finish()
    return _Parsed(findings=findings, tallies=tallies, bounds=recorder.bounds_findings, census=recorder.census,
                   runs=recorder.runs(), ids=np.asarray(log.ids, np.int64), others=log.others,
                   where=np.asarray(log.where, np.int64).reshape(-1, 4), keys=list(log.keys))


class _BrokenPiece(Exception):
    """A piece's bytes are not the JSON the scan found (the export is indexed again, serially)."""


class _IdLog:
    """Stands in for the duplicate-id check in a piece: logs each id with where its finding would go,
    and says "not seen" (the duplicates of the whole file are found by :class:`_SeenIds`)."""

    INT64 = (-(1 << 63), 1 << 63)

    def __init__(self):
        self.ids: list[int] = []
        self.others: list = []
        self.where: list = []
        self.keys: dict[str, int] = {}
        self.codes: dict = {}

    def add(self, ann_id, export, index: int, key: str) -> bool:
        row = len(self.where)
        if isinstance(ann_id, int) and not isinstance(ann_id, bool) and self.INT64[0] <= ann_id < self.INT64[1]:
            self.ids.append(ann_id)
        else:
            self.ids.append(0)
            self.others.append((row, ann_id))
        self.where.append((index, self.codes[id(export)], len(export.findings),
                           self.keys.setdefault(key, len(self.keys))))
        return False


class _SeenIds:
    """The annotation ids of a file met so far, piece after piece: the serial pass's
    :class:`qa.formats.coco.SeenIds` (a bit per small non-negative integer, a set for any other id), fed a
    piece's ids at a time."""

    def __init__(self):
        from qa.formats.coco import SeenIds

        self.bits = np.zeros(1 << 13, np.uint8)
        self.limit = SeenIds.BITS
        self.others: set = set()

    def duplicates(self, parsed: _Parsed, where: str) -> dict:
        """The ``FMT005`` findings of the piece's ids met before (in the file), as ``{export code:
        [(position, finding), ...]}`` in file order; the piece's ids are then noted."""
        from qa.formats._findings import finding
        from qa.model import Source

        ids = parsed.ids
        small = np.ones(len(ids), bool)
        other = dict(parsed.others)
        if other:
            small[list(other)] = False
        small &= (ids >= 0) & (ids < self.limit)
        repeated = np.zeros(len(ids), bool)
        rows = np.flatnonzero(small)
        if len(rows):
            values = ids[rows]
            unique, first = np.unique(values, return_index=True)
            again = np.ones(len(rows), bool)
            again[first] = False                      # repeated inside the piece
            byte = values >> 3
            top = int(byte.max()) + 1
            if top > len(self.bits):
                grown = np.zeros(max(2 * len(self.bits), top), np.uint8)
                grown[:len(self.bits)] = self.bits
                self.bits = grown
            again |= ((self.bits[byte] >> (values & 7).astype(np.uint8)) & 1).astype(bool)  # met before
            repeated[rows] = again
            np.bitwise_or.at(self.bits, unique >> 3, (1 << (unique & 7)).astype(np.uint8))
        for row in np.flatnonzero(~small).tolist():  # any other id, one at a time, in order
            value = other.get(row, int(ids[row]))
            if value in self.others:
                repeated[row] = True
            self.others.add(value)
        out: dict = {}
        for row in np.flatnonzero(repeated).tolist():
            index, code, position, key = (int(v) for v in parsed.where[row])
            ann_id = other.get(row, int(ids[row]))
            out.setdefault(code, []).append((position, finding(
                "FMT005", f"annotation id {ann_id!r} appears twice; both are kept", Source(where, index, ann_id),
                image=parsed.keys[key])))
        return out


def _with_inserted(findings: list, inserts) -> list:
    """``findings`` with each ``(position, finding)`` of ``inserts`` put before the finding that was at
    ``position`` when it was made (in order)."""
    if not inserts:
        return findings
    out = []
    k = 0
    for position, item in inserts:
        out.extend(findings[k:position])
        k = max(k, position)
        out.append(item)
    out.extend(findings[k:])
    return out


def _add_census(total: Census, part: Census) -> None:
    total.objects += part.objects
    total.crowd += part.crowd
    for category, n in part.per_category.items():
        total.per_category[category] = total.per_category.get(category, 0) + n


class _RunsMerger:
    """The run table of a whole file from its pieces' (each numbered from the piece's start), added in
    order: image codes into one key list, ordinals after the earlier pieces', and a run that a piece
    boundary cut in two joined again, as one pass over the file records it
    (:class:`qa.formats._units.Recorder`)."""

    def __init__(self, n_exports: int):
        self.keys: dict[str, int] = {}
        self.tables: list = []
        self.extras: list = []
        self.kept = np.zeros(max(1, n_exports), np.int64)
        self.last: dict[tuple[int, int], tuple[int, int]] = {}  # (export, image) -> (table, row) of its last run

    def add(self, part, first: int) -> None:
        from qa.formats._units import R_EXPORT, R_IMAGE, R_KEPT, R_ORDINAL, R_START, R_STOP, R_UNIT, R_UNITS

        table = part.table.copy()
        codes = np.asarray([self.keys.setdefault(key, len(self.keys)) for key in part.keys], np.int64)
        if len(table):
            table[:, R_IMAGE] = codes[table[:, R_IMAGE]]
            table[:, R_ORDINAL] += self.kept[table[:, R_EXPORT]]
            np.add.at(self.kept, table[:, R_EXPORT], table[:, R_KEPT])
        joined = []
        for row in range(len(table)):
            if table[row, R_UNIT] != first:
                break  # only the runs of the piece's first unit can continue an earlier run
            prior = self.last.get((int(table[row, R_EXPORT]), int(table[row, R_IMAGE])))
            if prior is None or table[row, R_START] < 0:
                continue
            target = self.tables[prior[0]]
            r = prior[1]
            if target[r, R_UNIT] + target[r, R_UNITS] == first:
                target[r, R_STOP] = table[row, R_STOP]
                target[r, R_UNITS] += table[row, R_UNITS]
                target[r, R_KEPT] += table[row, R_KEPT]
                joined.append(row)
        if joined:
            keep = np.setdiff1d(np.arange(len(table)), joined)
            table, extra = table[keep], part.extra[keep]
        else:
            extra = part.extra
        number = len(self.tables)
        for row, (e, i) in enumerate(table[:, [R_EXPORT, R_IMAGE]].tolist()):
            self.last[(e, i)] = (number, row)
        self.tables.append(table)
        self.extras.append(extra)

    def finish(self):
        from qa.formats._units import COLUMNS, Runs

        if not sum(len(t) for t in self.tables):
            width = max((e.shape[1] for e in self.extras), default=1)
            return Runs(np.zeros((0, COLUMNS), np.int64), np.zeros((0, width), np.int64), list(self.keys))
        return Runs(np.concatenate(self.tables), np.concatenate(self.extras), list(self.keys))
