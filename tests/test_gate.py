"""The gate: [gate] tables, checks, regression against a baseline, JSON and JUnit output, exit codes."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common import run_cli
from qa import store as qstore
from qa.errors import ConfigError
from qa.gate import (Verdict, evaluate, load_gate, parse_gate, to_json, to_junit, to_text,
                     violation_counts)
from qa.model import Finding
from qa.pipeline import run as qa_run
from storekit import score_rows, two_exports, with_comparison

SCORES = score_rows(
    mask_iou_mean=0.86,
    pq=0.61,
    boundary_f_2px_mean__category__cat=0.72,
    boundary_f_2px_mean__category__dog=0.55,
    boundary_f_2px_mean__category__person=0.62,
    missing_share__annotator__alice=0.02,
    missing_share__annotator__bob=0.09,
    pq__annotator_pair__alice_vs_bob=0.58,
)


def _by_name(verdict):
    return {r.name: r for r in verdict.results}


# --- reading [gate] tables ----------------------------------------------------------------------------

def test_parse_every_form():
    cfg = parse_gate({
        "mask_iou_mean": {"min": 0.85},
        "pq": [{"min": 0.6}, {"min": 0.5, "per": "pair"}],
        "missing_share": {"max": 0.05, "per": "annotator"},
        "violations": {"error": 0, "warning": 20},
        "category": {"person": {"boundary_f_2px_mean": {"min": 0.6}}},
        "annotator_pair": {"bob|alice": {"pq": {"min": 0.4}}},
        "regression": {"max_drop": 0.02, "pq": {"max_drop": 0.05, "per": "category"}},
    }, source="pack.toml")
    got = [(t.metric, t.scope, t.key, t.min, t.max) for t in cfg.thresholds]
    assert got == [
        ("mask_iou_mean", "batch", None, 0.85, None),
        ("pq", "batch", None, 0.6, None),
        ("pq", "annotator_pair", None, 0.5, None),
        ("missing_share", "annotator", None, None, 0.05),
        ("violations_error", "batch", None, None, 0.0),
        ("violations_warning", "batch", None, None, 20.0),
        ("boundary_f_2px_mean", "category", "person", 0.6, None),
        ("pq", "annotator_pair", "alice|bob", 0.4, None),  # pair keys are sorted
    ]
    assert cfg.max_drop == 0.02
    assert [(r.metric, r.scope, r.max_drop) for r in cfg.regressions] == [("pq", "category", 0.05)]


@pytest.mark.parametrize("table, message", [
    ({"pq": {"minimum": 0.5}}, "pack.toml: [gate] pq: unknown option 'minimum'"),
    ({"pq": {"min": 0.5, "per": "galaxy"}}, "pack.toml: [gate] pq: per = 'galaxy' is not a scope"),
    ({"pq": {"min": "high"}}, "pack.toml: [gate] pq: min = 'high' is not a number"),
    ({"pq": {"min": 0.9, "max": 0.5}}, "pack.toml: [gate] pq: min 0.9 is above max 0.5"),
    ({"pq": {"per": "category"}}, "pack.toml: [gate] pq: give min, max or both"),
    ({"pq": 0.5}, "pack.toml: [gate] pq: expected a table like { min = 0.8 }"),
    ({"violations": {"fatal": 0}}, "pack.toml: [gate] violations: unknown severity 'fatal'"),
    ({"pq": {"min": 0.5, "key": "cat"}}, "pack.toml: [gate] pq: key = 'cat' needs per = <scope>"),
    ({"regression": {"pq": {"max_fall": 0.1}}}, "pack.toml: [gate] regression.pq: unknown option 'max_fall'"),
    ({"pq": {"min": float("-inf")}}, "pack.toml: [gate] pq: min = -inf is not a finite number"),
    ({"pq": {"max": float("inf")}}, "pack.toml: [gate] pq: max = inf is not a finite number"),
    ({"pq": {"min": float("nan")}}, "pack.toml: [gate] pq: min = nan is not a finite number"),
    ({"violations": {"error": float("inf")}}, "pack.toml: [gate] violations: error = inf is not a finite number"),
    ({"regression": {"max_drop": float("nan")}}, "pack.toml: [gate] regression: max_drop = nan is not a finite"),
])
def test_bad_gate_tables_name_the_pack_and_key(table, message):
    with pytest.raises(ConfigError) as err:
        parse_gate(table, source="pack.toml")
    assert str(err.value).startswith(message)


def test_load_gate_follows_extends_and_requires_a_gate(tmp_path):
    (tmp_path / "base.toml").write_text('[gate]\npq = { min = 0.6 }\nmask_iou_mean = { min = 0.8 }\n'
                                        '[gate.regression]\nmax_drop = 0.05\n')
    (tmp_path / "team.toml").write_text('extends = "base.toml"\n[gate]\npq = { min = 0.7 }\n')
    cfg = load_gate(tmp_path / "team.toml")
    assert {(t.metric, t.min) for t in cfg.thresholds} == {("pq", 0.7), ("mask_iou_mean", 0.8)}
    assert cfg.max_drop == 0.05 and cfg.pack.endswith("team.toml")
    (tmp_path / "none.toml").write_text('name = "x"\n')
    with pytest.raises(ConfigError, match="none.toml: the pack has no \\[gate\\] table"):
        load_gate(tmp_path / "none.toml")
    (tmp_path / "loop.toml").write_text('extends = "loop.toml"\n[gate]\npq = { min = 0.1 }\n')
    with pytest.raises(ConfigError, match="loop.toml.*cycle"):
        load_gate(tmp_path / "loop.toml")
    with pytest.raises(ConfigError, match="missing.toml"):
        load_gate(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text('[gate\n')
    with pytest.raises(ConfigError, match="bad.toml"):
        load_gate(tmp_path / "bad.toml")


# --- checks -------------------------------------------------------------------------------------------

def test_thresholds_global_per_scope_and_per_key():
    cfg = parse_gate({
        "mask_iou_mean": {"min": 0.85},
        "boundary_f_2px_mean": {"min": 0.70, "per": "category"},
        "category": {"person": {"boundary_f_2px_mean": {"min": 0.60}}},
        "missing_share": {"max": 0.05, "per": "annotator"},
        "pq": {"min": 0.5, "per": "annotator_pair"},
    })
    v = evaluate(SCORES, cfg)
    got = {r.name: (r.observed, r.passed) for r in v.results}
    assert got == {
        "mask_iou_mean >= 0.85": (0.86, True),
        "boundary_f_2px_mean[category=cat] >= 0.7": (0.72, True),
        "boundary_f_2px_mean[category=dog] >= 0.7": (0.55, False),
        # person has its own bound, which replaces the per-category one
        "boundary_f_2px_mean[category=person] >= 0.6": (0.62, True),
        "missing_share[annotator=alice] <= 0.05": (0.02, True),
        "missing_share[annotator=bob] <= 0.05": (0.09, False),
        "pq[annotator_pair=alice|bob] >= 0.5": (0.58, True),
    }
    assert not v.success
    assert v.statistics == {"evaluated": 7, "passed": 5, "failed": 2, "percent": 71.43}
    assert _by_name(v)["boundary_f_2px_mean[category=dog] >= 0.7"].message == "0.55 < 0.7"


def test_bounds_are_inclusive():
    v = evaluate(score_rows(pq=0.7, missing_share=0.05),
                 parse_gate({"pq": {"min": 0.7}, "missing_share": {"max": 0.05}}))
    assert v.success and len(v.results) == 2


def test_a_missing_or_undefined_figure_fails_unless_skipped():
    cfg = parse_gate({"alpha": {"min": 0.667}, "pq": {"min": 0.5},
                      "boundary_iou_mean": {"min": 0.3, "per": "category"}})
    v = evaluate(score_rows(pq=float("nan")), cfg)
    got = {r.name: (r.passed, r.message) for r in v.results}
    assert got == {"alpha >= 0.667": (False, "not computed in this run"),
                   "pq >= 0.5": (False, "undefined (NaN) in this run"),
                   "boundary_iou_mean[category=*] >= 0.3": (False,
                                                            "no category figures for boundary_iou_mean in this run")}
    skip = parse_gate({"alpha": {"min": 0.667, "missing": "skip"}, "pq": {"min": 0.5, "missing": "skip"},
                       "allow_empty": True})
    v = evaluate(score_rows(pq=float("nan")), skip)
    assert v.success and v.results == [] and len(v.skipped) == 2


def test_an_unknown_metric_is_a_configuration_error_with_the_nearest_names():
    """A typo (boundary_f2px_mean for boundary_f_2px_mean) used to check nothing and pass."""
    with pytest.raises(ConfigError) as err:
        parse_gate({"boundary_f2px_mean": {"min": 0.99, "per": "category", "missing": "skip"}}, source="typo.toml")
    assert str(err.value) == ("typo.toml: [gate] boundary_f2px_mean: unknown metric 'boundary_f2px_mean'; did you "
                              "mean 'boundary_f_2px_mean' or 'boundary_f_4px_mean' or 'boundary_f_1px_mean'? "
                              "(every metric: docs/metrics.md)")
    for table, where in (({"category": {"person": {"mask_iou_maen": {"min": 0.5}}}},
                          "[gate] category.person.mask_iou_maen"),
                         ({"regression": {"pqq": {"max_drop": 0.1}}}, "[gate] regression.pqq")):
        with pytest.raises(ConfigError, match=re.escape(f"p.toml: {where}: unknown metric")):
            parse_gate(table, source="p.toml")
    with pytest.raises(ConfigError, match="hd95_px_mean is not computed per category; it is computed per "
                                          "annotator_pair, batch"):
        parse_gate({"hd95_px_mean": {"max": 3, "per": "category"}})
    with pytest.raises(ConfigError, match="beyond_tolerance_share is not a figure of the scores table"):
        parse_gate({"beyond_tolerance_share": {"max": 0.1}})
    # every tolerance, percentile and severity the patterns cover is a name
    parse_gate({"boundary_f_1p5px_mean": {"min": 0.5}, "violations_error": {"max": 0},
                "signed_offset_px_p90": {"max": 2, "per": "annotator_category"}})


def test_a_gate_that_checks_nothing_fails_unless_the_pack_allows_it():
    empty = parse_gate({"pq": {"min": 0.5, "missing": "skip"}})
    v = evaluate(score_rows(mask_iou_mean=0.9), empty)
    assert not v.success and v.statistics["evaluated"] == 0
    assert v.summary_line().startswith("gate FAILED (no check evaluated")
    assert to_json(v).count('"success": false') == 1
    junit = to_junit(v)
    assert 'failures="1"' in junit and 'name="at least one check"' in junit
    assert Verdict.from_dict(v.to_dict()).success is False
    allowed = evaluate(score_rows(mask_iou_mean=0.9), parse_gate({"pq": {"min": 0.5, "missing": "skip"},
                                                                   "allow_empty": True}))
    assert allowed.success and allowed.summary_line() == "gate passed (0 checks)"
    assert Verdict.from_dict(allowed.to_dict()).success is True
    with pytest.raises(ConfigError, match=r"\[gate\] allow_empty: expected true or false"):
        parse_gate({"allow_empty": "yes"})


def test_violations_are_counted_from_findings_per_severity_and_annotator():
    findings = [Finding("FMT004", "error", "x", annotator="bob"), Finding("VTX001", "warning", "y", annotator="bob"),
                Finding("VTX001", "warning", "z", annotator="alice"), Finding("ALN001", "info", "w")]
    cfg = parse_gate({"violations": {"error": 0, "warning": 2, "total": 10},
                      "annotator": {"alice": {"violations": {"warning": 0}}}})
    v = evaluate([], cfg, findings=findings, annotators=["alice", "bob", "carol"])
    got = {r.name: (r.observed, r.passed) for r in v.results}
    assert got == {"violations_error <= 0": (1.0, False), "violations_warning <= 2": (2.0, True),
                   "violations <= 10": (4.0, True), "violations_warning[annotator=alice] <= 0": (1.0, False)}
    counts = violation_counts(findings, ["carol"])
    assert counts[("violations_error", "annotator", "carol")] == (0.0, 0)
    # a figure in the scores table wins over the count from findings
    v = evaluate(score_rows(violations_error=0), parse_gate({"violations": {"error": 0}}), findings=findings)
    assert v.success


@given(st.floats(0, 1), st.floats(0, 1))
def test_min_check_passes_exactly_when_observed_reaches_the_bound(observed, bound):
    v = evaluate(score_rows(pq=observed), parse_gate({"pq": {"min": bound}}))
    assert v.success == (observed >= bound - 1e-12)
    assert v.statistics["evaluated"] == 1


# --- regression against a baseline --------------------------------------------------------------------

def test_regression_fails_when_a_figure_drops_more_than_the_delta():
    baseline = score_rows(mask_iou_mean=0.90, pq__category__cat=0.70, pq__category__dog=0.60,
                          pq__category__bird=0.5, missing_share=0.01)
    current = score_rows(mask_iou_mean=0.885, pq__category__cat=0.62, pq__category__dog=0.61,
                         missing_share=0.04)
    cfg = parse_gate({"regression": {"mask_iou_mean": {"max_drop": 0.02},
                                     "pq": {"max_drop": 0.05, "per": "category"},
                                     "missing_share": {"max_rise": 0.02}}})
    v = evaluate(current, cfg, baseline=baseline)
    got = {r.name: (r.passed, r.baseline, r.observed) for r in v.results}
    assert got == {
        "mask_iou_mean drop <= 0.02": (True, 0.90, 0.885),
        "pq[category=bird] drop <= 0.05": (False, 0.5, None),  # gone from this run
        "pq[category=cat] drop <= 0.05": (False, 0.70, 0.62),
        "pq[category=dog] drop <= 0.05": (True, 0.60, 0.61),
        "missing_share rise <= 0.02": (False, 0.01, 0.04),
    }
    cat = _by_name(v)["pq[category=cat] drop <= 0.05"]
    assert cat.message == "dropped 0.08 from 0.7 to 0.62 (allowed 0.05)" and cat.op == "max_drop"
    # without a baseline the regression checks are not evaluated
    assert evaluate(current, cfg).results == []


def test_default_max_drop_covers_every_min_bound():
    cfg = parse_gate({"mask_iou_mean": {"min": 0.5}, "pq": {"min": 0.5, "per": "category"},
                      "regression": {"max_drop": 0.02}})
    v = evaluate(score_rows(mask_iou_mean=0.80, pq__category__cat=0.70), cfg,
                 baseline=score_rows(mask_iou_mean=0.85, pq__category__cat=0.71))
    got = {r.name: r.passed for r in v.results}
    assert got == {"mask_iou_mean >= 0.5": True, "pq[category=cat] >= 0.5": True,
                   "mask_iou_mean drop <= 0.02": False, "pq[category=cat] drop <= 0.02": True}


def test_a_baseline_without_regression_checks_is_a_config_error():
    with pytest.raises(ConfigError, match="no \\[gate.regression\\] checks; add one or pass --max-drop"):
        evaluate(score_rows(pq=0.5), parse_gate({"pq": {"min": 0.1}}, source="p.toml"), baseline=score_rows(pq=0.5))


# --- writers ------------------------------------------------------------------------------------------

def _verdict():
    cfg = parse_gate({"mask_iou_mean": {"min": 0.85}, "boundary_f_2px_mean": {"min": 0.7, "per": "category"},
                      "alpha": {"min": 0.6, "missing": "skip"}}, source="packs/city.toml")
    return evaluate(SCORES, cfg, meta={"run_id": "20260101T000000Z-abcdef", "fingerprints": {"alice": "aa"},
                                       "tool_version": "0.1.0"})


def test_json_verdict_is_a_validation_result():
    doc = json.loads(to_json(_verdict()))
    assert doc["schema"] == 1 and doc["success"] is False
    assert doc["statistics"] == {"evaluated": 4, "passed": 2, "failed": 2, "percent": 50.0}
    assert doc["meta"] == {"run_id": "20260101T000000Z-abcdef", "fingerprints": {"alice": "aa"},
                           "tool_version": "0.1.0", "pack": "packs/city.toml",
                           "skipped": ["alpha: not computed or undefined"]}
    first = doc["results"][1]
    assert first == {"check": "boundary_f_2px_mean[category=cat] >= 0.7", "metric": "boundary_f_2px_mean",
                     "scope": "category", "key": "cat", "op": "min", "bound": 0.7, "observed": 0.72, "n": 10,
                     "baseline": None, "passed": True, "message": "0.72 >= 0.7"}
    assert Verdict.from_dict(doc).to_dict() == doc


def test_junit_has_one_testcase_per_check_and_a_failure_per_failed_one():
    root = ET.fromstring(to_junit(_verdict()).encode())
    assert root.tag == "testsuites" and root.get("failures") == "2"
    suite = root.find("testsuite")
    assert suite.get("name") == "qa gate: city.toml" and suite.get("tests") == "5" and suite.get("skipped") == "1"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["run_id"] == "20260101T000000Z-abcdef" and props["sha256:alice"] == "aa"
    cases = suite.findall("testcase")
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert set(failed) == {"boundary_f_2px_mean[category=dog] >= 0.7", "boundary_f_2px_mean[category=person] >= 0.7"}
    assert failed["boundary_f_2px_mean[category=dog] >= 0.7"].get("message") == "0.55 < 0.7"
    assert "observed=0.55 bound=0.7" in failed["boundary_f_2px_mean[category=dog] >= 0.7"].text
    assert {c.get("classname") for c in cases} == {"qa.gate.batch", "qa.gate.category", "qa.gate.skipped"}
    assert sum(c.find("skipped") is not None for c in cases) == 1


def test_junit_and_text_escape_control_characters_in_names():
    """A category named with ESC and NUL (from an export) gives well-formed XML and one line per check."""
    name = "car\x1b[31m\x00\nqa: error: FAKE"
    cfg = parse_gate({"pq": {"min": 0.9, "per": "category"}}, source="pack.toml")
    verdict = evaluate([{"scope": "category", "key": name, "metric": "pq", "value": 0.5, "n": 3}], cfg,
                       meta={"run_id": "r", "fingerprints": {"al\x1bice": "aa"}})
    xml = to_junit(verdict)
    assert "\x1b" not in xml and "\x00" not in xml
    root = ET.fromstring(xml.encode())  # raw ESC or NUL would make this raise
    [case] = root.iter("testcase")
    assert case.get("name") == "pq[category=car\\x1b[31m\\x00\\nqa: error: FAKE] >= 0.9"
    props = {p.get("name") for p in root.iter("property")}
    assert "sha256:al\\x1bice" in props
    text = to_text(verdict)
    assert "\x1b" not in text and len(text.splitlines()) == 2
    assert not any(line.startswith("qa: error") for line in text.splitlines())


def test_text_ends_with_the_summary_line():
    text = to_text(_verdict())
    assert text.splitlines()[-1] == "gate FAILED (2 of 4 checks)"
    assert "FAIL  boundary_f_2px_mean[category=dog] >= 0.7: 0.55 < 0.7 (n=10)" in text
    assert to_text(evaluate(score_rows(pq=0.7), parse_gate({"pq": {"min": 0.5}}))).endswith("gate passed (1 check)")


# --- through the command line: qa gate and qa run --gate ----------------------------------------------

@pytest.fixture
def stored(tmp_path):
    """A store with two runs: 1 (pq 0.70, mask IoU 0.90) and 2 (pq 0.62, mask IoU 0.89), no findings."""
    folder = tmp_path / "exports"
    folder.mkdir()
    alice, bob = two_exports(folder)
    db = tmp_path / "qa.duckdb"
    for scores in (score_rows(pq=0.70, mask_iou_mean=0.90), score_rows(pq=0.62, mask_iou_mean=0.89)):
        qstore.store_run(with_comparison(qa_run(f"alice={alice}", f"bob={bob}"), scores=scores), db)
    return db


def _pack(tmp_path, text, *, name="pack.toml"):
    pack = tmp_path / name
    pack.write_text(text, encoding="utf-8")
    return pack


def test_qa_gate_exit_codes_json_and_junit(tmp_path, stored, capsys):
    ok = _pack(tmp_path, "[gate]\npq = { min = 0.6 }\nviolations = { error = 0 }\n")
    code, out, err = run_cli(["gate", "latest", "--pack", ok, "--db", stored, "--format", "json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["success"] is True and doc["statistics"]["evaluated"] == 2
    with qstore.open(stored) as s:
        assert doc["meta"]["run_id"] == s.resolve("latest")
        assert doc["meta"]["fingerprints"] == {i["annotator"]: i["sha256"] for i in s.run("latest")["inputs"]}

    strict = _pack(tmp_path, "[gate]\npq = { min = 0.65 }\nmask_iou_mean = { min = 0.85 }\n")
    junit = tmp_path / "out" / "gate.xml"
    code, out, err = run_cli(["gate", "2", "--pack", strict, "--db", stored, "--junit", junit], capsys)
    assert code == 1
    assert out.splitlines()[-1] == "gate FAILED (1 of 2 checks)"
    assert "FAIL  pq >= 0.65: 0.62 < 0.65" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert [c.find("failure") is not None for c in suite.findall("testcase")] == [True, False]

    code, out, err = run_cli(["gate", "1", "--pack", strict, "--db", stored, "--format", "junit"], capsys)
    assert code == 0 and ET.fromstring(out.encode()).get("failures") == "0"


def test_qa_gate_regression_against_a_baseline(tmp_path, stored, capsys):
    pack = _pack(tmp_path, "[gate]\npq = { min = 0.5 }\nmask_iou_mean = { min = 0.5 }\n")
    code, out, err = run_cli(["gate", "2", "--pack", pack, "--db", stored, "--baseline", "1",
                              "--max-drop", "0.05", "--format", "json"], capsys)
    assert code == 1, err
    doc = json.loads(out)
    failed = [r for r in doc["results"] if not r["passed"]]
    assert [(r["check"], r["baseline"], r["observed"]) for r in failed] == [("pq drop <= 0.05", 0.70, 0.62)]
    assert doc["meta"]["baseline_run_id"] and doc["statistics"]["evaluated"] == 4
    code, out, err = run_cli(["gate", "2", "--pack", pack, "--db", stored, "--baseline", "1",
                              "--max-drop", "0.1"], capsys)
    assert code == 0 and out.splitlines()[-1] == "gate passed (4 checks)"


def test_qa_gate_errors_exit_2(tmp_path, stored, capsys):
    pack = _pack(tmp_path, "[gate]\npq = { mn = 0.6 }\n")
    code, out, err = run_cli(["gate", "latest", "--pack", pack, "--db", stored], capsys)
    assert code == 2 and out == ""
    assert err == f"qa: error: {pack}: [gate] pq: unknown option 'mn'; expected key, max, min, missing, per\n"
    ok = _pack(tmp_path, "[gate]\npq = { min = 0.6 }\n")
    code, out, err = run_cli(["gate", "nope", "--pack", ok, "--db", stored], capsys)
    assert code == 2 and err.startswith("qa: error: ") and "no run 'nope'" in err
    code, out, err = run_cli(["gate", "1", "--pack", ok, "--db", stored, "--baseline", "2"], capsys)
    assert code == 2 and "add one or pass --max-drop" in err


def test_qa_run_gates_stores_the_verdict_and_sets_the_exit_code_last(tmp_path, capsys):
    alice, bob = two_exports(tmp_path, bob_unknown=2)
    db = tmp_path / "qa.duckdb"
    pack = _pack(tmp_path, "[gate]\nviolations = { error = 1 }\n")
    junit = tmp_path / "gate.xml"
    code, out, err = run_cli(["run", f"alice={alice}", f"bob={bob}", "--db", db, "--gate", pack, "--junit", junit],
                             capsys)
    assert code == 1, err
    assert out.splitlines()[-4:] == ["FAIL  violations_error <= 1: 2 > 1 (n=2)", "",
                                     "2 annotators, 2 images (2 labelled by all), 6 objects",
                                     "2 errors, 2 warnings in 2 exports; gate FAILED (1 of 1 checks)"]
    assert ET.parse(junit).getroot().get("failures") == "1"
    with qstore.open(db) as s:
        info = s.run("latest")
        assert info["verdict"] == "failed" and info["verdict_json"]["results"][0]["observed"] == 2.0

    code, out, err = run_cli(["run", f"alice={alice}", "--db", db, "--gate", pack, "--format", "json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["verdict"]["success"] is True and summary["verdict"]["meta"]["run_id"] == summary["run_id"]
    with qstore.open(db) as s:
        assert list(s.runs()["verdict"]) == ["passed", "failed"]


def test_qa_run_gate_pack_is_also_the_rule_pack_unless_pack_is_given(tmp_path, capsys):
    alice, bob = two_exports(tmp_path)
    pack = _pack(tmp_path, '[rules]\nselect = ["VTX003"]\n[gate]\nviolations = { error = 100 }\n')
    code, out, err = run_cli(["run", f"alice={alice}", f"bob={bob}", "--no-store", "--gate", pack,
                              "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["pack"]["rules"] == ["VTX003"]
    assert json.loads(out)["pack"]["path"] == str(pack.resolve())
    code, out, err = run_cli(["run", f"alice={alice}", f"bob={bob}", "--no-store", "--gate", pack,
                              "--pack", "default", "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["pack"]["name"] == "default" and len(json.loads(out)["pack"]["rules"]) > 1


def test_qa_run_with_a_broken_pack_stores_nothing(tmp_path, capsys):
    alice, bob = two_exports(tmp_path)
    db = tmp_path / "qa.duckdb"
    pack = _pack(tmp_path, "[gate]\npq = { min = 'x' }\n")
    code, out, err = run_cli(["run", f"alice={alice}", "--db", db, "--gate", pack], capsys)
    assert code == 2 and "min = 'x' is not a number" in err
    assert not db.exists()


def test_qa_run_stops_on_an_unknown_gate_metric_and_fails_an_empty_gate(tmp_path, capsys):
    """Issue 19, defect 1: a typo in a [gate] key printed "gate passed (0 checks)" and exited 0."""
    alice, bob = two_exports(tmp_path)
    db = tmp_path / "qa.duckdb"
    typo = _pack(tmp_path, '[gate]\nboundary_f2px_mean = { min = 0.99, per = "category", missing = "skip" }\n',
                 name="typo.toml")
    code, out, err = run_cli(["run", f"r1={alice}", f"r2={bob}", "--db", db, "--gate", typo], capsys)
    assert code == 2 and out == ""
    assert err == (f"qa: error: {typo}: [gate] boundary_f2px_mean: unknown metric 'boundary_f2px_mean'; did you "
                   f"mean 'boundary_f_2px_mean' or 'boundary_f_4px_mean' or 'boundary_f_1px_mean'? (every metric: "
                   f"docs/metrics.md)\n")
    assert not db.exists()
    # the right name, on a figure this run does not have, skipped: nothing is checked, so the gate fails
    skipped = _pack(tmp_path, '[gate]\npq = { min = 0.99, per = "category", missing = "skip" }\n', name="skip.toml")
    code, out, err = run_cli(["run", f"r1={alice}", f"r2={bob}", "--db", db, "--gate", skipped], capsys)
    assert code == 1, err
    assert out.splitlines()[-1].endswith("gate FAILED (no check evaluated; a gate that checks nothing fails unless "
                                         "its pack sets allow_empty = true in [gate])")
    allowed = _pack(tmp_path, '[gate]\nallow_empty = true\npq = { min = 0.99, per = "category", missing = "skip" }\n',
                    name="allowed.toml")
    code, out, err = run_cli(["run", f"r1={alice}", f"r2={bob}", "--db", db, "--gate", allowed], capsys)
    assert code == 0 and out.splitlines()[-1].endswith("gate passed (0 checks)")


@pytest.mark.parametrize("bound", ["-inf", "inf", "nan"])
def test_a_non_finite_bound_is_a_configuration_error_in_qa_run_and_qa_gate(tmp_path, stored, capsys, bound):
    alice, bob = two_exports(tmp_path)
    pack = _pack(tmp_path, f"[gate]\npq = {{ min = {bound} }}\n")
    message = f"qa: error: {pack}: [gate] pq: min = {float(bound)!r} is not a finite number\n"
    db = tmp_path / "new.duckdb"
    code, out, err = run_cli(["run", f"alice={alice}", f"bob={bob}", "--db", db, "--gate", pack], capsys)
    assert (code, out, err) == (2, "", message)
    assert not db.exists() and not (tmp_path / "report.html").exists()
    code, out, err = run_cli(["gate", "latest", "--pack", pack, "--db", stored], capsys)
    assert (code, out, err) == (2, "", message)
    ok = _pack(tmp_path, "[gate]\npq = { min = 0.5 }\n")
    code, out, err = run_cli(["gate", "2", "--pack", ok, "--db", stored, "--baseline", "1", f"--max-drop={bound}"],
                             capsys)
    assert (code, out) == (2, "") and err == f"qa: error: --max-drop: max_drop = {float(bound)!r} is not a finite number\n"
    code, out, err = run_cli(["run", f"alice={alice}", f"bob={bob}", "--db", db, "--gate", ok, "--baseline",
                              "latest", f"--max-drop={bound}"], capsys)
    assert code == 2 and "is not a finite number" in err and not db.exists()


def test_verdict_json_never_holds_nan():
    v = evaluate(score_rows(pq=float("nan")), parse_gate({"pq": {"min": 0.5}}))
    doc = json.loads(to_json(v))
    assert doc["results"][0]["observed"] is None
    assert not any(isinstance(x, float) and math.isnan(x) for x in doc["results"][0].values())


def test_violation_counts_regress_against_the_baseline_findings(tmp_path, capsys):
    db = tmp_path / "qa.duckdb"
    pack = _pack(tmp_path, "[gate]\nviolations = { error = 5 }\n[gate.regression]\nmax_rise = 0\n")
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    clean = two_exports(tmp_path / "v1")
    code, _, err = run_cli(["run", f"alice={clean[0]}", f"bob={clean[1]}", "--db", db], capsys)
    assert code == 0, err
    worse = two_exports(tmp_path / "v2", bob_unknown=2)
    code, out, err = run_cli(["run", f"alice={worse[0]}", f"bob={worse[1]}", "--db", db, "--gate", pack,
                              "--baseline", "latest", "--format", "json"], capsys)
    assert code == 1, err
    results = {r["check"]: (r["passed"], r["baseline"], r["observed"]) for r in json.loads(out)["verdict"]["results"]}
    assert results == {"violations_error <= 5": (True, None, 2.0), "violations_error rise <= 0": (False, 0.0, 2.0)}


def test_the_first_run_with_baseline_latest_skips_regression(tmp_path, capsys):
    alice, bob = two_exports(tmp_path)
    db = tmp_path / "qa.duckdb"
    pack = _pack(tmp_path, "[gate]\nviolations = { error = 0 }\n[gate.regression]\nmax_rise = 0\n")
    code, out, err = run_cli(["run", f"alice={alice}", f"bob={bob}", "--db", db, "--gate", pack,
                              "--baseline", "latest", "--format", "json"], capsys)
    assert code == 0, err
    verdict = json.loads(out)["verdict"]
    assert verdict["statistics"]["evaluated"] == 1
    assert verdict["meta"]["skipped"] == [f"regression: no baseline run (latest) of the annotators alice, bob in {db} yet"]
    code, out, err = run_cli(["run", f"alice={alice}", f"bob={bob}", "--db", db, "--gate", pack,
                              "--baseline", "latest", "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["verdict"]["statistics"]["evaluated"] == 2
    code, out, err = run_cli(["run", f"alice={alice}", "--db", db, "--gate", pack, "--baseline", "7"], capsys)
    assert code == 2 and "no run '7'" in err


def _manifest(folder, name, exports: dict):
    folder.mkdir(parents=True, exist_ok=True)
    lines = ([f'name = "{name}"'] if name else []) + [
        f'[[exports]]\nannotator = "{a}"\npath = "{p}"\n' for a, p in exports.items()]
    path = folder / "batch.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_baseline_latest_is_the_latest_run_of_the_same_batch(tmp_path, capsys):
    """Issue 19, defect 6: in a store shared by several batches `--baseline latest` took any batch's run (3
    readers against a 4-reader baseline: regression checks failed as "not computed")."""
    db = tmp_path / "qa.duckdb"
    pack = _pack(tmp_path, "[gate]\nviolations = { error = 5 }\n[gate.regression]\nmax_rise = 0\n")
    for sub in ("clean", "worse", "three"):
        (tmp_path / sub).mkdir()
    clean = two_exports(tmp_path / "clean")
    worse = two_exports(tmp_path / "worse", bob_unknown=2)
    week = _manifest(tmp_path / "week", "week-12", {"alice": clean[0], "bob": clean[1]})
    other = _manifest(tmp_path / "other", "other-project", {"alice": worse[0], "bob": worse[1]})

    def run(*argv):
        code, out, err = run_cli(["run", *argv, "--db", db, "--gate", pack, "--format", "json"], capsys)
        assert code in (0, 1), err
        return json.loads(out)

    first = run("--manifest", week, "--baseline", "latest")
    assert first["verdict"]["meta"]["skipped"] == [
        f"regression: no baseline run (latest) of batch 'week-12' in {db} yet"]
    run("--manifest", other)  # another batch stored since, with 2 errors
    again = run("--manifest", week, "--baseline", "latest")
    assert again["verdict"]["meta"]["baseline_run_id"] == first["run_id"]  # not the other batch's run
    assert again["verdict"]["success"] is True
    latest_any = run("--manifest", week, "--baseline", "latest:any")
    assert latest_any["verdict"]["meta"]["baseline_run_id"] == again["run_id"]
    # unnamed batches: the same set of annotators is the same batch
    three = two_exports(tmp_path / "three")
    solo = run(f"alice={three[0]}", f"bob={three[1]}", f"carol={three[1]}", "--baseline", "latest")
    assert solo["verdict"]["meta"]["skipped"] == [
        f"regression: no baseline run (latest) of the annotators alice, bob, carol in {db} yet"]
    pair = run(f"alice={clean[0]}", f"bob={clean[1]}", "--baseline", "latest")
    assert pair["verdict"]["meta"]["skipped"][0].startswith("regression: no baseline run (latest) of the annotators "
                                                            "alice, bob")  # named batches are other batches
    pair2 = run(f"alice={worse[0]}", f"bob={worse[1]}", "--baseline", "latest")
    assert pair2["verdict"]["meta"]["baseline_run_id"] == pair["run_id"] and pair2["verdict"]["success"] is False
    # qa gate: latest within the gated run's batch; an explicit id is taken whatever its batch
    for ref, expected in (("latest~1", again), ("latest~2", first)):  # week-12 runs: first, again, latest_any
        code, out, err = run_cli(["gate", latest_any["run_id"], "--pack", pack, "--db", db, "--baseline", ref,
                                  "--format", "json"], capsys)
        assert code == 0 and json.loads(out)["meta"]["baseline_run_id"] == expected["run_id"]
    code, out, err = run_cli(["gate", solo["run_id"], "--pack", pack, "--db", db, "--baseline", "latest~1"], capsys)
    assert code == 2 and "no stored run of the annotators alice, bob, carol" in err and "latest:any" in err
    code, out, err = run_cli(["gate", again["run_id"], "--pack", pack, "--db", db, "--baseline", "2",
                              "--format", "json"], capsys)
    assert json.loads(out)["meta"]["baseline_run_id"] != first["run_id"]
