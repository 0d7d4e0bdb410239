import pytest

from common import run_cli


def test_help_lists_exit_codes(capsys):
    code, out, err = run_cli(["--help"], capsys)
    assert code == 0
    assert "exit codes" in out and "gate failed" in out
    assert err == ""


def test_commands_without_a_gate_list_their_own_exit_codes(capsys):
    """qa consensus --help listed the gate's exit codes (0 passed, 1 failed), though it has no gate."""
    for command in ("consensus", "report", "synth"):
        code, out, err = run_cli([command, "--help"], capsys)
        assert code == 0 and "exit codes:" in out
        assert "gate" not in out.split("exit codes:")[1] and "\n  1  " not in out, command
    for command in ("run", "gate"):
        code, out, err = run_cli([command, "--help"], capsys)
        assert "1  the gate failed" in out


def test_missing_file_is_one_line_exit_2(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    code, out, err = run_cli(["run", f"alice={missing}"], capsys)
    assert code == 2
    assert out == ""
    assert err.strip() == f"qa: error: {missing}: no such file or folder"


def test_unknown_option_is_usage_error(capsys):
    code, out, err = run_cli(["run", "--bogus"], capsys)
    assert code == 2
    assert err.startswith("qa: error:") and len(err.strip().splitlines()) == 1


# --- qa run with two or more annotators (comparison) ---------------------------------------------------

def test_run_prints_pair_table_and_writes_tables(shared_data, tmp_path, capsys):
    import json

    import pandas as pd

    folder = shared_data / "lidc_idri_pylidc"
    exports = [f"r{k}={folder / f'coco_reader{k}.json'}" for k in (1, 2, 3)]
    out = tmp_path / "out"
    code, stdout, err = run_cli(["run", *exports, "--workers", "1", "--tolerance", "2", "--out", out,
                                 "--json", tmp_path / "summary.json"], capsys)
    assert code == 0, err
    lines = stdout.splitlines()
    header = next(k for k, line in enumerate(lines) if line.startswith("pair "))
    assert lines[header].split()[:7] == ["pair", "images", "PQ", "matched", "IoU", "image", "IoU"]
    assert [line.split()[0] for line in lines[header + 1:header + 4]] == ["r1|r2", "r1|r3", "r2|r3"]
    assert lines[-2].startswith("3 annotators, 257 images")
    assert lines[-1].endswith(" in 3 exports")  # the closing summary line stays last
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [p["pair"] for p in summary["pairs"]] == ["r1|r2", "r1|r3", "r2|r3"]
    assert summary["pairs"][0]["matched"] == 169 and 0.7 < summary["pairs"][0]["mask_iou_mean"] < 0.8
    objects = pd.read_parquet(out / "object_pairs.parquet")
    images = pd.read_parquet(out / "image_pairs.parquet")
    assert len(images) == 257 * 3
    assert (objects["status"] == "matched").sum() == sum(p["matched"] for p in summary["pairs"])
    assert str(out / "object_pairs.parquet") in err


def test_run_json_on_stdout_and_in_a_file_is_the_summary_written_as_it_is_made(tmp_path, capsys, monkeypatch):
    """``qa run --format json`` and ``--json PATH`` write what ``json.dumps(summary, indent=2)`` would, the
    violations made one at a time (qa.rules.check.write_json); stdout is held in a temporary file once
    past its spool (1 KB here) and printed whole after the run is stored."""
    import io
    import json

    import qa
    import qa.cli
    from qa.rules.check import json_default, write_json
    from qa.synth import synthesize

    synthesize(tmp_path / "batch", images=4, size=(96, 160), annotators=3, seed=3, workers=1)
    manifest = tmp_path / "batch" / "batch.toml"
    summary = qa.run(manifest=manifest, workers=1, store=False).summary
    assert len(summary["violations"]) > 10
    written = io.StringIO()
    write_json(summary, written)
    assert written.getvalue() == json.dumps(summary, indent=2, default=json_default)

    monkeypatch.setattr(qa.cli, "_STDOUT_SPOOL", 1024)
    code, out, err = run_cli(["run", "--manifest", manifest, "--workers", "1", "--db", tmp_path / "qa.duckdb",
                              "--format", "json", "--json", tmp_path / "summary.json"], capsys)
    assert code == 0, err
    assert len(out) > 1024 and out == (tmp_path / "summary.json").read_text(encoding="utf-8")
    assert out.endswith("}\n") and json.loads(out)["violations"] == json.loads(written.getvalue())["violations"]


def test_run_rejects_bad_comparison_options(shared_data, capsys):
    path = shared_data / "lidc_idri_pylidc" / "coco_reader1.json"
    code, out, err = run_cli(["run", f"a={path}", f"b={path}", "--workers", "0"], capsys)
    assert code == 2 and "--workers" in err
    code, out, err = run_cli(["run", f"a={path}", f"b={path}", "--workers", "1", "--tolerance", "-1"], capsys)
    assert code == 2 and err.startswith("qa: error: tolerances must be positive")
    assert len(err.strip().splitlines()) == 1


def test_check_exits_1_on_errors_only_when_asked(tmp_path, capsys):
    from storekit import two_exports

    alice, bob = two_exports(tmp_path, bob_unknown=1)  # bob: one FMT004 error
    code, out, err = run_cli(["check", f"alice={alice}", f"bob={bob}"], capsys)
    assert code == 0, err
    assert out.splitlines()[-1] == "1 error, 2 warnings, 0 info in 2 exports (pack default)"
    for fmt in ("text", "json"):
        code, out, err = run_cli(["check", f"alice={alice}", f"bob={bob}", "--exit-non-zero-on-error",
                                  "--format", fmt], capsys)
        assert code == 1, err
    code, out, err = run_cli(["check", f"alice={alice}", "--exit-non-zero-on-error"], capsys)
    assert code == 0 and out.splitlines()[-1] == "0 errors, 1 warning, 0 info in 1 export (pack default)"


# --- names from exports never forge terminal output ------------------------------------------------------

FORGED = "car\nqa: error: FAKE\x1b[31m"


def _hostile_exports(tmp_path):
    """Two COCO exports whose category, image file name, annotator and batch names hold a newline, ESC
    and NUL; the image only alice has gives an ALN001 line naming it."""
    import json

    def doc(extra_image):
        images = [{"id": 1, "file_name": "a.png", "width": 16, "height": 16}]
        if extra_image:
            images.append({"id": 2, "file_name": "b\x1b[2J.png", "width": 16, "height": 16})
        return {"images": images, "categories": [{"id": 1, "name": FORGED}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                                 "segmentation": [[1, 1, 9, 1, 9, 9, 1, 9]]},
                                {"id": 2, "image_id": 1, "category_id": 7, "iscrowd": 0,
                                 "segmentation": [[1, 1, 9, 1, 9, 9]]}]}

    alice, bob = tmp_path / "alice.json", tmp_path / "bob.json"
    alice.write_text(json.dumps(doc(True)))
    bob.write_text(json.dumps(doc(False)))
    manifest = tmp_path / "batch.toml"
    manifest.write_text('name = "batch\\u001b]0;title\\u0007\\u0000"\n'
                        f'[[exports]]\nannotator = "al\\u001bice\\nqa: error: FAKE"\npath = "{alice}"\n'
                        f'[[exports]]\nannotator = "bob"\npath = "{bob}"\n')
    return manifest


def _assert_no_forgery(text):
    assert "\x1b" not in text and "\x00" not in text and "\x07" not in text
    assert not any(line.startswith("qa: error: FAKE") for line in text.splitlines())


def test_names_with_control_characters_are_escaped_in_every_table_and_line(tmp_path, capsys):
    manifest = _hostile_exports(tmp_path)
    db = tmp_path / "qa.duckdb"
    code, out, err = run_cli(["run", "--manifest", manifest, "--db", db], capsys)
    assert code == 0, err
    _assert_no_forgery(out + err)
    assert "car\\nqa: error: FAKE\\x1b[31m" in out  # the annotator table's category column
    assert any(line.startswith("b\\x1b[2J.png: ALN001 ") for line in out.splitlines())
    assert "[al\\x1bice\\nqa: error: FAKE] FMT004" in out
    for argv in (["runs"], ["runs", "show", "latest"], ["sql", "SELECT annotator, image FROM findings"],
                 ["check", "--manifest", manifest]):
        code, out, err = run_cli([*argv, *(["--db", db] if argv[0] != "check" else [])], capsys)
        assert code == 0, err
        _assert_no_forgery(out + err)
    # machine formats carry the exact names: JSON escapes them itself, CSV quotes them
    code, out, err = run_cli(["sql", "SELECT annotator FROM annotators ORDER BY annotator", "--db", db,
                              "--format", "csv"], capsys)
    assert out == 'annotator\n"al\x1bice\nqa: error: FAKE"\nbob\n'


def test_an_error_naming_a_hostile_name_is_one_line(tmp_path, capsys):
    manifest = tmp_path / "batch.toml"
    manifest.write_text('[[exports]]\nannotator = "x\\u001b[2J\\nqa: error: FAKE"\npath = "nope\\n.json"\n')
    code, out, err = run_cli(["run", "--manifest", manifest], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    _assert_no_forgery(err)


@pytest.mark.parametrize("given, expected", [(None, "0"), ("250", "250")])
def test_the_qa_process_sets_the_allocator_environment_before_pyarrow_loads(given, expected):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "MIMALLOC_PURGE_DELAY"}
    if given is not None:
        env["MIMALLOC_PURGE_DELAY"] = given
    code = ("import os, sys; import qa.__main__; "
            "print(os.environ['MIMALLOC_PURGE_DELAY'], 'pyarrow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [expected, "False"]  # set (or kept), and pyarrow not loaded yet
