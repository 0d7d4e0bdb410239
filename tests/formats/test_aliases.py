"""Label aliases on the shuffler export (car / truck / car_NNNN / acar_NNN) and the alias report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from common import run_cli

from qa.align import align, alias_report_text, compile_aliases, resolve_category
from qa.errors import ConfigError
from qa.formats import load as load_export
from qa.pipeline import run

SHUFFLER = "shuffler_labelme_4annotators"
ALIASES = {"car": ["truck", "car_*", r"re:^a?car_\d+$"], "vehicle": ["bus"]}


@pytest.fixture(scope="module")
def shuffler_run(shared_data):
    return run(str(shared_data / SHUFFLER), aliases=ALIASES)


def test_aliases_map_every_messy_name_onto_car(shuffler_run):
    batch = shuffler_run.batch
    assert batch.annotators == ["ecyou", "mhsieh2", "sngandhi", "ylp"]
    assert list(batch.categories) == ["car"]
    assert batch.aliases["truck"] == "car" and batch.aliases["car_1404"] == "car"
    assert batch.aliases["acar_618"] == "car"
    # ready for comparison: every image labelled by all four, one car each
    assert len(batch.images) == 20
    assert all(len(batch.coverage[k]) == 4 for k in batch.images)
    for key, per_annotator in batch.by_image().items():
        assert {a: [o.category for o in objs] for a, objs in per_annotator.items()} == {
            a: ["car"] for a in batch.annotators}
    assert not [f for f in batch.findings if f.code.startswith("ALN")]


def test_report_says_which_names_mapped_where(shuffler_run):
    report = shuffler_run.summary["alias_report"]
    mapped = {m["name"]: (m["category"], m["kind"], m["pattern"], m["annotators"]) for m in report["mapped"]}
    assert mapped["car_1404"] == ("car", "glob", "car_*", {"sngandhi": 1})
    assert mapped["acar_618"] == ("car", "regex", r"re:^a?car_\d+$", {"sngandhi": 1})
    assert mapped["truck"] == ("car", "exact", "truck", {"mhsieh2": 1})
    assert mapped["car_276"][3] == {"sngandhi": 2}
    assert len(mapped) == 20  # 19 car_NNNN / acar_NNN names of sngandhi, and truck
    assert report["canonical"] == [{"name": "car", "objects": 59,
                                    "annotators": {"ecyou": 20, "mhsieh2": 19, "ylp": 20}}]
    assert report["unmapped"] == []
    assert report["unused_patterns"] == [{"category": "vehicle", "pattern": "bus"}]


def test_report_agrees_with_alignment(shared_data):
    exports = load_export(shared_data / SHUFFLER)
    raw = {e.annotator: [o.category for o in e.objects] for e in exports}
    batch = align(exports, aliases=ALIASES)
    report = batch.alias_report
    compiled = compile_aliases(ALIASES)
    for entry in report["mapped"]:
        assert resolve_category(entry["name"], compiled) == entry["category"]
        assert batch.aliases[entry["name"]] == entry["category"]
    for entry in report["canonical"] + report["unmapped"]:
        assert resolve_category(entry["name"], compiled) == entry["name"]
    # the counts are of the raw names, although align has rewritten every object's category
    for entry in report["mapped"] + report["canonical"] + report["unmapped"]:
        for who, n in entry["annotators"].items():
            assert raw[who].count(entry["name"]) == n


def test_report_text_lives_with_the_alignment():
    from qa.model import Category, Export

    e = Export("al", ".", "coco", categories={n: Category(n) for n in ("car", "car_7", "bus")})
    report = align([e], aliases={"car": ["car_*", "auto"]}).alias_report
    assert alias_report_text(report).splitlines() == [
        "aliases: 1 name mapped, 1 already canonical, 1 not mapped",
        "  car_7 -> car  glob car_*  (al 0)",
        "  car           canonical   (al 0)",
        "  bus           not mapped  (al 0)",
        "  patterns that matched no name: car <- 'auto'",
    ]


def test_names_no_pattern_matches_are_listed(shared_data):
    report = run(str(shared_data / SHUFFLER), aliases={"car": ["truck"]}).summary["alias_report"]
    unmapped = {u["name"]: u["annotators"] for u in report["unmapped"]}
    assert "car_1404" in unmapped and "acar_618" in unmapped and unmapped["car_276"] == {"sngandhi": 2}
    assert [m["name"] for m in report["mapped"]] == ["truck"]


def test_without_aliases_the_batch_keeps_raw_names(shared_data):
    batch = run(str(shared_data / SHUFFLER)).batch
    assert "car_1404" in batch.categories and "truck" in batch.categories
    assert any(f.code == "ALN003" for f in batch.findings)


def test_bad_regex_is_a_config_error(shared_data):
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        run(str(shared_data / SHUFFLER), aliases={"car": ["re:("]})


def test_manifest_aliases(shared_data, tmp_path):
    manifest = tmp_path / "batch.toml"
    folder = shared_data / SHUFFLER
    lines = ['[aliases]', 'car = ["truck", "car_*", \'re:^acar_\\d+$\']']
    for k, user in enumerate(["ecyou", "mhsieh2", "sngandhi", "ylp"], start=1):
        lines += ["[[exports]]", f'annotator = "{user}"', f'path = "{folder / f"w55-e04-objects{k}"}"',
                  'format = "labelme"']
    manifest.write_text("\n".join(lines) + "\n")
    result = run(manifest=manifest)
    assert list(result.batch.categories) == ["car"]
    assert result.batch.annotators == ["ecyou", "mhsieh2", "sngandhi", "ylp"]


def test_cli_prints_the_four_annotators_and_the_alias_report(shared_data, capsys, tmp_path):
    json_path = tmp_path / "summary.json"
    code, out, err = run_cli(["run", shared_data / SHUFFLER, "--alias", "car=truck", "--alias", "car=car_*",
                              "--alias", r"car=re:^acar_\d+$", "--json", json_path], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["annotator", "format", "images", "objects", "crowd", "car"]
    assert [line.split() for line in lines[1:5]] == [[u, "labelme", "20", "20", "0", "20"]
                                                    for u in ("ecyou", "mhsieh2", "sngandhi", "ylp")]
    assert "aliases: 20 names mapped, 1 already canonical, 0 not mapped" in out
    assert any(line.split()[:5] == ["acar_618", "->", "car", "regex", r"re:^acar_\d+$"] for line in lines)
    assert any(line.split()[:5] == ["truck", "->", "car", "exact", "truck"] for line in lines)
    # no load or alignment findings: the closing line counts the rule violations
    assert "52 rule violations (pack default): 2 errors, 50 warnings, 0 info; 'qa check' lists them" in lines
    assert lines[-2:] == ["4 annotators, 20 images (20 labelled by all), 80 objects", "2 errors, 50 warnings in 4 exports"]
    summary = json.loads(Path(json_path).read_text())
    assert summary["alias_report"]["unmapped"] == []
