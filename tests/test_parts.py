"""qa.parts: a run's temporary folder lives as long as the tables that read from it."""

from __future__ import annotations

import gc
from pathlib import Path

import pandas as pd
import pytest

from qa.parts import Parts, run_folder


def test_a_run_folder_is_removed_with_its_last_reader_without_a_warning():
    # warnings are errors: a ResourceWarning from the folder's finalizer fails this test
    folder = run_folder()
    path = Path(folder.name)
    parts = Parts.of([pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": [3]})], path / "t", owner=folder)
    del folder
    gc.collect()
    assert path.is_dir() and parts.read()["a"].tolist() == [1, 2, 3]
    del parts
    gc.collect()
    assert not path.exists()


def test_a_run_folder_is_removed_at_cleanup_and_as_a_context(tmp_path):
    folder = run_folder(tmp_path)
    assert Path(folder.name).parent == tmp_path
    folder.cleanup()
    folder.cleanup()  # once is enough
    assert not Path(folder.name).exists()
    with run_folder(tmp_path) as name:
        assert Path(name).is_dir()
    assert not Path(name).exists()


def test_head_reads_the_first_rows_across_files_and_none_for_zero(tmp_path):
    import pandas as pd

    from qa.parts import Parts

    frames = [pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}), pd.DataFrame({"a": [4, 5], "b": ["u", "v"]})]
    parts = Parts.of(frames, tmp_path / "t")
    assert len(parts) == 5 and parts.columns() == ["a", "b"]
    assert parts.head(4)["a"].tolist() == [1, 2, 3, 4]
    assert parts.head(10)["b"].tolist() == ["x", "y", "z", "u", "v"]
    empty = parts.head(0)
    assert len(empty) == 0 and list(empty.columns) == ["a", "b"]
    assert parts["a"].tolist() == [1, 2, 3, 4, 5]


def test_a_run_folder_left_by_a_killed_process_is_removed_by_the_next_one(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from qa.parts import RunFolder, run_folder, sweep

    code = ("import os, sys; from qa.parts import RunFolder; f = RunFolder(sys.argv[1]); "
            "(f.path / 'part-00000.parquet').write_bytes(b'x'); print(f.name, flush=True); os.kill(os.getpid(), 9)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == -9
    left = Path(out.stdout.split()[0])
    assert left.parent == tmp_path and left.is_dir()  # SIGKILL removes nothing
    alive = run_folder(tmp_path)  # sweeps the dead one, then holds its own
    store = RunFolder(tmp_path, prefix="qa-store-")
    other = tmp_path / "qa-run-not-ours"  # no owner file: not touched
    other.mkdir()
    assert not left.exists()
    assert sweep(tmp_path) == []  # live folders stay
    assert alive.path.is_dir() and store.path.is_dir() and other.is_dir()
    alive.cleanup()
    store.cleanup()
    assert not alive.path.exists() and not store.path.exists()


@pytest.mark.parametrize("before_19", [False, True])
def test_read_frame_reads_a_part_as_pandas_read_parquet_does(tmp_path, monkeypatch, before_19):
    import numpy as np

    from qa import parts

    frame = pd.DataFrame({"image": ["a.png", None, "b.png"], "n": np.array([1, 2, 3], np.int64),
                          "value": [0.5, np.nan, -1.0],
                          "reason": pd.Categorical(["low_iou", "missing", "low_iou"]),
                          "flag": pd.array([True, None, False], dtype="boolean")}, index=[7, 8, 9])
    path = tmp_path / "part.parquet"
    frame.to_parquet(path)
    monkeypatch.setattr(parts, "_pyarrow_before_19", lambda: before_19)
    for columns in (None, ["reason", "n"], ["image"]):
        expected = pd.read_parquet(path, engine="pyarrow", columns=columns)
        pd.testing.assert_frame_equal(parts.read_frame(path, columns), expected, check_exact=True)
