"""Run a pack's rules over a batch and return the violations as Findings.

The batch is checked a chunk of images at a time (:func:`qa.engine._pool.batch_chunks`), in this process or in worker
processes; in a chunk, each selected rule runs once per annotator's export (or once over all
annotators for the rules that compare them), with its parameters passed as arrays holding each
object's value for its category. Every rule judges an object from the objects of its own image, so the
findings are those of one pass over the whole batch.
A violation carries the rule id, the pack's severity, the annotator, the image, the object's source
(file, index, id), the measured value, the threshold and a one-line message.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Callable

import numpy as np

from qa.model import Batch, Finding
from qa.rules import _registry
from qa.rules._context import BatchContext, ExportContext, Hit
from qa.rules.packs import Pack, override, read


def _param_arrays(pack: Pack, rule: _registry.Rule, categories: np.ndarray) -> dict:
    """Each parameter as an array over the objects: the pack's value, then the category's."""
    base = pack.params_for(rule.id)
    out = {}
    per_category = pack.category_params.get(rule.id, {})
    for key, value in base.items():
        arr = np.full(len(categories), value, dtype=object if isinstance(value, str) else None)
        for category, values in per_category.items():
            if key in values:
                arr[categories == category] = values[key]
        out[key] = arr
    return out


def _finding(rule_id: str, severity: str, hit: Hit, obj=None, annotator=None) -> Finding:
    if obj is not None:
        return Finding(code=rule_id, severity=severity, message=hit.message, annotator=obj.annotator,
                       image=obj.image, source=obj.source, value=hit.value, limit=hit.limit)
    return Finding(code=rule_id, severity=severity, message=hit.message, annotator=hit.annotator or annotator,
                   image=hit.image, source=hit.source, value=hit.value, limit=hit.limit)


def check(batch: Batch, pack: Pack | str | None = "default", *, select=None, extend_select=None,
          ignore=None, progress: Callable[[str, int, int], None] | None = None,
          workers: int | None = None, executor=None) -> list[Finding]:
    """Run the selected rules of a pack over a batch.

    Every rule looks at one image at a time (an object against the objects of its image, of one
    annotator or of all), so the batch is checked a few images at a time: each chunk's masks are
    painted once for all the rules, memory does not grow with the batch, and chunks can go to worker
    processes. The findings do not depend on the chunks or the workers.

    Parameters
    ----------
    batch : Batch
        The aligned exports (:func:`qa.load`).
    pack : Pack, str or os.PathLike, default "default"
        A resolved :class:`~qa.rules.packs.Pack`, a built-in pack name or a pack file.
    select, extend_select, ignore : list of str, optional
        Rule ids or prefixes applied after the pack, as on the command line.
    progress : callable, optional
        ``progress("check", images done, images)`` after each chunk of images.
    workers : int, optional
        Worker processes (default: one per CPU; small batches are checked in this process).
    executor : optional
        The run's executor (:func:`qa.engine._executors.open_executor`); when given, ``workers`` is not used.

    Returns
    -------
    list of Finding
        The rule violations (load-time and alignment findings stay in ``batch.findings``; see
        :func:`select_findings`), ordered by annotator, file, position and rule id.

    Raises
    ------
    ConfigError
        When the pack, a selector or ``workers`` is invalid.
    """
    from qa.engine import _pool
    from qa.engine.chunks import chunks_of

    if not isinstance(pack, Pack):
        pack = read(pack or "default")
    pack = override(pack, select=select, extend_select=extend_select, ignore=ignore)
    keys = list(batch.images)
    size, workers = _pool.plan(len(keys), workers, executor)
    size = min(size, images_per_chunk(batch))
    findings: list[Finding] = []
    done = 0
    if progress:
        progress("check", 0, len(keys))
    chunked = chunks_of(batch, _pool.chunks(keys, size))
    for found, images in _pool.run_chunks(_check_task, chunked, pack, workers, executor):
        findings.extend(found)
        done += images
        if progress:
            progress("check", done, len(keys))
    return sort_findings(findings, batch.annotators)


CHUNK_PIXELS = 8 * 2 ** 20
"""Image pixels checked together at most: the crops and id maps of a chunk's images stay within the
contexts' caches (:data:`qa.rules._context.CROP_CACHE_BYTES`) while every rule reads them."""


def images_per_chunk(batch: Batch) -> int:
    """Images checked together at most, so a chunk holds at most :data:`CHUNK_PIXELS` pixels."""
    largest = max((im.width * im.height for im in batch.images.values()), default=1)
    return max(1, CHUNK_PIXELS // max(largest, 1))


def _check_task(chunk, pack: Pack) -> tuple[list[Finding], int]:
    """:func:`_check_chunk` of a chunk of images (:class:`qa.engine.chunks.Chunk`)."""
    return _check_chunk(chunk.load(), pack)


def _check_chunk(batch: Batch, pack: Pack, decoded: dict | None = None,
                 intersections: dict | None = None) -> tuple[list[Finding], int]:
    """The pack's rules over a (narrowed) batch, rule by rule: ``(findings, images)``.

    ``decoded`` (``{image: {annotator: Decoded}}``, :mod:`qa.engine._decoded`) hands the rules the crops
    and id maps the run has already decoded, so no image is painted twice; ``intersections``
    (``{(image, a, b): (intersections, areas_a, areas_b)}`` of those objects, from the comparison) the
    pixel counts of every pair of two annotators' objects, so the rules match objects without counting
    them again.
    """
    contexts = {name: ExportContext(batch.exports[name], batch) for name in batch.annotators}
    seeded: dict = {}
    for image, labels in (decoded or {}).items():
        for name, d in labels.items():
            if name in contexts and contexts[name].seed(image, d):
                seeded[(image, name)] = True
    known = {k: v for k, v in (intersections or {}).items() if (k[0], k[1]) in seeded and (k[0], k[2]) in seeded}
    batch_ctx: BatchContext | None = None
    findings: list[Finding] = []
    for rule in pack.rules():
        severity = pack.severity_of(rule.id)
        scope = set(pack.scope_of(rule.id))
        if rule.level == "batch":
            if len(batch.annotators) < 2:
                continue
            if batch_ctx is None:
                batch_ctx = BatchContext(batch, contexts, intersections=known)
            runs = [(batch_ctx, _param_arrays(pack, rule, batch_ctx.category))]
        elif rule.level == "image":
            runs = [(ctx, pack.params_for(rule.id)) for ctx in contexts.values()]
        else:
            runs = [(ctx, _param_arrays(pack, rule, ctx.category)) for ctx in contexts.values()]
        for ctx, kwargs in runs:
            for hit in rule.func(ctx, **kwargs):
                obj = ctx.objects[hit.index] if hit.index is not None else None
                if scope and obj is not None and obj.category not in scope:
                    continue
                annotator = getattr(ctx, "annotator", None)
                findings.append(_finding(rule.id, severity, hit, obj, annotator))
    return findings, len(batch.images)


def sort_findings(findings: list[Finding], annotators: list[str]) -> list[Finding]:
    """Findings ordered by annotator (batch order), file, position in the file, then rule id."""
    rank = {a: k for k, a in enumerate(annotators)}

    def key(f: Finding):
        src = f.source
        return (rank.get(f.annotator, len(rank)), src.file if src else "", src.section if src else "",
                src.index if src and src.index is not None else -1, f.image or "", f.code)

    return sorted(findings, key=key)


def select_findings(findings: list[Finding], pack: Pack) -> list[Finding]:
    """Load-time and alignment findings as the pack selects them, with the pack's severities.

    Codes the registry does not know are kept unchanged.
    """
    known = {r.id for r in _registry.all_rules()}
    out = []
    for f in findings:
        if f.code in known:
            if f.code not in pack.selected:
                continue
            if f.code in pack.severity:
                f = Finding(code=f.code, severity=pack.severity[f.code], message=f.message,
                            annotator=f.annotator, image=f.image, source=f.source, value=f.value, limit=f.limit)
        out.append(f)
    return out


def violation_counts(findings: Sequence[Finding], annotators: list[str]) -> list[dict]:
    """One row per rule with the number of violations per annotator (``qa run``'s summary table); a
    :class:`qa.rules.violations.PackedFindings` is counted without reading its findings."""
    from qa.rules.violations import counts_by

    counts = counts_by(findings, "code", "annotator")  # a PackedFindings is not read
    by_code: dict[str, Counter] = {}
    for (code, severity), n in counts_by(findings, "code", "severity").items():
        by_code.setdefault(code, Counter())[severity] = n
    rows = []
    for code in sorted(by_code):
        try:
            found = _registry.get(code)
            name = found.name
        except KeyError:
            name = ""
        severities = by_code[code]
        per = {a: counts.get((code, a), 0) for a in annotators}
        rows.append({"code": code, "name": name, "severity": severities.most_common(1)[0][0],
                     "per_annotator": per, "total": sum(per.values())})
    return rows


def finding_dict(f: Finding) -> dict:
    """A finding as plain data (the JSON output and the run summary)."""
    value = None if f.value is None or not np.isfinite(f.value) else float(f.value)
    limit = None if f.limit is None or not np.isfinite(f.limit) else float(f.limit)
    return {
        "code": f.code, "severity": f.severity, "message": f.message, "annotator": f.annotator,
        "image": f.image,
        "file": f.source.file if f.source else None,
        "where": f.source.where if f.source else None,
        "index": f.source.index if f.source else None,
        "id": f.source.id if f.source else None,
        "value": value, "limit": limit,
    }


def violation_summary(violations: Sequence[Finding], annotators: list[str], pack: Pack) -> dict:
    """The run summary's rule section: the pack, each violation, and counts per rule and annotator.

    ``violations`` is a :class:`FindingDicts`: each violation as plain data, made as it is read (a run's
    violations are not all in memory; :func:`json_default` writes them into a JSON document).
    """
    from qa.rules.violations import counts_by

    severities = counts_by(violations, "severity")
    return {
        "pack": {"name": pack.name, "path": str(pack.path) if pack.path else None,
                 "rules": [r.id for r in pack.rules()]},
        "violations": FindingDicts(violations),
        "violations_by_rule": violation_counts(violations, annotators),
        "violations_by_severity": {k: severities.get(k, 0) for k in _registry.SEVERITIES},
    }


class FindingDicts(Sequence):
    """Findings as plain data (:func:`finding_dict`), each made as it is read: ``len``, iteration, ``[k]``
    and slices (a list). ``json.dumps(..., default=json_default)`` writes it as a list."""

    __slots__ = ("findings",)

    def __init__(self, findings):
        self.findings = findings

    def __len__(self) -> int:
        return len(self.findings)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [finding_dict(f) for f in self.findings[k]]
        return finding_dict(self.findings[k])

    def __iter__(self):
        return (finding_dict(f) for f in self.findings)

    def __eq__(self, other) -> bool:
        if isinstance(other, (FindingDicts, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return f"FindingDicts({len(self)} findings)"


def json_default(value):
    """``json.dumps``'s ``default`` for a run summary: a :class:`FindingDicts` as a list, anything else as
    its ``str``."""
    if isinstance(value, FindingDicts):
        return list(value)
    return str(value)


class _ReadAsWritten(list):
    """A :class:`FindingDicts` to the pure-Python JSON encoder: a list whose items are made as the encoder
    reads them. Only for :func:`write_json`: json's C encoder reads a list's own (here empty) storage."""

    __slots__ = ("items",)

    def __init__(self, items):
        super().__init__()
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)


def _streamed_default(value):
    return _ReadAsWritten(value) if isinstance(value, FindingDicts) else json_default(value)


def write_json(summary, fh) -> None:
    """Write ``json.dumps(summary, indent=2, default=json_default)`` to the text file ``fh``, the same
    characters, as they are made: a run's violations one at a time instead of a list of every one and
    then one string of them all (320 MB of the ``qa run`` command's peak at 10,000 images: 273,160
    violations, 122 MB of JSON).

    Examples
    --------
    >>> import io
    >>> from qa.model import Finding
    >>> summary = {"violations": FindingDicts([Finding("VTX001", "error", "m", annotator="a")]), "n": 1}
    >>> out = io.StringIO()
    >>> write_json(summary, out)
    >>> out.getvalue() == json.dumps(summary, indent=2, default=json_default)
    True
    """
    # iterencode without ``_one_shot`` is the pure-Python encoder, which reads a list by iterating it
    for chunk in json.JSONEncoder(indent=2, default=_streamed_default).iterencode(summary):
        fh.write(chunk)
