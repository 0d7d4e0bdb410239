"""The run store: schema, one transaction per run, faults (SIGKILL, concurrent writers, bad files)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import qa
from qa import store as qstore
from qa.pipeline import run as qa_run
from qa.errors import StoreError
from storekit import (SCHEMA_5_KEYS, SCHEMA_6_KEYS, drop_schema_4, drop_schema_6, drop_schema_7, score_rows,
                      two_exports, with_comparison)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def exports(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    return two_exports(folder, bob_unknown=1)


def _run(exports, db=None, **kwargs):
    alice, bob = exports
    return qa_run(f"alice={alice}", f"bob={bob}", db=db, **kwargs)


def _snapshot(db: Path) -> dict:
    """Every table's rows (sorted), so two snapshots are equal only when the store is unchanged."""
    with qstore.open(db) as s:
        return {t: sorted(map(repr, s.sql(f"SELECT * FROM {t}").astype(str).values.tolist()))
                for t in qstore.TABLES}


# --- schema -------------------------------------------------------------------------------------------

def test_new_store_has_every_table_with_documented_columns(tmp_path):
    db = tmp_path / "qa.duckdb"
    doc = (ROOT / "docs" / "schema.md").read_text(encoding="utf-8")
    with qstore.open(db, read_only=False) as s:
        tables = set(s.sql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")
                     ["table_name"])
        assert tables == set(qstore.TABLES)
        version = s.sql("SELECT application, schema_version FROM qa_schema").values.tolist()
        assert version == [[qstore.APPLICATION, qstore.SCHEMA_VERSION]]
        for table in qstore.TABLES:
            columns = list(s.sql(f"SELECT * FROM {table} LIMIT 0").columns)
            assert columns == qstore._table_columns(table)
            # the reference documents each table in its own section, every column in a table row
            section = doc.split(f"### `{table}`")[1].split("\n### ")[0]
            for column in columns:
                assert f"| `{column}` |" in section, f"docs/schema.md: {table}.{column} undocumented"
        for table in qstore.RUN_TABLES:
            assert "run_id" in s.sql(f"SELECT * FROM {table} LIMIT 0").columns


def test_store_holds_runs_annotators_images_objects_findings(tmp_path, exports):
    db = tmp_path / "qa.duckdb"
    run = _run(exports, db)
    alice, bob = exports
    with qstore.open(db) as s:
        info = s.run("latest")
        assert info["run_id"] == run.run_id and info["seq"] == 1
        assert info["n_annotators"] == 2 and info["n_images"] == 2 and info["n_objects"] == 6
        # bob's unknown category (FMT004, load) and the default pack's OCC001 on each occluded square
        assert (info["n_findings"], info["errors"], info["warnings"]) == (3, 1, 2) and info["verdict"] is None
        assert {i["annotator"]: i["sha256"] for i in info["inputs"]} == {
            "alice": hashlib.sha256(alice.read_bytes()).hexdigest(),
            "bob": hashlib.sha256(bob.read_bytes()).hexdigest()}
        assert info["tool_version"] == qa.__version__ and info["settings"]["max_pixels"] == 100_000_000

        ann = s.table("annotators", run.run_id).set_index("annotator")
        assert ann.loc["bob", "n_objects"] == 3 and ann.loc["bob", "n_findings"] == 2
        assert ann.loc["alice", "sha256"] == hashlib.sha256(alice.read_bytes()).hexdigest()

        images = s.table("images", run.run_id).set_index("image")
        assert list(images.loc["a.png", "annotators"]) == ["alice", "bob"]
        assert images.loc["a.png", "n_objects"] == 4 and images.loc["b.png", "width"] == 32

        obj = s.sql("SELECT * FROM objects WHERE annotator = 'bob' AND object_index = 1").iloc[0]
        assert (obj["image"], obj["category"], obj["kind"]) == ("a.png", "dog", "polygon")
        assert (obj["bbox_x"], obj["bbox_y"], obj["bbox_w"], obj["bbox_h"], obj["area"]) == (15, 15, 8, 8, 64)
        assert obj["file"] == str(bob) and obj["source_index"] == 1 and obj["source_id"] == "101"
        assert bool(obj["occluded"]) is True and obj["z_order"] == 1 and not obj["iscrowd"]

        findings = s.findings(run.run_id)
        f = findings.iloc[0]
        assert (f["code"], f["stage"], f["severity"], f["annotator"]) == ("FMT004", "load", "error", "bob")
        assert f["file"] == str(bob) and f["source_index"] == 3 and f["source_id"] == "900"
        assert math.isnan(f["value"]) and math.isnan(f["limit_value"])
        v = findings[(findings["code"] == "OCC001") & (findings["annotator"] == "bob")].iloc[0]
        assert (v["stage"], v["severity"], v["value"], v["limit_value"]) == ("rules", "warning", 3.0, 2.0)
        assert v["file"] == str(bob) and v["source_index"] == 1 and v["source_id"] == "101"
        cats = s.table("categories", run.run_id).set_index("category")["n_objects"].to_dict()
        assert cats == {"cat": 4, "dog": 2}


def _object_pairs():
    """An object pair table shaped like the engine's: categoricals, nullable ints, per-pair figures."""
    import pandas as pd

    nan = float("nan")
    cat = lambda values: pd.Categorical(values)  # noqa: E731
    return pd.DataFrame({
        "image": cat(["a.png", "a.png", "b.png", "a.png"]),
        "pair": cat(["alice|bob"] * 4),
        "annotator_a": cat(["alice"] * 4), "annotator_b": cat(["bob"] * 4),
        "status": cat(["matched", "matched", "matched", "missing"]),
        "object_index_a": pd.array([0, 1, 2, 1], dtype="Int64"),
        "object_index_b": pd.array([0, 1, 2, None], dtype="Int64"),
        "category_a": cat(["cat", "dog", "cat", "dog"]), "category_b": cat(["cat", "cat", "cat", None]),
        "iou": [0.8, 0.6, 0.9, nan], "best_iou": [0.8, 0.6, 0.9, 0.1],
        "intersection": [80, 60, 90, 0], "area_a": [100, 80, 100, 64], "area_b": [90, 70, 95, 0],
        "label_disagreement": [False, True, False, False], "crowd_share": [0.0, 0.0, 0.0, 0.0],
        "boundary_iou": [0.5, 0.4, 0.7, nan], "boundary_f_2px": [0.75, 0.5, 0.85, nan],
        "boundary_a_n": [40.0, 30.0, 44.0, nan], "signed_offset": [1.0, -0.5, 0.0, nan],
        "assd": [0.5, 1.0, 0.25, nan], "hd95": [2.0, 3.0, 1.0, nan],
        "file_a": cat(["alice.json"] * 4), "source_index_a": pd.array([0, 1, 2, 1], dtype="Int64"),
        "source_id_a": pd.array(["100", "101", "102", "101"], dtype="string"),
    })


def test_engine_tables_are_stored_from_the_comparison(tmp_path, exports):
    db = tmp_path / "qa.duckdb"
    run = with_comparison(
        _run(exports),
        scores=score_rows(mask_iou_mean=0.9, pq=float("nan"), mask_iou_mean__annotator_pair__alice_vs_bob=0.9),
        object_pairs=_object_pairs(),
        image_pairs=[{"image": "a.png", "pair": "alice|bob", "annotator_a": "alice", "annotator_b": "bob",
                      "objects_a": 2, "objects_b": 2, "matched": 2, "missing": 0, "extra": 0, "ignored": 0,
                      "label_disagreements": 1, "mask_iou_mean": 0.7, "boundary_f_2px_mean": 0.625}])
    qstore.store_run(run, db)
    with qstore.open(db) as s:
        scores = s.scores("latest")
        assert len(scores) == 3
        assert math.isnan(scores.set_index("metric").loc["pq", "value"])
        assert s.sql("SELECT count(*) AS n FROM scores WHERE value IS NULL")["n"][0] == 1

        m = s.sql("SELECT * FROM object_matches ORDER BY status, object_index_a")
        assert list(m["status"]) == ["matched", "matched", "matched", "missing"]
        assert list(m["iou"][:3]) == [0.8, 0.6, 0.9] and math.isnan(m["iou"][3])
        assert list(m["label_disagreement"]) == [False, True, False, False]
        assert list(m["signed_offset_px"][:3]) == [1.0, -0.5, 0.0] and list(m["hd95_px"][:3]) == [2.0, 3.0, 1.0]
        assert m["object_index_b"].isna().tolist() == [False, False, False, True]
        # boundary F has a column of its own (schema 4); only the counts behind it stay in the JSON
        assert list(m["boundary_f_2px"][:3]) == [0.75, 0.5, 0.85] and math.isnan(m["boundary_f_2px"][3])
        assert json.loads(m["metrics"][0]) == {"boundary_a_n": 40.0}
        assert json.loads(m["metrics"][3]) == {"boundary_a_n": None}
        assert set(m["pair"]) == {"alice|bob"} and "file_a" not in m.columns  # the source is in `objects`

        ip = s.sql("SELECT * FROM image_pair_scores").iloc[0]
        assert (ip["objects_a"], ip["matched"], ip["label_disagreements"]) == (2, 2, 1)
        assert json.loads(ip["metrics"]) == {"boundary_f_2px_mean": 0.625}

        # boundary disagreement: matched pairs averaged per annotator pair and category pair
        b = s.sql("SELECT * FROM boundary_disagreement ORDER BY category_a, category_b")
        assert list(zip(b["category_a"], b["category_b"], b["n_pairs"])) == [("cat", "cat", 2), ("dog", "cat", 1)]
        assert b["boundary_iou_mean"].round(6).tolist() == [0.6, 0.4]
        assert b["signed_offset_px_mean"].tolist() == [0.5, -0.5] and b["hd95_px_mean"].tolist() == [1.5, 3.0]
        assert json.loads(b["metrics"][0]) == {"mask_iou_mean": pytest.approx(0.85),
                                               "boundary_f_2px_mean": pytest.approx(0.8)}


def test_an_ungated_run_stores_the_pack_that_checked_its_rules(tmp_path, exports):
    """runs.pack was NULL unless the run was gated, though a pack had checked the rules."""
    db = tmp_path / "qa.duckdb"
    run = _run(exports, db)
    custom = tmp_path / "mine.toml"
    custom.write_text('[rules]\nselect = ["VTX"]\n', encoding="utf-8")
    other = _run(exports, db, pack=custom)
    with qstore.open(db) as s:
        runs = s.sql("SELECT run_id, pack, gate_pack FROM runs").set_index("run_id")
    assert runs.loc[run.run_id, "pack"].endswith("default.toml") and runs.isna().loc[run.run_id, "gate_pack"]
    assert runs.loc[other.run_id, "pack"] == str(custom.resolve())


def test_a_schema_3_store_is_upgraded_to_real_columns_and_both_packs(tmp_path, exports):
    """Schema 4: object_matches gains pair and boundary F / NSD columns (filled from the JSON of runs stored
    before), runs gains gate_pack and pack names the rules' pack of every run."""
    import duckdb

    db = tmp_path / "qa.duckdb"
    gate = tmp_path / "gate.toml"
    gate.write_text("[gate]\nviolations = { error = 9 }\n", encoding="utf-8")
    gated = _run(exports, db, gate=gate, tolerances=(1, 2, 4))
    ungated = _run(exports, db)
    with qstore.open(db) as s:
        before = s.sql("SELECT * FROM object_matches ORDER BY run_id, image, status, object_index_a")
    assert before["boundary_f_2px"].notna().any() and before["nsd_4px"].notna().any()
    figures = [c for c, _ in qstore.SCHEMA_4_COLUMNS["object_matches"] if c != "pair"]
    con = duckdb.connect(str(db))  # back to what schema 3 wrote: the figures in the JSON, pack the gate's
    pairs = ", ".join(f"'{'signed_offset_median' if c == 'signed_offset_median_px' else c}', {c}" for c in figures)
    con.execute(f"UPDATE object_matches SET metrics = json_merge_patch(coalesce(metrics, '{{}}'), json_object({pairs}))")
    con.execute("UPDATE runs SET pack = gate_pack")
    drop_schema_4(con)
    con.close()
    with qstore.open(db, read_only=False) as s:  # a writer upgrades the store
        assert s.sql("SELECT max(schema_version) AS v FROM qa_schema")["v"][0] == qstore.SCHEMA_VERSION == 7
        for table in qstore.SCHEMA_4_COLUMNS:
            assert list(s.sql(f"SELECT * FROM {table} LIMIT 0").columns) == qstore._table_columns(table)
        after = s.sql("SELECT * FROM object_matches ORDER BY run_id, image, status, object_index_a")
        runs = s.sql("SELECT run_id, pack, gate_pack FROM runs").set_index("run_id")
    assert list(after["pair"]) == list(before["pair"]) == [f"{a}|{b}" for a, b in zip(after["annotator_a"],
                                                                                        after["annotator_b"])]
    for column in figures:
        assert after[column].equals(before[column]), column
    assert runs.loc[gated.run_id, "gate_pack"] == str(gate) and runs.isna().loc[ungated.run_id, "gate_pack"]
    assert runs.loc[gated.run_id, "pack"].endswith("default.toml")
    assert runs.loc[ungated.run_id, "pack"].endswith("default.toml")


def _primary_keys(con) -> dict:
    return {t: c for t, c in con.execute("SELECT table_name, constraint_text FROM duckdb_constraints() "
                                          "WHERE constraint_type = 'PRIMARY KEY'").fetchall()}


@pytest.mark.parametrize("version, dropped, back",
                         [(5, SCHEMA_5_KEYS, drop_schema_6), (6, SCHEMA_6_KEYS, drop_schema_7)],
                         ids=["schema 5", "schema 6"])
def test_an_older_store_loses_the_keys_of_the_tables_that_grow_with_the_batch(tmp_path, version, dropped, back):
    """Schema 6: objects, findings and review_queue have no primary key; schema 7: images, image_pair_scores
    and scores neither (the index entries a write adds stay in memory until it commits). An upgraded store
    keeps every row, in order, and stores the next run."""
    import duckdb

    db = tmp_path / "qa.duckdb"
    exports = two_exports(tmp_path, bob_unknown=1, bob_shift=3)  # findings, and a review queue
    first = _run(exports, db)

    def rows(con):
        return {t: con.execute(f"SELECT * FROM {t}").fetchall() for t in dropped}

    con = duckdb.connect(str(db))
    assert not set(qstore.UNINDEXED) & set(_primary_keys(con)) and "runs" in _primary_keys(con)
    before = rows(con)
    assert all(before[t] for t in dropped)
    back(con)  # back to the older schema: the keys as they were
    keys = {t: _primary_keys(con)[t].replace('"', "") for t in dropped}  # DuckDB quotes `key`
    assert keys == {t: f"PRIMARY KEY({k})" for t, k in dropped.items()}
    assert con.execute("SELECT max(schema_version) FROM qa_schema").fetchone()[0] == version
    con.close()
    with qstore.open(db, read_only=False) as s:  # a writer upgrades the store
        assert s.sql("SELECT max(schema_version) AS v FROM qa_schema")["v"][0] == qstore.SCHEMA_VERSION
        for table in dropped:
            assert list(s.sql(f"SELECT * FROM {table} LIMIT 0").columns) == qstore._table_columns(table)
    con = duckdb.connect(str(db))
    assert not set(qstore.UNINDEXED) & set(_primary_keys(con)) and rows(con) == before
    con.close()
    second = _run(exports, db)
    with qstore.open(db) as s:
        for table in dropped:
            counts = s.sql(f"SELECT run_id, count(*) AS n FROM {table} GROUP BY run_id").set_index("run_id")["n"]
            assert counts[first.run_id] == counts[second.run_id] > 0, table


def test_rows_of_the_unindexed_tables_are_unique_by_construction(tmp_path):
    """What the dropped keys enforced, the writer makes so: no two rows of a run share the columns
    docs/schema.md marks unique."""
    db = tmp_path / "qa.duckdb"
    _run(two_exports(tmp_path, bob_unknown=1, bob_shift=3), db)
    unique = dict(SCHEMA_5_KEYS, **SCHEMA_6_KEYS)
    assert set(unique) == set(qstore.UNINDEXED)
    with qstore.open(db) as s:
        for table, key in unique.items():
            rows, distinct = s.sql(f"SELECT count(*) AS n, count(DISTINCT ({key})) AS d FROM {table}").iloc[0]
            assert rows == distinct > 0, table


def test_verdict_and_gate_results_are_stored_with_the_run(tmp_path, exports):
    db = tmp_path / "qa.duckdb"
    pack = tmp_path / "pack.toml"
    pack.write_text("[gate]\nviolations = { error = 0, warning = 5 }\n", encoding="utf-8")
    run = _run(exports, db, gate=pack)
    assert run.verdict is not None and not run.verdict.success
    with qstore.open(db) as s:
        info = s.run(run.run_id)
        assert (info["verdict"], info["checks_evaluated"], info["checks_failed"]) == ("failed", 2, 1)
        assert info["gate_pack"] == str(pack) and info["verdict_json"] == run.verdict.to_dict()
        assert info["pack"] == run.settings["pack"] and info["pack"].endswith("default.toml")  # the rules' pack
        gate = s.table("gate_results", run.run_id).sort_values("check_index")
        assert list(gate["metric"]) == ["violations_error", "violations_warning"]
        assert list(gate["passed"]) == [False, True] and list(gate["observed"]) == [1.0, 2.0]


def test_run_ids_resolve_by_id_prefix_seq_and_latest(tmp_path, exports):
    db = tmp_path / "qa.duckdb"
    first, second = _run(exports, db), _run(exports, db)
    with qstore.open(db) as s:
        assert s.resolve("latest") == second.run_id and s.resolve("latest~1") == first.run_id
        assert s.resolve("1") == first.run_id and s.resolve(second.run_id) == second.run_id
        assert s.resolve(second.run_id[:-2]) == second.run_id
        with pytest.raises(StoreError, match="ambiguous"):
            s.resolve(first.run_id[:4])
        with pytest.raises(StoreError, match="no run 'nope'"):
            s.resolve("nope")
        with pytest.raises(StoreError, match="holds 2 runs"):
            s.resolve("latest~5")
        assert list(s.runs()["seq"]) == [2, 1]


def test_fingerprints_follow_content_not_location(tmp_path):
    one = tmp_path / "one"
    (one / "sub").mkdir(parents=True)
    (one / "a.json").write_text("{}")
    (one / "sub" / "b.png").write_bytes(b"\x89PNG")
    fp = qstore.fingerprint(one)
    assert fp["kind"] == "folder" and fp["files"] == 2 and fp["bytes"] == 6
    two = tmp_path / "two"
    shutil.copytree(one, two)
    assert qstore.fingerprint(two)["sha256"] == fp["sha256"]
    (two / "sub" / "b.png").write_bytes(b"\x89PNH")
    assert qstore.fingerprint(two)["sha256"] != fp["sha256"]
    (two / "sub" / "b.png").rename(two / "sub" / "c.png")
    assert qstore.fingerprint(two)["sha256"] != fp["sha256"]
    f = qstore.fingerprint(one / "a.json")
    assert f == {"kind": "file", "sha256": hashlib.sha256(b"{}").hexdigest(), "bytes": 2, "files": 1}
    assert qstore.fingerprint(one / "a.json", [one / "sub" / "b.png"])["sha256"] != f["sha256"]


# --- one transaction per run --------------------------------------------------------------------------

def test_a_failed_write_leaves_nothing_of_the_run(tmp_path, exports):
    db = tmp_path / "qa.duckdb"
    _run(exports, db)
    before = _snapshot(db)
    # a score without a scope breaks the scores' NOT NULL after objects were inserted
    bad = with_comparison(_run(exports), scores=score_rows(pq=0.5) + [dict(score_rows(sq=0.5)[0], scope=None)])
    with pytest.raises(StoreError, match="cannot store run .*NOT NULL constraint failed: scores"):
        qstore.store_run(bad, db)
    assert _snapshot(db) == before
    again = _run(exports)
    qstore.store_run(again, db)
    with pytest.raises(StoreError, match="already stored"):
        qstore.store_run(again, db)
    with qstore.open(db) as s:
        assert len(s.runs()) == 2


def _qa_run_process(exports, db, *, pause=None, extra=()):
    alice, bob = exports
    env = dict(os.environ)
    env.pop(qstore.PAUSE_ENV, None)
    if pause is not None:
        env[qstore.PAUSE_ENV] = str(pause)
    # one process: the test is about the store's lock, and a worker pool would only add start-up time
    return subprocess.Popen([sys.executable, "-m", "qa", "run", f"alice={alice}", f"bob={bob}", "--db", str(db),
                             "--workers", "1", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=db.parent)


def _wait_for_pause(proc) -> str:
    """Read the child's stderr until it says it is paused inside the write transaction."""
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "pausing" in line:
            return line
    raise AssertionError(f"the child never reached the write transaction: {''.join(seen)}")


def test_sigkill_inside_the_write_transaction_leaves_the_store_as_it_was(tmp_path, exports):
    db = tmp_path / "qa.duckdb"
    _run(exports, db)
    before = _snapshot(db)
    proc = _qa_run_process(exports, db, pause=60)
    try:
        assert "inside the write transaction" in _wait_for_pause(proc)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert _snapshot(db) == before
    # the next run works, and is stored whole
    _run(exports, db)
    with qstore.open(db) as s:
        assert list(s.runs()["seq"]) == [2, 1]
        assert s.sql("SELECT count(*) AS n FROM objects WHERE run_id = ?", [s.resolve("latest")])["n"][0] == 6


# --- a run that exits 2 is never stored; a stored run's exit code is its verdict's --------------------

def _outputs(folder: Path) -> dict:
    """The output files of a run (report, JSON, JUnit, Parquet) and any temporary file left behind."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(".duckdb") and p.suffix != ".wal"}


def _blocked(tmp_path) -> Path:
    """A path whose folder cannot be made: its parent is a regular file."""
    plain = tmp_path / "plain-file"
    plain.write_text("x")
    return plain / "sub"


@pytest.mark.parametrize("cause", ["report-unwritable", "report-is-a-folder", "json-unwritable",
                                   "junit-unwritable", "out-unwritable", "report-fails-to-render",
                                   "bad-gate-bound"])
def test_a_run_that_exits_2_leaves_the_store_and_outputs_as_they_were(tmp_path, exports, capsys, monkeypatch,
                                                                      cause):
    from common import run_cli

    alice, bob = exports
    db = tmp_path / "store" / "qa.duckdb"
    _run(exports, db)
    before = _snapshot(db)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    pack = tmp_path / "gate.toml"
    pack.write_text("[gate]\nviolations = { error = 0 }\n")
    args = ["--report", out_dir / "report.html", "--json", out_dir / "run.json", "--gate", pack,
            "--junit", out_dir / "gate.xml", "--out", out_dir / "tables"]
    if cause == "report-unwritable":
        args[1] = _blocked(tmp_path) / "report.html"
    elif cause == "report-is-a-folder":
        args[1] = out_dir
    elif cause == "json-unwritable":
        args[3] = _blocked(tmp_path) / "run.json"
    elif cause == "junit-unwritable":
        args[7] = _blocked(tmp_path) / "gate.xml"
    elif cause == "out-unwritable":
        args[9] = _blocked(tmp_path)
    elif cause == "report-fails-to-render":
        import qa.report

        def broken(data):
            raise RuntimeError("template exploded")

        monkeypatch.setattr(qa.report, "render_html", broken)
    elif cause == "bad-gate-bound":
        pack.write_text("[gate]\npq = { min = -inf }\n")
    code, out, err = run_cli(["run", f"alice={alice}", f"bob={bob}", "--db", db, "--workers", "1", *args], capsys)
    assert code == 2 and out == "", err
    assert len(err.splitlines()) == 1 and err.startswith("qa: error: "), err
    assert _snapshot(db) == before
    assert _outputs(out_dir) == {} and not (tmp_path / "plain-file" / "sub").exists()
    assert not list(tmp_path.rglob("*.tmp"))


def test_outputs_are_moved_into_place_with_the_stored_run(tmp_path, exports, capsys):
    from common import run_cli

    alice, bob = exports
    db = tmp_path / "qa.duckdb"
    pack = tmp_path / "gate.toml"
    pack.write_text("[gate]\nviolations = { error = 0 }\n")
    out_dir = tmp_path / "out"
    code, out, err = run_cli(["run", f"alice={alice}", f"bob={bob}", "--db", db, "--workers", "1", "--gate", pack,
                              "--report", out_dir / "report.html", "--json", out_dir / "run.json",
                              "--junit", out_dir / "gate.xml", "--out", out_dir / "tables"], capsys)
    assert code == 1, err  # bob's unknown category is an error: the gate fails, and says so in the store
    with qstore.open(db) as s:
        latest = s.run("latest")
    assert latest["verdict"] == "failed"
    assert set(_outputs(out_dir)) == {"report.html", "run.json", "gate.xml", "tables/object_pairs.parquet",
                                      "tables/image_pairs.parquet", "tables/scores.parquet"}
    assert json.loads((out_dir / "run.json").read_text())["run_id"] == latest["run_id"]
    assert f"report written to {out_dir / 'report.html'}" in err


def _qa_run_outputs(exports, db, out_dir, pack, pause):
    return _qa_run_process(exports, db, pause=pause, extra=[
        "--gate", str(pack), "--report", str(out_dir / "report.html"), "--json", str(out_dir / "run.json"),
        "--junit", str(out_dir / "gate.xml")])


@pytest.mark.parametrize("point, stored", [("", False), ("@commit", False), ("@committed", True)],
                         ids=["inside-the-transaction", "just-before-commit", "just-after-commit"])
def test_sigint_at_commit_gives_an_exit_code_that_matches_the_store(tmp_path, exports, point, stored):
    """SIGINT before COMMIT: exit 2, the store and the output files as they were. SIGINT after it: the
    run is stored whole, its files are written, and the exit code is its verdict's (1, failed)."""
    db = tmp_path / "qa.duckdb"
    _run(exports, db)
    before = _snapshot(db)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    pack = tmp_path / "gate.toml"
    pack.write_text("[gate]\nviolations = { error = 0 }\n")
    proc = _qa_run_outputs(exports, db, out_dir, pack, f"2{point}")
    try:
        _wait_for_pause(proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if not stored:
        assert proc.returncode == 2, err
        assert err.strip().splitlines()[-1] == "qa: error: interrupted"
        assert _snapshot(db) == before
        assert _outputs(out_dir) == {}
        return
    assert proc.returncode == 1, err
    with qstore.open(db) as s:
        assert list(s.runs()["seq"]) == [2, 1]
        latest = s.run("latest")
        assert latest["verdict"] == "failed"
    assert set(_outputs(out_dir)) == {"report.html", "run.json", "gate.xml"}
    assert json.loads((out_dir / "run.json").read_text())["run_id"] == latest["run_id"]
    assert "the run is stored whole" in err


def test_a_second_writer_waits_for_the_first(tmp_path, exports):
    db = tmp_path / "qa.duckdb"
    first = _qa_run_process(exports, db, pause=1)
    try:
        _wait_for_pause(first)  # the first writer holds the lock inside its transaction
        second = _qa_run_process(exports, db)
        out2, err2 = second.communicate(timeout=120)
        out1, err1 = first.communicate(timeout=120)
    finally:
        for p in (first,):
            if p.poll() is None:
                p.kill()
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    with qstore.open(db) as s:
        runs = s.runs()
        assert sorted(runs["seq"]) == [1, 2]
        assert s.sql("SELECT count(DISTINCT run_id) AS n FROM objects")["n"][0] == 2


_HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
sys.stdin.readline()
con.close()
"""


def test_a_writer_that_cannot_get_the_lock_fails_naming_it(tmp_path, exports):
    db = tmp_path / "qa.duckdb"
    qstore.open(db, read_only=False).close()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreError) as err:
            qstore.open(db, read_only=False, lock_timeout=0.2)
        text = str(err.value)
        assert f"locked by process {holder.pid}" in text and "lock-timeout" in text and "\n" not in text
        # a writer with time to wait gets the store once the holder lets go
        result = {}

        def write():
            try:
                result["seq"] = qstore.store_run(_run(exports), db, lock_timeout=60)
            except Exception as exc:  # noqa: BLE001 - reported below
                result["error"] = exc

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.3)
        holder.stdin.write("\n")
        holder.stdin.flush()
        writer.join(timeout=120)
        assert result == {"seq": 1}
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
        holder.stdin.close()
        holder.stdout.close()


# --- bad files ----------------------------------------------------------------------------------------

def test_a_file_that_is_not_duckdb_is_refused_in_one_line(tmp_path):
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(os.urandom(8192))
    data = junk.read_bytes()
    for read_only in (True, False):
        with pytest.raises(StoreError) as err:
            qstore.open(junk, read_only=read_only)
        assert str(err.value) == (f"{junk}: not a DuckDB database (the file is damaged or of another kind); "
                                  f"pass --db with a run store or a new file name")
    assert junk.read_bytes() == data
    empty = tmp_path / "empty.duckdb"
    empty.touch()
    with pytest.raises(StoreError, match="not a DuckDB database"):
        qstore.open(empty, read_only=False)


def test_a_foreign_duckdb_file_is_refused_and_left_alone(tmp_path):
    import duckdb

    db = tmp_path / "other.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE sales (id INTEGER)")
    con.close()
    for read_only in (True, False):
        with pytest.raises(StoreError, match=r"a DuckDB database but not a qa run store \(it has tables sales"):
            qstore.open(db, read_only=read_only)
    con = duckdb.connect(str(db), read_only=True)
    assert [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()] == ["sales"]
    con.close()


def test_a_store_from_a_newer_version_is_refused(tmp_path):
    import duckdb

    db = tmp_path / "qa.duckdb"
    qstore.open(db, read_only=False).close()
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO qa_schema VALUES ('annotation-qa', 99, '9.0', now()::TIMESTAMP)")
    con.close()
    with pytest.raises(StoreError, match="newer qa .*store schema 99"):
        qstore.open(db)


def test_reading_a_missing_store_says_how_to_make_one(tmp_path):
    with pytest.raises(StoreError, match=re.escape("no such run store; 'qa run --db PATH ...' creates one")):
        qstore.open(tmp_path / "none.duckdb")
    assert not (tmp_path / "none.duckdb").exists()


def test_read_only_store_cannot_write(tmp_path, exports):
    db = tmp_path / "qa.duckdb"
    _run(exports, db)
    with qstore.open(db) as s:
        with pytest.raises(StoreError, match="read-only"):
            s.sql("DELETE FROM runs")
        with pytest.raises(StoreError, match="opened read-only"):
            s.write_run(_run(exports))
    with qstore.open(db) as s:
        assert len(s.runs()) == 1


def test_export_parquet_writes_every_table_of_one_run(tmp_path, exports):
    import pyarrow.parquet as pq

    db = tmp_path / "qa.duckdb"
    _run(exports, db)
    run = _run(exports, db)
    with qstore.open(db) as s:
        files = s.export_parquet(run.run_id, tmp_path / "out")
    assert [f.stem for f in files] == list(qstore.RUN_TABLES)
    objects = pq.read_table(tmp_path / "out" / "objects.parquet")
    assert objects.num_rows == 6 and set(objects.column("run_id").to_pylist()) == {run.run_id}
    assert pq.read_table(tmp_path / "out" / "runs.parquet").num_rows == 1
    scores = pq.read_table(tmp_path / "out" / "scores.parquet")
    assert scores.num_rows == len(run.scores) > 0
    assert set(scores.column("run_id").to_pylist()) == {run.run_id}


def test_diff_reports_changed_inputs_counts_and_figures(tmp_path, exports):
    db = tmp_path / "qa.duckdb"
    a = with_comparison(_run(exports), scores=score_rows(mask_iou_mean=0.9, mask_iou_mean__annotator__bob=0.8))
    qstore.store_run(a, db)
    folder = tmp_path / "v2"
    folder.mkdir()
    alice, bob = two_exports(folder, bob_shift=3)
    b = with_comparison(qa_run(f"alice={alice}", f"bob={bob}"),
                        scores=score_rows(mask_iou_mean=0.85, mask_iou_mean__annotator__bob=0.8, pq=0.7))
    qstore.store_run(b, db)
    with qstore.open(db) as s:
        d = qstore.diff(s, "1", "2")
    inputs = d["inputs"].set_index("annotator")["status"].to_dict()
    assert inputs == {"alice": "same", "bob": "changed"}
    counts = {(r.what, r.scope, r.key): (r.a, r.b, r.delta) for r in d["counts"].itertuples()}
    assert counts[("objects", "annotator", "bob")] == (3, 3, 0)
    assert counts[("findings", "severity", "error")] == (1, 0, -1)
    scores = {(r.scope, r.key, r.metric): (r.a, r.b, r.delta) for r in d["scores"].itertuples()}
    assert scores[("batch", "", "mask_iou_mean")][2] == pytest.approx(-0.05)
    assert scores[("annotator", "bob", "mask_iou_mean")][2] == 0
    assert math.isnan(scores[("batch", "", "pq")][0]) and scores[("batch", "", "pq")][1] == 0.7


def test_importing_the_store_does_not_import_duckdb():
    code = "import sys, qa.store, qa.gate, qa.cli; print('duckdb' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_the_documented_agreement_query_runs(tmp_path, exports):
    """The first SQL example in docs/schema.md: agreement per annotator over the last ten batches."""
    query = (ROOT / "docs" / "schema.md").read_text(encoding="utf-8").split("```sql\n")[1].split("```")[0]
    db = tmp_path / "qa.duckdb"
    for value in (0.8, 0.9):
        run = with_comparison(_run(exports), scores=score_rows(mask_iou_mean__annotator__alice=value,
                                                               mask_iou_mean__annotator__bob=value - 0.1))
        qstore.store_run(run, db)
    with qstore.open(db) as s:
        table = s.sql(query)
        ids = [s.resolve("1"), s.resolve("2")]
    assert list(table["annotator"]) == ["alice", "bob"]
    assert table[ids].values.round(3).tolist() == [[0.8, 0.9], [0.7, 0.8]]


def test_the_manifest_names_the_stored_batch(tmp_path, exports):
    alice, bob = exports
    manifest = tmp_path / "batch.toml"
    manifest.write_text(f'name = "streets-07"\ndescription = "July batch"\n'
                        f'[[exports]]\nannotator = "alice"\npath = "{alice}"\n'
                        f'[[exports]]\nannotator = "bob"\npath = "{bob}"\n', encoding="utf-8")
    db = tmp_path / "qa.duckdb"
    qa_run(manifest=manifest, db=db)
    with qstore.open(db) as s:
        info = s.run("latest")
    assert (info["name"], info["description"]) == ("streets-07", "July batch")
    assert info["settings"]["manifest"] == str(manifest)


def test_qa_open_is_the_public_entry_to_the_store(tmp_path, exports):
    db = tmp_path / "qa.duckdb"
    run = _run(exports, db)
    with qa.open(db) as s:
        assert s.read_only and s.resolve("latest") == run.run_id


def test_a_new_store_gets_its_folder_and_a_folder_is_not_a_store(tmp_path, exports):
    db = tmp_path / "deep" / "er" / "qa.duckdb"
    _run(exports, db)
    assert db.is_file()
    with pytest.raises(StoreError, match="is a folder; pass a file name"):
        qstore.open(tmp_path, read_only=False)
