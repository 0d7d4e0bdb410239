"""A run's rule violations kept compact, and read back in run order.

A ``Finding`` with its source and message takes about 400 bytes in memory, and a run has a few dozen per
image, so a list of them grows with the batch. Instead each task pickles its chunk's findings, one block
per annotator, and sends their sort keys as small integer codes (:func:`chunk_violations`); the main
process keeps the blocks (in a file of the run's folder when it has one) and the keys (about 40 bytes a
finding while the pass runs), orders the keys as :func:`qa.rules.check.sort_findings` orders findings
(:class:`ViolationTable`), and then keeps only that order and the counts per rule, annotator and severity
(8 bytes a finding). :class:`PackedFindings` gives the findings back, in that order, as a read-only
sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TEXT_KEYS = ("file", "section", "image", "code", "severity")
"""The texts a finding is sorted and counted by, sent as codes (the annotator is a block's own)."""

WINDOW = 16_384
"""Findings read per step when iterating: each block that holds one of them is unpickled once per step."""


def _text_keys(f) -> tuple:
    """A finding's texts as :func:`qa.rules.check.sort_findings` compares them ("" where missing)."""
    src = f.source
    return (src.file if src else "", src.section if src else "", f.image or "", f.code, f.severity)


def _factorized(values: list) -> tuple[list, np.ndarray]:
    """``values`` as (distinct values in order of first appearance, each value's code)."""
    ids: dict = {}
    codes = np.fromiter((ids.setdefault(v, len(ids)) for v in values), dtype=np.int32, count=len(values))
    return list(ids), codes


def chunk_violations(findings: list) -> list:
    """A chunk's findings as the task sends them: ``[(annotator, pickled findings, positions, texts, index)]``,
    one entry per annotator (in order of first appearance), where ``positions`` are the findings' places in
    ``findings``, ``texts`` maps each of :data:`TEXT_KEYS` to (distinct values, codes) and ``index`` is each
    finding's position in its source list (-1 where it has none)."""
    import pickle

    groups: dict = {}
    for k, f in enumerate(findings):
        groups.setdefault(f.annotator, []).append(k)
    out = []
    for annotator, positions in groups.items():
        group = [findings[k] for k in positions]
        keys = [_text_keys(f) for f in group]
        texts = {name: _factorized([key[j] for key in keys]) for j, name in enumerate(TEXT_KEYS)}
        index = np.fromiter((f.source.index if f.source is not None and f.source.index is not None else -1
                             for f in group), dtype=np.int64, count=len(group))
        out.append((annotator, pickle.dumps(group, protocol=pickle.HIGHEST_PROTOCOL),
                    np.asarray(positions, dtype=np.int64), texts, index))
    return out


class ViolationTable:
    """Takes the chunks' violations (:func:`chunk_violations`) in chunk order; :meth:`finish` orders them.

    ``blocks`` is where the pickled blocks go: a list (the default) or a :class:`qa.pickled.FileBlocks` in the
    run's folder.
    """

    def __init__(self, blocks=None):
        from qa.engine.tables import Column

        self.blocks = [] if blocks is None else blocks
        self.counts: list = []
        self._ids: dict = {name: {} for name in ("annotator", *TEXT_KEYS)}  # each text's global code
        # the keys in growing blocks of their own, not an array per chunk and annotator (no fragmented heap)
        self._columns: dict = {name: Column(np.int64 if name in ("index", "position") else np.int32)
                               for name in ("annotator", *TEXT_KEYS, "index", "position")}
        self._chunks = 0

    def add(self, violations: list) -> None:
        """One chunk's violations (chunks in order: equal keys keep the order the chunks gave them)."""
        chunk = self._chunks
        self._chunks += 1
        for annotator, blob, positions, texts, index in violations:
            n = len(positions)
            self.blocks.append(blob)
            self.counts.append(n)
            ids = self._ids["annotator"]
            self._columns["annotator"].append(np.full(n, ids.setdefault(annotator, len(ids)), dtype=np.int32))
            for name, (values, codes) in texts.items():
                ids = self._ids[name]
                known = np.fromiter((ids.setdefault(v, len(ids)) for v in values), dtype=np.int32,
                                    count=len(values))
                self._columns[name].append(known[codes])
            self._columns["index"].append(index)
            self._columns["position"].append((np.int64(chunk) << 32) | positions)

    def finish(self, annotators) -> "PackedFindings":
        """The findings ordered as :func:`qa.rules.check.sort_findings` orders them: by annotator (in
        ``annotators``' order, others after), file, source list, position in it, image, rule id, and for
        equal keys in the order the chunks gave them."""
        from qa.pickled import PackedObjects

        column = {name: values.join() for name, values in self._columns.items()}

        def ranked(name):  # each finding's text as its rank among the distinct texts (their order as str's)
            values = list(self._ids[name])
            ranks = np.empty(len(values), dtype=np.int64)
            ranks[sorted(range(len(values)), key=values.__getitem__)] = np.arange(len(values))
            return ranks[column[name]]

        rank = {a: k for k, a in enumerate(annotators)}
        names = list(self._ids["annotator"])
        by_annotator = np.array([rank.get(a, len(rank)) for a in names], dtype=np.int64)[column["annotator"]]
        order = np.lexsort((column["position"], ranked("code"), ranked("image"),
                            column["index"], ranked("section"), ranked("file"), by_annotator))
        tally = _tally(column["annotator"][order], names, column["code"][order], list(self._ids["code"]),
                       column["severity"][order], list(self._ids["severity"]))
        packed = PackedObjects(self.blocks, self.counts)
        severities = (column["severity"][order].astype(np.int8), list(self._ids["severity"]))
        self.blocks, self.counts, self._columns = [], [], {}
        return PackedFindings(packed, order, tally, severities)


def _tally(annotator, annotators: list, code, codes: list, severity, severities: list) -> dict:
    """``{(code, annotator, severity): count}`` from the three columns of codes, keys in order of first
    appearance (as counting the findings one by one would give them)."""
    if not len(code):
        return {}
    combined = (code.astype(np.int64) * len(annotators) + annotator) * len(severities) + severity
    values, first, counts = np.unique(combined, return_index=True, return_counts=True)
    out = {}
    for k in np.argsort(first, kind="stable").tolist():
        value, count = int(values[k]), int(counts[k])
        rest, s = divmod(value, len(severities))
        c, a = divmod(rest, len(annotators))
        out[(codes[c], annotators[a], severities[s])] = count
    return out


class PackedFindings(Sequence):
    """A run's rule violations, in run order, as a read-only sequence of :class:`qa.model.Finding`: ``len``,
    iteration, ``[k]`` and slices give equal findings (a new ``Finding`` at each read). The findings stay
    pickled, a block per chunk and annotator (in a file of the run's folder during a run); :meth:`tally`
    counts them without reading one, and :meth:`of_severity` reads only the findings of one severity.

    ``severities`` is each finding's severity in run order, as ``(codes, names)``."""

    __slots__ = ("_packed", "_order", "_tally", "_severities")

    def __init__(self, packed, order: np.ndarray, tally: dict, severities: tuple):
        self._packed = packed  # qa.pickled.PackedObjects: the findings in the order the chunks gave them
        self._order = np.asarray(order, dtype=np.int64)  # run order -> place among those
        self._tally = tally
        self._severities = severities  # 1 byte a finding: a severity's findings found without reading any

    def __len__(self) -> int:
        return len(self._order)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return self._packed.take(self._order[k])
        return self._packed[int(self._order[k])]

    def __iter__(self):
        for start in range(0, len(self._order), WINDOW):
            yield from self._packed.take(self._order[start:start + WINDOW])

    def __bool__(self) -> bool:
        return len(self._order) > 0

    def tally(self) -> dict:
        """``{(code, annotator, severity): count}`` over the findings (annotator None for batch-level ones)."""
        return dict(self._tally)

    def of_severity(self, severity: str) -> list:
        """The findings of one ``severity``, in run order; only the blocks that hold them are read."""
        codes, names = self._severities
        if severity not in names:
            return []
        chosen = self._order[codes == names.index(severity)]
        return [f for start in range(0, len(chosen), WINDOW) for f in self._packed.take(chosen[start:start + WINDOW])]

    def __eq__(self, other) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(other) == len(self) and all(a == b for a, b in zip(self, other))

    __hash__ = None

    def __repr__(self) -> str:
        return f"PackedFindings({len(self)} findings)"


def tally(findings) -> dict:
    """``{(code, annotator, severity): count}`` over any findings: a :class:`PackedFindings`'s counts
    without reading its findings, or a count of a list's."""
    if isinstance(findings, (PackedFindings, ChainedFindings)):
        return findings.tally()
    out: dict = {}
    for f in findings or ():
        key = (f.code, f.annotator, f.severity)
        out[key] = out.get(key, 0) + 1
    return out


def of_severity(findings, severity: str) -> list:
    """The findings of one ``severity`` (``"error"``, ``"warning"``, ``"info"``), in order: of a
    :class:`PackedFindings` (or a :class:`ChainedFindings` of one) read without the others, which are most
    of a run's violations, or of any sequence of findings."""
    if isinstance(findings, (PackedFindings, ChainedFindings)):
        return findings.of_severity(severity)
    return [f for f in findings or () if f.severity == severity]


_FIELDS = ("code", "annotator", "severity")


def counts_by(findings, *fields: str) -> dict:
    """The findings counted by some of ``code``, ``annotator`` and ``severity`` (from :func:`tally`, so a
    :class:`PackedFindings` is not read): ``counts_by(f, "severity")`` gives ``{"error": 3, ...}``,
    ``counts_by(f, "code", "annotator")`` ``{("VTX001", "bob"): 2, ...}``; keys in order of first appearance.

    >>> from qa.model import Finding
    >>> counts_by([Finding("VTX001", "error", "m", annotator="bob"), Finding("VTX002", "error", "n")], "severity")
    {'error': 2}
    """
    picks = [_FIELDS.index(name) for name in fields]
    out: dict = {}
    for key, n in tally(findings).items():
        chosen = key[picks[0]] if len(picks) == 1 else tuple(key[k] for k in picks)
        out[chosen] = out.get(chosen, 0) + n
    return out


class ChainedFindings(Sequence):
    """Sequences of findings read as one (``len``, iteration, ``[k]``, slices): a run's findings, its
    batch's and analyses' (lists) then its rule violations (a :class:`PackedFindings`), without copying
    them into one list (:func:`qa.gate.run_findings`)."""

    __slots__ = ("parts", "_starts")

    def __init__(self, parts):
        self.parts = [p for p in parts if len(p)]
        self._starts = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, k):
        if isinstance(k, slice):
            start, stop, step = k.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            out = []
            for part, first in zip(self.parts, self._starts[:-1].tolist()):
                lo, hi = max(start - first, 0), min(stop - first, len(part))
                if lo < hi:
                    out.extend(part[lo:hi])
            return out
        k = int(k)
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError("finding index out of range")
        p = int(np.searchsorted(self._starts, k, side="right")) - 1
        return self.parts[p][k - int(self._starts[p])]

    def __iter__(self):
        for part in self.parts:
            yield from part

    def of_severity(self, severity: str) -> list:
        """The findings of one ``severity``, in order (see :func:`of_severity`)."""
        return [f for part in self.parts for f in of_severity(part, severity)]

    def tally(self) -> dict:
        """``{(code, annotator, severity): count}`` over every part (see :func:`tally`)."""
        out: dict = {}
        for part in self.parts:
            for key, n in tally(part).items():
                out[key] = out.get(key, 0) + n
        return out

    def __repr__(self) -> str:
        return f"ChainedFindings({len(self)} findings in {len(self.parts)} parts)"
