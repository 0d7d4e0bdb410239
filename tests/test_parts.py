"""qa.parts: a run's temporary folder lives as long as the tables that read from it."""

from __future__ import annotations

import gc
from pathlib import Path

import pandas as pd

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
