"""Exports behind an ``s3://`` URL, read from a real S3-compatible server on this machine (moto's server
mode, started by the test, no mock of the client): a synth batch uploaded to a bucket gives the stored
tables of the same batch on disk, on the local pool and on a Dask LocalCluster, whose workers read their
own byte ranges of the objects; a file name inside an export cannot reach another bucket or prefix."""

from __future__ import annotations

import logging
import socket

import pandas as pd
import pytest

import qa
from qa.formats._location import Url
from qa.formats._safe import resolve_inside
from qa.store import RUN_TABLES

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on a free local port; its endpoint and credentials in the environment (what
    fsspec's s3fs and the Dask workers started after it read)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    mp = pytest.MonkeyPatch()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        mp.setenv(key, value)
    import fsspec

    fsspec.filesystem("s3").clear_instance_cache()
    try:
        yield endpoint
    finally:
        mp.undo()
        server.stop()


@pytest.fixture(scope="module")
def batch(s3, tmp_path_factory):
    """A synth batch on disk, and the same files uploaded to s3://exports/batch/."""
    import boto3

    from qa.synth import synthesize

    folder = tmp_path_factory.mktemp("s3synth") / "batch"
    synthesize(folder, images=8, size=(96, 192), seed=5, workers=1, formats=("coco",))
    client = boto3.client("s3", endpoint_url=s3)
    client.create_bucket(Bucket="exports")
    client.create_bucket(Bucket="elsewhere")
    for path in folder.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), "exports", f"batch/{path.relative_to(folder).as_posix()}")
    return folder


def _stored(db, local_prefix: str) -> dict:
    with qa.open(db) as s:
        run_id = s.runs()["run_id"].iloc[0]
        tables = {name: s.sql(f"SELECT * EXCLUDE (run_id) FROM {name} WHERE run_id = ? ORDER BY ALL", [run_id])
                  for name in RUN_TABLES if name != "runs"}
    for name, frame in tables.items():  # where the files are is the one thing that differs
        for column in frame.columns:
            if frame[column].map(lambda v: isinstance(v, str)).any():
                frame[column] = frame[column].map(
                    lambda v: v.replace("s3://exports/batch/", local_prefix) if isinstance(v, str) else v)
    return tables


_RUN = """
import json, sys
import qa

executor = json.loads(sys.argv[2])
run = qa.run(manifest="s3://exports/batch/batch.toml", db=sys.argv[1], **executor)
print(json.dumps(run.summary["annotators"][0]["path"]))
"""


@pytest.mark.parametrize("executor", [{"workers": 2}, {"executor": "local:2"}], ids=["pool", "dask"])
def test_an_s3_batch_stores_what_the_same_batch_on_disk_stores(batch, executor, tmp_path):
    """The s3 run in a process started with the credentials in its environment, as a run is: its workers
    read their chunks from the bucket (a pool's fork server keeps the environment it started in)."""
    import json
    import os
    import subprocess
    import sys

    local = qa.run(manifest=batch / "batch.toml", db=tmp_path / "local.duckdb", workers=1)
    done = subprocess.run([sys.executable, "-c", _RUN, str(tmp_path / "s3.duckdb"), json.dumps(executor)],
                          capture_output=True, text=True, env=dict(os.environ), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == "s3://exports/batch/coco/alice.json"
    with qa.open(tmp_path / "s3.duckdb") as s:
        remote = s.scores(s.runs()["run_id"].iloc[0])
    with qa.open(tmp_path / "local.duckdb") as s:
        stored = s.scores(s.runs()["run_id"].iloc[0])
    pd.testing.assert_frame_equal(stored, remote, check_exact=True)
    assert len(local.scores) and len(stored) == len(local.scores)
    here = _stored(tmp_path / "local.duckdb", str(batch) + "/")
    there = _stored(tmp_path / "s3.duckdb", str(batch) + "/")
    for name in here:
        pd.testing.assert_frame_equal(here[name], there[name], check_exact=True, obj=name)
    assert len(here["objects"]) > 100


def _digest(chunk, _cfg):
    batch = chunk.load()
    return sorted((n, e.ordinals.tolist(), [str(o.source) for o in e.objects]) for n, e in batch.exports.items())


_CHUNKS = """
import json, sys
from qa.engine import _executors, _pool
from qa.engine.chunks import chunks_of
from qa.pipeline import _load
from test_s3 import _digest

executor = sys.argv[1] if sys.argv[1] != "pool" else None
streamed, _, _ = _load("alice=s3://exports/batch/coco/alice.json", "bob=s3://exports/batch/coco/bob.json",
                    streamed=True)
parts = list(_pool.chunks(list(streamed.images), 3))
with _executors.using(executor, workers=None if executor else 2) as pool:
    print(json.dumps(list(pool.map_chunks(_digest, chunks_of(streamed, parts), None))))
"""


@pytest.mark.parametrize("executor", ["pool", "local:2"], ids=["pool", "dask"])
def test_workers_read_their_chunks_byte_ranges_from_the_bucket(batch, executor, s3):
    """In a process started with the credentials in its environment, as a run is (a pool's workers and a
    cluster's inherit the environment they start in)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from qa.engine import _pool
    from qa.engine.chunks import chunks_of
    from qa.pipeline import _load

    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(here.parent)])}
    done = subprocess.run([sys.executable, "-c", _CHUNKS, executor], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    on_disk, _, _ = _load(f"alice={batch / 'coco/alice.json'}", f"bob={batch / 'coco/bob.json'}", streamed=True)
    expected = [_digest(c, None) for c in chunks_of(on_disk, list(_pool.chunks(list(on_disk.images), 3)))]
    strip = lambda parts: [[(n, list(o), [s.split(".json: ")[1] for s in srcs]) for n, o, srcs in p] for p in parts]
    assert strip(got) == strip(expected) and sum(len(s) for p in got for _n, _o, s in p) > 50
    assert all(s.startswith("s3://exports/batch/coco/") for p in got for _n, _o, srcs in p for s in srcs)


@pytest.mark.parametrize("name", ["../other/p.png", "/p.png", "..\\p.png", "a/../../p.png"])
def test_a_name_inside_an_export_cannot_leave_its_prefix(name):
    assert resolve_inside(Url("s3://exports/batch/pngs"), name) is None


def test_a_name_inside_an_export_stays_under_its_prefix():
    found = resolve_inside(Url("s3://exports/batch/pngs"), "a/b.png")
    assert found == Url("s3://exports/batch/pngs/a/b.png")
    assert resolve_inside(Url("s3://exports/batch/pngs"), "s3://elsewhere/x.png").url.startswith(
        "s3://exports/batch/pngs/")


def _index_digest(sources) -> list:
    """What a run reads of an index (qa.formats._index_pieces), as JSON."""
    return [[source.format, source.idents, source.runs.table.tolist(), source.runs.keys,
             [[e.annotator, [[f.code, f.message, str(f.source), f.image] for f in e.findings], e.census.objects,
               list(e.census.per_category.items())] for e in source.exports]] for source in sources]


_INDEX = """
import json, sys
from qa.engine import _executors
from qa.formats._index_pieces import Job, index_exports
from qa.model import Limits
from test_s3 import _index_digest

executor = sys.argv[1] if sys.argv[1] != "pool" else None
jobs = [Job(f"s3://exports/batch/coco/{name}.json") for name in ("alice", "bob")]
with _executors.using(executor, workers=None if executor else 2) as pool:
    print(json.dumps(_index_digest(index_exports(jobs, limits=Limits(), executor=pool, piece_bytes=3000))))
"""


@pytest.mark.parametrize("executor", ["this", "pool", "local:2"], ids=["this process", "pool", "dask"])
def test_the_index_pieces_read_their_bytes_from_the_bucket(batch, executor, s3):
    """The index of exports behind s3 URLs, in pieces parsed by workers that read their own byte ranges,
    equals the serial pass over the same URLs (the pool and the cluster in a process started with the
    credentials in its environment, as a run is)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from qa.engine._executors import InProcess
    from qa.formats._index import index_export
    from qa.formats._index_pieces import Job, index_exports
    from qa.model import Limits

    urls = [f"s3://exports/batch/coco/{name}.json" for name in ("alice", "bob")]
    serial = json.loads(json.dumps(_index_digest([s for u in urls for s in index_export(u, limits=Limits())])))
    if executor == "this":
        got = _index_digest(index_exports([Job(u) for u in urls], limits=Limits(), executor=InProcess(),
                                          piece_bytes=3000))
    else:
        here = Path(__file__).parent
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(here.parent)])}
        done = subprocess.run([sys.executable, "-c", _INDEX, executor], capture_output=True, text=True, env=env,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        got = json.loads(done.stdout.strip().splitlines()[-1])
    assert json.loads(json.dumps(got)) == serial
    assert sum(len(source[2]) for source in serial) >= 16 and serial[0][4][0][2] > 50
