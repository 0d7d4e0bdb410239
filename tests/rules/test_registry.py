"""The registry: records, docstring sections, parameters in step with the docs, explain, docs page."""

import ast
import json
from pathlib import Path

import pytest

from common import run_cli
from qa.rules import _registry
from qa.rules._registry import SECTIONS, all_rules, documented_params

ROOT = Path(__file__).resolve().parents[2]
RULES = all_rules()


def test_ids_names_and_families():
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids)) and len({r.name for r in RULES}) == len(RULES)
    assert {r.prefix for r in RULES} == set(_registry.FAMILIES)
    for r in RULES:
        assert _registry._ID.match(r.id) and _registry._NAME.match(r.name)
        assert r.family == _registry.FAMILIES[r.prefix]
        assert r.severity in _registry.SEVERITIES and r.status in _registry.STATUSES


def test_load_and_alignment_codes_are_all_registered():
    from qa.align import ALIGN_CODES
    from qa.formats._findings import LOAD_CODES
    from qa.rules.consistency import _LOAD_DOCS

    for code, (name, title) in {**LOAD_CODES, **ALIGN_CODES}.items():
        r = _registry.get(code)
        assert (r.name, r.title, r.level, r.func) == (name, title, "load", None)
    assert set(LOAD_CODES) <= set(_LOAD_DOCS), "every load-time code needs its own explain text"


@pytest.mark.parametrize("r", RULES, ids=lambda r: r.id)
def test_docstring_has_the_fixed_sections_in_order(r):
    assert list(r.sections()) == list(SECTIONS)
    assert all(text for text in r.sections().values())
    assert len(r.doc.splitlines()) <= 40


@pytest.mark.parametrize("r", RULES, ids=lambda r: r.id)
def test_parameters_section_matches_the_parameters(r):
    documented = documented_params(r.doc)
    assert list(documented) == list(r.params), f"{r.id}: ## Parameters lists {list(documented)}"
    for name, default in r.params.items():
        text = documented[name]
        assert text == (json.dumps(default) if isinstance(default, str) else repr(default)), (r.id, name, text)
    if not r.params:
        assert r.sections()["Parameters"] == "None."


def test_documented_params_catches_a_missing_parameter():
    doc = "## Parameters\n- `a` (float, default 1.0, pixels): x."
    assert documented_params(doc) == {"a": "1.0"}
    assert list(documented_params(doc)) != ["a", "b"]


def test_get_by_id_or_name_and_unknown():
    assert _registry.get("vtx001").name == "sparse-polygon"
    assert _registry.get("sparse-polygon").id == "VTX001"
    with pytest.raises(KeyError, match="known VTX rules"):
        _registry.get("VTX999")


def test_expand_prefixes_skip_preview_rules():
    assert "FMT105" not in {r.id for r in _registry.expand("FMT")}
    assert [r.id for r in _registry.expand("FMT105")] == ["FMT105"]
    assert {r.id for r in _registry.expand("VTX00")} == {f"VTX00{k}" for k in range(1, 9)}
    with pytest.raises(KeyError):
        _registry.expand("XYZ")


def test_registering_a_bad_record_fails():
    with pytest.raises(ValueError, match="kebab-case"):
        _registry.rule("VTX900", "Not_Kebab", "t")(lambda ctx: [])
    with pytest.raises(ValueError, match="registered twice"):
        _registry.rule("VTX001", "another-name", "t")(lambda ctx: [])
    with pytest.raises(ValueError, match="needs a default"):
        _registry.rule("VTX901", "no-default", "t")(lambda ctx, *, x: [])
    assert "VTX900" not in _registry._REGISTRY and "VTX901" not in _registry._REGISTRY


def test_rules_list_cli(capsys):
    code, out, err = run_cli(["rules", "list"], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["id", "name", "family", "severity", "status", "title"]
    assert len(lines) == len(RULES) + 1
    assert lines[1].split()[:5] == ["OCC001", "occluded-without-occluder", "occlusion", "warning", "stable"]
    code, out, _ = run_cli(["rules", "list", "--pack", "medical-imaging", "--format", "json"], capsys)
    rows = json.loads(out)
    assert not any(r["id"].startswith("OCC") for r in rows)
    assert next(r for r in rows if r["id"] == "LAY004")["severity"] == "error"


def test_rules_explain_cli(capsys):
    code, out, err = run_cli(["rules", "explain", "VTX001"], capsys)
    assert code == 0 and err == ""
    assert out.splitlines()[:4] == ["# sparse-polygon (VTX001)", "", "Family: vertices", "Default severity: warning"]
    assert "## Why it matters" in out and "- `min_vertices_per_100px` (float, default 1.0" in out
    code, out, _ = run_cli(["rules", "explain", "FMT001", "--format", "json"], capsys)
    data = json.loads(out)
    assert data["id"] == "FMT001" and data["name"] == "invalid-polygon" and "Why it matters" in data["sections"]
    code, out, err = run_cli(["rules", "explain", "VTX999"], capsys)
    assert code == 2 and out == "" and err.startswith("qa: error: no rule 'VTX999'")


def test_docs_page_is_current():
    from qa.rules.docs import generate

    committed = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    assert committed == generate(), "docs/rules.md is stale: run python -m qa.rules.docs > docs/rules.md"


def test_rules_modules_import_only_earlier_stages():
    later = ("qa.gate", "qa.store", "qa.report", "qa.pipeline", "qa.cli")
    for path in (ROOT / "qa" / "rules").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                if path.name != "docs.py":  # the docs generator runs the CLI to show real output
                    assert not name.startswith(later), f"{path.name} imports {name}"


def test_readme_rule_count_and_table_are_the_registrys():
    # the README said 42 rules where `qa rules list` listed 41; both now come from the registry
    from qa.rules.docs import update_readme

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"({len(RULES)} rules, `qa rules list`)" in readme
    assert update_readme(readme) == readme, "README is stale: run python -m qa.rules.docs --readme README.md"
    stale = readme.replace(f"({len(RULES)} rules,", f"({len(RULES) + 1} rules,")
    assert update_readme(stale) == readme
