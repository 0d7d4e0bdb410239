"""The real server for the service tests: ``qa serve`` in a subprocess on a free port, stopped cleanly.

:class:`Server` starts ``python -m qa serve`` in its own process group, waits until it answers, and
stops it (SIGTERM, then SIGKILL) leaving no process behind: neither the server nor a job's worker.
:func:`seed_store` fills a store with the runs the pages and the API are tested on.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

TOKEN = "test-token-0123456789abcdef"
EVIL_ANNOTATOR = '"><img src=x onerror=alert(1)>'
"""An annotator name that runs code in a page that forgets to escape an attribute."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``qa serve`` on 127.0.0.1 and a free port, for one store, with a token file and roots."""

    def __init__(self, folder: Path, db: Path, *, roots=(), token: str | None = TOKEN, max_upload_mb: int = 2,
                 env: dict | None = None, jobs_dir: Path | None = None):
        self.folder, self.db, self.roots, self.token = Path(folder), Path(db), list(roots), token
        self.max_upload_mb, self.env = max_upload_mb, dict(env or {})
        self.jobs_dir = jobs_dir or self.folder / "jobs"
        self.process: subprocess.Popen | None = None
        self.port = free_port()
        self.log = self.folder / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self, token: str | None = "default") -> dict:
        token = self.token if token == "default" else token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def start(self, timeout: float = 60.0) -> "Server":
        argv = [sys.executable, "-m", "qa", "serve", "--db", str(self.db), "--port", str(self.port),
                "--jobs-dir", str(self.jobs_dir), "--max-upload", str(self.max_upload_mb), "--workers", "1"]
        if self.token:
            token_file = self.folder / "token.txt"
            token_file.write_text(self.token + "\n", encoding="utf-8")
            argv += ["--token-file", str(token_file)]
        for root in self.roots:
            argv += ["--root", str(root)]
        env = {k: v for k, v in os.environ.items() if k not in ("QA_TOKEN", "QA_TEST_PAUSE_IN_WRITE")}
        env.update(self.env)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env,
                                            start_new_session=True)
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"qa serve exited with {self.process.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(self.url + "/api/jobs", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"qa serve did not answer in {timeout} s: {self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL the server process alone (not its workers: they must end by themselves)."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM the server's process group, then SIGKILL what is left; wait for it."""
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def workers_alive(jobs_dir: Path) -> list[int]:
    """Pids of ``qa.serve.worker`` processes working on jobs of ``jobs_dir`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"qa.serve.worker" in cmdline and any(str(jobs_dir).encode() in part for part in cmdline):
            found.append(int(entry.name))
    return found


def wait_job(client, server: Server, job_id: str, *, timeout: float = 180.0) -> dict:
    """Poll a job until its state is final; return its document."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"{server.url}/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not finished after {timeout} s: {job}; log: {server.log.read_text()}")


def zip_folder(folder: Path, target: Path) -> Path:
    """A zip of every file under ``folder`` (paths relative to it)."""
    import zipfile

    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(folder).as_posix())
    return target


def seed_store(folder: Path) -> dict:
    """A store with three runs: two of a 4-image synth street batch (COCO gated on street-scenes, then
    panoptic: category-pair boundaries) and one with hostile names. Returns paths and run ids."""
    import qa
    from common import hostile_exports
    from qa.manifest import ExportSpec
    from qa.synth import synthesize

    db = folder / "qa.duckdb"
    synthesize(folder / "batch", images=4, size=(160, 320), annotators=3, seed=5, workers=1)
    first = qa.run(manifest=folder / "batch" / "batch.toml", db=db, workers=1, gate="street-scenes")
    second = qa.run(manifest=folder / "batch" / "batch_panoptic.toml", db=db, workers=1, gate="street-scenes")
    hostile = folder / "hostile"
    hostile.mkdir()
    alice, bob = hostile_exports(hostile)
    evil = qa.run(ExportSpec(annotator="alice", path=alice), ExportSpec(annotator=EVIL_ANNOTATOR, path=bob),
                  db=db, workers=1)
    return {"db": db, "runs": [first.run_id, second.run_id, evil.run_id], "batch": folder / "batch"}


def tiny_batch(folder: Path, *, shift: int = 0) -> Path:
    """A folder with a two-annotator COCO batch and its manifest (batch.toml); fast to run."""
    from storekit import two_exports

    folder.mkdir(parents=True, exist_ok=True)
    two_exports(folder, bob_shift=shift)
    (folder / "batch.toml").write_text(
        'name = "tiny"\n[[exports]]\nannotator = "alice"\npath = "alice.json"\n'
        '[[exports]]\nannotator = "bob"\npath = "bob.json"\n', encoding="utf-8")
    return folder


def read(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
