"""The only orchestrator: load, align, compare, check, gate, store, report.

Each stage is a function of the stage before; this module chains them and nothing else does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from qa import __version__
from qa.align import align
from qa.engine import _executors
from qa.errors import ConfigError
from qa.manifest import ExportSpec, Manifest, parse_spec, read_manifest
from qa.model import Batch, Limits
from qa.store import new_run_id

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as work advances (the CLI draws a bar when on a terminal)."""


@dataclass(slots=True)
class Run:
    """Everything one run produced. Later stages add their results as fields.

    ``run_id`` names the run in the store and in its verdict; ``inputs`` holds each export's
    fingerprint (:func:`qa.store.input_fingerprints`); ``verdict`` is the gate's, when gated;
    ``stored`` is the store the run was written to, if any.
    """

    batch: Batch
    summary: dict
    settings: dict = field(default_factory=dict)
    run_id: str = field(default_factory=new_run_id)
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc).replace(tzinfo=None))
    finished_at: datetime | None = None
    inputs: list = field(default_factory=list)
    verdict: object = None
    stored: str | None = None
    comparison: object = None
    """The :class:`qa.engine.compare.Comparison` of every annotator pair (None with one annotator)."""
    scores: object = None
    """The long scores table (pandas DataFrame; see the comparison), None with one annotator."""
    violations: list = field(default_factory=list)
    """Rule violations (:class:`~qa.model.Finding`) of the run's pack."""
    findings: list = field(default_factory=list)
    """Findings raised from the comparison of the whole batch (agreement codes such as ``AGR001``)."""
    pack: object = None
    """The resolved rule pack (:class:`qa.rules.packs.Pack`), or None when rules were not run."""
    analytics: object = None
    """The agreement analytics (:class:`qa.analytics.Analytics`), None with one annotator."""
    semantic: object = None
    """The :class:`qa.engine.semantic.SemanticComparison` of label-map and panoptic exports, if any."""
    boundaries: object = None
    """The :class:`qa.analytics.boundaries.BoundaryAnalysis` (offsets, category-pair boundaries)."""
    boundary_disagreement: object = None
    """Rows of the store's ``boundary_disagreement`` table (pandas DataFrame), from the boundary analysis."""
    report: str | None = None
    """The HTML report written for the run, if any."""


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
         max_pixels: int | None = None, progress: Progress | None = None,
         format_options: dict | None = None) -> Batch:
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
    format_options : dict, optional
        ``{format: {option: value}}`` for every export read in that format, over the manifest's
        options (``{"binary_masks": {"foreground": "black"}}``: ``--foreground``, ``--threshold``).

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
                 max_pixels=max_pixels, progress=progress, format_options=format_options)[0]


def _load(*exports, manifest=None, aliases=None, categories=None, max_pixels=None,
          progress: Progress | None = None, format_options=None) -> tuple[Batch, dict]:
    """:func:`load`, plus the alias report the alignment recorded (``Batch.alias_report``)."""
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
                                  options=spec.options, format_options=format_options))
    if progress:
        progress("load", len(specs), len(specs))
    unused = sorted(set(format_options or {}) - {e.format for e in loaded})
    if unused:
        found = ", ".join(sorted({e.format for e in loaded}))
        raise ConfigError(f"options for {unused[0]} exports were given (--foreground, --threshold), but no "
                          f"export was read as {unused[0]} (formats: {found})")
    batch = align(loaded, aliases=merged_aliases,
                  categories=categories if categories is not None else (man.categories if man else None))
    if man is not None:
        batch.name, batch.description = man.name, man.description
    return batch, batch.alias_report


def summarise(batch: Batch, *, alias_report: dict | None = None) -> dict:
    """A plain-data summary of a batch: per annotator images, objects per category, findings.

    ``errors`` and ``warnings`` count the batch's findings (load and alignment); :func:`run` updates them
    to every finding of the run, rule violations included, as the store's ``runs`` table counts them.

    ``alias_report`` (default: the one :func:`qa.align.align` recorded on the batch) is the summary's
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
    from qa.rules.check import finding_dict

    findings = [finding_dict(f) for f in batch.findings]
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
        "alias_report": batch.alias_report if alias_report is None else alias_report,
        "findings": findings,
        "findings_by_code": dict(sorted(Counter(f.code for f in batch.findings).items())),
        "errors": severities.get("error", 0),
        "warnings": severities.get("warning", 0),
    }


def check_rules(batch: Batch, pack="default", *, select=None, ignore=None, progress: Progress | None = None,
                workers: int | None = None, executor=None):
    """The check stage: the pack's rules over the batch, chunk by chunk of images in ``workers``
    processes (or on ``executor``); returns (pack, violations)."""
    from qa.rules.check import check
    from qa.rules.packs import Pack, override, read

    resolved = override(pack if isinstance(pack, Pack) else read(pack), select=select, ignore=ignore)
    return resolved, check(batch, resolved, progress=progress, workers=workers, executor=executor)


def analytics_stage(batch: Batch, comparison, *, violations=None, **options):
    """The analytics stage: aggregates, alpha and the review queue (:func:`qa.analytics.analyse`)."""
    from qa.analytics import analyse

    return analyse(batch, comparison, violations=violations, **options)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def gate_stage(result: Run, pack, *, baseline=None, max_drop=None, db=None, lock_timeout=None, config=None):
    """The gate stage: the pack's thresholds (and a stored baseline run) against this run's figures.

    ``config`` is the pack's gate configuration when already read (:func:`run` reads it before the
    exports, so a bad ``[gate]`` table stops the run at once).
    """
    from qa import store
    from qa.gate import finite_bound, load_gate, verdict_for

    config = load_gate(pack) if config is None else config
    if max_drop is not None:
        config.max_drop = finite_bound(max_drop, "--max-drop")
    baseline_scores = baseline_findings = baseline_id = None
    first = False  # `--baseline latest` with no earlier run of this batch: nothing to regress from yet
    identity = store.batch_identity(result.batch)
    if baseline is not None:
        if db is None:
            raise ConfigError("a baseline run is read from the store; pass --db with the baseline's store")
        latest = str(baseline).strip().startswith("latest")
        first = latest and not Path(db).exists()
        if not first:
            with store.open(db, lock_timeout=store.DEFAULT_LOCK_TIMEOUT if lock_timeout is None
                            else lock_timeout) as s:
                baseline_id = s.resolve_baseline(baseline, batch=identity)  # `latest`: of the same batch
                first = baseline_id is None
                if not first:
                    baseline_scores, baseline_findings = s.scores(baseline_id), s.findings(baseline_id)
    verdict = verdict_for(result, config, baseline=baseline_scores, baseline_findings=baseline_findings,
                          baseline_run_id=baseline_id)
    if first:
        of = "" if ":any" in str(baseline) else f" of {store.describe_batch(identity)}"
        verdict.skipped.append(f"regression: no baseline run ({baseline}){of} in {db} yet")
    return verdict


def store_stage(result: Run, db, *, lock_timeout=None, on_commit=None) -> int:
    """The store stage: write the run, with its verdict, in one transaction; return its sequence number.

    ``on_commit`` runs right after the commit (:meth:`qa.store.Store.write_run`)."""
    from qa import store

    seq = store.store_run(result, db, lock_timeout=store.DEFAULT_LOCK_TIMEOUT if lock_timeout is None
                          else lock_timeout, on_commit=on_commit)
    result.stored = str(db)
    return seq


def report_stage(result: Run, path, *, pictures: int | None = None, staged=None) -> str:
    """The report stage: the run's self-contained HTML report (:mod:`qa.report`) written to ``path``, or
    staged there (:class:`qa._commit.StagedFiles`) to be moved into place once the run is stored."""
    from qa.report import DEFAULT_PICTURES, from_run, render_html, write_report

    data = from_run(result, pictures=DEFAULT_PICTURES if pictures is None else pictures)
    if staged is None:
        result.report = str(write_report(data, path))
    else:
        result.report = str(staged.write(path, render_html(data)))
    return result.report


def _announce(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


def run(*exports, manifest=None, aliases=None, categories=None, max_pixels=None, pack="default",
        select=None, ignore=None, gate=None, baseline=None, max_drop=None, db=None, store: bool = True,
        lock_timeout=None, progress: Progress | None = None, tolerances=(1, 2, 4),
        iou_threshold: float = 0.5, workers: int | None = None, analytics: bool = True,
        instances: str = "classes", report=None, report_pictures: int | None = None,
        format_options: dict | None = None, outputs=None, executor=None) -> Run:
    """Run every stage on a batch and return what it produced.

    Takes the same arguments as :func:`load` (``format_options`` too), plus ``pack`` (a built-in pack name, a pack file or
    None to skip the rules) and ``select``/``ignore`` (rule ids or prefixes applied after the pack), and:

    Parameters
    ----------
    tolerances : sequence of float, pixels, default (1, 2, 4)
        Boundary tolerances of the comparison (see :func:`qa.engine.compare.compare_batch`).
    iou_threshold : float, default 0.5
        Matching threshold of the comparison.
    workers : int, optional
        Processes for the comparison, the boundary stage, the rules and the analytics (default: all
        cores; 1 runs serially). One pool serves the whole run.
    executor : str or concurrent.futures.Executor, optional
        Where the per-image work runs instead of the local pool: a Dask scheduler address
        (``"tcp://host:8786"``) or ``"local:N"`` (a Dask ``LocalCluster`` of N processes), opened for the
        run and closed after it (the dashboard address is printed to stderr); or a
        ``concurrent.futures.Executor`` you own, such as ``distributed.Client(...).get_executor()``. The
        results are the same on every executor. See ``docs/scale.md``.
    gate : str or os.PathLike, optional
        A pack (file or built-in name) whose ``[gate]`` table the run is checked against.
    baseline : str, optional
        A stored run (id, prefix, seq or ``latest``) for the gate's regression checks; needs ``db``.
    max_drop : float, optional
        Overrides the pack's ``[gate.regression] max_drop``.
    db : str or os.PathLike, optional
        The run store: the baseline is read from it, and the run is written to it (with its verdict).
    store : bool, default True
        Write the run to ``db``; False only reads the baseline from it.
    lock_timeout : float, seconds, optional
        How long to wait for another process's lock on the store (default 30).
    analytics : bool, default True
        Run the analytics stage (:func:`qa.analytics.analyse`) after the comparison and the rules; its
        rows join ``Run.scores`` before the gate.
    instances : {"classes", "components"}, default "classes"
        How label maps enter instance matching: one object per class, or one per connected component
        of each thing class (:func:`qa.engine.semantic.components_as_instances`).
    report : str or os.PathLike, optional
        Write the run's HTML report there; None writes none.
    report_pictures : int, optional
        How many of the worst images the report draws (default :data:`qa.report.DEFAULT_PICTURES`).
    outputs : callable, optional
        ``outputs(run, staged)`` writes further files of the run through ``staged.write(path, content)``
        (:class:`qa._commit.StagedFiles`), as the report is written.

    Notes
    -----
    A run that fails leaves nothing behind: the report and ``outputs``' files are written under
    temporary names beside their targets before the store is touched, and moved into place right
    after the run is committed (with interrupts held back from just before the commit); when anything
    fails first, the store is left as it was and the temporary files are removed.
    """
    from qa.store import input_fingerprints

    started = _utcnow()
    gate_config = None
    if gate is not None:  # a bad [gate] table (an unknown metric, a non-finite bound) or --max-drop stops
        from qa.gate import finite_bound, load_gate  # the run before any work

        gate_config = load_gate(gate)
        if max_drop is not None:
            finite_bound(max_drop, "--max-drop")
    batch, alias_counts = _load(*exports, manifest=manifest, aliases=aliases, categories=categories,
                                max_pixels=max_pixels, progress=progress, format_options=format_options)
    settings = {"max_pixels": max_pixels or Limits().max_pixels}
    if format_options:
        settings["format_options"] = format_options
    if instances != "classes":
        from qa.engine.semantic import with_instances

        batch = with_instances(batch, instances)
        settings["instances"] = instances
    if manifest is not None:
        settings["manifest"] = str(manifest)
    if aliases:
        settings["aliases"] = aliases
    if categories is not None:
        settings["categories"] = list(categories)
    summary = summarise(batch, alias_report=alias_counts)
    resolved = None
    if pack is not None:
        from qa.rules.packs import Pack, override, read

        resolved = override(pack if isinstance(pack, Pack) else read(pack), select=select, ignore=ignore)
    from qa.task import map_reduce, task_options

    options = task_options(batch, tolerances=tolerances, iou_threshold=iou_threshold, max_pixels=max_pixels,
                           pack=resolved, analytics=analytics)
    # one pass over the images, one task per chunk, on one executor (the local pool or a Dask cluster)
    with _executors.using(executor, workers=workers, announce=_announce) as pool:
        reduced = map_reduce(batch, options, executor=pool, progress=progress)
    comparison, violations = reduced.comparison, reduced.violations
    semantic = boundaries = analysed = None
    scores = None
    if comparison is not None:
        from qa.analytics.boundaries import boundary_stage, stage_summary

        settings["compare"] = comparison.settings
        summary["pairs"] = comparison.pair_table()
        semantic, boundaries, scores = boundary_stage(batch, comparison, tolerances=tolerances,
                                                      semantic=reduced.semantic, facts=reduced.facts)
        summary.update(stage_summary(semantic, boundaries))
    if resolved is not None:
        from qa.rules.check import violation_summary

        settings["pack"] = str(resolved.path or resolved.name)
        summary.update(violation_summary(violations, batch.annotators, resolved))
    if comparison is not None and analytics:
        analysed = analytics_stage(batch, comparison, violations=violations, max_pixels=max_pixels,
                                   pack=resolved, alpha_counts=reduced.alpha_counts,
                                   consensus_result=reduced.consensus, facts=reduced.facts)
        settings["analytics"] = analysed.settings
        summary["analytics"] = analysed.summary(top=50)
        if analysed.findings:
            from qa.rules.check import finding_dict

            summary["findings"] = summary["findings"] + [finding_dict(f) for f in analysed.findings]
        import pandas as pd

        scores = pd.concat([scores, analysed.scores], ignore_index=True) \
            .drop_duplicates(["scope", "key", "metric"], keep="first").reset_index(drop=True)
    if gate is not None:
        settings.update(gate=str(gate), baseline=baseline, max_drop=max_drop)
    result = Run(batch=batch, summary=summary, settings=settings, violations=violations, pack=resolved,
                 findings=list(analysed.findings) if analysed is not None else [],
                 comparison=comparison, scores=scores, analytics=analysed, semantic=semantic,
                 boundaries=boundaries,
                 boundary_disagreement=boundaries.table if boundaries is not None else None,
                 run_id=new_run_id(started), started_at=started, inputs=input_fingerprints(batch))
    # every finding of the run (load, alignment, rules), counted as the store counts them
    from qa.gate import run_findings

    severities = Counter(f.severity for f in run_findings(result))
    result.summary.update(errors=severities.get("error", 0), warnings=severities.get("warning", 0))
    if gate is not None:
        result.verdict = gate_stage(result, gate, baseline=baseline, max_drop=max_drop, db=db,
                                    lock_timeout=lock_timeout, config=gate_config)
        result.summary["verdict"] = result.verdict.to_dict()
    result.finished_at = _utcnow()
    result.summary["run_id"] = result.run_id
    from qa._commit import StagedFiles

    with StagedFiles() as staged:  # every output written (and so known writable) before the commit
        if db is not None and store:
            result.stored = str(db)  # the report names the store the run goes to
        if report is not None:
            report_stage(result, report, pictures=report_pictures, staged=staged)
        if outputs is not None:
            outputs(result, staged)
        if db is not None and store:
            store_stage(result, db, lock_timeout=lock_timeout, on_commit=staged.publish)
        else:
            staged.publish()
    return result
