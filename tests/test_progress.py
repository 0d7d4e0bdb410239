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
        progress("images", 0, 40)
        progress("images", 10, 40)
        bar.refresh()
        assert len(bar.tasks) == 1  # one bar per run, whatever the stage
        task = bar.tasks[0]
        assert task.description == "images" and task.completed == 10 and task.total == 40
        assert "10/40" in fake.getvalue()


def test_run_reports_its_exports_then_its_images(tmp_path):
    from qa.pipeline import run

    calls = []
    run(f"a={_export(tmp_path, 'a')}", f"b={_export(tmp_path, 'b')}",
        progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert [c for c in calls if c[0] == "load"] == [("load", 0, 2), ("load", 1, 2), ("load", 2, 2)]
    # every per-image figure (comparison, rules, alpha, consensus) in one pass: one stage, image by image
    assert [c for c in calls if c[0] != "load"] == [("images", 0, 1), ("images", 1, 1)]
    assert calls.index(("load", 2, 2)) < calls.index(("images", 0, 1))


def test_progress_counts_every_image_in_chunks(tmp_path, monkeypatch):
    from qa.engine import _pool
    from qa.pipeline import run

    doc = {"images": [{"id": k + 1, "file_name": f"x{k}.jpg", "width": 8, "height": 6} for k in range(5)],
           "categories": [{"id": 1, "name": "car"}],
           "annotations": [{"id": k + 1, "image_id": k + 1, "category_id": 1,
                            "segmentation": [[0, 0, 4, 0, 4, 4]]} for k in range(5)]}
    a, b = write_json(tmp_path / "a.json", doc), write_json(tmp_path / "b.json", doc)
    monkeypatch.setattr(_pool, "CHUNK_MAX", 2)
    calls = []
    run(f"a={a}", f"b={b}", workers=1, progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert [c for c in calls if c[0] == "images"] == [("images", n, 5) for n in (0, 2, 4, 5)]
