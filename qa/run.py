"""The only orchestrator: load, align, compare, check, gate, store, report.

Each stage is a function of the stage before; this module chains them and nothing else does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from qa import __version__
from qa.align import align
from qa.errors import ConfigError
from qa.manifest import ExportSpec, Manifest, parse_spec, read_manifest
from qa.model import Batch, Limits

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as work advances (the CLI draws a bar when on a terminal)."""


@dataclass(slots=True)
class Run:
    """Everything one run produced. Later stages add their results as fields."""

    batch: Batch
    summary: dict
    settings: dict = field(default_factory=dict)
    comparison: object = None
    """The :class:`qa.engine.compare.Comparison` of every annotator pair (None with one annotator)."""
    scores: object = None
    """The long scores table (pandas DataFrame; see the comparison), None with one annotator."""


def _specs(exports) -> list[ExportSpec]:
    specs = []
    if isinstance(exports, dict):
        exports = [ExportSpec(annotator=k, path=Path(v)) for k, v in exports.items()]
    for item in exports:
        if isinstance(item, ExportSpec):
            specs.append(item)
        elif isinstance(item, (str, Path)):
            specs.append(parse_spec(str(item)))
        else:
            raise ConfigError(f"cannot read an export from {item!r}; pass 'name=path' or a path")
    return specs


def load(*exports, manifest=None, aliases: dict | None = None, categories: list[str] | None = None,
         max_pixels: int | None = None, progress: Progress | None = None) -> Batch:
    """Load several annotators' exports and align them into one batch.

    Parameters
    ----------
    *exports : str, os.PathLike, ExportSpec or dict
        ``"alice=path"`` strings, paths (the annotator is named from the file), or one dict
        ``{"alice": path, ...}``.
    manifest : str or os.PathLike, optional
        A batch manifest (see :mod:`qa.manifest`); its exports come before ``exports``.
    aliases : dict, optional
        ``{canonical: [patterns]}``, added to the manifest's.
    categories : list of str, optional
        The declared category list.
    max_pixels : int, optional
        Largest image accepted (default 100 megapixels).
    progress : callable, optional
        ``progress(stage, done, total)``.

    Returns
    -------
    Batch

    Raises
    ------
    InputError
        An export cannot be read; the message names the file.
    ConfigError
        The manifest or an option is wrong.

    Examples
    --------
    >>> batch = qa.load("alice=exports/alice.json", "bob=exports/bob.json")  # doctest: +SKIP
    >>> batch.annotators  # doctest: +SKIP
    ['alice', 'bob']
    """
    return _load(*exports, manifest=manifest, aliases=aliases, categories=categories,
                 max_pixels=max_pixels, progress=progress)[0]


def _load(*exports, manifest=None, aliases=None, categories=None, max_pixels=None,
          progress: Progress | None = None) -> tuple[Batch, dict]:
    """:func:`load`, plus the alias report (:func:`qa.alias_report.alias_report`) made before alignment."""
    from qa.alias_report import alias_report
    from qa.formats import load as load_export

    specs: list[ExportSpec] = []
    man: Manifest | None = read_manifest(manifest) if manifest is not None else None
    if man is not None:
        specs.extend(man.exports)
    for item in exports:
        specs.extend(_specs([item] if not isinstance(item, dict) else item))
    if not specs:
        raise ConfigError("no exports given; pass NAME=PATH arguments or --manifest")
    merged_aliases = dict(man.aliases) if man else {}
    merged_aliases.update(aliases or {})
    limit = max_pixels or (man.max_pixels if man else None)
    limits = Limits(max_pixels=limit) if limit else Limits()
    loaded = []
    for done, spec in enumerate(specs):
        if progress:
            progress("load", done, len(specs))
        loaded.extend(load_export(spec.path, spec.annotator, format=spec.format, limits=limits,
                                  options=spec.options))
    if progress:
        progress("load", len(specs), len(specs))
    report = alias_report(loaded, merged_aliases)
    batch = align(loaded, aliases=merged_aliases,
                  categories=categories if categories is not None else (man.categories if man else None))
    if man is not None:
        batch.name, batch.description = man.name, man.description
    return batch, report


def summarise(batch: Batch, *, alias_report: dict | None = None) -> dict:
    """A plain-data summary of a batch: per annotator images, objects per category, findings.

    ``alias_report`` (from :func:`qa.alias_report.alias_report`) is passed through as the summary's
    ``alias_report`` entry.
    """
    per_annotator = []
    for name in batch.annotators:
        export = batch.exports[name]
        counts = Counter(o.category for o in export.objects)
        per_annotator.append({
            "annotator": name,
            "path": str(export.path),
            "format": export.format,
            "images": len(export.images),
            "objects": len(export.objects),
            "crowd": sum(o.iscrowd for o in export.objects),
            "objects_per_category": dict(sorted(counts.items())),
        })
    findings = []
    for f in batch.findings:
        findings.append({
            "code": f.code, "severity": f.severity, "message": f.message, "annotator": f.annotator,
            "image": f.image,
            "file": f.source.file if f.source else None,
            "where": f.source.where if f.source else None,
            "index": f.source.index if f.source else None,
            "id": f.source.id if f.source else None,
        })
    severities = Counter(f.severity for f in batch.findings)
    n = len(batch.annotators)
    return {
        "schema": 1,
        "tool_version": __version__,
        "batch": {"name": batch.name, "description": batch.description},
        "annotators": per_annotator,
        "images": len(batch.images),
        "images_labelled_by_all": sum(1 for k in batch.images if len(batch.coverage.get(k, ())) == n),
        "categories": [{"name": c.name, "isthing": c.isthing} for c in batch.categories.values()],
        "aliases": batch.aliases,
        "alias_report": alias_report,
        "findings": findings,
        "findings_by_code": dict(sorted(Counter(f.code for f in batch.findings).items())),
        "errors": severities.get("error", 0),
        "warnings": severities.get("warning", 0),
    }


def run(*exports, manifest=None, aliases=None, categories=None, max_pixels=None,
        progress: Progress | None = None, tolerances=(1, 2, 4), iou_threshold: float = 0.5,
        workers: int | None = None) -> Run:
    """Run every stage on a batch and return what it produced.

    Takes the same arguments as :func:`load`, plus the comparison's ``tolerances`` (pixels),
    ``iou_threshold`` and ``workers`` (see :func:`qa.engine.compare.compare_batch`).
    """
    batch, report = _load(*exports, manifest=manifest, aliases=aliases, categories=categories,
                          max_pixels=max_pixels, progress=progress)
    settings = {"max_pixels": max_pixels or Limits().max_pixels}
    summary = summarise(batch, alias_report=report)
    comparison = None
    if len(batch.annotators) >= 2:
        from qa.engine.compare import compare_batch

        comparison = compare_batch(batch, tolerances=tolerances, iou_threshold=iou_threshold, workers=workers,
                                   progress=progress, max_pixels=max_pixels)
        settings["compare"] = comparison.settings
        summary["pairs"] = comparison.pair_table()
    return Run(batch=batch, summary=summary, settings=settings, comparison=comparison,
               scores=comparison.scores if comparison is not None else None)
