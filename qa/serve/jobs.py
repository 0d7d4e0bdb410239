"""The job queue: submitted batches run one at a time, each in a worker process, against the store.

The queue is a small SQLite file of its own (``jobs.sqlite`` in the jobs folder, beside each job's
folder with its spec, log and upload), not a table of the store: the store keeps runs, written whole or
not at all, and a job that fails must leave it exactly as it was; the queue changes state several times
per job and must stay writable while a worker holds the store's write lock. SQLite (the standard
library's ``sqlite3``) makes each change of state one transaction, so a server killed at any moment
finds every job either queued, running, or finished.

One thread takes the oldest queued job and starts ``python -m qa.serve.worker`` on it (which calls
:func:`qa.run` with the store, so the run is stored in one transaction). The run's id is chosen before the
worker starts, so whatever happens the store can be asked whether the run is there:

- the worker finished and the run is stored: ``done``, with the run's id, sequence number and verdict;
- the worker failed (bad input, a bad pack: exit 2) or was killed, and the run is not stored: ``failed``
  with the worker's one-line error;
- cancelled while queued: ``cancelled`` at once; while running: the worker's process group is killed and
  the job is ``cancelled``, unless the run was stored first (then ``done``);
- the server was killed: at its next start, a job left ``running`` is ``done`` if its run is in the store,
  else ``failed`` ("the server stopped while it ran"); its worker, which ends itself when the server's end
  of its stdin closes, is killed if it still runs. Queued jobs stay queued and run.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

STATES = ("queued", "running", "done", "failed", "cancelled")
"""A job's states; the last three are final."""

FINAL = frozenset({"done", "failed", "cancelled"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT    NOT NULL UNIQUE,
    state         TEXT    NOT NULL,
    kind          TEXT    NOT NULL,      -- 'manifest' or 'upload'
    spec          TEXT    NOT NULL,      -- JSON: what qa.run is given
    submitted_at  TEXT    NOT NULL,
    started_at    TEXT,
    finished_at   TEXT,
    run_id        TEXT,                  -- chosen when the job starts
    pid           INTEGER,               -- the worker's process (and process group) while it runs
    cancel        INTEGER NOT NULL DEFAULT 0,
    exit_code     INTEGER,
    result        TEXT,                  -- JSON: the stored run's seq, verdict, checks
    error         TEXT
);
"""


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class JobQueue:
    """The persistent queue and the thread that works through it.

    Parameters
    ----------
    folder : Path
        The jobs folder (created): ``jobs.sqlite`` and one folder per job.
    db : Path
        The run store the workers write to.
    stored : callable
        ``stored(run_id) -> int or None``: the run's seq when the store holds it.
    workers : int, optional
        Processes each run may use (``qa run --workers``).
    dask : str, optional
        The Dask cluster each run sends its per-image work to (``qa run --dask``).
    lock_timeout : float
        Seconds a worker waits for the store's lock.
    on_start, on_finish : callable, optional
        Called (no arguments) before a worker starts and after it ends (the server lets go of its read
        connection while a worker may write).
    """

    def __init__(self, folder, db, *, stored: Callable[[str], int | None], workers: int | None = None,
                 dask: str | None = None, lock_timeout: float = 30.0, on_start=None, on_finish=None, poll: float = 0.1):
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db = Path(db).resolve()
        self.stored, self.workers, self.dask, self.lock_timeout = stored, workers, dask, lock_timeout
        self.on_start, self.on_finish, self.poll = on_start, on_finish, poll
        self.path = self.folder / "jobs.sqlite"
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        with self._connect() as con:
            con.executescript(_SCHEMA)

    # --- the file ------------------------------------------------------------------------------------
    def _connect(self):
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.row_factory = sqlite3.Row
        return _Closing(con)

    def _update(self, job_id: str, **values) -> None:
        with self._lock, self._connect() as con:
            sets = ", ".join(f"{k} = ?" for k in values)
            con.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*values.values(), job_id])

    @staticmethod
    def _dict(row) -> dict:
        job = dict(row)
        for key in ("spec", "result"):
            job[key] = json.loads(job[key]) if job.get(key) else None
        job["cancel"] = bool(job["cancel"])
        return job

    def job_folder(self, job_id: str) -> Path:
        return self.folder / job_id

    # --- what the API calls ---------------------------------------------------------------------------
    def new_id(self) -> str:
        """A fresh job id (its folder is created)."""
        job_id = "job-" + secrets.token_hex(6)
        self.job_folder(job_id).mkdir(parents=True, exist_ok=False)
        return job_id

    def submit(self, job_id: str, spec: dict, *, kind: str) -> dict:
        """Queue a job (its folder made by :meth:`new_id`); return it."""
        with self._lock, self._connect() as con:
            con.execute("INSERT INTO jobs (id, state, kind, spec, submitted_at) VALUES (?, 'queued', ?, ?, ?)",
                        [job_id, kind, json.dumps(spec), _now()])
        self._wake.set()
        return self.get(job_id)

    def get(self, job_id: str) -> dict | None:
        with self._connect() as con:
            row = con.execute("SELECT * FROM jobs WHERE id = ?", [job_id]).fetchone()
        return None if row is None else self._dict(row)

    def list(self, *, state: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[dict], int]:
        """Jobs, newest first, and how many there are (of ``state``, when given)."""
        where, params = ("WHERE state = ?", [state]) if state else ("", [])
        with self._connect() as con:
            total = con.execute(f"SELECT count(*) FROM jobs {where}", params).fetchone()[0]
            rows = con.execute(f"SELECT * FROM jobs {where} ORDER BY seq DESC LIMIT ? OFFSET ?",
                               params + [int(limit), int(offset)]).fetchall()
        return [self._dict(r) for r in rows], int(total)

    def position(self, job_id: str) -> int | None:
        """How many jobs run before a queued one (0: next), None when it is not queued."""
        with self._connect() as con:
            row = con.execute("SELECT seq, state FROM jobs WHERE id = ?", [job_id]).fetchone()
            if row is None or row["state"] != "queued":
                return None
            return con.execute("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running') AND seq < ?",
                               [row["seq"]]).fetchone()[0]

    def cancel(self, job_id: str) -> dict | None:
        """Cancel a job: at once when queued; a running one's worker is killed by the queue's thread."""
        with self._lock, self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute("SELECT state FROM jobs WHERE id = ?", [job_id]).fetchone()
            if row is None:
                con.execute("ROLLBACK")
                return None
            if row["state"] == "queued":
                con.execute("UPDATE jobs SET state = 'cancelled', cancel = 1, finished_at = ?, "
                            "error = 'cancelled before it started' WHERE id = ?", [_now(), job_id])
            elif row["state"] == "running":
                con.execute("UPDATE jobs SET cancel = 1 WHERE id = ?", [job_id])
            con.execute("COMMIT")
        return self.get(job_id)

    # --- start, stop, recover --------------------------------------------------------------------------
    def recover(self) -> list[dict]:
        """Settle the jobs a stopped server left running (see the module notes); return them."""
        settled = []
        with self._connect() as con:
            rows = con.execute("SELECT * FROM jobs WHERE state = 'running' ORDER BY seq").fetchall()
        for row in rows:
            job = self._dict(row)
            if job["pid"]:
                _kill_worker(job["pid"], job["id"])
            seq = self.stored(job["run_id"]) if job["run_id"] else None
            if seq is not None:
                self._update(job["id"], state="done", finished_at=_now(), pid=None,
                             result=json.dumps(self._result_of(job, seq)),
                             error="the server stopped after the run was stored")
            else:
                self._update(job["id"], state="failed", finished_at=_now(), pid=None,
                             error="the server stopped while the job ran; nothing of it was stored; submit it again")
            settled.append(self.get(job["id"]))
        return settled

    def start(self) -> None:
        """Recover, then work through the queue in a thread until :meth:`stop`."""
        self.recover()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="qa-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking jobs; a running worker is killed and its job marked as a stopped server's would be."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # --- the thread ------------------------------------------------------------------------------------
    def _claim(self) -> dict | None:
        """Mark the oldest queued job running (with its run id) and return it."""
        from qa.store import new_run_id

        with self._lock, self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                con.execute("ROLLBACK")
                return None
            con.execute("UPDATE jobs SET state = 'running', started_at = ?, run_id = ? WHERE id = ?",
                        [_now(), new_run_id(), row["id"]])
            con.execute("COMMIT")
        return self.get(row["id"])

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self._claim()
            if job is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                self._run(job)
            except Exception as exc:  # the queue goes on; the job says why it stopped
                self._finish(job, exit_code=None, error=f"internal error: {type(exc).__name__}: {exc}")

    def _run(self, job: dict) -> None:
        folder = self.job_folder(job["id"])
        spec = dict(job["spec"], db=str(self.db), run_id=job["run_id"], workers=self.workers,
                    dask=self.dask, lock_timeout=self.lock_timeout)
        spec_path, result_path = folder / "spec.json", folder / "result.json"
        spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
        result_path.unlink(missing_ok=True)
        if self.on_start:
            self.on_start()
        try:
            with open(folder / "log.txt", "ab") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "qa.serve.worker", str(spec_path), str(result_path)],
                    stdin=subprocess.PIPE, stdout=log, stderr=log, start_new_session=True, cwd=folder)
            self._update(job["id"], pid=process.pid)
            cancelled = False
            while process.poll() is None:
                if self._stop.is_set() or (not cancelled and self._cancel_requested(job["id"])):
                    cancelled = not self._stop.is_set()
                    _terminate(process)
                    break
                time.sleep(self.poll)
            code = process.wait()
            process.stdin.close()
        finally:
            if self.on_finish:
                self.on_finish()
        if self._stop.is_set() and not cancelled:
            return  # the next start settles it, as after a killed server
        result = _read_json(result_path)
        self._finish(job, exit_code=code, result=result, cancelled=cancelled,
                     error=(result or {}).get("error") or _last_error(folder / "log.txt", code))

    def _cancel_requested(self, job_id: str) -> bool:
        with self._connect() as con:
            row = con.execute("SELECT cancel FROM jobs WHERE id = ?", [job_id]).fetchone()
        return bool(row and row["cancel"])

    def _result_of(self, job: dict, seq: int, result: dict | None = None) -> dict:
        out = {"run_id": job["run_id"], "seq": seq}
        for key in ("verdict", "checks_evaluated", "checks_failed", "errors", "warnings", "images", "annotators"):
            if result and key in result:
                out[key] = result[key]
        return out

    def _finish(self, job: dict, *, exit_code, result: dict | None = None, cancelled: bool = False,
                error: str | None = None) -> None:
        seq = self.stored(job["run_id"]) if job.get("run_id") else None
        if seq is not None:
            note = "cancelled after the run was stored" if cancelled else None
            self._update(job["id"], state="done", finished_at=_now(), pid=None, exit_code=exit_code,
                         result=json.dumps(self._result_of(job, seq, result)), error=note)
            return
        state = "cancelled" if cancelled else "failed"
        self._update(job["id"], state=state, finished_at=_now(), pid=None, exit_code=exit_code,
                     error=("cancelled while it ran; nothing of it was stored" if cancelled
                            else error or f"the worker ended with exit code {exit_code}"))


class _Closing:
    """A sqlite3 connection that closes at the end of a ``with`` block."""

    def __init__(self, con):
        self.con = con

    def __enter__(self):
        return self.con

    def __exit__(self, *exc):
        self.con.close()


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _last_error(log: Path, code) -> str | None:
    """The last ``qa: error:`` line of a worker's log (or its last line), for a job without a result."""
    try:
        lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    errors = [line for line in lines if line.startswith("qa: error:")]
    if errors:
        return errors[-1].removeprefix("qa: error:").strip()
    return f"the worker ended with exit code {code}" + (f": {lines[-1][:300]}" if lines else "")


def _terminate(process: subprocess.Popen, grace: float = 5.0) -> None:
    """Stop a worker and every process it started (its process group): SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 30.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _is_worker(pid: int, job_id: str) -> bool:
    """Whether process ``pid`` is this job's worker (by its command line, so a reused pid is left alone)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"qa.serve.worker" in cmdline and any(job_id.encode() in part for part in cmdline)


def _kill_worker(pid: int, job_id: str, timeout: float = 30.0) -> None:
    """Kill a stopped server's worker (and its process group) if it still runs, and wait until it is gone."""
    if not _is_worker(pid, job_id):
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + timeout
    while _is_worker(pid, job_id) and time.monotonic() < deadline:
        time.sleep(0.05)
