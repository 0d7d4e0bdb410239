"""The streamed index of one export: where each image's objects are, and each chunk's load of them.

:func:`index_export` reads an export as :func:`qa.formats.load` does, through the same reader, but in
one streaming pass that keeps no object (:class:`qa.formats._units.Recorder`): what it keeps is the
exports' images, categories and findings (every load-time finding, in the order a whole load gives
them), each export's :class:`~qa.model.Census`, and a :class:`~qa.formats._units.Runs` table of where
each image's objects are (byte spans of JSON elements, files of a folder). :meth:`SourceIndex.part`
cuts out what a chunk of images needs, a small picklable :class:`SourcePart`; its :meth:`~SourcePart.load`
(in a worker) reads those spans again, through the same reader code, and returns the exports narrowed to
the chunk's images, their objects equal to a whole load's and in its order.

:func:`qa.formats._index_pieces.index_exports` gives the same index with the parsing spread over a run's
executor (the pieces of a COCO file, or whole exports, parsed by the workers).

A format without a streaming reader is loaded whole and its objects are held here (the index is then
as large as the batch); so is an export whose streamed read met something the whole-file parser must
judge.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qa.errors import InputError
from qa.formats._units import R_IMAGE, R_KEPT, R_ORDINAL, R_START, R_STOP, R_UNIT, R_UNITS, Collector, \
    Recorder, Runs
from qa.model import Census, Export, Limits

STREAMED = {"coco", "label_studio", "cvat"}
"""Formats read by a streaming pass; the others are loaded whole and held."""


@dataclass
class SourceIndex:
    """One export file or folder, indexed (see the module docstring).

    ``exports`` are named as :func:`qa.formats.load` names them, with no objects and their ``census``
    set; ``idents`` are the names the reader gave them (the chunk's reader gives the same). ``runs`` is
    None when the objects are ``held`` instead (``{annotator: (objects, ordinals)}``).
    """

    path: Path
    format: str
    limits: Limits
    options: dict
    exports: list[Export]
    idents: list = field(default_factory=list)
    runs: Runs | None = None
    context: dict = field(default_factory=dict)
    held: dict | None = None
    stamp: tuple | None = None
    _codes: dict | None = None

    @property
    def nbytes(self) -> int:
        """Bytes of the run table (the part of the index that grows with the objects)."""
        return self.runs.nbytes if self.runs is not None else 0

    def codes(self) -> dict[str, int]:
        """Image key -> code in ``runs.keys``."""
        if self._codes is None:
            self._codes = {key: k for k, key in enumerate(self.runs.keys)}
        return self._codes

    def part(self, keys_by_export: dict[str, list[tuple[str, str]]]) -> "SourcePart":
        """What a chunk needs of this export: ``keys_by_export`` gives each export's images of the chunk
        as ``(key as the reader named it, key in the export now)`` (the two differ when the alignment
        paired images by base name or file stem)."""
        shells = []
        for export in self.exports:
            images, id_maps = {}, {}
            for raw, key in keys_by_export.get(export.annotator, ()):
                image = export.images.get(key)
                if image is None:
                    continue
                if raw != key:
                    image = copy.copy(image)
                    image.key = raw
                images[raw] = image
                if key in export.id_maps:
                    id_maps[raw] = export.id_maps[key]
            shells.append(Export(annotator=export.annotator, path=export.path, format=export.format,
                                 images=images, categories=export.categories, id_maps=id_maps))
        if self.runs is None:
            held = {}
            for export in self.exports:
                wanted = {raw for raw, _key in keys_by_export.get(export.annotator, ())}
                objects, ordinals = self.held[export.annotator]
                take = [k for k, o in enumerate(objects) if o.image in wanted]
                held[export.annotator] = ([objects[k] for k in take], ordinals[take])
            return SourcePart(path=self.path, format=self.format, limits=self.limits, options=self.options,
                              exports=shells, idents=self.idents, held=held)
        codes = self.codes()
        wanted = {codes[raw] for keys in keys_by_export.values() for raw, _key in keys if raw in codes}
        rows = self.runs.rows_of(wanted) if wanted else np.zeros(0, np.int64)
        return SourcePart(path=self.path, format=self.format, limits=self.limits, options=self.options,
                          exports=shells, idents=self.idents, table=self.runs.table[rows],
                          extra=self.runs.extra[rows], keys=self.runs.keys if len(rows) else [],
                          context=self.context, stamp=self.stamp)


@dataclass
class SourcePart:
    """One export's share of a chunk of images (see :meth:`SourceIndex.part`); picklable and small."""

    path: Path
    format: str
    limits: Limits
    options: dict
    exports: list[Export]
    idents: list
    table: np.ndarray | None = None
    extra: np.ndarray | None = None
    keys: list | None = None
    context: dict = field(default_factory=dict)
    held: dict | None = None
    stamp: tuple | None = None

    def load(self) -> list[Export]:
        """The exports narrowed to the chunk's images, with their objects (in export order, equal to a
        whole load's) and each object's ``ordinals``; no findings."""
        exports = [copy.copy(e) for e in self.exports]
        if self.held is not None:
            for export in exports:
                objects, ordinals = self.held[export.annotator]
                export.objects = [copy.copy(o) for o in objects]
                export.ordinals = ordinals
            return exports
        if self.stamp is not None and _stamp(self.path) != self.stamp:
            raise InputError("changed since it was indexed; run again", path=self.path)
        collector = Collector(self.table, self.keys, {ident: k for k, ident in enumerate(self.idents)},
                              str(self.path))
        _READERS[self.format](self, collector)
        for code, export in enumerate(exports):
            objects = collector.objects(code)
            for obj in objects:
                obj.annotator = export.annotator
            export.objects = objects
            export.ordinals = collector.ordinals(code)
        return exports


def _stamp(path) -> tuple | None:
    """What tells whether a file changed: size and modification time (and the object's version tag
    behind a URL)."""
    from qa.formats._location import Url

    try:
        if isinstance(path, Url):
            st = path.stat()
            return st.st_size, st.version
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def index_export(path, annotator: str | None = None, *, format: str | None = None, limits: Limits | None = None,
                 options: dict | None = None, format_options: dict | None = None) -> list[SourceIndex]:
    """Index one export (the arguments of :func:`qa.formats.load`): a :class:`SourceIndex`, in a list.

    Raises what :func:`qa.formats.load` raises, with the same messages.
    """
    from qa.formats import _module, detect, name_exports
    from qa.formats._bounds import check_export

    from qa.formats._location import location

    path = location(path)
    if not path.exists():
        raise InputError("no such file or folder", path=path)
    name = format or detect(path)
    module = _module(name)
    options = {**(options or {}), **(format_options or {}).get(name, {})}
    limits = limits or Limits()
    if name in STREAMED:
        from qa.formats._json import read_json
        from qa.formats._jsonscan import Broken
        from qa.formats.cvat import NotStreamable

        recorder = Recorder()
        stamp = _stamp(path)
        try:
            exports = module.read(path, limits=limits, options=options, units=recorder)
        except Broken:
            read_json(path)  # raises the whole-file parser's error, with its line and column
            exports = None   # the scanner and the parser disagree: read it whole instead
        except NotStreamable:
            exports = None
        if exports is not None:
            if not exports:
                exports = [Export(annotator="", path=path, format=name)]
            idents = [recorder.idents[recorder.exports.index(e)] if e in recorder.exports else None
                      for e in exports]
            codes = [recorder.exports.index(e) if e in recorder.exports else None for e in exports]
            for export, code in zip(exports, codes):
                export.census = recorder.census[code] if code is not None else Census()
            runs = recorder.runs()
            _renumber(runs, codes)
            name_exports(exports, annotator, path)
            return [SourceIndex(path=path, format=name, limits=limits, options=options, exports=exports,
                                idents=idents, runs=runs, context=recorder.context, stamp=stamp)]
        recorder = None
    exports = module.read(path, limits=limits, options=options)
    if not exports:
        exports = [Export(annotator="", path=path, format=name)]
    for e in exports:
        check_export(e)
    name_exports(exports, annotator, path)
    held = {}
    for export in exports:
        export.census = export.count()
        held[export.annotator] = (export.objects, np.arange(len(export.objects), dtype=np.int64))
        export.objects = []
    return [SourceIndex(path=path, format=name, limits=limits, options=options, exports=exports,
                        idents=[e.annotator for e in exports], held=held)]


def _renumber(runs: Runs, codes: list) -> None:
    """Point the runs' export column at the positions of ``exports`` (the reader's order may differ)."""
    from qa.formats._units import R_EXPORT

    position = {code: k for k, code in enumerate(codes) if code is not None}
    if all(position.get(c, c) == c for c in range(len(position))):
        return
    column = runs.table[:, R_EXPORT]
    runs.table[:, R_EXPORT] = np.asarray([position[c] for c in column.tolist()], np.int64)


# --- the chunk readers, one per streamed format ---------------------------------------------------------

def _json_units(part: "SourcePart", fh):
    """``(unit, element)`` of each unit of a chunk's runs, once each, in file order (the runs of several
    exports may share units)."""
    seen: set[int] = set()
    spans = sorted({(r[R_START], r[R_STOP], r[R_UNIT], r[R_UNITS]) for r in part.table.tolist()})
    for start, stop, unit, units in spans:
        for j, raw in enumerate(_elements(fh, start, stop, units, part.path)):
            if unit + j not in seen:
                seen.add(unit + j)
                yield unit + j, raw


def _elements(fh, start: int, stop: int, count: int, where) -> list:
    from qa.formats._jsonscan import Broken, loads

    fh.seek(start)
    data = fh.read(stop - start)
    try:
        values = loads(b"[" + data + b"]")
    except Broken:
        values = None
    if not isinstance(values, list) or len(values) != count:
        raise InputError("changed since it was indexed (an indexed element no longer parses); run again",
                         path=where)
    return values


def _open(part: SourcePart):
    from qa.formats._safe import open_regular

    return open_regular(part.path)


def _read_coco(part: SourcePart, collector: Collector) -> None:
    from qa.formats.coco import AnnotationReader

    shells = {}
    images = {}
    for ident, export in zip(part.idents, part.exports):
        shell = Export(annotator=ident, path=part.path, format=part.format, images=export.images,
                       categories=export.categories)
        collector.adopt(shell, ident)
        shells[ident] = shell
        for image in export.images.values():
            images[image.source.id] = (image, ident)
    first = next(iter(shells.values()), Export(annotator="", path=part.path, format=part.format))
    reader = AnnotationReader(part.path, part.context["categories"], images, shells, first, set())
    with _open(part) as fh:
        for unit, raw in _json_units(part, fh):
            collector.begin(unit)
            reader.annotation(unit, raw, collector)
            collector.end()


def _read_label_studio(part: SourcePart, collector: Collector) -> None:
    from qa.formats.label_studio import _Reader

    reader = _Reader(part.path, part.limits, part.options, collector)
    with _open(part) as fh:
        for unit, task in _json_units(part, fh):
            collector.begin(unit)
            reader.task(unit, task)
            collector.end()


def _read_cvat(part: SourcePart, collector: Collector) -> None:
    from qa.formats._xml import fragment
    from qa.formats.cvat import _Reader

    reader = _Reader(part.path, part.limits, collector)
    reader.metas = part.context["metas"]
    prolog = part.context["prolog"]
    order = np.argsort(part.table[:, R_START], kind="stable")
    with _open(part) as fh:
        for row in order.tolist():
            start, stop = int(part.table[row, R_START]), int(part.table[row, R_STOP])
            fh.seek(start)
            try:
                elem = fragment(prolog, fh.read(stop - start))
            except Exception:  # noqa: BLE001 - any parse error means the file is not what was indexed
                raise InputError("changed since it was indexed (an indexed <image> no longer parses); run "
                                 "again", path=part.path) from None
            reader.restore(part.extra[row])
            collector.begin(int(part.table[row, R_UNIT]))
            reader.image(elem)
            collector.end()


_READERS = {"coco": _read_coco, "label_studio": _read_label_studio, "cvat": _read_cvat}

__all__ = ["SourceIndex", "SourcePart", "index_export", "R_KEPT", "R_ORDINAL", "R_IMAGE"]
