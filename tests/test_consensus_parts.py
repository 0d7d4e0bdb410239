"""A run's consensus written to Parquet parts as the chunks come gives the same tables, masks, figures and
stored rows, to the bit, as the same run's consensus made in memory."""

from __future__ import annotations

import copy
import gc
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import qa
from qa import store as qstore
from qa import task as qtask
from qa.analytics import consensus as qc
from common import REAL_BATCHES

RUN_ID = "consensus-parts"


def _in_memory(monkeypatch):
    """Make the run's one pass reduce the consensus in memory (no folder), as before the parts."""
    map_reduce = qtask.map_reduce

    def without_folder(*args, folder=None, **kwargs):
        return map_reduce(*args, **kwargs)

    monkeypatch.setattr(qtask, "map_reduce", without_folder)


def _stored(db) -> dict:
    """Every run table's rows in a fixed order (the run's times left out)."""
    out = {}
    with qstore.open(db) as s:
        for table in qstore.RUN_TABLES:
            frame = s.sql("SELECT * EXCLUDE (started_at, finished_at, stored_at) FROM runs" if table == "runs"
                          else f"SELECT * FROM {table}")
            out[table] = frame.sort_values(list(frame.columns), key=lambda c: c.astype(str),
                                           ignore_index=True) if len(frame) else frame
    return out


def _both_ways(args: dict, tmp_path, monkeypatch, part_rows: int):
    """The same run twice, stored: its consensus in parts of ``part_rows`` object rows, then in memory."""
    exports = args.pop("exports", ())
    monkeypatch.setattr(qc, "PART_ROWS", part_rows)
    parted = qa.run(*exports, **args, workers=1, db=tmp_path / "parts.duckdb", run_id=RUN_ID)
    with monkeypatch.context() as m:
        _in_memory(m)
        whole = qa.run(*exports, **args, workers=1, db=tmp_path / "whole.duckdb", run_id=RUN_ID)
    return whole, parted


def _plain_per_annotator(objects, names: list, labels: list) -> pd.DataFrame:
    """The per-annotator counts and means the plain way, from the whole object table at once."""
    rows = []
    for name in names:
        mine = objects[objects["annotator"] == name]
        matched = mine[mine["status"] == "matched"]
        row = {"annotator": name, "matched": len(matched), "missing": int((mine["status"] == "missing").sum()),
               "extra": int((mine["status"] == "extra").sum()),
               "label_disagreements": int(matched["label_disagreement"].sum())}
        for metric, column in qc._mean_columns(labels).items():
            values = matched[column].to_numpy(dtype=np.float64)
            values = values[~np.isnan(values)]
            row[metric] = float(values.mean()) if len(values) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _assert_same(whole, parted, tmp_path) -> None:
    a, b = whole.analytics.consensus, parted.analytics.consensus
    labels = [f"boundary_f_{qc._label(t)}" for t in b.settings["tolerances"]]
    plain = _plain_per_annotator(b.objects, list(b.annotators["annotator"]), labels)
    pd.testing.assert_frame_equal(b.annotators[list(plain.columns)], plain, check_exact=True)
    assert a.parts("objects") is None and a.owner is None
    objects = b.parts("objects")
    assert objects is not None and len(objects.paths) > 1  # several parts, the last one short
    assert len(b.parts("clusters").paths) > 1 and len(b.parts("masks").paths) > 1
    for name in ("clusters", "objects", "annotators", "scores"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True, obj=name)
    assert a.masks == b.masks and list(a.masks) == list(b.masks) and len(a.masks) > 0
    assert (a.settings, a.summary, a.images, a.categories) == (b.settings, b.summary, b.images, b.categories)
    assert json.dumps(a.to_coco()) == json.dumps(b.to_coco())
    pd.testing.assert_frame_equal(whole.scores, parted.scores, check_exact=True)
    stored_a, stored_b = _stored(tmp_path / "whole.duckdb"), _stored(tmp_path / "parts.duckdb")
    assert stored_a.keys() == stored_b.keys()
    for table in stored_a:
        pd.testing.assert_frame_equal(stored_a[table], stored_b[table], check_exact=True, obj=table)
    consensus_scores = stored_b["scores"][stored_b["scores"]["scope"] == "annotator_consensus"]
    assert len(consensus_scores) > 0


def test_consensus_in_parts_equals_consensus_in_memory_synth(tmp_path, monkeypatch):
    from qa.synth import synthesize

    synthesize(tmp_path / "batch", images=6, size=(160, 320), annotators=3, seed=11, workers=1)
    whole, parted = _both_ways({"manifest": tmp_path / "batch" / "batch.toml"}, tmp_path, monkeypatch,
                               part_rows=20)
    assert len(whole.analytics.consensus.objects) > 20
    _assert_same(whole, parted, tmp_path)


def test_consensus_in_parts_equals_consensus_in_memory_real(shared_data, tmp_path, monkeypatch):
    whole, parted = _both_ways({"exports": REAL_BATCHES["lidc"](shared_data)}, tmp_path, monkeypatch,
                               part_rows=40)
    assert len(whole.analytics.consensus.objects) > 40
    _assert_same(whole, parted, tmp_path)


def test_the_consensus_parts_live_as_long_as_the_run(tmp_path):
    from qa.synth import synthesize

    synthesize(tmp_path / "batch", images=3, size=(160, 320), annotators=3, seed=2, workers=1)
    run = qa.run(manifest=tmp_path / "batch" / "batch.toml", workers=1, store=False)
    consensus = run.analytics.consensus
    files = consensus.parts("objects").paths
    assert files and all(Path(f).is_file() for f in files)
    assert Path(consensus.owner.name) in Path(files[0]).parents
    folder = Path(consensus.owner.name)
    del run, consensus
    gc.collect()
    assert not folder.exists()


def _results(tmp_path, monkeypatch) -> list:
    """The per-chunk consensus results of a small synth run, as the reduce took them."""
    from qa.synth import synthesize

    seen: list = []
    chunk = qc.consensus_chunk

    def spy(results, tolerances):  # the records each task made, before it turned them into columns
        seen.append(copy.deepcopy(results))
        return chunk(results, tolerances)

    synthesize(tmp_path / "batch", images=4, size=(160, 320), annotators=3, seed=7, workers=1)
    with monkeypatch.context() as m:
        m.setattr(qc, "consensus_chunk", spy)
        qa.run(manifest=tmp_path / "batch" / "batch.toml", workers=1, store=False)
    return [results for results in seen if results]


@pytest.mark.parametrize("part_rows", [1, 10**9])
def test_a_column_of_nulls_in_one_part_reads_back_as_the_whole_column(tmp_path, monkeypatch, part_rows):
    # the first chunk's objects have no file: that part's column is all nulls, the others' strings
    chunks = _results(tmp_path, monkeypatch)
    assert len(chunks) > 1
    for result in chunks[0]:
        for row in result["rows"]:
            row["file"] = None
    tolerances = (1.0, 2.0, 4.0)
    monkeypatch.setattr(qc, "PART_ROWS", part_rows)
    memory, parted = qc.ConsensusRows(tolerances), qc.ConsensusRows(tolerances, folder=tmp_path / "parts")
    for results in chunks:
        memory.add(copy.deepcopy(results))
        parted.add(copy.deepcopy(results))
    parted._write()
    assert len(parted.written["objects"]) == (len(chunks) if part_rows == 1 else 1)
    expected = qc._object_frame(memory.rows)
    assert expected["file"].isna().any() and expected["file"].notna().any()
    pd.testing.assert_frame_equal(qc._read_table(parted._parts("objects")), expected, check_exact=True)
    pd.testing.assert_frame_equal(qc._read_table(parted._parts("clusters")), memory.clusters.frame(),
                                  check_exact=True)
    assert qc._read_masks(parted._parts("masks")) == memory.masks
