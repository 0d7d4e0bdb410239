"""Batch manifests (TOML) and the ``NAME=PATH`` command-line form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from common import run_cli, write_json

import qa
from qa.errors import ConfigError, InputError
from qa.manifest import ExportSpec, parse_spec, read_manifest


def small_coco(path, category="car", width=8, height=6, file_name="x.jpg"):
    return write_json(path, {
        "images": [{"id": 1, "file_name": file_name, "width": width, "height": height}],
        "categories": [{"id": 1, "name": category}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4]]}],
    })


FULL = '''
name = "streets-07"
description = "Street scenes, July batch"
categories = ["car"]
max_pixels = 1_000_000

[[exports]]
annotator = "alice"
path = "exports/alice.json"

[[exports]]
annotator = "bob"
path = "exports/bob.json"
format = "coco"
options = { png_dir = "exports/bob_png", other = "x" }

[aliases]
car = ["car_*", "re:^a?car_\\\\d+$"]
bus = "autobus"
'''


@pytest.mark.parametrize("text, annotator, path", [
    ("alice=exports/a.json", "alice", "exports/a.json"),
    ("exports/a.json", None, "exports/a.json"),
    ("dir/x=y.json", None, "dir/x=y.json"),       # a slash before '=' means it is all a path
    (" alice =a.json", "alice", "a.json"),
    ("=a.json", None, "=a.json"),
])
def test_parse_spec(text, annotator, path):
    assert parse_spec(text) == ExportSpec(annotator=annotator, path=Path(path))


def test_read_full_manifest(tmp_path):
    manifest = tmp_path / "batch" / "batch.toml"
    manifest.parent.mkdir()
    manifest.write_text(FULL)
    man = read_manifest(manifest)
    assert man.name == "streets-07" and man.description == "Street scenes, July batch"
    assert man.categories == ["car"] and man.max_pixels == 1_000_000
    assert [e.annotator for e in man.exports] == ["alice", "bob"]
    assert man.exports[0].path == tmp_path / "batch" / "exports" / "alice.json"   # relative to the manifest
    assert man.exports[0].format is None and man.exports[1].format == "coco"
    assert man.exports[1].options == {"png_dir": str(tmp_path / "batch" / "exports" / "bob_png"), "other": "x"}
    assert man.aliases == {"car": ["car_*", "re:^a?car_\\d+$"], "bus": "autobus"}


@pytest.mark.parametrize("text, message", [
    ('colour = "red"\n[[exports]]\npath = "a.json"', "unknown key 'colour'"),
    ('name = "x"', "needs at least one [[exports]] table"),
    ('exports = ["a.json"]', "exports[0]: each export must be a table"),
    ('[[exports]]\nannotator = "a"', "exports[0]: 'path' must be a string"),
    ('[[exports]]\npath = "a.json"\nannotator = 3', "exports[0]: 'annotator' must be a string"),
    ('[[exports]]\npath = "a.json"\n[[exports]]\npath = "b.json"\nfile = "c"', "exports[1]: unknown key 'file'"),
    ('[[exports]]\npath = "a.json"\nformat = "yolo"', "exports[0]: unknown format 'yolo'; known formats: "),
    ('[[exports]]\npath = "a.json"\noptions = 3', "exports[0]: 'options' must be a table"),
    ('aliases = 3\n[[exports]]\npath = "a.json"', "'aliases' must be a table"),
    ('[aliases]\ncar = 3\n[[exports]]\npath = "a.json"', "aliases.car must be a pattern or a list of patterns"),
    ('categories = "car"\n[[exports]]\npath = "a.json"', "'categories' must be a list of names"),
    ('max_pixels = 0\n[[exports]]\npath = "a.json"', "'max_pixels' must be a positive integer"),
    ('max_pixels = true\n[[exports]]\npath = "a.json"', "'max_pixels' must be a positive integer"),
    ('description = 1\n[[exports]]\npath = "a.json"', "'description' must be a string"),
])
def test_bad_manifest_is_a_config_error_naming_the_file(tmp_path, text, message):
    manifest = tmp_path / "batch.toml"
    manifest.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_manifest(manifest)
    assert str(info.value).startswith(f"{manifest}: ")
    assert message in str(info.value)


@pytest.mark.parametrize("content, message", [
    (b"[[exports]\n", "invalid TOML"),
    (b"name = \"\xff\"", "manifest is not UTF-8 text"),
])
def test_unreadable_manifest_is_an_input_error(tmp_path, content, message):
    manifest = tmp_path / "batch.toml"
    manifest.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_manifest(manifest)


def test_missing_manifest(tmp_path):
    with pytest.raises(InputError, match="cannot read manifest"):
        read_manifest(tmp_path / "nope.toml")


def test_manifest_through_the_cli(tmp_path, capsys):
    small_coco(tmp_path / "exports" / "alice.json", "car_1404")
    small_coco(tmp_path / "exports" / "bob.json", "acar_618")
    (tmp_path / "batch.toml").write_text(FULL.replace('format = "coco"\noptions = { png_dir = "exports/bob_png", '
                                                      'other = "x" }\n', ""))
    small_coco(tmp_path / "carol.json", "car")
    code, out, err = run_cli(["run", "--manifest", tmp_path / "batch.toml", f"carol={tmp_path / 'carol.json'}",
                              "--json", tmp_path / "out" / "summary.json"], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == "streets-07: Street scenes, July batch"
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert any(line.startswith("acar_618 -> car regex") for line in lines), out
    assert any(line.startswith("car_1404 -> car glob car_*") for line in lines), out
    # the 3 warnings are rule violations, counted with the load and alignment findings
    assert out.rstrip().endswith("3 annotators, 1 image (1 labelled by all), 3 objects\n0 errors, 3 warnings in 3 exports")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [a["annotator"] for a in summary["annotators"]] == ["alice", "bob", "carol"]
    assert summary["batch"] == {"name": "streets-07", "description": "Street scenes, July batch"}
    assert err == (f"results written to {tmp_path / 'out' / 'summary.json'}\n"
                   f"report written to {tmp_path / 'report.html'}\n")


def test_max_pixels_option_wins_over_the_manifest(tmp_path):
    small_coco(tmp_path / "a.json", width=10, height=10)
    (tmp_path / "batch.toml").write_text('max_pixels = 50\n[[exports]]\nannotator = "a"\npath = "a.json"\n')
    assert [f.code for f in qa.load(manifest=tmp_path / "batch.toml").findings] == ["FMT008"]
    assert qa.load(manifest=tmp_path / "batch.toml", max_pixels=100).findings == []


def test_bad_manifest_through_the_cli_is_one_line(tmp_path, capsys):
    (tmp_path / "batch.toml").write_text('[[exports]]\npath = "a.json"\nfile = 1\n')
    code, out, err = run_cli(["run", "--manifest", tmp_path / "batch.toml"], capsys)
    assert code == 2 and out == ""
    assert err == f"qa: error: {tmp_path / 'batch.toml'}: exports[0]: unknown key 'file'\n"


def test_cli_alias_option(tmp_path, capsys):
    a = small_coco(tmp_path / "a.json", "car")
    b = small_coco(tmp_path / "b.json", "automobile")
    code, out, _ = run_cli(["run", f"a={a}", f"b={b}", "--alias", "car=auto*", "--format", "json"], capsys)
    assert code == 0
    assert json.loads(out)["aliases"] == {"automobile": "car"}
    code, _, err = run_cli(["run", f"a={a}", "--alias", "car"], capsys)
    assert code == 2 and "--alias 'car' is not CANONICAL=PATTERN" in err
    code, _, err = run_cli(["run", f"a={a}", "--alias", "car=re:(("], capsys)
    assert code == 2 and err.startswith("qa: error: alias 're:((' for 'car' is not a valid regular expression")
    assert len(err.splitlines()) == 1


def test_the_reference_role_rescale_pairs_and_attribute_levels(tmp_path):
    small_coco(tmp_path / "g.json")
    small_coco(tmp_path / "a.json")
    path = tmp_path / "batch.toml"
    path.write_text('pairs = "all"\n[[exports]]\nannotator = "gold"\npath = "g.json"\nrole = "reference"\n\n'
                    '[[exports]]\nannotator = "al"\npath = "a.json"\nrescale = true\n\n'
                    '[attributes]\nmalignancy = "ordinal"\n', encoding="utf-8")
    man = read_manifest(path)
    assert man.reference == "gold" and man.pairs == "all" and man.attributes == {"malignancy": "ordinal"}
    assert [e.rescale for e in man.exports] == [False, True]
    run = qa.run(manifest=path, store=False, pack=None, workers=1)
    assert run.settings["reference"] == "gold" and run.settings["pairs"] == "all"
    assert run.batch.attribute_levels == {"malignancy": "ordinal"}


@pytest.mark.parametrize("text, message", [
    ('[[exports]]\nannotator = "a"\npath = "g.json"\nrole = "gold"\n', "role must be one of 'reference', 'annotator'"),
    ('[[exports]]\npath = "g.json"\nrole = "reference"\n', "the reference export needs an 'annotator' name"),
    ('[[exports]]\nannotator = "a"\npath = "g.json"\nrole = "reference"\n[[exports]]\nannotator = "b"\n'
     'path = "g.json"\nrole = "reference"\n', "2 exports have role = 'reference' (a, b); give one"),
    ('[[exports]]\nannotator = "a"\npath = "g.json"\nrescale = "yes"\n', "'rescale' must be true or false"),
    ('pairs = "some"\n[[exports]]\npath = "g.json"\n', "'pairs' must be 'reference' or 'all'"),
    ('[[exports]]\npath = "g.json"\n[attributes]\nx = "interval"\n', "'attributes' must be a table of name"),
])
def test_bad_reference_keys_are_config_errors(tmp_path, text, message):
    small_coco(tmp_path / "g.json")
    path = tmp_path / "batch.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_manifest(path)


def test_attribute_confusion_is_stored(tmp_path):
    doc = {"images": [{"id": 1, "file_name": "x.jpg", "width": 20, "height": 20}],
           "categories": [{"id": 1, "name": "car"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]],
                            "attributes": {"truncated": True}}]}
    write_json(tmp_path / "a.json", doc)
    doc["annotations"][0]["attributes"] = {"truncated": False}
    write_json(tmp_path / "b.json", doc)
    db = tmp_path / "qa.duckdb"
    qa.run(f"a={tmp_path / 'a.json'}", f"b={tmp_path / 'b.json'}", db=db, pack=None, workers=1)
    from qa import store

    with store.open(db) as s:
        rows = s.sql("SELECT attribute, annotator_a, annotator_b, value_a, value_b, n FROM attribute_confusion")
        queue = s.sql("SELECT reason, detail FROM review_queue WHERE reason = 'attribute_mismatch'")
    assert rows.values.tolist() == [["truncated", "a", "b", "True", "False", 1]]
    assert queue["detail"].tolist() == ["truncated: a says True, b says False"]
