"""The only orchestrator: load, align, compare, check, gate, store, report.

Each stage is a function of the stage before; this module chains them and nothing else does.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from qa import __version__
from qa.align import align
from qa.engine import _executors
from qa.errors import ConfigError
from qa.manifest import ExportSpec, Manifest, parse_spec, read_manifest
from qa.model import Batch, Limits, Progress, Run, RunOptions, new_run_id
from qa.parts import run_folder

__all__ = ["Run", "RunOptions", "load", "run", "summarise"]


def _specs(exports) -> list[ExportSpec]:
    specs = []
    if isinstance(exports, dict):
        from qa.formats._location import location

        exports = [ExportSpec(annotator=k, path=location(v)) for k, v in exports.items()]
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


CONSENSUS = "consensus"
"""``--reference consensus``: each annotator against the consensus of the others, built in the run."""


def _load(*exports, manifest=None, aliases=None, categories=None, max_pixels=None,
          progress: Progress | None = None, format_options=None, reference=None, rescale=(),
          attributes=None, streamed: bool = False, executor=None) -> tuple[Batch, dict, Manifest | None]:
    """:func:`load`, plus the alias report the alignment recorded (``Batch.alias_report``) and the manifest.

    ``streamed`` indexes the exports instead of loading them (:mod:`qa.formats._index`): the batch's
    exports hold no objects, ``batch.index`` says where they are, and each chunk of images reads its own
    (:func:`qa.engine.chunks.chunks_of`). A batch whose alignment scales an export into another's frame
    (ALN007, ALN008) is loaded whole instead: scaling needs the objects (:func:`qa.align.align`).
    ``executor`` (:mod:`qa.engine._executors`, the run's) parses the exports for the index
    (:func:`qa.formats._index_pieces.index_exports`); without one they are indexed in this process.
    """
    from qa.formats import load as load_export
    from qa.formats._index_pieces import Job, index_exports

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
    sources = []
    if streamed:  # the parsing on the run's executor (qa.formats._index_pieces), the exports in order
        sources = index_exports([Job(spec.path, spec.annotator, spec.format, spec.options, format_options)
                                 for spec in specs], limits=limits, executor=executor, progress=progress)
        loaded.extend(e for source in sources for e in source.exports)
    else:
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
    if reference is None and man is not None:
        reference = man.reference
    names = [e.annotator for e in loaded]
    # 'consensus' names the consensus of the others, unless an export is called that
    gold = None if reference is None or (reference == CONSENSUS and CONSENSUS not in names) else reference
    if gold is not None and gold not in names:
        raise ConfigError(f"the reference {gold!r} is not an annotator of the batch (annotators: "
                          f"{', '.join(names)}); name one, or 'consensus' for the consensus of the others")
    declared = set(rescale or ())
    declared |= {s.annotator for s in specs if s.rescale and s.annotator}
    unknown = sorted(declared - set(names))
    if unknown:
        raise ConfigError(f"--rescale {unknown[0]!r} is not an annotator of the batch (annotators: {', '.join(names)})")
    if streamed:
        from qa.engine.chunks import BatchIndex

        index = BatchIndex.before_alignment(sources)
    batch = align(loaded, aliases=merged_aliases,
                  categories=categories if categories is not None else (man.categories if man else None),
                  reference=gold, rescale=declared)
    if streamed:
        if any(image.scaled_from is not None for e in batch.exports.values() for image in e.images.values()):
            # scaled into another export's frame: a whole load scales the objects (and leaves out an image
            # with one it cannot scale), so read the exports whole
            return _load(*exports, manifest=manifest, aliases=aliases, categories=categories,
                         max_pixels=max_pixels, progress=progress, format_options=format_options,
                         reference=reference, rescale=rescale, attributes=attributes)
        batch.index = index.after_alignment(batch)
    batch.reference = gold
    levels = dict(man.attributes) if man is not None else {}
    levels.update(attributes or {})
    batch.attribute_levels = levels
    if man is not None:
        batch.name, batch.description = man.name, man.description
    return batch, batch.alias_report, man


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
        census = export.count()  # counted from the objects, or the streamed index's counts
        per_annotator.append({
            "annotator": name,
            "path": str(export.path),
            "format": export.format,
            "images": len(export.images),
            "objects": census.objects,
            "crowd": census.crowd,
            "objects_per_category": dict(sorted(census.per_category.items())),
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


def reference_stage(batch: Batch, comparison, *, consensus: str | None = None, tolerances=(1, 2, 4),
                    iou_threshold: float = 0.5, workers=None, max_pixels=None, progress=None, executor=None):
    """The reference stage: each annotator against the batch's reference (its comparison's reference pairs),
    or with ``consensus`` (``"vote"`` or ``"staple"``) against the consensus of the others, built here
    (:func:`qa.analytics.consensus.consensus_of_others`) and compared with each annotator."""
    from qa.analytics.reference import panoptic_pair_pq, score_against_reference

    if consensus is None:
        reference_of = {a: batch.reference for a in batch.annotators if a != batch.reference}
        formats = {n: e.format for n, e in batch.exports.items()}
        return score_against_reference(comparison, reference_of, reference=batch.reference,
                                       panoptic_pq=panoptic_pair_pq(comparison, reference_of, formats))
    from qa.analytics.consensus import consensus_of_others
    from qa.engine.compare import PairPlan, compare_batch

    extended, reference_of = consensus_of_others(batch, comparison, method=consensus, workers=workers,
                                                 executor=executor,
                                                 max_pixels=max_pixels, progress=progress)
    against = compare_batch(extended, tolerances=tolerances, iou_threshold=iou_threshold, workers=workers,
                            executor=executor,
                            max_pixels=max_pixels, plan=PairPlan(reference_of, pairs="reference"))
    result = score_against_reference(against, reference_of, reference=f"consensus of the others ({consensus})")
    result.exports = {name: extended.exports[name] for name in reference_of.values()}
    return result


def _union(*frames):
    """The score frames' rows one after the other, each (scope, key, metric) once (its first row).

    As ``concat(...).drop_duplicates(...).reset_index(drop=True)``, but the rows are taken again only
    when a key repeats: otherwise the result's text columns are the frames' own Arrow chunks, not a copy
    (the analytics' scores and the run's shared them; at 20,000 images 22 MB each)."""
    import pandas as pd

    rows = pd.concat(frames, ignore_index=True)
    repeated = rows.duplicated(["scope", "key", "metric"], keep="first")
    return rows[~repeated].reset_index(drop=True) if repeated.any() else rows


def _with_reference(scores, rows, reference: str | None):
    """The run's scores with the figures against the reference in front (they replace the pairwise
    figures of the same scope, key and name), and without the reference's own annotator row."""
    if reference is not None:
        scores = scores[~((scores["scope"] == "annotator") & (scores["key"] == reference))]
    return _union(rows, scores)


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


def run(*exports, options: RunOptions | None = None, **keywords) -> Run:
    """Run every stage on a batch and return what it produced.

    Parameters
    ----------
    *exports : str, os.PathLike, ExportSpec or dict
        The exports, as :func:`load` takes them.
    options : RunOptions, optional
        How the run is made (every field is described there); default all defaults.
    **keywords
        Any field of :class:`~qa.model.RunOptions` (``workers=2``, ``db="qa.duckdb"``, ``pack=None``,
        ...), over ``options``.

    Returns
    -------
    Run
        Its ``options`` are the options it was made with.

    Raises
    ------
    TypeError
        On a keyword that is no option (the message names the options).
    InputError, ConfigError, StoreError, WorkerError
        When an export, an option, the store or the executor fails; nothing is stored then.

    Notes
    -----
    The per-image work (comparison, class maps, rules, pixel alpha, consensus) is one pass over the
    images, one task per chunk (:mod:`qa.task`), on the local process pool, in this process
    (``workers=1``) or on a Dask cluster (``executor``); the results do not depend on which.

    The exports are indexed, not loaded (:mod:`qa.formats._index`), with the parsing of the index pass
    on the same executor (:mod:`qa.formats._index_pieces`): each task reads its images' objects
    from the exports, and the objects come back without their geometry, so the returned
    ``Run.batch`` holds objects whose ``polygons`` and ``rle`` are None (their category, image, box,
    area, attributes and source are set), each export's ``objects`` a read-only sequence of them
    (:class:`qa.pickled.PackedObjects`: pickled blocks, read on access); :func:`load` reads a batch whole.
    ``instances="components"`` and ``reference="consensus"`` read the batch whole before the pass.

    A run that fails leaves nothing behind: the report and ``outputs``' files are written under
    temporary names beside their targets before the store is touched, and moved into place right
    after the run is committed (with interrupts held back from just before the commit); when anything
    fails first, the store is left as it was and the temporary files are removed.

    Examples
    --------
    >>> run = qa.run("alice=a.json", "bob=b.json", workers=2, store=False)  # doctest: +SKIP
    >>> run.options.workers  # doctest: +SKIP
    2
    """
    opts = RunOptions.from_keywords(options, **keywords)
    return _run(exports, opts)


def _run(exports, opts: RunOptions) -> Run:
    # one executor for the run, opened before the exports are indexed (the index pass parses on it)
    pool = _executors.open_executor(opts.executor, workers=opts.workers, announce=_announce)
    try:
        return _run_on(pool, exports, opts)
    finally:
        if pool is not opts.executor:
            pool.close()


def _run_on(pool, exports, opts: RunOptions) -> Run:
    from qa.store import input_fingerprints

    progress = opts.progress
    started = _utcnow()
    folder = run_folder()  # the run's tables kept on disk (qa.parts), removed with the last reader
    gate_config = None
    if opts.gate is not None:  # a bad [gate] table (an unknown metric, a non-finite bound) or --max-drop stops
        from qa.gate import finite_bound, load_gate  # the run before any work

        gate_config = load_gate(opts.gate)
        if opts.max_drop is not None:
            finite_bound(opts.max_drop, "--max-drop")
    batch, alias_counts, man = _load(*exports, manifest=opts.manifest, aliases=opts.aliases,
                                     categories=opts.categories, max_pixels=opts.max_pixels, progress=progress,
                                     format_options=opts.format_options, reference=opts.reference,
                                     rescale=opts.rescale, attributes=opts.attributes, streamed=True,
                                     executor=pool)
    # from the index, no object held: the images, categories, counts and load findings of the batch
    summary = summarise(batch, alias_report=alias_counts) if opts.instances == "classes" else None
    if opts.instances != "classes" or opts.reference == CONSENSUS:
        from qa.engine.chunks import materialise

        # components are made from whole label maps, and the consensus of the others becomes exports of
        # the batch: both read the batch whole
        batch = materialise(batch)
    settings = {"max_pixels": opts.max_pixels or Limits().max_pixels}
    pairs = opts.pairs or (man.pairs if man is not None else None) or "reference"
    if pairs not in ("reference", "all"):
        raise ConfigError(f"pairs must be 'reference' or 'all', got {pairs!r}")
    of_consensus = opts.reference == CONSENSUS and batch.reference is None
    plan = None
    if batch.reference is not None:
        from qa.engine.compare import PairPlan

        plan = PairPlan({a: batch.reference for a in batch.annotators if a != batch.reference}, pairs=pairs)
        settings.update(reference=batch.reference, pairs=pairs)
    elif of_consensus:
        settings.update(reference=f"consensus of the others ({opts.consensus_method})")
    rescaled = sorted({f.annotator for f in batch.findings if f.code in ("ALN007", "ALN008")})
    if rescaled:
        settings["rescaled"] = rescaled
    if batch.attribute_levels:
        settings["attribute_levels"] = dict(batch.attribute_levels)
    if opts.instances != "classes":
        from qa.engine.semantic import with_instances

        batch = with_instances(batch, opts.instances)
        summary = summarise(batch, alias_report=alias_counts)  # counts of the components
    settings.update(opts.settings())
    resolved = None
    if opts.pack is not None:
        from qa.rules.packs import Pack, override, read

        resolved = override(opts.pack if isinstance(opts.pack, Pack) else read(opts.pack), select=opts.select,
                            ignore=opts.ignore)
    from qa._memory import give_back
    from qa.task import map_reduce, task_options

    # the consensus of everyone only without a reference (with one, each annotator is scored against it)
    consensus = batch.reference is None and not of_consensus
    options = task_options(batch, tolerances=opts.tolerances, iou_threshold=opts.iou_threshold,
                           max_pixels=opts.max_pixels, pack=resolved, analytics=opts.analytics, plan=plan,
                           consensus=consensus, stored=opts.db is not None and opts.store)
    # one pass over the images, one task per chunk, on one executor (the local pool or a Dask cluster);
    # the consensus of the others (--reference consensus) runs on the same executor
    with _executors.using(pool, announce=_announce) as pool:  # closed below, or by _run on an error
        reduced = map_reduce(batch, options, executor=pool, progress=progress, spill_dir=opts.spill_dir,
                             folder=folder)
        if reduced.objects is not None:  # a streamed batch: its objects, without their geometry, from the pass
            for name, objects in reduced.objects.items():
                batch.exports[name].objects = objects
        give_back()  # after each stage, the free pages of its temporaries (qa._memory)
        comparison, violations, object_rows = reduced.comparison, reduced.violations, reduced.object_rows
        semantic = boundaries = analysed = None
        scores = None
        if comparison is not None:
            from qa.analytics.boundaries import boundary_stage, stage_summary

            settings["compare"] = comparison.settings
            summary["pairs"] = comparison.pair_table()
            semantic, boundaries, scores = boundary_stage(batch, comparison, tolerances=opts.tolerances,
                                                          semantic=reduced.semantic, facts=reduced.facts,
                                                          reference=batch.reference)
            summary.update(stage_summary(semantic, boundaries))
            give_back()
        if resolved is not None:
            from qa.rules.check import violation_summary

            settings["pack"] = str(resolved.path or resolved.name)
            summary.update(violation_summary(violations, batch.annotators, resolved))
        if comparison is not None and opts.analytics:
            analysed = analytics_stage(batch, comparison, violations=violations, max_pixels=opts.max_pixels,
                                       pack=resolved, alpha_counts=reduced.alpha_counts, consensus=consensus,
                                       consensus_result=reduced.consensus, facts=reduced.facts,
                                       folder=Path(folder.name), owner=folder, executor=pool)
            settings["analytics"] = analysed.settings
            summary["analytics"] = analysed.summary(top=50)
            if analysed.findings:
                from qa.rules.check import finding_dict

                summary["findings"] = summary["findings"] + [finding_dict(f) for f in analysed.findings]
            scores = _union(scores, analysed.scores)
        # the boundary and analytics stages were the last readers of the per-object facts, alpha's counts
        # and the consensus: not held through the store's rows and attribute agreement
        reduced.facts = reduced.alpha_counts = reduced.consensus = None
        give_back()
        against = attributes_result = None
        if comparison is not None and (batch.reference is not None or of_consensus):
            against = reference_stage(batch, comparison, consensus=opts.consensus_method if of_consensus else None,
                                      tolerances=opts.tolerances, iou_threshold=opts.iou_threshold, executor=pool,
                                      max_pixels=opts.max_pixels, progress=progress)
            summary["reference"] = against.summary()
            settings["reference_scores"] = against.settings
            scores = _with_reference(scores, against.scores, batch.reference)
        match_rows = None
        if comparison is not None and opts.db is not None and opts.store:  # the store's rows of the matches,
            from qa.store import stored_match_rows  # made by the workers while they are there

            match_rows = stored_match_rows(comparison, folder.path / "object_matches", owner=folder, executor=pool)
    if pool is not opts.executor:
        pool.close()  # the per-image work is done: release the workers before the store and the report
    if comparison is not None:
        from qa.analytics.attributes import attribute_agreement

        attributes_result = attribute_agreement(batch, comparison, levels=batch.attribute_levels,
                                                reference=batch.reference, values=reduced.attribute_values)
        if attributes_result is not None:
            summary["attributes"] = attributes_result.summary()
            settings["attributes"] = attributes_result.settings
            scores = _union(scores, attributes_result.scores)
            if analysed is not None and len(attributes_result.review):
                from qa.analytics.review import requeue

                give_back()  # attribute agreement's temporaries, before the queue is read and written again
                analysed.review_table = requeue(analysed.review_table, attributes_result.review)
                summary["analytics"]["review_queue_total"] = int(len(analysed.review_table))
    del reduced  # its per-object tables (facts, attribute codes) are used up: not held through the store
    give_back()
    settings.update(opts.gate_settings())
    result = Run(batch=batch, summary=summary, settings=settings, violations=violations, pack=resolved,
                 findings=list(analysed.findings) if analysed is not None else [],
                 comparison=comparison, scores=scores, analytics=analysed, semantic=semantic,
                 boundaries=boundaries,
                 boundary_disagreement=boundaries.table if boundaries is not None else None,
                 run_id=opts.run_id or new_run_id(started), started_at=started, inputs=input_fingerprints(batch),
                 options=opts, reference=against, attributes=attributes_result, object_rows=object_rows,
                 match_rows=match_rows)
    # every finding of the run (load, alignment, rules), counted as the store counts them
    from qa.gate import run_findings
    from qa.rules.violations import counts_by

    severities = counts_by(run_findings(result), "severity")
    result.summary.update(errors=severities.get("error", 0), warnings=severities.get("warning", 0))
    if opts.gate is not None:
        result.verdict = gate_stage(result, opts.gate, baseline=opts.baseline, max_drop=opts.max_drop, db=opts.db,
                                    lock_timeout=opts.lock_timeout, config=gate_config)
        result.summary["verdict"] = result.verdict.to_dict()
    result.finished_at = _utcnow()
    result.summary["run_id"] = result.run_id
    from qa._commit import StagedFiles

    db = opts.db
    with StagedFiles() as staged:  # every output written (and so known writable) before the commit
        if db is not None and opts.store:
            result.stored = str(db)  # the report names the store the run goes to
        if opts.report is not None:
            report_stage(result, opts.report, pictures=opts.report_pictures, staged=staged)
        if opts.outputs is not None:
            opts.outputs(result, staged)
        if db is not None and opts.store:
            store_stage(result, db, lock_timeout=opts.lock_timeout, on_commit=staged.publish)
        else:
            staged.publish()
    return result
