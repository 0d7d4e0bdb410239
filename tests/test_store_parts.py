"""A run stored from Parquet parts (the object-level tables made a part at a time) stores exactly what the
same run stores from whole in-memory frames."""

from __future__ import annotations

import pandas as pd
import pytest

import qa
from qa import store as qstore
from common import REAL_BATCHES


def _tables(db) -> dict:
    """Every run table's rows, in a fixed order, as DataFrames (the store time left out)."""
    out = {}
    with qstore.open(db) as s:
        for table in qstore.RUN_TABLES:
            frame = s.sql(f"SELECT * EXCLUDE (stored_at) FROM {table}" if table == "runs"
                          else f"SELECT * FROM {table}")
            out[table] = frame.sort_values(list(frame.columns), key=lambda c: c.astype(str),
                                           ignore_index=True) if len(frame) else frame
    return out


def _stored_both_ways(run, tmp_path, monkeypatch, part_rows: int) -> tuple[dict, dict]:
    whole, parted = tmp_path / "whole.duckdb", tmp_path / "parts.duckdb"
    kept = run.analytics.review_table if run.analytics is not None else None
    if kept is not None:  # the queue a run keeps on disk, stored from one in-memory frame here
        run.analytics.review_table = run.analytics.review_queue
    with qstore.open(whole, read_only=False) as s:
        frames = qstore.run_frames(run)
        assert not any(isinstance(f, qstore.Parts) for f in frames.values())
        s.write_run(run, frames=frames)
    if kept is not None:
        run.analytics.review_table = kept
    monkeypatch.setattr(qstore, "PART_ROWS", part_rows)
    qstore.store_run(run, parted)
    return _tables(whole), _tables(parted)


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for table in a:
        pd.testing.assert_frame_equal(a[table], b[table], check_exact=True, obj=table)


def test_store_from_parts_equals_store_from_frames_synth(tmp_path, monkeypatch):
    from qa.synth import synthesize

    synthesize(tmp_path / "batch", images=4, size=(160, 320), annotators=3, seed=5, workers=1)
    run = qa.run(manifest=tmp_path / "batch" / "batch.toml", workers=1, store=False)
    n_objects = sum(len(e.objects) for e in run.batch.exports.values())
    assert isinstance(run.analytics.review_table, qstore.Parts)  # the run keeps its queue on disk
    whole, parted = _stored_both_ways(run, tmp_path, monkeypatch, part_rows=7)
    assert len(parted["review_queue"]) == len(run.analytics.review_table) > 0
    assert len(parted["objects"]) == n_objects > 7  # several parts, one of them short
    assert len(parted["object_matches"]) > 7
    assert len(parted["findings"]) > 7
    assert len(parted["scores"]) > 7
    _assert_same(whole, parted)
    import duckdb

    with duckdb.connect(str(tmp_path / "parts.duckdb"), read_only=True) as con:  # undefined figures are NULL
        assert con.execute("SELECT count(*) FILTER (WHERE value IS NULL), count(*) FILTER (WHERE isnan(value)) "
                           "FROM scores").fetchone() == (int(run.scores["value"].isna().sum()), 0)


def test_parts_are_written_a_part_at_a_time(tmp_path, monkeypatch):
    from qa.synth import synthesize

    synthesize(tmp_path / "batch", images=2, size=(160, 320), annotators=2, seed=3, workers=1)
    run = qa.run(manifest=tmp_path / "batch" / "batch.toml", workers=1, store=False)
    monkeypatch.setattr(qstore, "PART_ROWS", 5)
    frames = qstore.run_frames(run, parts_dir=tmp_path / "parts")
    n_objects = sum(len(e.objects) for e in run.batch.exports.values())
    objects = frames["objects"]
    assert isinstance(objects, qstore.Parts) and len(objects) == n_objects
    assert len(objects.paths) == -(-n_objects // 5)
    assert isinstance(frames["object_matches"], qstore.Parts)
    findings = frames["findings"]
    assert isinstance(findings, qstore.Parts) and len(findings) == len(qa.gate.run_findings(run)) > 0
    scores = frames["scores"]
    assert isinstance(scores, qstore.Parts) and len(scores) == len(run.scores) and len(scores.paths) > 1


def test_store_from_parts_equals_store_from_frames_real(shared_data, tmp_path, monkeypatch):
    exports = REAL_BATCHES["lidc"](shared_data)
    run = qa.run(*exports, workers=1, store=False)
    whole, parted = _stored_both_ways(run, tmp_path, monkeypatch, part_rows=50)
    assert len(parted["objects"]) > 50
    _assert_same(whole, parted)


def test_json_rows_made_column_by_column_equal_a_json_dump_per_row():
    import json

    import numpy as np

    frame = pd.DataFrame({
        "f64": [0.1, np.nan, np.inf, -1e-300, 1e16, 3.0],
        "f32": np.array([0.1, np.nan, 1e-7, 2.5, -np.inf, 7], np.float32),
        "i32": np.arange(6, dtype=np.int32), "u8": np.arange(6, dtype=np.uint8), "ok": [True, False] * 3,
        "n": pd.array([1, None, 3, 4, None, 6], dtype="Int64"),
        "text": ["a", 'q"uote', "\u00fc", None, "x\ny", "z"],
        "code": pd.Categorical(["a", "b", None, "a", "b", "a"])})
    expected = [qstore._json({k: qstore._json_value(v) for k, v in r.items()}) for r in frame.to_dict("records")]
    assert qstore._json_rows(frame) == expected
    assert json.loads(expected[1]) == {"f64": None, "f32": None, "i32": 1, "u8": 1, "ok": False, "n": None,
                                       "text": 'q"uote', "code": "b"}


def _stored_with_and_without_task_rows(run, db, tmp_path) -> tuple[dict, dict]:
    """The run as ``qa.run`` stored it into ``db`` (its ``objects`` rows made by the tasks, its
    ``object_matches`` rows on the executor) and the same run stored again with the rows made by the store."""
    made, matches = run.object_rows, run.match_rows
    assert matches is not None and matches.rows == matches.source_rows == len(run.comparison.object_parts())
    run.object_rows = run.match_rows = None
    again = tmp_path / "from_objects.duckdb"
    qstore.store_run(run, again)
    run.object_rows, run.match_rows = made, matches
    return _tables(db), _tables(again)


@pytest.mark.parametrize("chunk, part_rows", [(1, 10_000), (3, 7)])
def test_objects_and_matches_rows_made_by_the_workers_equal_the_rows_the_store_makes(tmp_path, monkeypatch, chunk,
                                                                                     part_rows):
    from qa.synth import synthesize

    synthesize(tmp_path / "batch", images=5, size=(160, 320), annotators=3, seed=7, workers=1)
    monkeypatch.setattr("qa.rules.check.images_per_chunk", lambda batch: chunk)  # several tasks
    monkeypatch.setattr(qstore, "PART_ROWS", part_rows)  # a file per annotator, or several
    db = tmp_path / "run.duckdb"
    run = qa.run(manifest=tmp_path / "batch" / "batch.toml", workers=1, db=db)
    made = run.object_rows
    assert made is not None and made.covers(run.batch)
    for name, paths in made.files.items():  # files of at least part_rows rows (the last one may be short)
        assert len(paths) == 1 if part_rows > len(run.batch.exports[name].objects) else len(paths) > 1
    from_tasks, from_objects = _stored_with_and_without_task_rows(run, db, tmp_path)
    assert len(from_tasks["objects"]) == sum(len(e.objects) for e in run.batch.exports.values()) > 0
    _assert_same(from_tasks, from_objects)


@pytest.mark.parametrize("name", ["shuffler", "lidc"])
def test_objects_and_matches_rows_made_by_the_workers_equal_the_rows_the_store_makes_real(shared_data, tmp_path,
                                                                                          monkeypatch, name):
    # shuffler: attributes, occluded flags, LabelMe sources; lidc: four COCO files
    monkeypatch.setattr("qa.rules.check.images_per_chunk", lambda batch: 4)
    db = tmp_path / "run.duckdb"
    run = qa.run(*REAL_BATCHES[name](shared_data), workers=1, db=db)
    assert run.object_rows is not None and run.object_rows.covers(run.batch)
    from_tasks, from_objects = _stored_with_and_without_task_rows(run, db, tmp_path)
    assert len(from_tasks["objects"]) > 0
    _assert_same(from_tasks, from_objects)


def test_rows_made_by_the_workers_are_used_only_when_they_hold_every_row(tmp_path):
    from qa.synth import synthesize

    synthesize(tmp_path / "batch", images=2, size=(160, 320), annotators=2, seed=3, workers=1)
    run = qa.run(manifest=tmp_path / "batch" / "batch.toml", workers=1, db=tmp_path / "run.duckdb")
    made = run.object_rows
    name = run.batch.annotators[0]
    frames = qstore.run_frames(run, parts_dir=tmp_path / "parts")
    assert frames["objects"].constants == {"run_id": run.run_id}  # the tasks' files, run_id added by the insert
    made.rows[name] -= 1  # as if a task had left an object out: the rows are made from the objects
    assert not made.covers(run.batch)
    frames = qstore.run_frames(run, parts_dir=tmp_path / "parts-2")
    assert frames["objects"].constants == {} and len(frames["objects"]) == sum(
        len(e.objects) for e in run.batch.exports.values())
    assert isinstance(frames["object_matches"], qstore.Parts) and frames["object_matches"].constants == {
        "run_id": run.run_id}  # the executor's files
    run.match_rows.source_rows += 1  # as if the comparison had changed since: the store makes them
    frames = qstore.run_frames(run, parts_dir=tmp_path / "parts-3")
    assert frames["object_matches"].constants == {} and len(frames["object_matches"]) == run.match_rows.rows
    unstored = qa.run(manifest=tmp_path / "batch" / "batch.toml", workers=1, store=False)
    assert unstored.object_rows is None and unstored.match_rows is None
