"""The ``qa`` command: parse arguments, call :mod:`qa.run` or a public function, print the result.

stdout carries results only; progress, warnings and errors go to stderr, so
``qa run ... --format json > summary.json`` stays clean. Each subcommand is a pair of functions here:
``_add_<name>(subparsers)`` declares its arguments and ``_cmd_<name>(args) -> int`` runs it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qa import __version__
from qa.errors import EXIT_ERROR, EXIT_OK, QAError

EPILOG = """exit codes:
  0  the gate passed, or there was no gate
  1  the gate failed
  2  the run could not finish (bad input, bad configuration or an internal error)
"""


class UsageError(QAError):
    """The command line itself is wrong."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and exiting."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def _progress_printer():
    """A rich progress bar on stderr and its callback, or (None, None) when stderr is not a terminal."""
    if not sys.stderr.isatty():
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=True)
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return bar, update


def format_finding(f: dict) -> str:
    """One finding per line, ``file:where: [annotator] CODE message`` (ruff's concise format)."""
    if f.get("file"):
        place = f"{f['file']}:{f['where']}" if f.get("where") else f["file"]
    else:
        place = f.get("image") or "batch"
    who = f" [{f['annotator']}]" if f.get("annotator") else ""
    return f"{place}:{who} {f['code']} {f['message']}"


def render_table(header: list[str], rows: list[list[str]], *, left: int = 1) -> str:
    """A plain aligned text table; the first ``left`` columns are left-aligned, the rest right-aligned."""
    table = [header] + rows
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    lines = []
    for row in table:
        cells = [str(c).ljust(w) if i < left else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _print_summary(summary: dict) -> None:
    rows = summary["annotators"]
    batch = summary.get("batch") or {}
    if batch.get("name") or batch.get("description"):
        print(": ".join(t for t in (batch.get("name"), batch.get("description")) if t))
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
        from qa.alias_report import render_text

        print()
        print(render_text(report))
    elif summary["aliases"]:
        print()
        print("aliases: " + ", ".join(f"{k} -> {v}" for k, v in summary["aliases"].items()))
    if summary["findings"]:
        print()
        for f in summary["findings"]:
            print(format_finding(f))
    if summary.get("pairs"):
        print()
        _print_pairs(summary["pairs"])
    print()
    n = len(rows)
    print(f"{n} annotator{'s' * (n != 1)}, {summary['images']} images "
          f"({summary['images_labelled_by_all']} labelled by all), "
          f"{sum(r['objects'] for r in rows)} objects; "
          f"{summary['errors']} errors, {summary['warnings']} warnings")


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
    p.add_argument("--input-format", metavar="FORMAT",
                   help="read every NAME=PATH export as FORMAT (coco, coco_panoptic, cvat, label_studio, "
                        "labelme) instead of detecting it; manifest exports use their 'format' key")
    p.add_argument("--tolerance", dest="tolerances", type=float, action="append", metavar="PX",
                   help="boundary tolerance in pixels; repeatable (default: 1, 2 and 4)")
    p.add_argument("--iou-threshold", type=float, default=0.5, metavar="T",
                   help="smallest mask IoU of a matched object pair (default 0.5)")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (default: one per CPU; 1: none)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write object_pairs, image_pairs and scores as Parquet files into DIR")
    p.set_defaults(handler=_cmd_run)


def _parse_aliases(items: list[str]) -> dict[str, list[str]]:
    aliases: dict[str, list[str]] = {}
    for item in items:
        canonical, sep, pattern = item.partition("=")
        if not sep or not canonical or not pattern:
            raise UsageError(f"--alias {item!r} is not CANONICAL=PATTERN")
        aliases.setdefault(canonical, []).append(pattern)
    return aliases


def _cmd_run(args) -> int:
    from qa.run import run

    if args.max_pixels is not None and args.max_pixels <= 0:
        raise UsageError("--max-pixels must be a positive integer")
    if not args.exports and args.manifest is None:
        raise UsageError("give exports as NAME=PATH or a --manifest (see 'qa run --help')")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    exports = args.exports
    if args.input_format is not None:
        from dataclasses import replace

        from qa.formats import FORMATS
        from qa.manifest import parse_spec

        if args.input_format not in FORMATS:
            raise UsageError(f"--input-format {args.input_format!r} is not one of: {', '.join(FORMATS)}")
        exports = [replace(parse_spec(e), format=args.input_format) for e in exports]
    bar, progress = _progress_printer()
    if bar is not None:
        bar.start()
    try:
        result = run(*exports, manifest=args.manifest, aliases=_parse_aliases(args.alias),
                     max_pixels=args.max_pixels, progress=progress,
                     tolerances=tuple(args.tolerances or (1, 2, 4)), iou_threshold=args.iou_threshold,
                     workers=args.workers)
    finally:
        if bar is not None:
            bar.stop()
    if args.json_path is not None:
        args.json_path.parent.mkdir(parents=True, exist_ok=True)
        args.json_path.write_text(json.dumps(result.summary, indent=2, default=str) + "\n", encoding="utf-8")
        _err(f"results written to {args.json_path}")
    if args.out is not None and result.comparison is not None:
        for path in result.comparison.write_parquet(args.out):
            _err(f"results written to {path}")
    if args.output_format == "json":
        print(json.dumps(result.summary, indent=2, default=str))
    else:
        _print_summary(result.summary)
    return EXIT_OK


def _print_pairs(pairs: list[dict]) -> None:
    """The per annotator pair table: PQ, mean IoU, boundary F at 2 px and the object counts."""
    def fmt(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"

    print(render_table(
        ["pair", "images", "PQ", "mask IoU", "BF@2px", "matched", "missing", "extra", "label disagr."],
        [[p["pair"], p["images"], fmt(p.get("pq")), fmt(p.get("mask_iou_mean")), fmt(p.get("boundary_f_2px_mean")),
          p["matched"], p["missing"], p["extra"], p["label_disagreements"]] for p in pairs],
    ))


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
        _err(f"qa: error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        _err("qa: error: interrupted")
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # the promise is "never a traceback" unless --debug
        if debug:
            raise
        _err(f"qa: error: internal error: {type(exc).__name__}: {exc}; rerun with --debug and report it")
        return EXIT_ERROR
