"""The ``qa`` command: parse arguments, call :mod:`qa.pipeline` or a public function, print the result.

stdout carries results only; progress, warnings and errors go to stderr, so
``qa run ... --format json > summary.json`` stays clean. Each subcommand is a pair of functions here:
``_add_<name>(subparsers)`` declares its arguments and ``_cmd_<name>(args) -> int`` runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from qa import __version__
from qa._text import visible
from qa.errors import EXIT_ERROR, EXIT_OK, QAError

EPILOG = """exit codes:
  0  the gate passed, or there was no gate
  1  the gate failed
  2  the run could not finish (bad input, bad configuration or an internal error)
"""

EPILOG_NO_GATE = """exit codes:
  0  done
  2  it could not finish (bad input, bad configuration or an internal error)
"""
"""The exit codes of a command that has no gate (qa consensus, qa report, qa synth)."""


class UsageError(QAError):
    """The command line itself is wrong."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and exiting."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def _progress_printer():
    """One rich progress bar on stderr and its callback, or (None, None) when stderr is not a terminal.

    The callback takes ``progress(stage, done, total)``; the bar follows the stage being reported (the
    exports read, then the images: done / total, images per second, time left).
    """
    if not sys.stderr.isatty():
        return None, None
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class Rate(ProgressColumn):
        """Items per second, in the stage's unit."""

        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.1f} {task.fields['unit']}/s" if speed else "", style="progress.data.speed")

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
                   TimeRemainingColumn(), TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    current: dict = {}

    def update(stage: str, done: int, total: int) -> None:
        unit = "exports" if stage == "load" else "images"
        if "task" not in current:
            current["task"] = bar.add_task(stage, total=total, unit=unit)
        elif current.get("stage") != stage:  # the one bar follows the next stage
            bar.reset(current["task"], total=total, completed=0, description=stage, unit=unit)
        current["stage"] = stage
        bar.update(current["task"], completed=done, total=total)

    return bar, update


def format_finding(f: dict) -> str:
    """One finding per line, ``file:where: [annotator] CODE message`` (ruff's concise format); names
    with control characters are escaped (:func:`qa._text.visible`), so a line is always one line."""
    if f.get("file"):
        place = f"{f['file']}:{f['where']}" if f.get("where") else f["file"]
    else:
        place = f.get("image") or "batch"
    who = f" [{f['annotator']}]" if f.get("annotator") else ""
    return visible(f"{place}:{who} {f['code']} {f['message']}")


def render_table(header: list[str], rows: list[list[str]], *, left: int = 1) -> str:
    """A plain aligned text table; the first ``left`` columns are left-aligned, the rest right-aligned.
    Cells are :func:`qa._text.visible` (a name's control characters escaped)."""
    table = [[visible(c) for c in row] for row in [header] + rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    lines = []
    for row in table:
        cells = [str(c).ljust(w) if i < left else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def plural(n: int, word: str) -> str:
    """``1 error``, ``2 errors``, ``0 errors``.

    Examples
    --------
    >>> plural(1, "image"), plural(3, "warning")
    ('1 image', '3 warnings')
    """
    return f"{n} {word}{'s' * (n != 1)}"


def closing_line(summary: dict, verdict=None) -> str:
    """The last line of ``qa run``: every finding of the run (load, alignment, rules) by severity, the
    exports, and the gate's outcome when there is a gate (STYLE.md (f)).

    Examples
    --------
    >>> closing_line({"errors": 3, "warnings": 12, "annotators": [{}, {}]})
    '3 errors, 12 warnings in 2 exports'
    """
    line = (f"{plural(summary['errors'], 'error')}, {plural(summary['warnings'], 'warning')} in "
            f"{plural(len(summary['annotators']), 'export')}")
    return line if verdict is None else f"{line}; {verdict.summary_line()}"


def _print_summary(summary: dict) -> None:
    rows = summary["annotators"]
    batch = summary.get("batch") or {}
    if batch.get("name") or batch.get("description"):
        print(visible(": ".join(t for t in (batch.get("name"), batch.get("description")) if t)))
        print()
    categories = sorted({c for r in rows for c in r["objects_per_category"]})
    shown = categories[:8]
    print(render_table(
        ["annotator", "format", "images", "objects", "crowd", *shown],
        [[r["annotator"], r["format"], r["images"], r["objects"], r["crowd"],
          *[r["objects_per_category"].get(c, 0) for c in shown]] for r in rows],
        left=2,
    ))
    if len(categories) > len(shown):
        print(f"({len(categories) - len(shown)} more categories in the JSON summary)")
    report = summary.get("alias_report")
    if report and (report["mapped"] or report["unused_patterns"]):
        from qa.align import alias_report_text

        print()
        print(alias_report_text(report))
    elif summary["aliases"]:
        print()
        print(visible("aliases: " + ", ".join(f"{k} -> {v}" for k, v in summary["aliases"].items())))
    if summary["findings"]:
        print()
        for f in summary["findings"]:
            print(format_finding(f))
    if summary.get("pairs"):
        print()
        _print_pairs(summary["pairs"])
    _print_analytics(summary.get("analytics"))
    _print_reference(summary.get("reference"))
    _print_attributes(summary.get("attributes"))
    _print_boundaries(summary)
    _print_violation_table(summary)


def _print_closing(summary: dict, verdict) -> None:
    """The failed gate checks (if any), the batch line and the closing summary line."""
    if verdict is not None:
        from qa.gate import to_text

        failed = to_text(verdict, failed_only=True).splitlines()[:-1]  # the last line is the gate's summary
        if failed:
            print()
            print("\n".join(failed))
    rows = summary["annotators"]
    print()
    print(f"{plural(len(rows), 'annotator')}, {plural(summary['images'], 'image')} "
          f"({summary['images_labelled_by_all']} labelled by all), "
          f"{plural(sum(r['objects'] for r in rows), 'object')}")
    print(closing_line(summary, verdict))


# --- qa run -------------------------------------------------------------------------------------------

def _add_run(sub) -> None:
    p = sub.add_parser("run", help="Load, align and compare the annotators' exports of one batch.",
                       description="Load, align and compare the annotators' exports of one batch.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exports", nargs="*", metavar="NAME=PATH", help="an annotator's export, as name=path")
    p.add_argument("-m", "--manifest", type=Path, help="a batch manifest (TOML)")
    p.add_argument("--alias", action="append", default=[], metavar="CANONICAL=PATTERN",
                   help="map category names onto one (exact name, glob, or re:regex); repeatable")
    p.add_argument("--json", dest="json_path", type=Path, metavar="PATH", help="also write the results as JSON")
    p.add_argument("--format", dest="output_format", choices=("text", "json"), default="text",
                   help="what stdout carries (default: text)")
    p.add_argument("--max-pixels", type=int, metavar="N", help="largest image accepted (default 100000000)")
    _add_input_options(p)
    _add_pack_options(p, gate=True)
    p.add_argument("--tolerance", dest="tolerances", type=float, action="append", metavar="PX",
                   help="boundary tolerance in pixels; repeatable (default: 1, 2 and 4)")
    p.add_argument("--iou-threshold", type=float, default=0.5, metavar="T",
                   help="smallest mask IoU of a matched object pair (default 0.5)")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (default: one per CPU; 1: none)")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="run the per-image work on a Dask cluster: a scheduler address (tcp://host:8786) or "
                        "local:N for a local cluster of N processes (default: $DASK_SCHEDULER_ADDRESS when set "
                        "and --workers is not given; see docs/scale.md)")
    p.add_argument("--instances", choices=("classes", "components"), default="classes",
                   help="label maps: match one object per class (default) or per connected component of "
                        "each thing class")
    p.add_argument("--reference", metavar="NAME",
                   help="score every annotator against this one (a gold set; it may label only some images), "
                        "or 'consensus': each against the consensus of the others, built in the run")
    p.add_argument("--pairs", choices=("reference", "all"),
                   help="with --reference: compare each annotator with the reference only (default) or every "
                        "pair too")
    p.add_argument("--consensus-method", choices=("vote", "staple"), default="vote",
                   help="--reference consensus: pixel vote (default) or STAPLE")
    p.add_argument("--rescale", action="append", default=[], metavar="NAME",
                   help="NAME's export labels the images at another resolution: scale it into the reference's "
                        "frame whatever its aspect ratio; repeatable")
    p.add_argument("--attribute", action="append", default=[], metavar="NAME=LEVEL",
                   help="agree on object attribute NAME at level nominal or ordinal (default: inferred from "
                        "the values); repeatable")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write object_pairs, image_pairs and scores as Parquet files into DIR")
    _add_store_options(p)
    p.add_argument("--no-store", action="store_true", help="do not write the run to the store")
    p.add_argument("--gate", type=Path, metavar="PACK",
                   help="gate the run on this pack's [gate] thresholds; its rules are checked too unless "
                        "--pack is given")
    _add_gate_options(p)
    _add_report_options(p)
    p.set_defaults(handler=_cmd_run)


INPUT_FORMATS = ("coco_panoptic", "coco", "cvat", "label_studio", "labelme", "binary_masks", "labelmap")
"""The names --input-format takes (qa.formats.FORMATS, which a test keeps this in step with; importing
qa.formats here would slow every command's start)."""


def _add_input_options(p) -> None:
    """How exports are read: --input-format, and the binary-mask options for every binary-mask export."""
    p.add_argument("--input-format", metavar="FORMAT",
                   help=f"read every NAME=PATH export as FORMAT ({', '.join(INPUT_FORMATS)}) instead of detecting "
                        "it; manifest exports use their 'format' key")
    p.add_argument("--foreground", choices=("white", "black", "auto"),
                   help="binary masks: which colour is foreground (default auto: the colour that does not cover "
                        "the masks' border); for every binary-mask export, over the manifest's options")
    p.add_argument("--threshold", type=float, metavar="T",
                   help="binary masks: grey threshold as a fraction of full scale, in (0, 1) (default 0.5); "
                        "for every binary-mask export, over the manifest's options")


def _input_exports(args) -> list:
    """The NAME=PATH exports, with --input-format applied."""
    exports = list(args.exports)
    if args.input_format is not None:
        from dataclasses import replace

        from qa.formats import FORMATS
        from qa.manifest import parse_spec

        if args.input_format not in FORMATS:
            raise UsageError(f"--input-format {args.input_format!r} is not one of: {', '.join(FORMATS)}")
        exports = [replace(parse_spec(e), format=args.input_format) for e in exports]
    return exports


def _format_options(args) -> dict | None:
    """``{"binary_masks": {...}}`` from --foreground and --threshold, or None when neither is given."""
    options = {}
    if args.foreground is not None:
        options["foreground"] = args.foreground
    if args.threshold is not None:
        if not 0 < args.threshold < 1:
            raise UsageError(f"--threshold must lie between 0 and 1 (a fraction of full scale), got {args.threshold:g}")
        options["threshold"] = args.threshold
    return {"binary_masks": options} if options else None


def _parse_aliases(items: list[str]) -> dict[str, list[str]]:
    aliases: dict[str, list[str]] = {}
    for item in items:
        canonical, sep, pattern = item.partition("=")
        if not sep or not canonical or not pattern:
            raise UsageError(f"--alias {item!r} is not CANONICAL=PATTERN")
        aliases.setdefault(canonical, []).append(pattern)
    return aliases


def _parse_attributes(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, level = item.partition("=")
        if not sep or not name or level not in ("nominal", "ordinal"):
            raise UsageError(f"--attribute {item!r} is not NAME=nominal or NAME=ordinal")
        out[name] = level
    return out


def _run_pack(args):
    """The rule pack of ``qa run``: ``--pack``, else the ``--gate`` pack, else the built-in default."""
    if args.pack is not None:
        return args.pack
    return args.gate if args.gate is not None else "default"


def _run_options(args, *, format_options, executor, progress, outputs):
    """``qa run``'s options as the run's :class:`qa.model.RunOptions`."""
    from qa.model import RunOptions

    return RunOptions(manifest=args.manifest, aliases=_parse_aliases(args.alias), max_pixels=args.max_pixels,
                      pack=_run_pack(args), select=_selectors(args.select), ignore=_selectors(args.ignore),
                      gate=args.gate, baseline=args.baseline, max_drop=args.max_drop, db=_db(args),
                      store=not args.no_store, lock_timeout=args.lock_timeout, progress=progress,
                      tolerances=tuple(args.tolerances or (1, 2, 4)), iou_threshold=args.iou_threshold,
                      workers=args.workers, instances=args.instances, report=_report_path(args),
                      format_options=format_options, outputs=outputs, executor=executor,
                      reference=args.reference, pairs=args.pairs, rescale=tuple(args.rescale or ()),
                      attributes=_parse_attributes(args.attribute), consensus_method=args.consensus_method)


def _dask_address(args) -> str | None:
    """The Dask cluster that ``--dask`` or ``DASK_SCHEDULER_ADDRESS`` names (the variable only when neither
    ``--workers`` nor ``--dask`` was given), or None for the local pool; checks the two options."""
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.workers is not None and args.dask is not None:
        raise UsageError("--workers sizes the local pool and --dask names a cluster; give one of them")
    if args.dask is None and args.workers is None:
        return os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    return args.dask


_STDOUT_SPOOL = 8 * 2 ** 20
"""Bytes of ``qa run``'s stdout held in memory until the run is stored; past them, a temporary file."""


def _json_file(summary):
    """A function that writes ``summary`` as ``qa run --json PATH`` does, to the path it is given
    (:meth:`qa._commit.StagedFiles.write`), as it is made (:func:`qa.rules.check.write_json`)."""
    from qa.rules.check import write_json

    def write(path) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            write_json(summary, fh)
            fh.write("\n")

    return write


def _cmd_run(args) -> int:
    import shutil
    import tempfile

    from qa.pipeline import run
    from qa.rules.check import write_json

    if args.max_pixels is not None and args.max_pixels <= 0:
        raise UsageError("--max-pixels must be a positive integer")
    if not args.exports and args.manifest is None:
        raise UsageError("give exports as NAME=PATH or a --manifest (see 'qa run --help')")
    dask = _dask_address(args)
    if args.gate is None and (args.baseline is not None or args.junit is not None):
        raise UsageError("--baseline and --junit need --gate PACK")
    exports = _input_exports(args)
    format_options = _format_options(args)
    from qa.errors import EXIT_GATE_FAILED

    # stdout is held until the run is stored: in memory while small, then in a temporary file (a large
    # run's JSON is a few hundred bytes per violation); written and read back as the text it was given
    printed = tempfile.SpooledTemporaryFile(max_size=_STDOUT_SPOOL, mode="w+", encoding="utf-8", newline="",
                                            errors="surrogateescape")
    written: list = []
    stage: dict = {}

    def outputs(result, staged) -> None:
        """Every file and the whole of stdout made before the run is committed (qa._commit)."""
        stage["files"] = staged
        if args.json_path is not None:
            written.append(staged.write(args.json_path, _json_file(result.summary)))
        if args.out is not None and result.comparison is not None:
            written.extend(result.comparison.write_parquet(args.out, staged=staged))
        if args.junit is not None and result.verdict is not None:
            from qa.gate import to_junit

            staged.write(args.junit, to_junit(result.verdict))
        with contextlib.redirect_stdout(printed):
            if args.output_format == "json":
                write_json(result.summary, sys.stdout)
                print()
            else:
                _print_summary(result.summary)
                _print_closing(result.summary, result.verdict)

    def hold_after_commit(signum, frame):
        """SIGINT stops the run until its files are published; after that the run is stored and done."""
        if stage.get("files") is not None and stage["files"].published:
            stage["interrupted"] = True
            return
        raise KeyboardInterrupt

    import signal
    import threading

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, hold_after_commit) if main_thread else None
    bar, progress = _progress_printer()
    if bar is not None:
        bar.start()
    try:
        try:
            result = run(*exports, options=_run_options(args, format_options=format_options, executor=dask,
                                                        progress=progress, outputs=outputs))
        finally:
            if bar is not None:
                bar.stop()
        # the run is stored and its files in place: what is left only reports it, and its exit code is the
        # verdict's whatever happens now
        code = EXIT_OK if result.verdict is None or result.verdict.success else EXIT_GATE_FAILED
        for path in written:
            _err(f"results written to {path}")
        if args.junit is not None and result.verdict is not None:
            _err(f"written {args.junit}")
        if result.report is not None:
            _err(f"report written to {result.report}")
        try:
            printed.seek(0)
            shutil.copyfileobj(printed, sys.stdout)
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_stdout()
        if result.stored is not None and sys.stderr.isatty():
            _err(f"stored run {result.run_id} in {result.stored}")
        if stage.get("interrupted"):
            _err("qa: interrupted after the run was stored; it is complete")
        return code
    finally:
        printed.close()
        if main_thread:
            signal.signal(signal.SIGINT, previous)


def _quiet_stdout() -> None:
    """After a broken pipe: send what is left of stdout nowhere (no second error at exit)."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _metric_table(first: list[str], rows: list[dict], metrics, *, key) -> str:
    """A text table: the ``first`` columns from ``key(row)``, then one column per metric, headed by the
    metric registry's short label and formatted as it says (counts as integers, "-" when absent)."""
    from qa import metric_registry

    return render_table(
        [*first, *[metric_registry.short(m) for m in metrics]],
        [[*key(r), *[metric_registry.format_value(m, r.get(m)) for m in metrics]] for r in rows],
        left=len(first))


_PAIR_COLUMNS = ("images", "pq", "mask_iou_mean", "image_iou_mean", "boundary_f_2px_mean", "matched", "missing",
                 "extra", "label_disagreements")
_ANNOTATOR_COLUMNS = ("matched", "missing", "missing_share", "extra", "mask_iou_mean", "image_iou_mean",
                      "boundary_f_2px_mean", "signed_offset_px_mean", "label_disagreements")
_CONSENSUS_COLUMNS = ("consensus_objects", "matched", "missing", "extra", "mask_iou_mean", "boundary_f_2px_mean",
                      "sensitivity_mean", "specificity_mean")


def _print_pairs(pairs: list[dict]) -> None:
    """The per annotator pair table: PQ, matched-object and image-level IoU, boundary F at 2 px, counts."""
    print(_metric_table(["pair"], pairs, _PAIR_COLUMNS, key=lambda p: [p["pair"]]))


# --- qa run: analytics ---------------------------------------------------------------------------------

def _print_analytics(analytics: dict | None, *, top: int = 10) -> None:
    """The per-annotator table, Krippendorff's alpha with its interval and the top of the review queue."""
    if not analytics:
        return

    def fmt(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"

    rows = analytics.get("annotators") or []
    if rows:
        print()
        print(_metric_table(["annotator"], rows, _ANNOTATOR_COLUMNS, key=lambda r: [r["annotator"]]))
    alpha = analytics.get("alpha")
    if alpha:
        print()
        n = alpha["images"]
        interval = (f"{alpha['confidence']:.0%} CI {fmt(alpha['ci_low'])} to {fmt(alpha['ci_high'])}; {n} images, "
                    f"{alpha['bootstrap']} bootstrap replicates over images" if alpha["ci_low"] is not None
                    else f"no interval from {n} image{'s' * (n != 1)}")
        print(f"Krippendorff's alpha (pixel labels): {fmt(alpha['alpha'])} ({interval})")
    consensus = analytics.get("consensus") or []
    if consensus:
        print()
        print("against the consensus (majority pixel vote; 'qa consensus' for options and a COCO export):")
        print(_metric_table(["annotator"], consensus, _CONSENSUS_COLUMNS, key=lambda r: [r["annotator"]]))
    queue = (analytics.get("review_queue") or [])[:top]
    if queue:
        print()
        print(f"review queue: top {len(queue)} of {analytics.get('review_queue_total', len(queue))} "
              f"(worst first; --format json for more)")
        print(render_table(
            ["rank", "score", "image", "object", "reason", "detail"],
            [[q["rank"], fmt(q["score"], 2), q["image"] or "",
              "" if q.get("object_index") is None else f"{q['annotator']}#{q['object_index']}", q["reason"],
              q["detail"]] for q in queue], left=0))


# --- qa run: against the reference, attributes -----------------------------------------------------------

_REFERENCE_COLUMNS = ("images", "f1", "precision", "recall", "label_accuracy", "mask_iou_mean", "image_iou_mean",
                      "boundary_f_2px_mean", "boundary_iou_mean", "signed_offset_px_mean", "pq")


def _print_reference(reference: dict | None) -> None:
    """Each annotator against the reference: counts, F1 with its interval, IoU, boundary F, PQ."""
    if not reference or not reference.get("annotators"):
        return
    from qa import metric_registry
    from qa.analytics.reference import interval_text

    rows = reference["annotators"]
    columns = [c for c in _REFERENCE_COLUMNS if any(r.get(c) is not None for r in rows)]
    print()
    print(visible(f"against the reference ({reference['reference']}); F1 with its 95% bootstrap interval over "
                  "images:"))
    print(render_table(
        ["annotator", *[metric_registry.short(c) for c in columns], "F1 interval"],
        [[r["annotator"], *[metric_registry.format_value(c, r.get(c)) for c in columns],
          interval_text(r.get("f1"), r.get("f1_ci_low"), r.get("f1_ci_high")).partition(" ")[2] or "-"]
         for r in rows], left=1))


def _print_attributes(attributes: dict | None) -> None:
    """Agreement per attribute: level (declared or inferred), pairs, agreement, accuracy, kappa, alpha."""
    if not attributes or not attributes.get("attributes"):
        return
    rows = attributes["attributes"]

    def fmt(value):
        return "-" if value is None else f"{value:.3f}"

    used = [r for r in rows if r.get("used")]
    print()
    print("attributes (matched objects):")
    if used:
        print(render_table(["attribute", "level", "how", "pairs", "agreement", "accuracy", "kappa", "alpha"],
                           [[r["attribute"], r["level"], r["how"], r.get("pairs") or 0,
                             fmt(r.get("attribute_agreement_share")), fmt(r.get("accuracy")), fmt(r.get("kappa")),
                             fmt(r.get("alpha"))] for r in used], left=3))
    kinds = sorted({r.get("kappa_kind") for r in used if r.get("kappa_kind")})
    if kinds:
        print(visible(f"kappa: {'; '.join(kinds)}; alpha: Krippendorff's, at the attribute's level, over the "
                      "clusters of matched objects"))
    left = [r for r in rows if not r.get("used")]
    if left:
        print("left out: " + "; ".join(f"{r['attribute']} ({r['reason']})" for r in left))


# --- qa run: per-class agreement and boundary findings ------------------------------------------------

def _print_boundaries(summary: dict) -> None:
    """Per-class agreement of label maps and panoptic exports, then the top boundary findings."""
    classes = summary.get("classes")
    if classes:
        from qa import metric_registry

        # the class table's columns are pooled class figures: class_iou, class_boundary_f_<t>
        figures = {c: f"class_{c}" for c in classes[0] if c == "iou" or c.startswith("boundary_f_")}
        print()
        print(render_table(["class", "image pairs", *[metric_registry.short(m) for m in figures.values()]],
                           [[c["category"], c["images"],
                             *[metric_registry.format_value(m, c[k]) for k, m in figures.items()]] for c in classes]))
    findings = summary.get("boundary_findings")
    if findings:
        print()
        print("boundaries:")
        for f in findings:
            print(f"  {visible(f['text'])}")


# --- the run store and the gate: qa runs, qa sql, qa export, qa diff, qa gate ----------------------------

def _add_store_options(p) -> None:
    p.add_argument("--db", type=Path, metavar="PATH", help="the run store (default: $QA_DB or ./qa.duckdb)")
    p.add_argument("--lock-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="wait this long for another process's lock on the store (default 30)")


def _add_gate_options(p) -> None:
    p.add_argument("--baseline", metavar="RUN", help="a stored run to check regressions against: an id, prefix "
                                                     "or seq number; latest or latest~N, the latest run of the "
                                                     "same batch (its manifest name, else the same annotators); "
                                                     "latest:any for the latest of any batch")
    p.add_argument("--max-drop", type=float, metavar="DELTA",
                   help="fail when a gated figure drops more than this below the baseline's")
    p.add_argument("--junit", type=Path, metavar="PATH", help="also write the verdict as JUnit XML")


def _db(args) -> Path:
    from qa.store import default_db

    return args.db if args.db is not None else default_db()


def _open_store(args, *, read_only: bool = True, sandbox: bool = False):
    from qa import store

    if args.lock_timeout < 0:
        raise UsageError("--lock-timeout must not be negative")
    return store.open(_db(args), read_only=read_only, lock_timeout=args.lock_timeout, sandbox=sandbox)


def _finish_gate(verdict, args, *, text: bool) -> int:
    """Write the JUnit file, print the gate's text, and return the exit code (set last)."""
    from qa.errors import EXIT_GATE_FAILED

    if verdict is None:
        return EXIT_OK
    from qa.gate import to_junit, to_text

    if args.junit is not None:
        _write(args.junit, to_junit(verdict))
    if text:
        print()
        print(to_text(verdict, failed_only=True))
    return EXIT_OK if verdict.success else EXIT_GATE_FAILED


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror or exc}") from None
    _err(f"written {path}")


def readable_number(value: float) -> str:
    """A float for a text table, without exponent: whole numbers as integers, others to 4 significant
    digits (every digit left of the point kept); an exponent only below 1e-6 or from 1e15 on.

    Examples
    --------
    >>> readable_number(30410.0), readable_number(30410.37), readable_number(0.76923), readable_number(1.5e-7)
    ('30410', '30410', '0.7692', '1.5e-07')
    >>> readable_number(201.25), readable_number(-2.5), readable_number(float("inf"))
    ('201.2', '-2.5', 'inf')
    """
    import math

    if not math.isfinite(value):
        return str(value)
    size = abs(value)
    if size != 0 and (size < 1e-6 or size >= 1e15):
        return f"{value:.4g}"
    if value == int(value):
        return str(int(value))
    places = max(0, 3 - math.floor(math.log10(size)))
    text = f"{value:.{places}f}"
    return text.rstrip("0").rstrip(".") if places else text


def _cell(value) -> str:
    """A table cell: floats as :func:`readable_number` says, missing values empty, control characters
    escaped."""
    return visible(_plain_cell(value))


def _plain_cell(value) -> str:
    """A table cell's exact text (for CSV: control characters kept)."""
    if value is None:
        return ""
    try:
        import pandas as pd

        if pd.isna(value) is True:
            return ""
    except (TypeError, ValueError):
        pass
    if isinstance(value, float):
        return readable_number(value)
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        items = value.tolist() if hasattr(value, "tolist") else value
        return ",".join(str(v) for v in items)
    return str(value)


def _print_frame(df, fmt: str = "table", *, left: int | None = None) -> None:
    """A DataFrame to stdout as an aligned table, CSV or JSON records."""
    if fmt == "json":
        print(df.to_json(orient="records", date_format="iso", indent=2, force_ascii=False))
        return
    if fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(list(df.columns))
        for row in df.itertuples(index=False):
            writer.writerow([_plain_cell(v) if not isinstance(v, float) else ("" if v != v else repr(v)) for v in row])
        return
    rows = [[_cell(v) for v in row] for row in df.itertuples(index=False)]
    if left is None:  # left-align text columns, right-align numbers
        import pandas.api.types as ptypes

        numeric = [ptypes.is_numeric_dtype(df[c]) and not ptypes.is_bool_dtype(df[c]) for c in df.columns]
        header = [visible(c) for c in df.columns]
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
        for row in [header] + rows:
            print("  ".join(c.rjust(w) if num else c.ljust(w)
                            for c, w, num in zip(row, widths, numeric)).rstrip())
        return
    print(render_table(list(map(str, df.columns)), rows, left=left))


def _add_store_commands(sub) -> None:
    _add_runs(sub)
    _add_sql(sub)
    _add_export(sub)
    _add_diff(sub)
    _add_gate(sub)


def _add_runs(sub) -> None:
    p = sub.add_parser("runs", help="List the stored runs, or show one (qa runs show RUN).",
                       description="List the stored runs (newest first), or show one: qa runs show RUN.")
    p.add_argument("action", nargs="?", choices=("list", "show"), default="list", help="list (default) or show")
    p.add_argument("run", nargs="?", metavar="RUN", help="with show: a run id, prefix, seq number or latest")
    p.add_argument("-n", "--limit", type=int, metavar="N", help="list only the newest N runs")
    p.add_argument("--format", dest="output_format", choices=("table", "csv", "json"), default="table")
    _add_store_options(p)
    p.set_defaults(handler=_cmd_runs)


def _cmd_runs(args) -> int:
    if args.action == "list":
        if args.run is not None:
            raise UsageError(f"unexpected argument {args.run!r}; did you mean 'qa runs show {args.run}'?")
        with _open_store(args) as store:
            df = store.runs(limit=args.limit)
        if args.output_format != "table":
            _print_frame(df, args.output_format)
            return EXIT_OK
        if len(df) == 0:
            _err(f"no runs stored in {_db(args)}")
            return EXIT_OK
        table = df[["seq", "run_id", "name", "started_at", "n_annotators", "n_images", "n_objects", "errors",
                    "warnings", "pack", "verdict"]].rename(columns={
                        "n_annotators": "annotators", "n_images": "images", "n_objects": "objects",
                        "started_at": "started (UTC)"})
        table["pack"] = [Path(p).name if isinstance(p, str) else p for p in table["pack"]]
        _print_frame(table)
        return EXIT_OK
    if args.run is None:
        raise UsageError("qa runs show needs a RUN (see 'qa runs')")
    with _open_store(args) as store:
        info = store.run(args.run)
        annotators = store.table("annotators", info["run_id"]).drop(columns=["run_id"])
        findings = store.sql("SELECT severity, code, count(*) AS n FROM findings WHERE run_id = ? "
                             "GROUP BY ALL ORDER BY severity, code", [info["run_id"]])
        scores = store.sql("SELECT metric, value, n FROM scores WHERE run_id = ? AND scope = 'batch' "
                           "ORDER BY metric", [info["run_id"]])
    if args.output_format == "json":
        info = dict(info)
        info["annotators"] = json.loads(annotators.to_json(orient="records"))
        info["findings_by_code"] = json.loads(findings.to_json(orient="records"))
        info["batch_scores"] = json.loads(scores.to_json(orient="records"))
        print(json.dumps(info, indent=2, default=str))
        return EXIT_OK
    for key in ("run_id", "seq", "name", "description", "started_at", "finished_at", "stored_at", "tool_version",
                "inputs_sha256", "pack", "baseline_run_id", "verdict"):
        if info.get(key) is not None:
            print(f"{key + ':':<17}{_cell(info[key])}")
    print(f"{'settings:':<17}{json.dumps(info['settings'], sort_keys=True)}")
    print()
    _print_frame(annotators[["annotator", "format", "n_images", "n_objects", "n_crowd", "n_findings",
                             "sha256", "path"]])
    if len(findings):
        print()
        _print_frame(findings)
    if len(scores):
        print()
        _print_frame(scores)
    if info.get("verdict_json"):
        from qa.gate import Verdict, to_text

        print()
        print(to_text(Verdict.from_dict(info["verdict_json"])))
    return EXIT_OK


def _add_sql(sub) -> None:
    p = sub.add_parser("sql", help="Run a read-only SQL query on the run store.",
                       description="Run a read-only SQL query on the run store (tables: docs/schema.md). "
                                   "The query reads the store's tables only: no other file or URL, no "
                                   "ATTACH, COPY TO, EXPORT, INSTALL or LOAD.")
    p.add_argument("query", help='for example "SELECT run_id, verdict FROM runs"')
    p.add_argument("--format", dest="output_format", choices=("table", "csv", "json"), default="table")
    _add_store_options(p)
    p.set_defaults(handler=_cmd_sql)


def _cmd_sql(args) -> int:
    with _open_store(args, sandbox=True) as store:  # reads the store's tables; no other file, URL or extension
        df = store.sql(args.query)
    _print_frame(df, args.output_format)
    return EXIT_OK


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="Write one run's rows of every table as Parquet files.",
                       description="Write one run's rows of every table as Parquet files (<table>.parquet).")
    p.add_argument("run", metavar="RUN", help="a run id, prefix, seq number or latest")
    p.add_argument("--parquet", type=Path, required=True, metavar="DIR", help="the folder to write into")
    _add_store_options(p)
    p.set_defaults(handler=_cmd_export)


def _cmd_export(args) -> int:
    with _open_store(args) as store:
        files = store.export_parquet(args.run, args.parquet)
    for f in files:
        print(f)
    return EXIT_OK


def _add_diff(sub) -> None:
    p = sub.add_parser("diff", help="Show what changed between two stored runs.",
                       description="Show what changed between two stored runs: inputs, counts per "
                                   "annotator, category and finding code, and every figure per annotator, "
                                   "category and annotator pair.")
    p.add_argument("run_a", metavar="RUN_A", help="the earlier or reference run")
    p.add_argument("run_b", metavar="RUN_B", help="the run to compare with it")
    p.add_argument("--all", action="store_true", help="also list what did not change")
    p.add_argument("--scope", action="append", metavar="SCOPE",
                   help="score scopes to compare (repeatable; default batch, annotator, category, annotator_pair)")
    p.add_argument("--format", dest="output_format", choices=("text", "json"), default="text")
    _add_store_options(p)
    p.set_defaults(handler=_cmd_diff)


def _cmd_diff(args) -> int:
    from qa.store import DIFF_SCOPES, diff, diff_changes

    with _open_store(args) as store:
        d = diff(store, args.run_a, args.run_b, scopes=args.scope or DIFF_SCOPES)
    shown = d if args.all else diff_changes(d)
    counts, scores, inputs = shown["counts"], shown["scores"], shown["inputs"]
    if args.output_format == "json":
        print(json.dumps({"a": d["a"], "b": d["b"],
                          **{k: json.loads(v.to_json(orient="records", date_format="iso"))
                             for k, v in (("runs", d["runs"]), ("inputs", inputs), ("counts", counts),
                                          ("scores", scores))}}, indent=2))
        return EXIT_OK
    print(f"a: {d['a']}\nb: {d['b']}")
    sections = [("inputs", inputs), ("counts", counts), ("scores", scores)]
    for title, df in sections:
        print()
        if len(df) == 0:
            print(f"{title}: no change")
            continue
        print(f"{title}:")
        _print_frame(df)
    n_changed = len(scores) if not args.all else int((scores["delta"].fillna(1).abs() > 1e-12).sum())
    print()
    print(f"{int((d['inputs']['status'] != 'same').sum())} inputs changed, "
          f"{int((d['counts']['delta'] != 0).sum())} counts changed, {n_changed} figures changed")
    return EXIT_OK


def _add_gate(sub) -> None:
    p = sub.add_parser("gate", help="Gate a stored run on a pack's [gate] thresholds.",
                       description="Gate a stored run on a pack's [gate] thresholds; exit 0 when it "
                                   "passes, 1 when it fails.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", help="a run id, prefix, seq number or latest")
    p.add_argument("--pack", type=Path, required=True, metavar="PACK", help="a pack file or built-in pack name")
    _add_gate_options(p)
    p.add_argument("--format", dest="output_format", choices=("text", "json", "junit"), default="text",
                   help="what stdout carries (default: text)")
    _add_store_options(p)
    p.set_defaults(handler=_cmd_gate)


def _cmd_gate(args) -> int:
    from qa import __version__ as version
    from qa.gate import evaluate, finite_bound, load_gate, to_json, to_junit

    config = load_gate(args.pack)
    if args.max_drop is not None:
        config.max_drop = finite_bound(args.max_drop, "--max-drop")
    with _open_store(args) as store:
        info = store.run(args.run)
        run_id = info["run_id"]
        scores = store.scores(run_id)
        findings = store.findings(run_id)
        annotators = list(store.table("annotators", run_id)["annotator"])
        baseline_id = baseline = baseline_findings = None
        if args.baseline is not None:
            from qa.store import describe_batch

            identity = store.batch_of(run_id)
            baseline_id = store.resolve_baseline(args.baseline, batch=identity)  # `latest`: of the run's batch
            if baseline_id is None:
                raise UsageError(f"--baseline {args.baseline}: no stored run of {describe_batch(identity)} "
                                 f"(give a run id, or latest:any for the latest run of any batch)")
            baseline, baseline_findings = store.scores(baseline_id), store.findings(baseline_id)
    meta = {"run_id": run_id, "fingerprints": {i["annotator"]: i["sha256"] for i in info["inputs"] or []},
            "tool_version": version, "pack": config.pack, "baseline_run_id": baseline_id,
            "run_tool_version": info["tool_version"]}
    verdict = evaluate(scores, config, findings=findings, annotators=annotators, baseline=baseline,
                       baseline_findings=baseline_findings, meta=meta)
    if args.output_format == "json":
        print(to_json(verdict))
    elif args.output_format == "junit":
        print(to_junit(verdict), end="")
    code = _finish_gate(verdict, args, text=False)
    if args.output_format == "text":
        from qa.gate import to_text

        print(to_text(verdict))
    return code

# --- qa rules, qa check -------------------------------------------------------------------------------

def _selectors(items: list[str] | None) -> list[str] | None:
    """``--select A,B --select C`` -> ``["A", "B", "C"]`` (None when not given)."""
    if not items:
        return None
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def _add_pack_options(p, *, gate: bool = False) -> None:
    p.add_argument("--pack", metavar="PACK",
                   help="rule pack: a built-in name (default, street-scenes, medical-imaging) or a .toml file "
                        + ("(default: the --gate pack, else default)" if gate else "(default: default)"))
    p.add_argument("--select", action="append", metavar="CODES",
                   help="rule ids or prefixes to run instead of the pack's selection (comma-separated)")
    p.add_argument("--ignore", action="append", metavar="CODES",
                   help="rule ids or prefixes to leave out, applied last (comma-separated)")


def _print_violation_table(summary: dict) -> None:
    """``qa run``'s violations summary: one row per rule, one column per annotator."""
    if "violations_by_rule" not in summary:
        return
    rows = summary["violations_by_rule"]
    pack = summary["pack"]["name"]
    print()
    if not rows:
        print(f"no rule violations (pack {pack}, {len(summary['pack']['rules'])} rules)")
        return
    annotators = list(rows[0]["per_annotator"])
    print(render_table(["rule", "name", "severity", *annotators, "total"],
                       [[r["code"], r["name"], r["severity"], *r["per_annotator"].values(), r["total"]]
                        for r in rows], left=3))
    by = summary["violations_by_severity"]
    print(f"{plural(sum(by.values()), 'rule violation')} (pack {pack}): {plural(by['error'], 'error')}, "
          f"{plural(by['warning'], 'warning')}, {by['info']} info; 'qa check' lists them")


def _add_rules(sub) -> None:
    p = sub.add_parser("rules", help="List the rules or explain one.", description="List the rules or explain one.")
    actions = p.add_subparsers(dest="rules_command", metavar="ACTION", parser_class=_Parser)
    lst = actions.add_parser("list", help="List every rule: id, name, family, severity, status, title.")
    lst.add_argument("--pack", metavar="PACK", help="list only the rules this pack selects, with its severities")
    lst.add_argument("--format", dest="output_format", choices=("text", "json"), default="text")
    exp = actions.add_parser("explain", help="Explain one rule: what it checks, why it matters, parameters.")
    exp.add_argument("rule_id", metavar="ID", help="a rule id (VTX001) or name (sparse-polygon)")
    exp.add_argument("--format", dest="output_format", choices=("text", "json"), default="text")
    p.set_defaults(handler=_cmd_rules, rules_parser=p)


def _cmd_rules(args) -> int:
    from qa.rules import _registry

    if args.rules_command is None:
        args.rules_parser.print_help()
        return EXIT_OK
    if args.rules_command == "explain":
        try:
            found = _registry.get(args.rule_id)
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
        if args.output_format == "json":
            print(json.dumps(found.as_dict(), indent=2))
        else:
            print(found.explain(), end="")
        return EXIT_OK
    rules = _registry.all_rules()
    severity = {}
    if args.pack:
        from qa.rules.packs import read

        pack = read(args.pack)
        rules = [r for r in rules if r.id in pack.selected]
        severity = {r.id: pack.severity_of(r.id) for r in rules}
    rows = [{"id": r.id, "name": r.name, "family": r.family, "severity": severity.get(r.id, r.severity),
             "status": r.status, "title": r.title} for r in rules]
    if args.output_format == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(render_table(["id", "name", "family", "severity", "status", "title"],
                           [list(r.values()) for r in rows], left=6))
    return EXIT_OK


CHECK_EPILOG = """exit codes:
  0  the check finished, whatever it found (unless --exit-non-zero-on-error)
  1  with --exit-non-zero-on-error: at least one finding of severity error
  2  the check could not finish (bad input, bad configuration or an internal error)
"""


def _add_metrics(sub) -> None:
    from qa.metric_registry import SCOPES  # plain records: nothing heavy to import

    p = sub.add_parser("metrics", help="List every figure a run computes: the names a gate takes.",
                       description="List every figure a run computes (the metric registry): its name in the "
                                   "scores table and a gate's [gate] keys, label, kind, unit, which way is "
                                   "better and the scopes that carry it. docs/metrics.md has the same records.")
    p.add_argument("--scope", choices=sorted(SCOPES), help="only the figures this scope carries")
    p.add_argument("--format", dest="output_format", choices=("text", "json"), default="text")
    p.set_defaults(handler=_cmd_metrics)


def _cmd_metrics(args) -> int:
    from qa import metric_registry

    rows = [{"name": m.name, "label": m.label, "kind": m.kind, "unit": m.unit, "better": m.direction,
             "scopes": list(m.scopes), "description": m.description}
            for m in metric_registry.all_metrics() if args.scope is None or args.scope in m.scopes]
    if args.output_format == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(render_table(["name", "label", "kind", "unit", "better", "scopes"],
                           [[r["name"], r["label"], r["kind"], r["unit"] or "-", r["better"],
                             ",".join(r["scopes"]) or "-"] for r in rows], left=6))
    return EXIT_OK


def _add_check(sub) -> None:
    p = sub.add_parser("check", help="Check the annotators' exports against a rule pack.",
                       description="Check the annotators' exports against a rule pack: one violation per "
                                   "line, then a summary line.",
                       epilog=CHECK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exports", nargs="*", metavar="NAME=PATH", help="an annotator's export, as name=path")
    p.add_argument("-m", "--manifest", type=Path, help="a batch manifest (TOML)")
    p.add_argument("--alias", action="append", default=[], metavar="CANONICAL=PATTERN",
                   help="map category names onto one (exact name, glob, or re:regex); repeatable")
    _add_input_options(p)
    p.add_argument("--extend-select", action="append", metavar="CODES",
                   help="rule ids or prefixes to run in addition to the pack's selection (comma-separated)")
    p.add_argument("--format", dest="output_format", choices=("text", "json"), default="text",
                   help="what stdout carries (default: text)")
    p.add_argument("--exit-non-zero-on-error", "--exit-nonzero-on-error", action="store_true",
                   help="exit 1 when a finding of severity error is reported (as a failed gate does; "
                        "for CI steps that run qa check without a gate)")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (default: one per CPU; 1: none)")
    _add_pack_options(p)
    p.set_defaults(handler=_cmd_check)


def _cmd_check(args) -> int:
    from qa.rules.check import check, finding_dict, select_findings, sort_findings
    from qa.rules.packs import override, read
    from qa.pipeline import load

    if not args.exports and args.manifest is None:
        raise UsageError("give exports as NAME=PATH or a --manifest (see 'qa check --help')")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    pack = override(read(args.pack or "default"), select=_selectors(args.select),
                    extend_select=_selectors(args.extend_select), ignore=_selectors(args.ignore))
    batch = load(*_input_exports(args), manifest=args.manifest, aliases=_parse_aliases(args.alias),
                 format_options=_format_options(args))
    bar, progress = _progress_printer()
    if bar is not None:
        bar.start()
    try:
        violations = check(batch, pack, progress=progress, workers=args.workers)
    finally:
        if bar is not None:
            bar.stop()
    findings = sort_findings(select_findings(batch.findings, pack) + violations, batch.annotators)
    counts = {k: sum(f.severity == k for f in findings) for k in ("error", "warning", "info")}
    n = len(batch.exports)
    if args.output_format == "json":
        print(json.dumps({"schema": 1, "pack": pack.as_dict(), "findings": [finding_dict(f) for f in findings],
                          "counts": counts}, indent=2))
    else:
        for f in findings:
            print(format_finding(finding_dict(f)))
        print(f"{plural(counts['error'], 'error')}, {plural(counts['warning'], 'warning')}, {counts['info']} "
              f"info in {plural(n, 'export')} (pack {pack.name})")
    if args.exit_non_zero_on_error and counts["error"]:
        from qa.errors import EXIT_GATE_FAILED

        return EXIT_GATE_FAILED
    return EXIT_OK


# --- qa report ----------------------------------------------------------------------------------------

def _add_report_options(p) -> None:
    """``qa run``'s report options: on by default, next to the store or in --out."""
    p.add_argument("--report", type=Path, metavar="PATH",
                   help="write the HTML report here (default: report.html in --out, else beside the store)")
    p.add_argument("--no-report", action="store_true", help="do not write the HTML report")


def _report_path(args) -> Path | None:
    if args.no_report:
        if args.report is not None:
            raise UsageError("--report and --no-report exclude each other")
        return None
    if args.report is not None:
        return args.report
    if args.out is not None:
        return args.out / "report.html"
    return _db(args).parent / "report.html"


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="Write a stored run's self-contained HTML report.",
                       description="Write a stored run's self-contained HTML report: verdict, agreement "
                                   "matrix, categories, boundaries, rule violations, the worst images as "
                                   "overlay pictures, per-image detail, settings and inputs.",
                       epilog=EPILOG_NO_GATE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", default="latest", metavar="RUN",
                   help="a run id, prefix, seq number or latest (default: latest)")
    p.add_argument("-o", "--output", type=Path, default=Path("report.html"), metavar="PATH",
                   help="the HTML file to write (default: report.html)")
    p.add_argument("--pictures", type=int, default=None, metavar="N",
                   help="overlay pictures of the N worst images (default 100; 0 for none)")
    _add_store_options(p)
    p.set_defaults(handler=_cmd_report)


def _cmd_report(args) -> int:
    from qa.report import DEFAULT_PICTURES, from_store, write_report

    pictures = DEFAULT_PICTURES if args.pictures is None else args.pictures
    if pictures < 0:
        raise UsageError("--pictures must not be negative")
    with _open_store(args) as store:
        data = from_store(store, args.run, pictures=pictures)
    path = write_report(data, args.output)
    if data.pictures_note.startswith("Pictures unavailable"):
        _err(f"qa: warning: {data.pictures_note}")
    _err(f"report of run {data.meta['run_id']} written to {path}")
    return EXIT_OK


# --- qa serve -----------------------------------------------------------------------------------------

def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="Serve the run store as pages and a JSON API (a job queue for batches).",
                       description="Serve the run store over HTTP: pages for runs, annotators and categories "
                                   "across runs, and a JSON API to submit a batch and poll its verdict "
                                   "(docs/serve.md). Listens on 127.0.0.1:8000 unless told otherwise; writes "
                                   "need the token (QA_TOKEN or --token-file), and so does every request when "
                                   "it listens beyond the loopback. Needs the serve extra: "
                                   "pip install 'annotation-qa[serve]'.",
                       epilog=EPILOG_NO_GATE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="the port (default 8000)")
    p.add_argument("--token-file", type=Path, metavar="PATH",
                   help="a file whose first line is the token (default: $QA_TOKEN; none: read-only)")
    p.add_argument("--root", type=Path, action="append", default=[], metavar="DIR",
                   help="a folder submitted manifests (and their exports) may lie in; repeatable")
    p.add_argument("--jobs-dir", type=Path, metavar="DIR",
                   help="the job queue and uploads (default: <store>.jobs beside the store)")
    p.add_argument("--max-upload", type=int, default=512, metavar="MB", help="largest zip upload (default 512 MB)")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes per run (default: one per CPU)")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="send each run's per-image work to a Dask cluster: tcp://host:8786, or local:N "
                        "(default: $DASK_SCHEDULER_ADDRESS, else the local pool; docs/scale.md)")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's log level (default warning)")
    _add_store_options(p)
    p.set_defaults(handler=_cmd_serve)


def _cmd_serve(args) -> int:
    if not 0 < args.port < 65536:
        raise UsageError("--port must lie between 1 and 65535")
    if args.max_upload <= 0:
        raise UsageError("--max-upload must be a positive number of MB")
    dask = _dask_address(args)
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise UsageError("qa serve needs the serve extra: pip install 'annotation-qa[serve]'") from None
    for root in args.root:
        if not root.is_dir():
            raise UsageError(f"--root {root}: not a folder")
    from qa.serve.app import Config, serve
    from qa.serve.auth import load_token
    from qa.serve.uploads import Limits

    config = Config(db=_db(args), host=args.host, port=args.port, token=load_token(args.token_file),
                    roots=list(args.root), jobs_dir=args.jobs_dir, workers=args.workers, dask=dask,
                    limits=Limits(upload_bytes=args.max_upload * 2**20), lock_timeout=args.lock_timeout)
    _err(f"qa serve: {config.db} on http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}/ "
         f"({'writes need the token' if config.token else 'read-only: no token'}"
         f"{', roots ' + ', '.join(map(str, config.roots)) if config.roots else ''})")
    serve(config, log_level=args.log_level)
    return EXIT_OK


# --- qa synth -----------------------------------------------------------------------------------------

def _add_synth(sub) -> None:
    from qa.synth._faults import FAULTS

    faults = ", ".join(FAULTS)
    p = sub.add_parser(
        "synth", help="Write a synthetic batch: street scenes, noisy annotators and the planted faults.",
        description="Write a synthetic batch: street scenes, K noisy annotators' exports, the noise-free "
                    "truth, batch manifests and planted.json (every planted fault and the rule it targets).",
        epilog=f"faults: {faults}, rule_faults (all rule faults)\n"
               "example: qa synth out --images 100 --faults 'bob:dilate=2' 'carol:miss_small=1024,p=0.9'\n\n"
               + EPILOG_NO_GATE,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="output folder (created; must be empty)")
    p.add_argument("--images", type=int, default=10, metavar="N", help="number of images (default 10)")
    p.add_argument("--size", default="1024x2048", metavar="HxW",
                   help="image height x width in pixels (default 1024x2048)")
    p.add_argument("--annotators", type=int, default=3, metavar="K", help="number of annotators (default 3)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--faults", nargs="+", action="extend", metavar="SPEC",
                   help="ANNOTATOR:FAULT[=VALUE][,KEY=VALUE...]; 'none' plants nothing "
                        "(default: a preset using every model, see docs/synth.md)")
    p.add_argument("--formats", default="coco,coco_panoptic", metavar="LIST",
                   help="comma-separated: coco, coco_panoptic, cvat, labelmap (default coco,coco_panoptic)")
    p.add_argument("--workers", type=int, metavar="N", help="processes (default: CPU count, at most 8)")
    p.add_argument("--force", action="store_true", help="replace an earlier qa synth output in OUT_DIR")
    p.add_argument("--format", dest="output_format", choices=("text", "json"), default="text",
                   help="what stdout carries (default: text)")
    p.set_defaults(handler=_cmd_synth)


def _cmd_synth(args) -> int:
    from qa.synth import parse_size, synthesize
    from qa.synth._faults import FAULTS

    if args.workers is not None and args.workers <= 0:
        raise UsageError("--workers must be a positive integer")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    bar, progress = _progress_printer()
    if bar is not None:
        bar.start()
    try:
        summary = synthesize(args.out_dir, images=args.images, size=parse_size(args.size),
                             annotators=args.annotators, seed=args.seed, faults=args.faults, formats=formats,
                             workers=args.workers, force=args.force, progress=progress)
    finally:
        if bar is not None:
            bar.stop()
    if args.output_format == "json":
        print(json.dumps(summary, indent=2))
        return EXIT_OK
    names = summary["annotators"]
    h, w = summary["size"]
    print(f"wrote {summary['images']} images of {h}x{w}, {len(names)} annotators to {summary['out_dir']}")
    print()
    kinds = ["coco", "coco_panoptic", "cvat", "labelmap"]
    shown = [k for k in kinds if k in summary["formats"]]
    print(render_table(["export", "objects", *shown],
                       [[n, summary["objects"][n], *[summary["files"][n].get(k, "") for k in shown]]
                        for n in ["truth", *names]], left=1))
    print()
    print("manifests: " + ", ".join(summary["manifests"]) + "; planted faults: planted.json; "
          "truth table: truth/objects.csv")
    if summary["noise"]:
        print("noise: " + "; ".join(summary["noise"]))
    planted = summary["planted"]
    if planted:
        print()
        by = summary["planted_by_annotator"]
        print(render_table(["fault", "rule", *names, "total"],
                           [[f, FAULTS[f].rule or "-", *[by[n].get(f, 0) for n in names], planted[f]]
                            for f in planted], left=2))
    print()
    print(f"{sum(planted.values())} per-object records in planted.json (planted faults and noise side effects) "
          f"for {summary['images']} images")
    return EXIT_OK


# --- qa consensus -------------------------------------------------------------------------------------

def _add_consensus(sub) -> None:
    p = sub.add_parser(
        "consensus", help="Build the consensus of three or more annotators and score each against it.",
        description="Build the consensus of three or more annotators (clusters of matched objects, a quorum, "
                    "a pixel vote or STAPLE), score each annotator against it, and optionally write it as "
                    "COCO instances.",
        epilog=EPILOG_NO_GATE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exports", nargs="*", metavar="NAME=PATH", help="an annotator's export, as name=path")
    p.add_argument("-m", "--manifest", type=Path, help="a batch manifest (TOML)")
    p.add_argument("--alias", action="append", default=[], metavar="CANONICAL=PATTERN",
                   help="map category names onto one (exact name, glob, or re:regex); repeatable")
    _add_input_options(p)
    p.add_argument("--method", choices=("vote", "staple"), default="vote",
                   help="consensus mask by pixel vote (default) or STAPLE")
    p.add_argument("--quorum", default="majority", metavar="Q",
                   help="annotators a cluster needs: 'majority' (default; more than half of those covering "
                        "the image), a number such as 3, or a share such as 0.75")
    p.add_argument("--ties", choices=("background", "foreground"), default="background",
                   help="pixel vote: a pixel marked by exactly half of the annotators (default background)")
    p.add_argument("--tolerance", dest="tolerances", type=float, action="append", metavar="PX",
                   help="boundary tolerance in pixels; repeatable (default: 1, 2 and 4)")
    p.add_argument("--iou-threshold", type=float, default=0.5, metavar="T",
                   help="smallest mask IoU of a matched object pair (default 0.5)")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (default: one per CPU; 1: none)")
    p.add_argument("--out", type=Path, metavar="PATH", help="write the consensus as COCO instances JSON")
    p.add_argument("--objects", type=Path, metavar="PATH",
                   help="write the per-object table (each annotator against each consensus object) as Parquet")
    p.add_argument("--format", dest="output_format", choices=("text", "json"), default="text",
                   help="what stdout carries (default: text)")
    p.set_defaults(handler=_cmd_consensus)


def _cmd_consensus(args) -> int:
    from qa.analytics.consensus import build_consensus, parse_quorum
    from qa.pipeline import load

    if not args.exports and args.manifest is None:
        raise UsageError("give exports as NAME=PATH or a --manifest (see 'qa consensus --help')")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    quorum = parse_quorum(args.quorum)
    bar, progress = _progress_printer()
    if bar is not None:
        bar.start()
    try:
        batch = load(*_input_exports(args), manifest=args.manifest, aliases=_parse_aliases(args.alias),
                     format_options=_format_options(args), progress=progress)
        if len(batch.annotators) < 2:
            raise UsageError("a consensus needs at least two annotators (three or more to outvote one)")
        result = build_consensus(batch, method=args.method, quorum=quorum, ties=args.ties,
                                 tolerances=tuple(args.tolerances or (1, 2, 4)), iou_threshold=args.iou_threshold,
                                 workers=args.workers, progress=progress)
    finally:
        if bar is not None:
            bar.stop()
    if args.out is not None:
        _err(f"written {result.write_coco(args.out)}")
    if args.objects is not None:
        args.objects.parent.mkdir(parents=True, exist_ok=True)
        result.objects.to_parquet(args.objects, engine="pyarrow", index=False)
        _err(f"written {args.objects}")
    if args.output_format == "json":
        print(json.dumps({"summary": result.summary, "settings": result.settings,
                          "annotators": json.loads(result.annotators.to_json(orient="records"))}, indent=2))
        return EXIT_OK
    from qa.engine.boundary import tolerance_label

    from qa import metric_registry

    tolerances = result.settings["tolerances"]
    shown = 2.0 if 2.0 in tolerances else tolerances[0]
    columns = ("images", "consensus_objects", "matched", "missing", "extra", "label_disagreements", "mask_iou_mean",
               metric_registry.name("boundary_f_{t}_mean", t=tolerance_label(shown)), "sensitivity_mean",
               "specificity_mean", "signed_offset_px_mean")
    print(_metric_table(["annotator"], result.annotators.to_dict("records"), columns, key=lambda r: [r["annotator"]]))
    s = result.summary
    method = "pixel vote" if args.method == "vote" else "STAPLE"
    print()
    print(f"{s['images']} images, {s['clusters']} clusters: {s['consensus_objects']} consensus objects, "
          f"{s['below_quorum']} below quorum ({args.quorum}), {s['empty']} empty; {method}")
    return EXIT_OK


# --- entry point --------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The ``qa`` argument parser with every subcommand."""
    parser = _Parser(prog="qa", description="Measure how much segmentation annotators agree, "
                                            "where and why they disagree, and gate releases on it.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"qa {__version__}")
    parser.add_argument("--debug", action="store_true", help="show a traceback when the run fails")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_run(sub)
    _add_store_commands(sub)
    _add_rules(sub)
    _add_metrics(sub)
    _add_check(sub)
    _add_synth(sub)
    _add_consensus(sub)
    _add_report(sub)
    _add_serve(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``qa`` with ``argv`` (``sys.argv[1:]`` when None) and return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
        if args.command is None:
            parser.print_help()
            return EXIT_OK
        return int(args.handler(args))
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_ERROR
    except QAError as exc:
        if debug:
            raise
        _err(f"qa: error: {visible(exc)}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        _err("qa: error: interrupted")
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # the promise is "never a traceback" unless --debug
        if debug:
            raise
        _err(f"qa: error: internal error: {type(exc).__name__}: {visible(exc)}; rerun with --debug and report it")
        return EXIT_ERROR
