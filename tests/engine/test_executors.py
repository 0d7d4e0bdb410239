"""The run's executor (qa.engine._executors): the same results in this process, on the local pool and on a
Dask LocalCluster; lost workers; no process left behind by a killed run; callers without a __main__ guard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import workkit
from common import REAL_BATCHES

import qa
from qa.cli import main
from qa.engine import _executors, _pool
from qa.errors import ConfigError, WorkerError
from qa.store import RUN_TABLES

psutil = pytest.importorskip("psutil")

QA = [sys.executable, "-m", "qa"]


# --- the ordered, bounded loop ---------------------------------------------------------------------------

def _counted(items, seen):
    for item in items:
        seen.append(item)
        yield item


@pytest.mark.parametrize("make", ["pool", "threads"])
def test_chunks_come_back_in_order_with_a_bounded_number_in_flight(make):
    chunks = [[k, k + 100] for k in range(20)]
    executor = _executors.LocalPool(2) if make == "pool" else _executors.Wrapped(ThreadPoolExecutor(2))
    seen: list = []
    results = []
    with executor:
        for squares, _pid in executor.map_chunks(workkit.squares, _counted(chunks, seen), 0.01):
            results.append(squares)
            assert len(seen) - len(results) <= 2 * executor.workers  # never the whole batch in flight
    assert results == [[k * k, (k + 100) ** 2] for k in range(20)]


def test_one_pool_serves_every_stage_of_a_run(monkeypatch, synth_batch):
    started = []
    real = _executors.LocalPool._start
    monkeypatch.setattr(_executors.LocalPool, "_start", lambda self: started.append(1) or real(self))
    qa.run(manifest=synth_batch / "batch.toml", workers=2, store=False)
    assert started == [1]  # compare, boundaries, rules, alpha and consensus: one pool


def test_plan_sends_even_one_chunk_to_a_cluster():
    class Cluster(_executors.Executor):
        workers, inline_small = 2, False

    assert _pool.plan(1, None, Cluster()) == (1, 2)
    assert _pool.plan(1, None, _executors.LocalPool(2)) == (1, 1)  # the local pool keeps it here
    assert _pool.plan(3, None, _executors.LocalPool()) == (1, 1)  # default workers: small batches stay


def test_bad_executor_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="local:N"):
        _executors.open_executor("local:zero")
    with pytest.raises(ConfigError, match="scheduler address"):
        _executors.open_executor("somewhere")
    with pytest.raises(ConfigError, match="not both"):
        _executors.open_executor("local:1", workers=2)
    with pytest.raises(ConfigError, match="at least 1"):
        _executors.open_executor(None, workers=0)


def test_run_rejects_workers_with_dask(capsys):
    assert main(["run", "a=x.json", "b=y.json", "--workers", "2", "--dask", "local:1"]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_an_unreachable_scheduler_is_one_line(capsys, synth_batch):
    dask = pytest.importorskip("dask")
    # distributed's defaults enter dask's config when it is first imported: imported inside the block,
    # leaving the block would take them out again (a later LocalCluster then fails on a missing key)
    pytest.importorskip("distributed")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main(["run", "--manifest", str(synth_batch / "batch.toml"), "--dask", "tcp://127.0.0.1:9",
                     "--no-store"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("qa: error: tcp://127.0.0.1:9: cannot reach the Dask scheduler")


# --- lost workers ----------------------------------------------------------------------------------------

def test_the_local_pool_resends_the_chunks_of_a_killed_worker(tmp_path):
    with _executors.LocalPool(2) as pool, pytest.warns(RuntimeWarning, match="killed by SIGKILL"):
        results = [r for r, _pid in pool.map_chunks(workkit.die_once, ([k] for k in range(8)), str(tmp_path))]
    assert results == [[k * k] for k in range(8)]
    assert pool.restarts == 1 and (tmp_path / "died").exists()


def test_a_chunk_lost_twice_stops_with_one_line_naming_the_worker(tmp_path):
    with _executors.LocalPool(2) as pool, pytest.warns(RuntimeWarning):
        with pytest.raises(WorkerError) as info:
            list(pool.map_chunks(workkit.die_always, ([k] for k in range(8)), str(tmp_path)))
    message = str(info.value)
    assert "\n" not in message and message.startswith("local pool: worker process ")
    assert "killed by SIGKILL while running workkit.die_always" in message


def test_a_run_whose_workers_keep_dying_fails_and_stores_nothing(synth_batch, tmp_path, capsys):
    db = tmp_path / "runs.duckdb"
    me = psutil.Process()
    done = threading.Event()

    def kill_workers():  # every pool worker (a child of the fork server) as soon as it appears
        while not done.is_set():
            for child in me.children():
                try:
                    if "forkserver" in " ".join(child.cmdline()):
                        for worker in child.children():
                            worker.kill()
                except psutil.Error:
                    pass
            time.sleep(0.02)

    killer = threading.Thread(target=kill_workers, daemon=True)
    killer.start()
    try:
        with pytest.warns(RuntimeWarning, match="restarting the pool"):
            code = main(["run", "--manifest", str(synth_batch / "batch.toml"), "--workers", "2", "--db", str(db)])
    finally:
        done.set()
        killer.join()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("qa: error: local pool: worker process ")
    assert "the run was not stored" in err[0]
    assert not db.exists() or len(qa.open(db).runs()) == 0


# --- equal results ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synth_batch(tmp_path_factory):
    from qa.synth import synthesize

    folder = tmp_path_factory.mktemp("synth") / "batch"
    synthesize(folder, images=12, size=(128, 256), seed=7, workers=1)
    return folder


@pytest.fixture(scope="module")
def cluster():
    """A real Dask LocalCluster of two worker processes, shared by the module's tests."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as c:
        yield c


def _stored(db: Path) -> dict:
    with qa.open(db) as s:
        run_id = s.runs()["run_id"].iloc[0]
        return {name: s.sql(f"SELECT * EXCLUDE (run_id) FROM {name} WHERE run_id = ? ORDER BY ALL", [run_id])
                for name in RUN_TABLES if name != "runs"}


def _assert_same(a, b, db_a: Path, db_b: Path) -> None:
    pd.testing.assert_frame_equal(a.scores, b.scores, check_exact=True)
    if a.comparison is not None:
        pd.testing.assert_frame_equal(a.comparison.object_pairs, b.comparison.object_pairs, check_exact=True)
        pd.testing.assert_frame_equal(a.comparison.image_pairs, b.comparison.image_pairs, check_exact=True)
    assert list(map(repr, a.violations)) == list(map(repr, b.violations))  # repr: NaN values compare equal
    stored_a, stored_b = _stored(db_a), _stored(db_b)
    for name in stored_a:
        pd.testing.assert_frame_equal(stored_a[name], stored_b[name], check_exact=True, obj=name)
    assert sum(len(t) for t in stored_a.values()) > 0


def _runs(tmp_path, executors: dict, *exports, **options) -> dict:
    out = {}
    for name, kwargs in executors.items():
        db = tmp_path / f"{name}.duckdb"
        out[name] = (qa.run(*exports, db=db, **kwargs, **options), db)
    return out


@pytest.mark.parametrize("manifest", ["batch.toml", "batch_panoptic.toml"])
def test_synth_results_equal_on_every_executor(manifest, synth_batch, cluster, tmp_path):
    runs = _runs(tmp_path, {"here": {"workers": 1}, "pool": {"workers": 2},
                            "dask": {"executor": cluster.scheduler_address}},
                 manifest=synth_batch / manifest)
    (ref, ref_db) = runs.pop("here")
    assert len(ref.comparison.object_pairs) > 100
    for name, (other, db) in runs.items():
        _assert_same(ref, other, ref_db, db)


def test_a_callers_own_executor_is_used_and_left_open(synth_batch, cluster, tmp_path):
    from distributed import Client

    with Client(cluster) as client:
        executor = client.get_executor()
        assert _executors.open_executor(executor).workers == 2  # the cluster's threads
        a = qa.run(manifest=synth_batch / "batch.toml", db=tmp_path / "a.duckdb", executor=executor)
        assert client.status == "running"
        assert sum(client.run(lambda: 1).values()) == 2
    b = qa.run(manifest=synth_batch / "batch.toml", db=tmp_path / "b.duckdb", workers=1)
    _assert_same(a, b, tmp_path / "a.duckdb", tmp_path / "b.duckdb")


def test_qa_run_dask_local_1_stores_what_one_process_stores(synth_batch, tmp_path, capsys):
    manifest = str(synth_batch / "batch.toml")
    assert main(["run", "--manifest", manifest, "--workers", "1", "--db", str(tmp_path / "here.duckdb")]) == 0
    capsys.readouterr()
    assert main(["run", "--manifest", manifest, "--dask", "local:1", "--db", str(tmp_path / "dask.duckdb")]) == 0
    err = capsys.readouterr().err
    assert "dask: the Dask cluster at tcp://" in err and "(1 worker threads); dashboard http" in err
    here, dask = _stored(tmp_path / "here.duckdb"), _stored(tmp_path / "dask.duckdb")
    for name in here:
        pd.testing.assert_frame_equal(here[name], dask[name], check_exact=True, obj=name)


def test_dask_env_variable_names_the_cluster(synth_batch, cluster, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
    assert main(["run", "--manifest", str(synth_batch / "batch.toml"), "--no-store"]) == 0
    assert f"dask: the Dask cluster at {cluster.scheduler_address}" in capsys.readouterr().err
    assert main(["run", "--manifest", str(synth_batch / "batch.toml"), "--no-store", "--workers", "1"]) == 0
    assert "dask:" not in capsys.readouterr().err  # --workers: the local pool


REAL = REAL_BATCHES


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_data_results_equal_in_process_and_on_dask(name, shared_data, cluster, tmp_path):
    exports = REAL[name](shared_data)
    runs = _runs(tmp_path, {"here": {"workers": 1}, "dask": {"executor": cluster.scheduler_address}}, *exports)
    (ref, ref_db), (other, db) = runs["here"], runs["dask"]
    _assert_same(ref, other, ref_db, db)


def test_dask_retries_the_chunk_of_a_killed_worker(cluster, tmp_path):
    with _executors.open_executor(cluster.scheduler_address) as dask:
        results = [r for r, _pid in dask.map_chunks(workkit.die_once, ([k] for k in range(6)), str(tmp_path))]
    assert results == [[k * k] for k in range(6)] and (tmp_path / "died").exists()


def test_dask_gives_up_with_one_line_after_its_allowed_failures(cluster, tmp_path):
    scheduler = cluster.scheduler
    allowed, scheduler.allowed_failures = scheduler.allowed_failures, 0
    try:
        with _executors.open_executor(cluster.scheduler_address) as dask, pytest.raises(WorkerError) as info:
            list(dask.map_chunks(workkit.die_always, ([k] for k in range(6)), str(tmp_path)))
    finally:
        scheduler.allowed_failures = allowed
        cluster.wait_for_workers(2)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{cluster.scheduler_address}: 1 Dask worker(s) died")
    assert "workkit.die_always" in message and "allowed-failures = 0" in message


# --- a killed run leaves nothing behind -------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_batch(tmp_path_factory):
    """Big enough to be mid-compare a few seconds after the start."""
    from qa.synth import synthesize

    folder = tmp_path_factory.mktemp("big") / "batch"
    synthesize(folder, images=120, size=(256, 512), seed=1, workers=1)
    return folder


def _tree_when(proc, ready, timeout=60.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        tree = psutil.Process(proc.pid).children(recursive=True)
        if ready(tree):
            return tree
        time.sleep(0.2)
    raise AssertionError("the run never started its workers")


def _alive(tree) -> list:
    out = []
    for p in tree:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.slow
@pytest.mark.parametrize("option", [["--workers", "2"], ["--dask", "local:2"]])
def test_sigkill_of_qa_run_leaves_no_process_behind(option, big_batch, tmp_path):
    proc = subprocess.Popen([*QA, "run", "--manifest", str(big_batch / "batch.toml"), *option,
                             "--db", str(tmp_path / "runs.duckdb")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    tree: list = []
    try:
        # the pool: its fork server and two workers (children of the fork server); Dask: two workers
        tree = _tree_when(proc, lambda t: sum(p.ppid() != proc.pid for p in t) >= 2 if option[0] == "--workers"
                          else len([p for p in t if "spawn_main" in " ".join(p.cmdline())]) >= 2)
        time.sleep(2.0)  # mid-run
        tree = _alive(psutil.Process(proc.pid).children(recursive=True)) or tree
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 8
        while _alive(tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _alive(tree)
        assert not left, [" ".join(p.cmdline())[:80] for p in left]
    finally:  # whatever the outcome, nothing of this test stays behind
        if proc.poll() is None:
            tree += psutil.Process(proc.pid).children(recursive=True)
            proc.kill()
        for p in _alive(tree):
            p.kill()


def _running(pid: int) -> bool:
    try:
        return bool(_alive([psutil.Process(pid)]))
    except psutil.NoSuchProcess:
        return False


WARMED = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import psutil
import workkit
from multiprocessing import forkserver
from qa.engine import _executors

pool = _executors.LocalPool(2)
pool.warm()  # the fork server starts here, before any chunk
server = forkserver._forkserver._forkserver_pid
pids = sorted({{pid for _squares, pid in pool.map_chunks(workkit.squares, [[k] for k in range(8)], 0.05)}})
print(server, *pids)
print(*sorted({{psutil.Process(pid).ppid() for pid in pids}}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_warmed_pool_forks_its_workers_from_the_server_it_started_and_leaves_nothing_when_killed():
    proc = subprocess.run([sys.executable, "-c", WARMED.format(tests=str(Path(__file__).parents[1]))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pids, parents = proc.stdout.splitlines()
    server, *workers = (int(v) for v in pids.split())
    assert workers and [int(v) for v in parents.split()] == [server]
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and any(_running(p) for p in (server, *workers)):
        time.sleep(0.2)
    assert not [pid for pid in (server, *workers) if _running(pid)]


# --- callers without a __main__ guard ---------------------------------------------------------------------

SCRIPT = """
import qa
r = qa.run(manifest={manifest!r}, workers=2, store=False, analytics=False)
print("pairs", len(r.comparison.object_pairs))
"""


@pytest.mark.parametrize("how", ["script", "stdin"])
def test_qa_run_works_from_a_script_without_a_main_guard(how, synth_batch, tmp_path):
    expected = len(qa.run(manifest=synth_batch / "batch.toml", workers=1, store=False,
                          analytics=False).comparison.object_pairs)
    script = textwrap.dedent(SCRIPT.format(manifest=str(synth_batch / "batch.toml")))
    if how == "script":
        path = tmp_path / "unguarded.py"
        path.write_text(script)
        done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    else:
        done = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, cwd=tmp_path,
                              timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["pairs", str(expected)]
    assert "Traceback" not in done.stderr
