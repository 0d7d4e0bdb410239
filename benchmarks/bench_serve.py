"""Page latency of ``qa serve`` over a store of 1,000 runs: the runs page and an annotator's page.

``.venv/bin/python -m benchmarks.bench_serve [--runs 1000] [--requests 50]``

Setup (not timed): ``qa synth`` writes a street-scene batch (``--images`` images, three annotators) in
``--folder``, and ``qa.run`` stores it twice (COCO instances and panoptic, so the store has category-pair
boundaries too). The store is then filled to ``--runs`` runs by copying those two runs' rows of every
table under new run ids, sequence numbers and start times (one ``INSERT ... SELECT`` per table), with each
copy's scores moved by up to 5 % so the trends are not flat. The server is ``python -m qa serve`` on a
free loopback port, as a user starts it.

Timed: ``--requests`` sequential GETs of each page over one HTTP connection (httpx), after two warm-up
requests each; median and 95th percentile of the wall time per request, as the client sees it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._common import machine, versions

PAGES = ("/", "/?page=10", "/?verdict=failed&pack=street-scenes", "/annotators/alice", "/categories/road",
         "/runs/latest", "/api/runs", "/api/runs/latest")


def fill(folder: Path, runs: int, images: int) -> Path:
    """A store of ``runs`` runs in ``folder`` (reused when it already holds that many)."""
    import duckdb

    import qa
    from qa import store
    from qa.store import RUN_TABLES
    from qa.synth import synthesize

    db = folder / f"qa-{runs}.duckdb"
    if db.exists():
        with store.open(db) as s:
            if len(s.runs()) == runs:
                return db
        db.unlink()
    batch = folder / "batch"
    if not (batch / "batch.toml").exists():
        synthesize(batch, images=images, size=(256, 512), annotators=3, seed=7, workers=2, force=True)
    first = qa.run(manifest=batch / "batch.toml", db=db, workers=2, gate="street-scenes")
    second = qa.run(manifest=batch / "batch_panoptic.toml", db=db, workers=2, gate="street-scenes")
    con = duckdb.connect(str(db))
    copies = runs - 2
    con.execute("BEGIN TRANSACTION")
    con.execute(f"""CREATE TEMP TABLE ids AS
        SELECT i, CASE WHEN i % 2 = 0 THEN '{first.run_id}' ELSE '{second.run_id}' END AS template,
               strftime(TIMESTAMP '2026-01-01' + to_minutes(i * 90), '%Y%m%dT%H%M%SZ') || '-' || printf('%06x', i) AS run_id,
               TIMESTAMP '2026-01-01' + to_minutes(i * 90) AS started
        FROM range({copies}) t(i)""")
    for table in RUN_TABLES:
        columns = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        replaced = {"run_id": "ids.run_id"}
        if table == "runs":
            replaced.update(seq="ids.i + 3", started_at="ids.started", finished_at="ids.started",
                            stored_at="ids.started")
        if table == "scores":
            replaced["value"] = ("CASE WHEN t.value BETWEEN 0 AND 1 THEN least(t.value * (0.95 + 0.05 * "
                                 "random()), 1) ELSE t.value END")
        select = ", ".join(f"{replaced[c]} AS {c}" if c in replaced else f"t.{c}" for c in columns)
        con.execute(f"INSERT INTO {table} SELECT {select} FROM {table} t JOIN ids ON t.run_id = ids.template")
    con.execute("COMMIT")
    con.close()
    return db


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--folder", type=Path, default=Path(".cache/bench_serve"))
    args = parser.parse_args(argv)
    import httpx

    args.folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    db = fill(args.folder, args.runs, args.images)
    size = db.stat().st_size / 2**20
    print(f"store: {db} ({args.runs} runs, {size:.0f} MB; filled in {time.perf_counter() - t:.0f} s)")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "qa", "serve", "--db", str(db), "--port", str(port),
                               "--jobs-dir", str(args.folder / "jobs")], start_new_session=True,
                              stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get("/api/jobs")
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            print(f"Machine: {machine()}; {versions()}")
            print(f"{'page':<40} {'median ms':>10} {'p95 ms':>8} {'KB':>7}")
            for page in PAGES:
                for _ in range(2):
                    client.get(page).raise_for_status()
                times, size = [], 0
                for _ in range(args.requests):
                    t = time.perf_counter()
                    r = client.get(page)
                    times.append(time.perf_counter() - t)
                    r.raise_for_status()
                    size = len(r.content)
                times.sort()
                p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
                print(f"{page:<40} {1000 * statistics.median(times):>10.1f} {1000 * p95:>8.1f} {size / 1024:>7.0f}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
