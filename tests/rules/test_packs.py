"""Packs: extends, selection order, per-category parameters, severities, errors, the wheel."""

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from common import make_batch, make_object, run_cli, square
from qa.errors import ConfigError
from qa.rules import packs
from qa.rules.check import check

ROOT = Path(__file__).resolve().parents[2]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_builtin_packs_resolve():
    assert packs.available() == ["default", "medical-imaging", "street-scenes"]
    default = packs.read("default")
    assert "LAY004" not in default.selected and "VTX001" in default.selected and "FMT105" not in default.selected
    street = packs.read("street-scenes")
    assert [p.name for p in street.files] == ["default.toml", "street-scenes.toml"]
    assert street.params_for("VTX001", "person")["min_vertices_per_100px"] == 5.0
    assert street.params_for("VTX001", "truck")["min_vertices_per_100px"] == 2.0
    assert street.params_for("OCC003", "person")["policy"] == "drop" and street.params_for("OCC003")["policy"] == "flag"
    assert street.severity_of("LAY002") == "error" and "FMT105" in street.selected
    assert street.gate["boundary_f_2px_mean"] == {"min": 0.7, "per": "category"}
    medical = packs.read("medical-imaging")
    assert not [r for r in medical.selected if r.startswith("OCC")] and "LAY004" in medical.selected
    assert medical.params_for("VTX002", "nodule")["max_vertices_per_100px"] == 150.0


def test_extends_chain_and_selection_order(tmp_path):
    write(tmp_path, "base.toml", 'name = "base"\n[rules]\nselect = ["VTX", "OCC"]\n'
                                 '[params.VTX001]\nmin_vertices_per_100px = 3.0\nmin_perimeter_px = 10.0\n')
    write(tmp_path, "child.toml", 'extends = "base.toml"\n[rules]\nignore = ["VTX00"]\nextend_select = ["VTX004", "LAY001"]\n'
                                  '[params.VTX001]\nmin_vertices_per_100px = 5.0\n')
    pack = packs.read(tmp_path / "child.toml")
    assert set(pack.selected) == {"VTX004", "LAY001", "OCC001", "OCC002", "OCC003", "OCC004"}
    assert pack.params["VTX001"] == {"min_vertices_per_100px": 5.0, "min_perimeter_px": 10.0}
    write(tmp_path, "grandchild.toml", 'extends = "child.toml"\n[rules]\nselect = ["LAY"]\nignore = ["LAY005"]\n')
    assert set(packs.read(tmp_path / "grandchild.toml").selected) == {"LAY001", "LAY002", "LAY003", "LAY004"}


def test_more_specific_selector_wins_and_ties_go_to_ignore():
    assert packs.apply_selection(set(), select=["VTX004"], ignore=["VTX"]) == {"VTX004"}
    assert packs.apply_selection(set(), select=["VTX"], ignore=["VTX004"]) == {f"VTX00{k}" for k in (1, 2, 3, 5, 6, 7, 8)}
    assert packs.apply_selection({"VTX004"}, select=None, extend_select=["VTX004"], ignore=["VTX004"]) == set()
    assert packs.apply_selection({"OCC001"}, extend_select=["FMT105"]) == {"OCC001", "FMT105"}


def test_command_line_applies_last():
    pack = packs.override(packs.read("street-scenes"), select=["VTX", "OCC"], ignore=["VTX005", "OCC004"])
    assert set(pack.selected) == {"VTX001", "VTX002", "VTX003", "VTX004", "VTX006", "VTX007", "VTX008",
                                  "OCC001", "OCC002", "OCC003"}
    assert pack.params_for("VTX001", "person")["min_vertices_per_100px"] == 5.0
    with pytest.raises(ConfigError) as err:
        packs.override(pack, ignore=["VTX9"])
    assert str(err.value) == "--ignore: unknown rule id or prefix 'VTX9'; see 'qa rules list'"


def test_per_category_parameters_reach_the_rule(tmp_path):
    path = write(tmp_path, "p.toml", '[rules]\nselect = ["VTX001"]\n[params.VTX001]\nmin_vertices_per_100px = 1.0\n'
                                     '[params.VTX001.categories.person]\nmin_vertices_per_100px = 4.0\n')
    objs = [make_object(square(10, 10, 60), category="person"), make_object(square(10, 10, 60), category="car")]
    (f,) = check(make_batch(objs), packs.read(path))
    assert f.source.index == 0 and f.limit == 4.0


def test_severity_prefix_then_id_and_scope(tmp_path):
    path = write(tmp_path, "p.toml", '[rules]\nselect = ["VTX"]\n[severity]\nVTX001 = "error"\nVTX = "info"\n'
                                     '[scope]\nVTX003 = ["person"]\n')
    pack = packs.read(path)
    assert pack.severity_of("VTX001") == "error" and pack.severity_of("VTX004") == "info"
    tri = np.array([[10, 10], [60, 10], [30, 50]], float)
    objs = [make_object(tri, category="person"), make_object(tri, category="car")]
    found = [f for f in check(make_batch(objs), pack) if f.code == "VTX003"]
    assert [(f.source.index, f.severity) for f in found] == [(0, "info")]


@pytest.mark.parametrize("text, where, message", [
    ('bogus = 1\n', "bogus", "unknown key 'bogus'"),
    ('[rules]\nselect = ["VTX9"]\n', "rules.select", "unknown rule id or prefix 'VTX9'"),
    ('[rules]\nignore = ["NOPE"]\n', "rules.ignore", "unknown rule id or prefix 'NOPE'"),
    ('[rules]\nselect = "VTX"\n', "rules.select", "must be a list of strings"),
    ('[rules]\nchoose = ["VTX"]\n', "rules.choose", "unknown key 'choose'"),
    ('[params.VTX001]\nbogus = 1.0\n', "params.VTX001.bogus", "VTX001 has no parameter 'bogus'"),
    ('[params.VTX001]\nmin_vertices_per_100px = "many"\n', "params.VTX001.min_vertices_per_100px", "takes a number, got 'many'"),
    ('[params.VTX003]\nmin_vertices = 4.5\n', "params.VTX003.min_vertices", "takes an integer, got 4.5"),
    ('[params.OCC003]\npolicy = "ignore"\n', "params.OCC003.policy", "must be one of 'flag', 'drop'"),
    ('[params.VTX999]\nx = 1\n', "params.VTX999", "unknown rule id 'VTX999'"),
    ('[params.VTX001.categories.person]\nmax = 1\n', "params.VTX001.categories.person.max", "no parameter 'max'"),
    ('[params.FMT104.categories.person]\nmax_unlabelled_share = 0.1\n', "params.FMT104.categories",
     "takes no per-category parameters"),
    ('[severity]\nVTX001 = "fatal"\n', "severity.VTX001", "severity must be one of error, warning, info"),
    ('extends = "nowhere"\n', "extends", "no built-in rule pack 'nowhere'"),
    ('extends = "missing.toml"\n', "extends", "no such rule pack file"),
    ('[rules\n', None, "not valid TOML"),
])
def test_errors_name_the_pack_file_and_the_key(tmp_path, text, where, message):
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(ConfigError) as err:
        packs.read(path)
    assert err.value.path == str(path.resolve())
    assert err.value.where == where
    assert message in err.value.message
    assert len(str(err.value).splitlines()) == 1


def test_extends_cycle(tmp_path):
    write(tmp_path, "a.toml", 'extends = "b.toml"\n')
    write(tmp_path, "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(ConfigError, match=r"cycle \(a.toml -> b.toml -> a.toml\)"):
        packs.read(tmp_path / "a.toml")


def test_preview_rule_needs_its_exact_id(tmp_path):
    assert "FMT105" not in packs.read(write(tmp_path, "p.toml", '[rules]\nselect = ["FMT"]\n')).selected
    assert "FMT105" in packs.read(write(tmp_path, "q.toml", '[rules]\nselect = ["FMT", "FMT105"]\n')).selected


def test_bad_pack_on_the_command_line_is_exit_2(tmp_path, capsys):
    export = tmp_path / "a.json"
    export.write_text('{"images": [], "annotations": [], "categories": []}')
    path = write(tmp_path, "bad.toml", '[params.VTX001]\nbogus = 1.0\n')
    code, out, err = run_cli(["check", f"a={export}", "--pack", path], capsys)
    assert code == 2 and out == ""
    assert err.strip() == f"qa: error: {path.resolve()}: params.VTX001.bogus: VTX001 has no parameter 'bogus' " \
                          "(parameters: min_vertices_per_100px, min_perimeter_px)"
    code, out, err = run_cli(["check", f"a={export}", "--pack", "nope"], capsys)
    assert code == 2 and "no built-in rule pack 'nope'" in err


@pytest.mark.slow
def test_packs_are_inside_the_wheel(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("annotation_qa-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for pack in ("default", "street-scenes", "medical-imaging"):
        assert f"qa/_data/packs/{pack}.toml" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("from qa._resources import packs_dir; from qa.rules.packs import read, available; "
             "print(packs_dir()); print(available()); print(read('street-scenes').files[0].name)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(site), "PATH": ""})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == str(site / "qa" / "_data" / "packs")
    assert lines[1] == "['default', 'medical-imaging', 'street-scenes']" and lines[2] == "default.toml"
