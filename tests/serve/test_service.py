"""The token, the job queue's recovery, the store reader, and what ``import qa`` leaves out."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qa.errors import ConfigError

pytest.importorskip("starlette")


def test_import_qa_and_qa_help_do_not_import_the_service():
    code = ("import sys, qa; from qa.cli import main; main(['--help']); main(['serve', '--help']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'httpx') "
            "or m.startswith('qa.serve')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_tokens_come_from_a_file_or_the_environment_and_compare_in_constant_time(tmp_path):
    from qa.serve.auth import load_token, matches

    assert load_token(environ={}) is None
    assert load_token(environ={"QA_TOKEN": " " + "t" * 20 + "\n"}) == "t" * 20
    path = tmp_path / "token"
    path.write_text("s" * 24 + "\nignored\n")
    assert load_token(path, environ={"QA_TOKEN": "t" * 20}) == "s" * 24
    with pytest.raises(ConfigError, match="fewer than 16"):
        load_token(environ={"QA_TOKEN": "short"})
    with pytest.raises(ConfigError, match="cannot read the token file"):
        load_token(tmp_path / "missing")
    assert matches("s" * 24, "s" * 24) and not matches("s" * 23, "s" * 24) and not matches(None, "x")
    assert not matches("x", None)


class _Client:
    """Requests to the application in-process (httpx's ASGI transport; no lifespan, so no job queue)."""

    def __init__(self, tmp_path, **config):
        from qa.serve.app import Config, create_app

        self.app = create_app(Config(db=tmp_path / "qa.duckdb", **config))
        self.base = f"http://{config.get('host', '127.0.0.1')}:8000"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.app.state.service.reader.stop()

    def request(self, method, path, **kw):
        import asyncio

        import httpx

        async def go():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=self.base) as c:
                return await c.request(method, path, **kw)
        return asyncio.run(go())

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)


def _client(tmp_path, **config):
    return _Client(tmp_path, **config)


def test_a_server_without_a_token_is_read_only(tmp_path):
    with _client(tmp_path) as client:
        assert client.get("/").status_code == 200 and "No runs stored yet" in client.get("/").text
        r = client.post("/api/jobs", json={"manifest": "/x/batch.toml"})
        assert r.status_code == 403 and "read-only" in r.json()["error"]
        r = client.post("/api/jobs", json={"manifest": "/x/batch.toml"}, headers={"Authorization": "Bearer " + "x" * 20})
        assert r.status_code == 403
        # a rebound DNS name is not this machine
        assert client.get("/", headers={"host": "evil.example:8000"}).status_code == 400


def test_off_the_loopback_every_request_needs_the_token(tmp_path):
    token = "k" * 32
    with _client(tmp_path, host="0.0.0.0", token=token) as client:
        assert client.get("/").status_code == 401 and client.get("/api/runs").status_code == 401
        assert client.get("/", headers={"Authorization": "Bearer " + token}).status_code == 200
        assert client.get("/", headers={"host": "qa.internal:8000", "Authorization": "Bearer " + token}
                          ).status_code == 200


def test_serve_refuses_to_listen_beyond_the_loopback_without_a_token(tmp_path, capsys):
    from common import run_cli

    code, _, err = run_cli(["serve", "--db", str(tmp_path / "qa.duckdb"), "--host", "0.0.0.0"], capsys)
    assert code == 2 and "listens beyond this machine" in err and "QA_TOKEN" in err
    code, _, err = run_cli(["serve", "--db", str(tmp_path / "qa.duckdb"), "--root", str(tmp_path / "nope")], capsys)
    assert code == 2 and "--root" in err


def test_a_restarted_queue_settles_the_jobs_a_stopped_server_left_running(tmp_path):
    """Running jobs: done when their run is in the store, failed when not; queued ones stay queued."""
    from qa.serve.jobs import JobQueue

    stored = {"20260101T000000Z-aaaaaa": 7}
    queue = JobQueue(tmp_path / "jobs", tmp_path / "qa.duckdb", stored=stored.get)
    ids = [queue.new_id() for _ in range(3)]
    for job_id in ids:
        queue.submit(job_id, {"manifest": "/x/batch.toml"}, kind="manifest")
    with queue._connect() as con:
        con.execute("UPDATE jobs SET state = 'running', run_id = '20260101T000000Z-aaaaaa', pid = 1 WHERE id = ?",
                    [ids[0]])
        con.execute("UPDATE jobs SET state = 'running', run_id = '20260101T000000Z-bbbbbb', pid = 1 WHERE id = ?",
                    [ids[1]])
    settled = {j["id"]: j for j in JobQueue(tmp_path / "jobs", tmp_path / "qa.duckdb", stored=stored.get).recover()}
    assert settled[ids[0]]["state"] == "done" and settled[ids[0]]["result"]["seq"] == 7
    assert settled[ids[1]]["state"] == "failed" and "server stopped" in settled[ids[1]]["error"]
    assert queue.get(ids[2])["state"] == "queued" and queue.position(ids[2]) == 0
    assert queue.cancel(ids[2])["state"] == "cancelled" and queue.cancel("job-none") is None
    listed, total = queue.list(state="failed")
    assert total == 1 and listed[0]["id"] == ids[1]
    assert (tmp_path / "jobs" / "jobs.sqlite").is_file()  # the queue is a small file of its own


def test_the_reader_shares_one_connection_and_lets_it_go(tmp_path):
    from qa import store
    from qa.serve.app import Reader

    db = tmp_path / "qa.duckdb"
    store.open(db, read_only=False).close()
    reader = Reader(db, idle=0.0)
    with reader.open() as a, reader.open() as b:
        assert len(a.runs()) == 0 and len(b.runs()) == 0 and reader._keeper is not None
    reader.release_idle()
    assert reader._keeper is None
    with store.open(db, read_only=False, lock_timeout=1):  # a writer gets the lock once it is let go
        pass
    reader.pause()
    with reader.open() as own:
        assert reader._keeper is None and len(own.runs()) == 0
    reader.resume()
    reader.stop()


def test_a_job_spec_with_a_dask_cluster_runs_there_and_stores_what_the_local_pool_stores(tmp_path):
    """``qa serve --dask`` reaches each job's ``qa.run`` as its executor (a real LocalCluster here)."""
    pytest.importorskip("distributed")
    import qa
    from qa.serve.worker import run_spec
    from storekit import two_exports

    alice, bob = two_exports(tmp_path, bob_shift=1)
    exports = [f"alice={alice}", f"bob={bob}"]
    on_dask = run_spec({"exports": exports, "db": str(tmp_path / "dask.duckdb"), "run_id": "r-dask",
                        "dask": "local:1", "workers": 4})
    local = run_spec({"exports": exports, "db": str(tmp_path / "local.duckdb"), "run_id": "r-local", "workers": 1})
    assert on_dask.stored and on_dask.run_id == "r-dask"
    with qa.open(tmp_path / "dask.duckdb") as a, qa.open(tmp_path / "local.duckdb") as b:
        assert a.scores("r-dask").equals(b.scores("r-local")) and len(a.scores("r-dask")) > 0


def test_serve_takes_a_pool_or_a_cluster_not_both(tmp_path, capsys):
    from common import run_cli

    code, _, err = run_cli(["serve", "--db", str(tmp_path / "qa.duckdb"), "--workers", "2", "--dask", "local:1"],
                           capsys)
    assert code == 2 and "give one of them" in err
