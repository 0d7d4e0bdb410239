"""Progress: a bar on stderr when it is a terminal, nothing when it is not."""

from __future__ import annotations

import io
import sys

from common import run_cli, write_json

from qa import cli


def _export(tmp_path, name):
    return write_json(tmp_path / f"{name}.json", {
        "images": [{"id": 1, "file_name": "x.jpg", "width": 8, "height": 6}],
        "categories": [{"id": 1, "name": "car"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4]]}],
    })


def test_quiet_when_stderr_is_not_a_terminal(tmp_path, capsys):
    assert not sys.stderr.isatty()
    code, out, err = run_cli(["run", f"a={_export(tmp_path, 'a')}", f"b={_export(tmp_path, 'b')}"], capsys)
    assert code == 0
    assert err == f"report written to {tmp_path / 'report.html'}\n"  # where the report went, no progress bar
    assert "2 annotators" in out


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_bar_when_stderr_is_a_terminal(tmp_path, monkeypatch):
    fake = _Terminal()
    monkeypatch.setattr(sys, "stderr", fake)
    bar, progress = cli._progress_printer()
    assert bar is not None
    with bar:
        progress("load", 0, 2)
        progress("load", 2, 2)
        bar.refresh()
        assert "load" in fake.getvalue() and "2/2" in fake.getvalue()


def test_run_calls_progress_per_export(tmp_path):
    from qa.pipeline import run

    calls = []
    run(f"a={_export(tmp_path, 'a')}", f"b={_export(tmp_path, 'b')}",
        progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert [c for c in calls if c[0] == "load"] == [("load", 0, 2), ("load", 1, 2), ("load", 2, 2)]
    stages = [c[0] for c in calls]
    assert [c for c in calls if c[0] == "compare"] == [("compare", 0, 1), ("compare", 1, 1)]
    assert stages.index("compare") < stages.index("check")  # compare, then the rules
    checks = [c for c in calls if c[0] == "check"]
    assert checks and checks[-1][1] == checks[-1][2]  # the rules stage reports too
    assert stages.index("check") < stages.index("alpha")  # then the analytics, image by image
    assert [c for c in calls if c[0] == "alpha"] == [("alpha", 0, 1), ("alpha", 1, 1)]
