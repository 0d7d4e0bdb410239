"""The JSON API and its OpenAPI document, declared together so they cannot drift.

Every route is one :class:`ApiRoute`: its path, method, plain handler function and OpenAPI operation;
the application routes from :data:`ROUTES` and ``GET /api/openapi.json`` is built from the same list.
Reads use the same store helpers as the pages. Submitting a batch (``POST /api/jobs``) queues a job
(:mod:`qa.serve.jobs`) and answers 202 with it; a client polls ``GET /api/jobs/{id}`` until its state is
final. docs/serve.md shows the calls with curl.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Callable

from qa.errors import QAError, StoreError
from qa.serve.uploads import UploadError

API_VERSION = "1"


def _json(data, status: int = 200, headers: dict | None = None):
    from starlette.responses import JSONResponse

    return JSONResponse(data, status_code=status, headers=headers)


def _error(status: int, message: str):
    return _json({"error": message}, status)


def _records(df) -> list[dict]:
    """A DataFrame as JSON records (NaN as null, times in ISO 8601)."""
    return json.loads(df.to_json(orient="records", date_format="iso", date_unit="s"))


def _limit(params, default: int = 100, most: int = 10_000) -> tuple[int, int]:
    def number(name, fallback, lo, hi):
        try:
            return min(max(int(params.get(name, fallback)), lo), hi)
        except (TypeError, ValueError):
            return fallback
    return number("limit", default, 0, most), number("offset", 0, 0, 10**12)


def _equal(params, columns) -> dict:
    """The query parameters that filter by a column's value."""
    return {c: params[c] for c in columns if params.get(c) is not None}


def _run_or_404(request, handler):
    """Call ``handler(store, run_id)``; a run the store does not know is a 404."""
    ref = request.path_params["ref"]
    try:
        with request.app.state.service.reader.open() as s:
            run_id = s.resolve(ref)
            return handler(s, run_id)
    except StoreError as exc:
        if "no run" in str(exc) or "ambiguous" in str(exc):
            return _error(404, f"no run {ref!r} in this store")
        raise


# --- runs ------------------------------------------------------------------------------------------------

def list_runs(request):
    from qa.serve.pages import RUN_FIGURES, runs_filters

    limit, offset = _limit(request.query_params, 50, 1000)
    filters = runs_filters(request.query_params)
    with request.app.state.service.reader.open() as s:
        page, total = s.runs_page(**filters, limit=limit, offset=offset, figures=RUN_FIGURES)
    runs = _records(page)
    for r in runs:
        r["figures"] = {m: r.pop(m) for m in RUN_FIGURES}
        r["url"] = f"/api/runs/{r['run_id']}"
    return _json({"total": total, "limit": limit, "offset": offset, "filters": {k: v for k, v in filters.items() if v},
                  "runs": runs})


def run_summary(request):
    def handler(s, run_id):
        info = s.run(run_id)
        batch, _ = s.run_rows("scores", run_id, where={"scope": "batch"}, order="metric")
        annotators, _ = s.run_rows("annotators", run_id, order="annotator")
        findings, _ = s.run_rows("findings", run_id)
        codes = findings.groupby(["code", "severity"]).size().reset_index(name="n") if len(findings) else \
            findings.reindex(columns=["code", "severity"]).assign(n=0)
        doc = json.loads(json.dumps({k: v for k, v in info.items() if k != "verdict_json"}, default=str))
        doc.update(verdict_document=info.get("verdict_json"),
                   figures={r["metric"]: r["value"] for r in _records(batch)},
                   annotators=_records(annotators), findings_by_code=_records(codes),
                   links={"page": f"/runs/{run_id}", "scores": f"/api/runs/{run_id}/scores",
                          "violations": f"/api/runs/{run_id}/violations",
                          "review_queue": f"/api/runs/{run_id}/review-queue"})
        return _json(doc)
    return _run_or_404(request, handler)


def run_scores(request):
    params = request.query_params

    def handler(s, run_id):
        df, _ = s.run_rows("scores", run_id, where=_equal(params, ("scope", "key", "metric")))
        df = df.sort_values(["scope", "key", "metric"], kind="stable")
        return _json({"run_id": run_id, "count": len(df), "scores": _records(df)})
    return _run_or_404(request, handler)


def run_violations(request):
    params = request.query_params
    limit, offset = _limit(params, 1000, 100_000)

    def handler(s, run_id):
        df, total = s.run_rows("findings", run_id, where=_equal(params, ("code", "severity", "annotator", "image")),
                               order="finding_index", limit=limit, offset=offset)
        return _json({"run_id": run_id, "total": total, "limit": limit, "offset": offset, "violations": _records(df)})
    return _run_or_404(request, handler)


def run_review_queue(request):
    params = request.query_params
    limit, offset = _limit(params, 200, 100_000)

    def handler(s, run_id):
        df, total = s.run_rows("review_queue", run_id,
                               where=_equal(params, ("kind", "reason", "annotator", "image", "category")),
                               order="rank", limit=limit, offset=offset)
        return _json({"run_id": run_id, "total": total, "limit": limit, "offset": offset, "review_queue": _records(df)})
    return _run_or_404(request, handler)


# --- jobs ------------------------------------------------------------------------------------------------

_REF = re.compile(r"latest(:any)?(~\d{1,6})?|[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
OPTIONS = ("gate", "pack", "baseline", "max_drop")
"""What a submission may set besides its batch."""


def job_document(job: dict, queue=None) -> dict:
    """A job as the API shows it (no server paths but the manifest the client named)."""
    spec = job["spec"] or {}
    doc = {"id": job["id"], "state": job["state"], "kind": job["kind"], "submitted_at": job["submitted_at"],
           "started_at": job["started_at"], "finished_at": job["finished_at"], "run_id": job["run_id"],
           "error": job["error"], "cancel_requested": job["cancel"],
           "options": {k: spec[k] for k in OPTIONS if spec.get(k) is not None},
           "url": f"/api/jobs/{job['id']}"}
    if job["kind"] == "manifest":
        doc["manifest"] = spec.get("manifest")
    result = job["result"] or {}
    doc["result"] = result or None
    if job["state"] == "done" and result.get("run_id"):
        doc["links"] = {"run": f"/api/runs/{result['run_id']}", "page": f"/runs/{result['run_id']}"}
    if queue is not None and job["state"] == "queued":
        doc["position"] = queue.position(job["id"])
    return doc


def _options(service, values: dict) -> dict:
    """The submission's options, checked: packs are built-in names or files under the roots."""
    from qa._resources import packs_dir
    from qa.serve.uploads import inside

    unknown = sorted(set(values) - set(OPTIONS) - {"manifest"})
    if unknown:
        raise UploadError(f"unknown field {unknown[0]!r}; a submission takes manifest, {', '.join(OPTIONS)}")
    out = {}
    builtin = {p.stem for p in packs_dir().glob("*.toml")}
    for key in ("gate", "pack"):
        value = values.get(key)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise UploadError(f"{key!r} must be a string: a built-in pack name or a pack file under the roots")
        if value not in builtin and not (value.startswith("/") and service.config.roots
                                         and inside(value, service.config.roots)):
            raise UploadError(f"{key} {value!r}: not a built-in pack ({', '.join(sorted(builtin))}) nor a pack "
                              "file under the server's roots", status=400 if value in builtin or not
                              value.startswith("/") else 403)
        out[key] = value
    baseline = values.get("baseline")
    if baseline not in (None, ""):
        if not isinstance(baseline, str) or not _REF.fullmatch(baseline):
            raise UploadError("'baseline' must be a run reference: latest, latest~N, latest:any, an id or a seq")
        if "gate" not in out:
            raise UploadError("'baseline' needs 'gate' (the pack whose thresholds the run is checked against)")
        out["baseline"] = baseline
    max_drop = values.get("max_drop")
    if max_drop not in (None, ""):
        try:
            out["max_drop"] = float(max_drop)
        except (TypeError, ValueError):
            raise UploadError("'max_drop' must be a number") from None
        if not 0 <= out["max_drop"] <= 1:
            raise UploadError("'max_drop' must lie in [0, 1]")
    return out


async def submit_job(request):
    """Queue a batch: a JSON body naming a manifest under the roots, or a zip of exports as the body."""
    from starlette.concurrency import run_in_threadpool

    from qa.serve import uploads

    service = request.app.state.service
    queue = service.jobs
    kind = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    try:
        if kind == "application/json":
            body = await request.body()
            if len(body) > 1 << 20:
                raise UploadError("the JSON body is larger than 1 MiB", status=413)
            try:
                values = json.loads(body or b"{}")
            except ValueError:
                raise UploadError("the body is not JSON") from None
            if not isinstance(values, dict) or not isinstance(values.get("manifest"), str):
                raise UploadError("a JSON submission needs 'manifest': the absolute path of a batch manifest on "
                                  "the server (or send a zip of exports with Content-Type: application/zip)")
            options = _options(service, values)
            manifest = await run_in_threadpool(uploads.check_manifest, values["manifest"], service.config.roots)
            job_id = queue.new_id()
            job = queue.submit(job_id, {"manifest": str(manifest), **options}, kind="manifest")
        elif kind in ("application/zip", "application/x-zip-compressed", "application/octet-stream"):
            options = _options(service, dict(request.query_params))
            job_id = queue.new_id()
            folder = queue.job_folder(job_id)
            try:
                await uploads.receive(request, folder / "upload.zip", service.config.limits)
                await run_in_threadpool(uploads.extract, folder / "upload.zip", folder / "batch", service.config.limits)
                batch = await run_in_threadpool(uploads.batch_of, folder / "batch")
            except BaseException:
                uploads.remove(folder)
                raise
            (folder / "upload.zip").unlink(missing_ok=True)
            job = queue.submit(job_id, {**batch, **options}, kind="upload")
        else:
            return _error(415, "send a JSON body ({\"manifest\": PATH}) or a zip (Content-Type: application/zip)")
    except UploadError as exc:
        return _error(exc.status, str(exc))
    except QAError as exc:
        return _error(400, str(exc))
    return _json(job_document(job, queue), 202, headers={"location": f"/api/jobs/{job['id']}"})


def list_jobs(request):
    queue = request.app.state.service.jobs
    limit, offset = _limit(request.query_params, 50, 1000)
    state = request.query_params.get("state")
    listed, total = queue.list(state=state if state in ("queued", "running", "done", "failed", "cancelled") else None,
                               limit=limit, offset=offset)
    return _json({"total": total, "limit": limit, "offset": offset, "jobs": [job_document(j, queue) for j in listed]})


def get_job(request):
    queue = request.app.state.service.jobs
    job = queue.get(request.path_params["id"])
    if job is None:
        return _error(404, f"no job {request.path_params['id']!r}")
    return _json(job_document(job, queue))


def cancel_job(request):
    queue = request.app.state.service.jobs
    job = queue.cancel(request.path_params["id"])
    if job is None:
        return _error(404, f"no job {request.path_params['id']!r}")
    return _json(job_document(job, queue), 202 if job["state"] == "running" else 200)


def openapi(request):
    return _json(openapi_document())


# --- the route table and the OpenAPI document --------------------------------------------------------------

@dataclass(frozen=True)
class ApiRoute:
    path: str
    method: str
    endpoint: Callable
    name: str
    summary: str
    parameters: tuple = ()
    body: dict | None = None
    responses: dict = field(default_factory=dict)
    writes: bool = False


def _param(name, where="query", description="", schema=None, required=None):
    return {"name": name, "in": where, "required": where == "path" if required is None else required,
            "description": description, "schema": schema or {"type": "string"}}


_REF_PARAM = _param("ref", "path", "a run id, a unique prefix of one, a sequence number, latest or latest~N")
_PAGE = (_param("limit", schema={"type": "integer", "minimum": 0}), _param("offset", schema={"type": "integer",
                                                                                              "minimum": 0}))
_FILTERS = (_param("batch", description="the batch name (the manifest's name)"),
            _param("pack", description="a rule or gate pack (name, file, or file name)"),
            _param("verdict", schema={"type": "string", "enum": ["passed", "failed", "none"]}),
            _param("since", description="started on or after (YYYY-MM-DD, UTC)", schema={"type": "string",
                                                                                        "format": "date"}),
            _param("until", description="started on or before (YYYY-MM-DD, UTC)", schema={"type": "string",
                                                                                         "format": "date"}))
_OPTION_PROPS = {"gate": {"type": "string", "description": "a built-in pack name (or a pack file under the roots) "
                                                           "whose [gate] thresholds the run is checked against"},
                 "pack": {"type": "string", "description": "the rule pack (default: the gate's, else 'default')"},
                 "baseline": {"type": "string", "description": "a stored run for regression checks: latest, "
                                                               "latest~N, latest:any, an id or a seq (needs gate)"},
                 "max_drop": {"type": "number", "minimum": 0, "maximum": 1}}
_ERROR = {"description": "refused (the body's 'error' says why)",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(schema: str, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


ROUTES = (
    ApiRoute("/api/runs", "GET", list_runs, "api_runs", "List stored runs, newest first, with headline figures",
             _FILTERS + _PAGE, responses={"200": _ok("RunList")}),
    ApiRoute("/api/runs/{ref}", "GET", run_summary, "api_run", "A run's summary: its runs row, verdict, batch "
             "figures, annotators and findings per code", (_REF_PARAM,),
             responses={"200": _ok("RunSummary"), "404": _ERROR}),
    ApiRoute("/api/runs/{ref}/scores", "GET", run_scores, "api_run_scores", "A run's scores (the long scores table)",
             (_REF_PARAM, _param("scope"), _param("key"), _param("metric")),
             responses={"200": _ok("Scores"), "404": _ERROR}),
    ApiRoute("/api/runs/{ref}/violations", "GET", run_violations, "api_run_violations",
             "A run's rule violations and format findings, in run order",
             (_REF_PARAM, _param("code"), _param("severity"), _param("annotator"), _param("image")) + _PAGE,
             responses={"200": _ok("Violations"), "404": _ERROR}),
    ApiRoute("/api/runs/{ref}/review-queue", "GET", run_review_queue, "api_run_review_queue",
             "A run's review queue, worst first",
             (_REF_PARAM, _param("kind"), _param("reason"), _param("annotator"), _param("image"),
              _param("category")) + _PAGE, responses={"200": _ok("ReviewQueue"), "404": _ERROR}),
    ApiRoute("/api/jobs", "POST", submit_job, "api_submit", "Submit a batch: a manifest under the server's roots "
             "(JSON) or a zip of exports (the body; options in the query string); needs the token",
             tuple(_param(k, schema={"type": v["type"]}, description="zip uploads: " + v["description"]
                          if "description" in v else "zip uploads") for k, v in _OPTION_PROPS.items()),
             body={"required": True, "content": {
                 "application/json": {"schema": {"$ref": "#/components/schemas/Submission"}},
                 "application/zip": {"schema": {"type": "string", "format": "binary"}}}},
             responses={"202": _ok("Job", "queued"), "400": _ERROR, "401": _ERROR, "403": _ERROR, "413": _ERROR,
                        "415": _ERROR}, writes=True),
    ApiRoute("/api/jobs", "GET", list_jobs, "api_jobs", "List jobs, newest first",
             (_param("state", schema={"type": "string", "enum": ["queued", "running", "done", "failed",
                                                                 "cancelled"]}),) + _PAGE,
             responses={"200": _ok("JobList")}),
    ApiRoute("/api/jobs/{id}", "GET", get_job, "api_job", "A job's state; when done, its run and verdict",
             (_param("id", "path"),), responses={"200": _ok("Job"), "404": _ERROR}),
    ApiRoute("/api/jobs/{id}/cancel", "POST", cancel_job, "api_cancel", "Cancel a job (a running one's worker is "
             "stopped; nothing of it is stored); needs the token", (_param("id", "path"),),
             responses={"200": _ok("Job", "cancelled"), "202": _ok("Job", "being cancelled"), "401": _ERROR,
                        "403": _ERROR, "404": _ERROR}, writes=True),
    ApiRoute("/api/openapi.json", "GET", openapi, "api_openapi", "This document"),
)
"""Every API route: the application's routes and the OpenAPI document both come from here."""

_SCHEMAS = {
    "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
    "Run": {"type": "object", "description": "A row of the runs table (docs/schema.md) and headline batch figures",
            "properties": {"seq": {"type": "integer"}, "run_id": {"type": "string"}, "name": {"type": ["string", "null"]},
                           "started_at": {"type": "string"}, "verdict": {"type": ["string", "null"],
                                                                         "enum": ["passed", "failed", None]},
                           "figures": {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
                           "url": {"type": "string"}}},
    "RunList": {"type": "object", "properties": {"total": {"type": "integer"}, "limit": {"type": "integer"},
                                                 "offset": {"type": "integer"},
                                                 "runs": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}}}},
    "RunSummary": {"type": "object", "description": "The runs row (settings, inputs parsed), verdict_document (the "
                                                    "gate's verdict, docs/gate.md), figures (batch scores by name), "
                                                    "annotators, findings_by_code, links",
                   "properties": {"run_id": {"type": "string"}, "seq": {"type": "integer"},
                                  "verdict": {"type": ["string", "null"]}, "verdict_document": {"type": ["object", "null"]},
                                  "figures": {"type": "object"}, "annotators": {"type": "array"},
                                  "findings_by_code": {"type": "array"}, "links": {"type": "object"}}},
    "Scores": {"type": "object", "properties": {"run_id": {"type": "string"}, "count": {"type": "integer"},
                                                "scores": {"type": "array", "items": {"type": "object", "properties": {
                                                    "scope": {"type": "string"}, "key": {"type": "string"},
                                                    "metric": {"type": "string"}, "value": {"type": ["number", "null"]},
                                                    "n": {"type": "integer"}}}}}},
    "Violations": {"type": "object", "description": "Rows of the findings table (docs/schema.md)",
                   "properties": {"run_id": {"type": "string"}, "total": {"type": "integer"},
                                  "violations": {"type": "array", "items": {"type": "object"}}}},
    "ReviewQueue": {"type": "object", "description": "Rows of the review_queue table (docs/schema.md)",
                    "properties": {"run_id": {"type": "string"}, "total": {"type": "integer"},
                                   "review_queue": {"type": "array", "items": {"type": "object"}}}},
    "Submission": {"type": "object", "required": ["manifest"], "additionalProperties": False,
                   "properties": {"manifest": {"type": "string", "description": "absolute path of a batch manifest "
                                                                               "under the server's roots"},
                                  **_OPTION_PROPS}},
    "Job": {"type": "object", "properties": {
        "id": {"type": "string"}, "state": {"type": "string", "enum": ["queued", "running", "done", "failed",
                                                                       "cancelled"]},
        "kind": {"type": "string", "enum": ["manifest", "upload"]}, "submitted_at": {"type": "string"},
        "started_at": {"type": ["string", "null"]}, "finished_at": {"type": ["string", "null"]},
        "run_id": {"type": ["string", "null"], "description": "the run's id, chosen when the job starts"},
        "position": {"type": "integer", "description": "queued: jobs before this one"},
        "result": {"type": ["object", "null"], "description": "done: run_id, seq, verdict (passed, failed or null "
                                                               "when not gated), checks_evaluated, checks_failed"},
        "error": {"type": ["string", "null"]}, "links": {"type": "object"}, "url": {"type": "string"}}},
    "JobList": {"type": "object", "properties": {"total": {"type": "integer"},
                                                 "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}}},
}


def openapi_document() -> dict:
    """The OpenAPI 3.1 document of :data:`ROUTES`."""
    from qa import __version__

    paths: dict = {}
    for r in ROUTES:
        operation = {"operationId": r.name, "summary": r.summary, "parameters": list(r.parameters),
                     "responses": r.responses or {"200": {"description": "OK"}}}
        if r.body:
            operation["requestBody"] = r.body
        if r.writes:
            operation["security"] = [{"token": []}]
        paths.setdefault(r.path, {})[r.method.lower()] = operation
    return {"openapi": "3.1.0",
            "info": {"title": "annotation-qa", "version": __version__,
                     "description": "The run store of annotation-qa over HTTP (qa serve): runs, their figures, "
                                    "violations and review queues; batches submitted as jobs. Writes need "
                                    "'Authorization: Bearer <token>'; so does every request when the server "
                                    "listens beyond the loopback. See docs/serve.md."},
            "paths": paths,
            "components": {"schemas": _SCHEMAS,
                           "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}}}
