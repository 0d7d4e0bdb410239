"""One job's worker process: ``python -m qa.serve.worker SPEC.json RESULT.json``.

Started by :class:`qa.serve.jobs.JobQueue`, never imported by the application: it is the service's own
``qa run``, a separate program that calls :func:`qa.run` with the store (the run is stored in one
transaction) and writes a small result file. It ends itself, with every process it started, as soon as
the server's end of its stdin closes (the server was killed), so a killed server leaves no writer
behind; an unfinished store transaction is then discarded by DuckDB.

Exit codes are ``qa run``'s: 0 gate passed or no gate, 1 gate failed, 2 the run could not finish (the
result file then carries the one-line error).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path


def _watch_parent() -> None:
    """Kill this process group when stdin reaches its end (the server is gone)."""
    try:  # os.read, not sys.stdin: a buffered reader's lock would stall the interpreter's exit
        while os.read(0, 65536):
            pass
    except OSError:
        pass
    try:
        os.killpg(os.getpgid(0), signal.SIGKILL)
    finally:
        os._exit(3)


def _write(path: Path, doc: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def run_spec(spec: dict):
    """Call :func:`qa.run` with the options the spec says (:class:`qa.model.RunOptions`); return the Run."""
    from qa.model import RunOptions
    from qa.pipeline import run

    exports = list(spec.get("exports") or [])
    gate = spec.get("gate")
    options = RunOptions(manifest=spec.get("manifest"), pack=spec.get("pack") or (gate if gate else "default"),
                         gate=gate, baseline=spec.get("baseline"), max_drop=spec.get("max_drop"), db=spec["db"],
                         lock_timeout=spec.get("lock_timeout"),
                         workers=None if spec.get("dask") else spec.get("workers"), executor=spec.get("dask"),
                         run_id=spec["run_id"])
    return run(*exports, options=options)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m qa.serve.worker SPEC.json RESULT.json", file=sys.stderr)
        return 2
    threading.Thread(target=_watch_parent, name="qa-parent-watch", daemon=True).start()
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    from qa.errors import EXIT_ERROR, EXIT_GATE_FAILED, EXIT_OK, QAError

    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    try:
        result = run_spec(spec)
    except QAError as exc:
        print(f"qa: error: {exc}", file=sys.stderr, flush=True)
        _write(result_path, {"run_id": spec["run_id"], "exit_code": EXIT_ERROR, "error": str(exc)})
        return EXIT_ERROR
    except Exception as exc:  # an internal error: its traceback goes to the job's log
        import traceback

        traceback.print_exc()
        message = f"internal error: {type(exc).__name__}: {exc}"
        _write(result_path, {"run_id": spec["run_id"], "exit_code": EXIT_ERROR, "error": message})
        return EXIT_ERROR
    summary = result.summary
    verdict = result.verdict
    doc = {"run_id": result.run_id, "stored": result.stored, "images": summary.get("images"),
           "annotators": len(result.batch.annotators), "errors": summary.get("errors"),
           "warnings": summary.get("warnings"),
           "verdict": None if verdict is None else ("passed" if verdict.success else "failed")}
    if verdict is not None:
        stats = verdict.to_dict().get("statistics", {})
        doc.update(checks_evaluated=stats.get("evaluated"), checks_failed=stats.get("failed"))
    code = EXIT_OK if verdict is None or verdict.success else EXIT_GATE_FAILED
    doc["exit_code"] = code
    _write(result_path, doc)
    print(f"stored run {result.run_id} in {result.stored}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
