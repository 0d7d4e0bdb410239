from common import run_cli


def test_help_lists_exit_codes(capsys):
    code, out, err = run_cli(["--help"], capsys)
    assert code == 0
    assert "exit codes" in out and "gate failed" in out
    assert err == ""


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
