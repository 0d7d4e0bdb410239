"""The metric registry: its records, the names the code spells, the figures real runs store, the docs page."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from qa import metric_registry as registry

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "metrics.md"

# The modules that compute, store, gate or show figures: every metric name they spell must be registered.
MODULES = ["qa/engine/compare.py", "qa/engine/semantic.py", "qa/engine/boundary.py", "qa/analytics/__init__.py",
           "qa/analytics/aggregate.py", "qa/analytics/alpha.py", "qa/analytics/boundaries.py",
           "qa/analytics/consensus.py", "qa/analytics/review.py", "qa/gate.py", "qa/store.py", "qa/report.py",
           "qa/cli.py", "qa/pipeline.py"]

NOT_FIGURES = {
    "disagree_share": "a key of the boundary findings' plain dicts (summary JSON), copied from disagree_<t>_share",
    "px_mean": "a suffix the report tests names with (endswith)",
    "px_share": "a suffix the report tests names with (endswith)",
}
"""Names shaped like figures that are not figures, and why."""


# --- the records ----------------------------------------------------------------------------------------

def test_records_are_complete_and_each_name_finds_its_own_record():
    for metric in registry.all_metrics():
        assert metric.label and metric.description.endswith("."), metric.name
        assert metric.kind in registry.KINDS and metric.direction in registry.DIRECTIONS
        assert set(metric.scopes) <= set(registry.SCOPES)
        assert metric.scopes or metric.tables or metric.source, f"{metric.name}: stored nowhere"
        assert set(re.findall(r"\{(\w+)\}", metric.label)) <= set(metric.placeholders)
        for table in metric.tables:
            assert table.split(".")[0] in ("object_matches", "image_pair_scores", "boundary_disagreement",
                                           "review_queue"), table
        for name in metric.names():
            found = registry.find(name)
            assert found is not None and found.metric is metric, name  # no two patterns overlap
            assert "{" not in found.label
    assert len(set(registry.names())) == len(registry.names())


def test_lookups_formatting_and_suggestions():
    assert registry.label("boundary_f_1p5px_mean") == "boundary F 1.5px"
    assert registry.short("boundary_f_2px_mean") == "BF@2px" and registry.short("mask_iou_mean") == "matched IoU"
    assert registry.label("review_low_agreement") == "review: low agreement"
    assert registry.is_count("unmatched") and not registry.is_count("unmatched_share")
    assert registry.format_value("review_items", 512.0) == "512" and registry.format_value("hd95_px_mean", 2) == "2.00"
    assert registry.format_value("pq", float("nan")) == "-" and registry.format_value("nonsense", 0.5) == "0.500"
    assert registry.scopes("hd95_px_mean") == ("annotator_pair", "batch")
    assert registry.name("nsd_{t}_mean", t="4px") == "nsd_4px_mean"
    with pytest.raises(KeyError, match="does not fit"):
        registry.name("nsd_{t}_mean", t="4")
    with pytest.raises(KeyError, match="did you mean mask_iou_mean or"):
        registry.get("mask_iou_maen")
    assert registry.suggest("mask_iou_mean", scope="annotator_consensus")[0] == "mask_iou_mean"
    assert registry.score_for_column("signed_offset_median") == "signed_offset_median_px_mean"
    assert registry.score_for_column("nsd_1p5px") == "nsd_1p5px_mean" and registry.score_for_column("best_iou") is None


def test_review_reasons_and_severities_are_the_registered_ones():
    from qa.analytics.review import REASONS
    from qa.gate import SEVERITIES

    assert tuple(registry.EXAMPLES["reason"]) == REASONS
    assert tuple(registry.EXAMPLES["severity"]) == SEVERITIES


def test_import_of_the_registry_is_light():
    import subprocess
    import sys

    code = ("import sys, qa.metric_registry; print([m for m in ('numpy', 'numba', 'pandas', 'duckdb') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- the code spells registered names only --------------------------------------------------------------

_FIGURE = re.compile(r"^[a-z][a-z0-9]*(?:_(?:[a-z0-9]+|\{\}))*_(?:mean|share)$")
"""A figure's name by the convention of the scores table: a mean ends in ``_mean``, a share in ``_share``."""
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")


def _spelled(path: Path):
    """Every string literal and f-string template (placeholders as ``{}``) of a module, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in ast.walk(node)
             if v is not node}
    for node in ast.walk(tree):
        if id(node) in parts:
            continue  # a piece of an f-string: the whole template is checked
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value, node.lineno
        elif isinstance(node, ast.JoinedStr):
            yield "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values), node.lineno


def _normal(name: str) -> str:
    return re.sub(r"\{\w*\}", "{}", name)


def _unknown(spelled, where: str) -> list[str]:
    """The spelled names that look like figures (a figure's suffix, or a near miss of a registered name:
    a typo) and that the registry does not know."""
    import difflib

    templates = {_normal(m.name) for m in registry.all_metrics()}
    columns = {_normal(c) for c in registry.columns()}
    concrete = registry.names()
    out = []
    for text, line in spelled:
        if text.startswith("{}") or text in NOT_FIGURES:
            continue
        if registry.known(text) or _normal(text) in templates or _normal(text) in columns:
            continue
        if _FIGURE.match(text):
            if "{}" in text and any(re.fullmatch(re.escape(_normal(text)).replace(r"\{\}", ".+"), n) for n in concrete):
                continue  # a template whose placeholder spans a pattern's parts (boundary_f_{label}_mean)
            out.append(f"{where}:{line}: {text}")
        elif _IDENTIFIER.match(text) and difflib.get_close_matches(text, concrete, n=1, cutoff=0.9):
            out.append(f"{where}:{line}: {text} (did you mean {difflib.get_close_matches(text, concrete, n=1)[0]}?)")
    return out


def test_no_module_spells_a_metric_name_the_registry_does_not_know():
    unknown = [u for module in MODULES for u in _unknown(_spelled(ROOT / module), module)]
    assert not unknown, "metric names the registry does not know:\n" + "\n".join(unknown)


def test_the_check_catches_an_unregistered_name(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('rows.append(("batch", "", "mask_iou_maen", 0.5, 3))\nx = f"nsd_{t}_meen_mean"\n'
                      'y = ("boundary_f_2px_mean", "review_queue", "mask_iou")\n')
    assert sorted(u.split(": ", 1)[1] for u in _unknown(_spelled(module), "m.py")) == [
        "mask_iou_maen (did you mean mask_iou_mean?)", "nsd_{}_meen_mean"]


# --- the figures real runs store ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stored_scores(tmp_path_factory):
    """(scope, metric) of every score row of four small synthetic runs (COCO, CVAT, label maps, panoptic;
    three annotators), with the gate's violation counts."""
    import qa
    from qa.gate import violation_counts, run_findings
    from qa.synth import synthesize

    folder = tmp_path_factory.mktemp("synth")
    synthesize(folder, images=3, size=(192, 384), annotators=3, formats=["coco", "coco_panoptic", "cvat", "labelmap"],
               workers=1)
    rows = set()
    for manifest in ("batch.toml", "batch_panoptic.toml", "batch_cvat.toml", "batch_labelmap.toml"):
        run = qa.run(manifest=folder / manifest, workers=1, store=False)
        rows |= set(zip(run.scores["scope"], run.scores["metric"]))
        rows |= {(scope, metric) for metric, scope, _ in violation_counts(run_findings(run), run.batch.annotators)}
    for manifest in ("batch.toml", "batch_panoptic.toml"):  # against a reference: the first annotator
        first = qa.load(manifest=folder / manifest).annotators[0]
        run = qa.run(manifest=folder / manifest, workers=1, store=False, reference=first, analytics=False)
        rows |= set(zip(run.scores["scope"], run.scores["metric"]))
    return rows


def test_every_figure_of_real_runs_is_registered_at_its_scope(stored_scores):
    missing = sorted(f"{scope}: {metric}" for scope, metric in stored_scores
                     if metric not in registry.names() and not registry.known(metric)
                     or scope not in registry.scopes(metric))
    assert not missing, "figures stored but not registered (or not at that scope):\n" + "\n".join(missing)


def test_the_registered_scopes_are_ones_runs_fill(stored_scores):
    """No phantom: each registered figure of the scores table is stored by one of the runs, at one of its
    scopes (figures these small batches cannot have are listed with the reason)."""
    not_here = {"ignored": "no crowd regions in synth batches",
                "review_{reason}": "only the reasons that occur are counted",
                "signed_offset_px_p{q}": "checked through its concrete names below",
                "occluded_agreement_share": "synth exports carry no occluded flags on both sides of a match",
                "occluded_kappa": "same"}
    seen = {metric for _, metric in stored_scores}
    for metric in registry.all_metrics():
        if not metric.scopes or metric.name in not_here:
            continue
        assert set(metric.names()) & seen, f"{metric.name}: registered with scopes but no run stores it"
    assert {f"signed_offset_px_p{q}" for q in (10, 25, 75, 90)} <= seen


# --- labels in the report and the CLI come from the registry --------------------------------------------

def test_report_and_cli_headings_are_the_registry_labels():
    from qa import report
    from qa.cli import _ANNOTATOR_COLUMNS, _PAIR_COLUMNS, _metric_table

    for name in registry.names():
        expected = registry.label(name) + (" px" if registry.unit(name) == "px" else "")
        assert report.label(name) == expected
        assert report.is_count(name) == registry.is_count(name)
    header = _metric_table(["pair"], [], _PAIR_COLUMNS, key=lambda r: [r["pair"]]).split("  ")
    assert [h.strip() for h in header if h.strip()] == ["pair", *[registry.short(m) for m in _PAIR_COLUMNS]]
    assert all(registry.known(m) for m in _ANNOTATOR_COLUMNS)


# --- docs/metrics.md ------------------------------------------------------------------------------------

def test_metrics_page_lists_every_metric_from_the_registry():
    text = DOC.read_text(encoding="utf-8")
    assert registry.BEGIN in text and registry.END in text
    assert text == registry.replace_reference(text), (
        "docs/metrics.md is stale: run python -m qa.metric_registry --write docs/metrics.md")
    section = text[text.index(registry.BEGIN):text.index(registry.END)]
    for metric in registry.all_metrics():
        assert f"| `{metric.name}` |" in section


def test_qa_metrics_lists_every_registered_figure_and_filters_by_scope(capsys):
    import json

    from common import run_cli

    code, out, err = run_cli(["metrics", "--format", "json"], capsys)
    assert code == 0 and err == ""
    rows = json.loads(out)
    assert [r["name"] for r in rows] == [m.name for m in registry.all_metrics()]
    assert {"mask_iou_mean", "boundary_f_{t}_mean", "f1"} <= {r["name"] for r in rows}

    code, out, _ = run_cli(["metrics", "--scope", "annotator", "--format", "json"], capsys)
    annotator = json.loads(out)
    assert annotator and all("annotator" in r["scopes"] for r in annotator)
    assert len(annotator) == sum("annotator" in m.scopes for m in registry.all_metrics()) < len(rows)

    code, out, _ = run_cli(["metrics"], capsys)
    lines = out.splitlines()
    assert lines[0].split() == ["name", "label", "kind", "unit", "better", "scopes"]
    assert len(lines) == len(rows) + 1
    assert any(line.startswith("mask_iou_mean ") and "higher" in line for line in lines)
