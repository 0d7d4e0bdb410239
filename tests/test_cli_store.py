"""qa runs, qa runs show, qa sql, qa export, qa diff, and qa run --db through qa.cli.main."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os

import pytest

from common import run_cli
from qa import store as qstore
from qa.pipeline import run as qa_run
from storekit import score_rows, two_exports, with_comparison


@pytest.fixture
def db(tmp_path, capsys):
    """A store with two runs made by `qa run`: bob has one unknown-category object in the first."""
    folder = tmp_path / "v1"
    folder.mkdir()
    alice, bob = two_exports(folder, bob_unknown=1)
    path = tmp_path / "qa.duckdb"
    assert run_cli(["run", f"alice={alice}", f"bob={bob}", "--db", path], capsys)[0] == 0
    folder = tmp_path / "v2"
    folder.mkdir()
    alice, bob = two_exports(folder, bob_shift=2)
    assert run_cli(["run", f"alice={alice}", f"bob={bob}", "--db", path], capsys)[0] == 0
    return path


def test_qa_run_stores_in_qa_db_by_default_and_no_store_skips(tmp_path, capsys, monkeypatch):
    alice, bob = two_exports(tmp_path)
    default = tmp_path / "default.duckdb"
    monkeypatch.setenv("QA_DB", str(default))
    code, out, err = run_cli(["run", f"alice={alice}", f"bob={bob}"], capsys)
    assert code == 0 and err == f"report written to {tmp_path / 'report.html'}\n"  # the report beside the store
    code, out, err = run_cli(["run", f"alice={alice}", f"bob={bob}", "--no-store"], capsys)
    assert code == 0 and "stored" not in err
    with qstore.open(default) as s:
        assert len(s.runs()) == 1
    monkeypatch.delenv("QA_DB")
    monkeypatch.chdir(tmp_path)
    assert qstore.default_db().name == "qa.duckdb"


def test_runs_lists_history_newest_first(db, capsys):
    code, out, err = run_cli(["runs", "--db", db], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["seq", "run_id", "name"]
    assert [line.split()[0] for line in lines[1:]] == ["2", "1"]
    code, out, err = run_cli(["runs", "list", "--db", db, "--format", "json", "-n", "1"], capsys)
    rows = json.loads(out)
    assert len(rows) == 1 and rows[0]["seq"] == 2 and rows[0]["errors"] == 0


def test_runs_show_one_run(db, capsys):
    code, out, err = run_cli(["runs", "show", "1", "--db", db], capsys)
    assert code == 0, err
    assert "seq:             1" in out and "FMT004" in out and "settings:" in out
    code, out, err = run_cli(["runs", "show", "latest", "--db", db, "--format", "json"], capsys)
    info = json.loads(out)
    assert info["seq"] == 2 and [a["annotator"] for a in info["annotators"]] == ["alice", "bob"]
    assert info["inputs"][0]["sha256"] == info["annotators"][0]["sha256"]
    code, out, err = run_cli(["runs", "show", "--db", db], capsys)
    assert code == 2 and "needs a RUN" in err


def test_sql_formats(db, capsys):
    query = "SELECT annotator, count(*) AS objects, sum(area) AS area FROM objects GROUP BY ALL ORDER BY 1"
    code, out, err = run_cli(["sql", query, "--db", db], capsys)
    assert code == 0, err
    assert out.splitlines() == ["annotator  objects  area", "alice            6   616", "bob              6   616"]
    code, out, err = run_cli(["sql", query, "--db", db, "--format", "csv"], capsys)
    assert list(csv.reader(io.StringIO(out))) == [["annotator", "objects", "area"], ["alice", "6", "616.0"],
                                                  ["bob", "6", "616.0"]]
    code, out, err = run_cli(["sql", query, "--db", db, "--format", "json"], capsys)
    assert json.loads(out) == [{"annotator": "alice", "objects": 6, "area": 616.0},
                               {"annotator": "bob", "objects": 6, "area": 616.0}]


def test_sql_prints_large_and_small_numbers_without_exponents(db, capsys):
    """`qa sql` printed sums such as 3.041e+04; a table for people shows the digits."""
    query = ("SELECT sum(area) * 49.375 AS big, 30410.37::DOUBLE AS fraction, 0.000123456::DOUBLE AS small, "
             "avg(area) AS mean FROM objects")
    code, out, err = run_cli(["sql", query, "--db", db], capsys)
    assert code == 0, err
    assert out.splitlines()[1].split() == ["60830", "30410", "0.0001235", "102.7"]
    assert "e+" not in out


def test_sql_is_read_only(db, capsys):
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    for statement in ("DELETE FROM runs", "DROP TABLE objects", "CREATE TABLE x (a INTEGER)",
                      "UPDATE runs SET verdict = 'passed'"):
        code, out, err = run_cli(["sql", statement, "--db", db], capsys)
        assert code == 2 and out == ""
        assert err.startswith(f"qa: error: {db}: query failed: ") and "read-only" in err
        assert len(err.strip().splitlines()) == 1
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    code, out, err = run_cli(["sql", "SELEC 1", "--db", db], capsys)
    assert code == 2 and "Parser Error" in err


def _tree(folder):
    """Every file under ``folder`` with its sha256 (a new, changed or removed file shows)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


_OUTSIDE = [
    ("attach-other-store", "ATTACH '{other}' AS other (READ_WRITE); DELETE FROM other.runs"),
    ("attach-other-read-only", "ATTACH '{other}' AS other (READ_ONLY)"),
    ("attach-hard-link-of-the-store", "ATTACH '{link}' AS same (READ_WRITE); DELETE FROM same.runs"),
    ("copy-to-file", "COPY (SELECT * FROM runs) TO '{dir}/runs.csv'"),
    ("copy-to-parquet", "COPY runs TO '{dir}/runs.parquet' (FORMAT parquet)"),
    ("export-database", "EXPORT DATABASE '{dir}/exported'"),
    ("install-extension", "INSTALL httpfs"),
    ("load-extension", "LOAD httpfs"),
    ("remote-read", "SELECT * FROM read_csv('https://example.com/data.csv')"),
    ("local-read", "SELECT * FROM read_text('/etc/hostname')"),
    ("glob-files", "SELECT * FROM glob('{dir}/*')"),
    ("set-external-access", "SET enable_external_access = true"),
    ("reset-external-access", "RESET enable_external_access"),
    ("unlock-configuration", "SET lock_configuration = false"),
    ("create-secret", "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')"),
]


@pytest.fixture(scope="module")
def sandbox_folder(tmp_path_factory):
    """A folder with a store of one run, another (empty) store and a hard link of the first."""
    folder = tmp_path_factory.mktemp("sandbox")
    alice, bob = two_exports(folder)
    db = folder / "qa.duckdb"
    qstore.store_run(qa_run(f"alice={alice}", f"bob={bob}", workers=1), db)
    with qstore.open(folder / "other.duckdb", read_only=False):
        pass
    os.link(db, folder / "link.duckdb")
    return folder


@pytest.mark.parametrize("statement", [s for _, s in _OUTSIDE], ids=[i for i, _ in _OUTSIDE])
def test_sql_reads_the_store_and_nothing_else(sandbox_folder, capsys, statement):
    """ATTACH (of another store, or of this one through a hard link), COPY TO, EXPORT, INSTALL/LOAD,
    reads of other files or URLs and SET to undo the lock are each refused in one line, exit 2, and no
    file changes (the store, the other store, the folder)."""
    tmp_path = sandbox_folder
    db, other, link = tmp_path / "qa.duckdb", tmp_path / "other.duckdb", tmp_path / "link.duckdb"
    before = _tree(tmp_path)
    query = statement.format(other=other, link=link, dir=tmp_path)
    code, out, err = run_cli(["sql", query, "--db", db], capsys)
    assert (code, out) == (2, ""), err
    assert err.startswith(f"qa: error: {db}: query failed: ") and len(err.splitlines()) == 1, err
    assert _tree(tmp_path) == before
    with qstore.open(other) as s:  # still a store, with its runs table
        assert len(s.runs()) == 0
    # reading the store's own tables still works
    code, out, err = run_cli(["sql", "SELECT count(*) AS n FROM runs", "--db", db, "--format", "json"], capsys)
    assert code == 0 and json.loads(out) == [{"n": 1}]


def test_store_errors_are_one_line_exit_2(tmp_path, capsys):
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(os.urandom(4096))
    for argv in (["runs"], ["sql", "SELECT 1"], ["runs", "show", "1"], ["export", "1", "--parquet", tmp_path / "o"],
                 ["diff", "1", "2"]):
        code, out, err = run_cli([*argv, "--db", junk], capsys)
        assert code == 2 and out == ""
        assert err == (f"qa: error: {junk}: not a DuckDB database (the file is damaged or of another kind); "
                       f"pass --db with a run store or a new file name\n")
    alice, bob = two_exports(tmp_path)
    code, out, err = run_cli(["run", f"alice={alice}", "--db", junk], capsys)
    assert code == 2 and "not a DuckDB database" in err
    code, out, err = run_cli(["runs", "--db", tmp_path / "missing.duckdb"], capsys)
    assert code == 2 and "no such run store" in err


def test_export_writes_parquet(db, tmp_path, capsys):
    import pyarrow.parquet as pq

    out_dir = tmp_path / "parquet"
    code, out, err = run_cli(["export", "1", "--parquet", out_dir, "--db", db], capsys)
    assert code == 0, err
    assert [line.rsplit("/", 1)[-1] for line in out.splitlines()] == [f"{t}.parquet" for t in qstore.RUN_TABLES]
    findings = pq.read_table(out_dir / "findings.parquet").to_pylist()
    assert [f["code"] for f in findings] == ["FMT004", "OCC001", "OCC001"]


def test_diff_text_and_json(db, capsys):
    code, out, err = run_cli(["diff", "1", "2", "--db", db], capsys)
    assert code == 0, err
    assert "inputs:" in out and "changed" in out and "FMT004" in out
    # alice's export is byte-identical in both versions; bob's moved an object and lost a bad one
    # bob's moved object changes the pair's agreement figures too
    last = out.splitlines()[-1]
    assert last.startswith("1 inputs changed, 2 counts changed, ") and not last.endswith(" 0 figures changed")
    code, out, err = run_cli(["diff", "1", "2", "--db", db, "--format", "json"], capsys)
    doc = json.loads(out)
    assert {r["annotator"]: r["status"] for r in doc["inputs"]} == {"bob": "changed"}
    assert {(r["what"], r["key"]): r["delta"] for r in doc["counts"]} == {("findings", "error"): -1,
                                                                        ("findings", "FMT004"): -1}


def test_diff_lists_changed_figures(tmp_path, capsys):
    alice, bob = two_exports(tmp_path)
    path = tmp_path / "qa.duckdb"
    for scores in (score_rows(pq=0.7, pq__annotator__bob=0.6, pq__category__cat=0.5),
                   score_rows(pq=0.65, pq__annotator__bob=0.6, pq__category__cat=0.55, pq__image__x=0.1)):
        qstore.store_run(with_comparison(qa_run(f"alice={alice}", f"bob={bob}"), scores=scores), path)
    code, out, err = run_cli(["diff", "latest~1", "latest", "--db", path, "--format", "json"], capsys)
    rows = {(r["scope"], r["key"], r["metric"]): round(r["delta"], 6) for r in json.loads(out)["scores"]}
    assert rows == {("batch", "", "pq"): -0.05, ("category", "cat", "pq"): 0.05}
    code, out, err = run_cli(["diff", "1", "2", "--db", path, "--scope", "image"], capsys)
    assert "image" in out and out.splitlines()[-1].endswith("1 figures changed")


def test_run_summary_line_counts_every_finding_as_the_store_does(tmp_path, capsys):
    """1 load error (FMT004) and 2 rule warnings (OCC001): the closing line, the JSON and runs agree."""
    alice, bob = two_exports(tmp_path, bob_unknown=1)
    path = tmp_path / "qa.duckdb"
    code, out, err = run_cli(["run", f"alice={alice}", f"bob={bob}", "--db", path, "--workers", "1"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[-2:] == ["2 annotators, 2 images (2 labelled by all), 6 objects",
                          "1 error, 2 warnings in 2 exports"]
    with qstore.open(path) as s:
        info = s.run("latest")
    assert (info["errors"], info["warnings"]) == (1, 2)
    code, out, err = run_cli(["run", f"alice={alice}", f"bob={bob}", "--no-store", "--workers", "1",
                              "--format", "json"], capsys)
    assert (json.loads(out)["errors"], json.loads(out)["warnings"]) == (1, 2)

    pack = tmp_path / "gate.toml"
    pack.write_text('extends = "default"\n[gate]\nviolations = { error = 0 }\npq = { min = 0.0, missing = "skip" }\n')
    code, out, err = run_cli(["run", f"bob={bob}", "--no-store", "--gate", pack], capsys)
    assert code == 1, err
    lines = out.splitlines()
    assert lines[-1] == "1 error, 1 warning in 1 export; gate FAILED (1 of 1 checks)"
    assert lines[-2] == "1 annotator, 2 images (2 labelled by all), 3 objects"
    assert "FAIL  violations_error <= 0: 1 > 0 (n=1)" in lines
    assert "1 rule violation (pack gate): 0 errors, 1 warning, 0 info; 'qa check' lists them" in lines
