"""The consensus's reduce keeps its rows as columns, not dicts: the tables it makes equal, to the bit, the
tables ``DataFrame.from_records`` makes from the same records (what the reduce built before)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

import qa
from qa.analytics import consensus as qc
from common import REAL_BATCHES


def _from_records(results: list, tolerances) -> tuple:
    """The clusters and object rows as the reduce made them from the records themselves."""
    labels = [f"boundary_f_{qc._label(t)}" for t in tolerances]
    clusters, rows, first = [], [], 0
    for result in results:
        for record in result["clusters"]:
            clusters.append(dict(record, cluster=record["cluster"] + first))
        rows.extend(dict(row, cluster=row["cluster"] + first) for row in result["rows"])
        first += len(result["clusters"])
    cluster_df = pd.DataFrame.from_records(clusters, columns=list(qc._CLUSTER_COLUMNS))
    objects = pd.DataFrame.from_records(rows, columns=qc._row_columns(labels))
    for name in qc._INT_COLUMNS:
        objects[name] = objects[name].astype("Int64")
    for name in ("iou", "sensitivity", "specificity", *labels, "boundary_iou", "signed_offset_px"):
        objects[name] = objects[name].astype(np.float64)
    objects["label_disagreement"] = objects["label_disagreement"].astype(bool)
    objects["source_id"] = objects["source_id"].astype("string")
    return cluster_df, objects


def _check(batch_args: dict, monkeypatch) -> int:
    seen: list = []
    chunk = qc.consensus_chunk

    def spy(results, tolerances):  # the records each task made, before it turned them into columns
        seen.extend(copy.deepcopy(results))
        return chunk(results, tolerances)

    monkeypatch.setattr(qc, "consensus_chunk", spy)
    exports = batch_args.pop("exports", ())
    run = qa.run(*exports, **batch_args, workers=1, store=False)
    consensus = run.analytics.consensus
    clusters, objects = _from_records(seen, consensus.settings["tolerances"])
    pd.testing.assert_frame_equal(consensus.clusters, clusters, check_exact=True)
    pd.testing.assert_frame_equal(consensus.objects, objects, check_exact=True)
    return len(objects)


def test_consensus_rows_equal_from_records_synth(tmp_path, monkeypatch):
    from qa.synth import synthesize

    synthesize(tmp_path / "batch", images=6, size=(160, 320), annotators=3, seed=11, workers=1)
    assert _check({"manifest": tmp_path / "batch" / "batch.toml"}, monkeypatch) > 0


def test_consensus_rows_equal_from_records_real(shared_data, monkeypatch):
    exports = REAL_BATCHES["lidc"](shared_data)
    assert _check({"exports": exports}, monkeypatch) > 0


def test_consensus_rows_without_images_are_empty_tables():
    rows = qc.ConsensusRows((1.0, 2.0))
    rows.add([])
    clusters, objects = _from_records([], (1.0, 2.0))
    pd.testing.assert_frame_equal(rows.clusters.frame(), clusters)
    built = rows.rows.frame()
    built["source_id"] = built["source_id"].astype("string")
    pd.testing.assert_frame_equal(built, objects)
