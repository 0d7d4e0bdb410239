"""The HTML pages: runs, a run, an image of a run, an annotator, a category, two runs side by side, jobs.

Each handler reads the store through its read helpers (:mod:`qa.store`, DataFrames out), builds display
rows with the report's helpers and section builders (:mod:`qa.report`), and renders a template of
``reports/templates/serve/``. A run's page renders the report's own sections (the same builders and the
same ``sections/*.html.j2`` markup), with names linking to the annotator, category and image pages.
"""

from __future__ import annotations

import math
from urllib.parse import quote, urlencode

from qa import report as rp
from qa.errors import StoreError

RUN_SECTIONS = ("overview", "reference", "agreement", "categories", "boundaries", "other", "violations", "review", "images",
                "settings")
"""The report's sections a run page shows (all but the overlay pictures, which need the exports)."""

ANNOTATOR_TRENDS = ("mask_iou_mean", "image_iou_mean", "missing_share", "signed_offset_px_mean", "violations")
"""The annotator page's charts: agreement, missing share, boundary offset, rule violations."""

CATEGORY_TRENDS = ("boundary_f_2px_mean", "boundary_iou_mean", "signed_offset_px_mean", "mask_iou_mean")
"""The category page's charts of the category's own figures."""

RUN_FIGURES = ("pq", "mask_iou_mean", "boundary_f_2px_mean", "missing_share")
"""Headline batch figures of the runs page."""

VERDICTS = ("passed", "failed", "none")

LAST_RUNS = 100
"""Runs an annotator's or a category's page shows by default (``?last=N``; ``last=0`` for all)."""


def q(text) -> str:
    """A path segment (every character but unreserved ones escaped, ``/`` too)."""
    return quote(str(text), safe="")


def run_url(run_id) -> str:
    return f"/runs/{q(run_id)}"


def annotator_url(name, batch=None) -> str:
    return f"/annotators/{q(name)}" + (f"?{urlencode({'batch': batch})}" if batch else "")


def category_url(name, batch=None) -> str:
    return f"/categories/{q(name)}" + (f"?{urlencode({'batch': batch})}" if batch else "")


def image_url(run_id, key) -> str:
    return f"/runs/{q(run_id)}/images/{q(key)}"


def links_for(run_id: str) -> rp.Links:
    """The report's :class:`~qa.report.Links` for a run page: names link to this service's pages."""
    return rp.Links(annotator=annotator_url, category=category_url, image=lambda key: image_url(run_id, key))


# --- rendering -------------------------------------------------------------------------------------------

def render(request, template: str, status: int = 200, **context):
    from starlette.responses import HTMLResponse

    service = request.app.state.service
    html = service.env.get_template(f"serve/{template}").render(
        path=request.url.path, writes=service.config.token is not None, **context)
    return HTMLResponse(html, status_code=status)


def error_page(request, status: int, message: str):
    return render(request, "error.html.j2", status=status, status_code=status, message=message)


def not_found(request, exc):
    detail = getattr(exc, "detail", None) if exc is not None else None
    if request.url.path.startswith("/api/"):
        from starlette.responses import JSONResponse

        return JSONResponse({"error": "not found"}, status_code=404)
    return error_page(request, 404, detail if isinstance(detail, str) and detail != "Not Found"
                      else "No such page.")


def server_error(request, exc):
    if request.url.path.startswith("/api/"):
        from starlette.responses import JSONResponse

        return JSONResponse({"error": "internal error"}, status_code=500)
    return error_page(request, 500, "Internal error; the server's log has the details.")


def _store(request):
    return request.app.state.service.reader.open()


def _missing(exc: StoreError) -> bool:
    text = str(exc)
    return "no run" in text or "ambiguous" in text


def _int(value, default: int, lo: int = 0, hi: int = 10**9) -> int:
    try:
        return min(max(int(value), lo), hi)
    except (TypeError, ValueError):
        return default


def _date(value) -> str | None:
    """An ISO date (YYYY-MM-DD) from a query parameter, or None."""
    import re

    value = (value or "").strip()
    return value if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else None


def _time(value) -> str:
    return rp._time(value) if value is not None and not (isinstance(value, float) and math.isnan(value)) else ""


def _verdict_cell(verdict) -> dict:
    if not isinstance(verdict, str):
        return rp._cell("not gated", cls="muted")
    return rp._cell(verdict, cls="ok" if verdict == "passed" else "bad")


def _pack_name(value) -> str:
    if not isinstance(value, str):
        return ""
    name = value.rsplit("/", 1)[-1]
    return name[:-5] if name.endswith(".toml") else name


# --- runs --------------------------------------------------------------------------------------------------

def runs_filters(params) -> dict:
    """The runs filters of a query string (unknown or malformed values dropped)."""
    verdict = params.get("verdict")
    return {"batch": params.get("batch") or None, "pack": params.get("pack") or None,
            "verdict": verdict if verdict in VERDICTS else None,
            "since": _date(params.get("since")), "until": _date(params.get("until"))}


def runs(request):
    """Every run, newest first: batch, time, verdict, headline figures; filtered and paginated."""
    service = request.app.state.service
    filters = runs_filters(request.query_params)
    size = service.config.page_size
    page = _int(request.query_params.get("page"), 1, 1)
    with _store(request) as s:
        df, total = s.runs_page(**filters, limit=size, offset=(page - 1) * size, figures=RUN_FIGURES)
        choices = s.run_filters()
    rows = []
    for r in df.to_dict("records"):
        cells = [rp._cell(r["seq"], 0, href=run_url(r["run_id"])),
                 rp._cell(r["run_id"], href=run_url(r["run_id"])),
                 rp._cell(r["name"] if isinstance(r["name"], str) else ""),
                 rp._cell(_time(r["started_at"])), _verdict_cell(r["verdict"]),
                 rp._cell(_pack_name(r["gate_pack"]) or _pack_name(r["pack"])),
                 rp._cell(r["n_annotators"], 0), rp._cell(r["n_images"], 0), rp._cell(r["errors"], 0),
                 rp._cell(r["warnings"], 0)]
        cells += [rp._metric_cell(m, r[m], style=rp.style_for(m, r[m])) for m in RUN_FIGURES]
        rows.append({"cells": cells})
    table = rp._table("runs-table", ["#", "run", "batch", "started (UTC)", "verdict", "pack", "annotators", "images",
                                      "errors", "warnings"] + [rp.label(m) for m in RUN_FIGURES], rows,
                      empty="No runs match." if any(filters.values()) else
                      "No runs stored yet: qa run --db this store, or submit a batch (docs/serve.md).",
                      filter=False)
    pages = max(1, math.ceil(total / size))
    kept = {k: v for k, v in filters.items() if v}

    def page_url(n):
        return "/?" + urlencode({**kept, "page": n})

    return render(request, "runs.html.j2", title="Runs", main_table=table, total=total, page=page, pages=pages,
                  prev_url=page_url(page - 1) if page > 1 else None,
                  next_url=page_url(page + 1) if page < pages else None, filters=filters, choices=choices,
                  verdicts=VERDICTS, packs=[(p, _pack_name(p)) for p in choices["packs"]])


# --- a run ------------------------------------------------------------------------------------------------

def run(request):
    """One run: its report's sections (the report's builders and markup), names linking to their pages."""
    ref = request.path_params["ref"]
    try:
        with _store(request) as s:
            data = rp.from_store(s, ref, pictures=0)
            info = s.run(ref)
            previous, following = s.neighbours(info["run_id"])
    except StoreError as exc:
        if _missing(exc):
            return error_page(request, 404, f"No run {ref!r} in this store.")
        raise
    data.pictures_note = ""
    run_id = info["run_id"]
    context = rp.section_context(data, RUN_SECTIONS, links=links_for(run_id))
    return render(request, "run.html.j2", title=data.title, run=info, meta={**data.meta},
                  annotators=data.annotators, pack=_pack_name(info.get("gate_pack") or info.get("pack")),
                  previous=previous, next=following,
                  compare_url=f"/compare?{urlencode({'a': previous, 'b': run_id})}" if previous else None,
                  **context)


def image(request):
    """One image of a run: its annotator pairs, unmatched and relabelled objects, findings, review rows."""
    ref, key = request.path_params["ref"], request.path_params["image"]
    try:
        with _store(request) as s:
            run_id = s.resolve(ref)
            info = s.run(run_id)
            detail = s.image_detail(run_id, key)
    except StoreError as exc:
        if _missing(exc):
            return error_page(request, 404, f"No run {ref!r} in this store.")
        raise
    if detail is None:
        return error_page(request, 404, f"Run {run_id} has no image {key!r}.")
    pairs, problems = rp._expand_metrics(detail["pairs"]), detail["problems"]
    findings, queue = detail["findings"], detail["review_queue"]
    links = links_for(run_id)
    data = rp.ReportInput(title="", annotators=[], image_pairs=pairs if len(pairs) else None,
                          findings=findings if len(findings) else None, review_queue=queue if len(queue) else None)
    pair_table = rp.images_section(data, links)["image_pair_table"]
    problem_rows = [{"cells": [rp._annotator_cell(links, r["annotator_a"]), rp._annotator_cell(links, r["annotator_b"]),
                               rp._cell(r["status"] if r["status"] != "matched" else "relabelled"),
                               rp._category_cell(links, r["category_a"] if isinstance(r["category_a"], str) else ""),
                               rp._category_cell(links, r["category_b"] if isinstance(r["category_b"], str) else ""),
                               rp._metric_cell("mask_iou_mean", r["iou"]), rp._cell(r["best_iou"])]}
                    for r in problems.to_dict("records")]
    problem_table = rp._table("problem-table", ["annotator a", "annotator b", "status", "category a", "category b",
                                                 rp.label("mask_iou_mean"), "best IoU"], problem_rows,
                              empty="Every object of this image was matched with the same label.")
    return render(request, "image.html.j2", title=f"{key} in run {info['seq']}", run=info, image=key,
                  pair_table=pair_table, problem_table=problem_table,
                  review_table=rp.review_section(data, links)["review_table"],
                  **rp.violations_section(data, rp.Links(annotator=annotator_url, category=category_url,
                                                         rule=lambda code: f"#rule-{code}")))


# --- annotators and categories ------------------------------------------------------------------------------

def _trend_points(history, metric, *, batch=None):
    return [(f"#{r['seq']}", r.get(metric), run_url(r["run_id"])) for r in history.to_dict("records")]


def _names_page(request, what: str, df, url) -> object:
    """The page listing every annotator or category of the store (``what``), each with its run count."""
    rows = [{"cells": [rp._cell(r[what], href=url(r[what])), rp._cell(r["runs"], 0),
                       rp._cell(r["last_seq"], 0, href=f"/runs/{int(r['last_seq'])}")]} for r in df.to_dict("records")]
    plural = "categories" if what == "category" else f"{what}s"
    table = rp._table(f"{plural}-table", [what, "runs", "latest run"], rows, empty=f"No {plural} yet.")
    return render(request, "list.html.j2", title=plural.capitalize(), main_table=table,
                  why=f"Every {what} of the stored runs; each links to its "
                      + ("boundary figures" if what == "category" else "figures") + " across runs.")


def annotators(request):
    """Every annotator in the store, with how many runs it is in."""
    with _store(request) as s:
        df = s.annotators_seen()
    return _names_page(request, "annotator", df, annotator_url)


def categories(request):
    """Every category in the store, with how many runs it is in."""
    with _store(request) as s:
        df = s.categories_seen()
    return _names_page(request, "category", df, category_url)


def annotator(request):
    """One annotator across runs: trend charts, a table per run, its worst objects of the latest run."""
    from qa.serve.charts import trend

    name = request.path_params["name"]
    batch = request.query_params.get("batch") or None
    last = _int(request.query_params.get("last"), LAST_RUNS, 0)
    with _store(request) as s:
        history = s.annotator_history(name, batch=batch, last=last)
        total = s.history_size("annotators", "annotator", name, batch=batch)
        worst = s.worst_objects(history["run_id"].iloc[-1], name) if len(history) else None
        batches = s.batches_of(name)
    if not len(history):
        return error_page(request, 404, f"No annotator {name!r} in {'batch ' + repr(batch) if batch else 'this store'}.")
    charts = [trend(m, [{"name": name, "points": _trend_points(history, m)}], chart_id=f"trend-{m}")
              for m in ANNOTATOR_TRENDS if m in history and history[m].notna().any()]
    rows = []
    for r in history.to_dict("records")[::-1]:
        cells = [rp._cell(r["seq"], 0, href=run_url(r["run_id"])), rp._cell(r["name"] if isinstance(r["name"], str) else ""),
                 rp._cell(_time(r["started_at"])), _verdict_cell(r["verdict"]), rp._cell(r["n_objects"], 0)]
        cells += [rp._metric_cell(m, r.get(m), style=rp.style_for(m, r.get(m))) for m in ANNOTATOR_TRENDS]
        rows.append({"cells": cells})
    table = rp._table("annotator-runs", ["#", "batch", "started (UTC)", "verdict", "objects"]
                      + [rp.label(m) for m in ANNOTATOR_TRENDS], rows)
    latest = history.iloc[-1]
    data = rp.ReportInput(title="", annotators=[], review_queue=worst if worst is not None and len(worst) else None)
    review = rp.review_section(data, links_for(latest["run_id"]))["review_table"]
    review["empty"] = f"Nothing of {name}'s to review in run {int(latest['seq'])}."
    return render(request, "annotator.html.j2", title=f"Annotator {name}", name=name, batch=batch, batches=batches,
                  charts=charts, main_table=table, review=review, latest_seq=int(latest["seq"]),
                  latest_url=run_url(latest["run_id"]), runs=total, shown=len(history), all_url=_all_url(request))


def category(request):
    """One category across runs: its boundary figures and its category-pair boundaries."""
    from qa.serve.charts import trend

    name = request.path_params["name"]
    batch = request.query_params.get("batch") or None
    last = _int(request.query_params.get("last"), LAST_RUNS, 0)
    with _store(request) as s:
        history = s.category_history(name, batch=batch, last=last)
        total = s.history_size("categories", "category", name, batch=batch)
        pairs = s.category_pair_history(name, batch=batch,
                                        since_seq=int(history["seq"].min()) if len(history) else 0)
    if not len(history):
        return error_page(request, 404, f"No category {name!r} in {'batch ' + repr(batch) if batch else 'this store'}.")
    charts = [trend(m, [{"name": name, "points": _trend_points(history, m)}], chart_id=f"trend-{m}")
              for m in CATEGORY_TRENDS if m in history and history[m].notna().any()]
    pair_charts, pair_table = [], None
    if len(pairs):
        share = _share_metric(pairs["metric"].unique())
        labels = [f"#{r['seq']}" for r in history.to_dict("records")]
        hrefs = {f"#{r['seq']}": run_url(r["run_id"]) for r in history.to_dict("records")}
        latest_seq = int(pairs["seq"].max())
        latest = pairs[pairs["seq"] == latest_seq]
        order = _disputed_order(latest, share)
        series = []
        for other in order[:len(_palette())]:
            part = pairs[(pairs["other"] == other) & (pairs["metric"] == share)]
            values = {f"#{r['seq']}": r["value"] for r in part.to_dict("records")}
            series.append({"name": f"{name} | {other}", "points": [(x, values.get(x), hrefs.get(x)) for x in labels]})
        if share and series:
            pair_charts.append(trend(share, series, chart_id="trend-category-pairs", height=200))
        scores = latest.rename(columns={"pair": "key"}).assign(scope="category_pair")[["scope", "key", "metric",
                                                                                       "value", "n"]]
        pair_table = rp._category_pair_table(scores, rp.Links(category=category_url))
    rows = []
    for r in history.to_dict("records")[::-1]:
        cells = [rp._cell(r["seq"], 0, href=run_url(r["run_id"])), rp._cell(r["name"] if isinstance(r["name"], str) else ""),
                 rp._cell(_time(r["started_at"])), rp._cell(r["n_objects"], 0)]
        cells += [rp._metric_cell(m, r.get(m), style=rp.style_for(m, r.get(m))) for m in CATEGORY_TRENDS]
        rows.append({"cells": cells})
    table = rp._table("category-runs", ["#", "batch", "started (UTC)", "objects"]
                      + [rp.label(m) for m in CATEGORY_TRENDS], rows)
    return render(request, "category.html.j2", title=f"Category {name}", name=name, batch=batch, charts=charts,
                  pair_charts=pair_charts, pair_table=pair_table, main_table=table, runs=total,
                  shown=len(history), all_url=_all_url(request),
                  latest_pairs_seq=int(pairs["seq"].max()) if len(pairs) else None)


def _all_url(request) -> str:
    """This page with every run (``last=0``)."""
    return request.url.path + "?" + urlencode({**dict(request.query_params), "last": 0})


def _palette():
    from qa.serve.charts import PALETTE

    return PALETTE


def _share_metric(metrics) -> str | None:
    """The category-pair share charted: the smallest ``disagree_<t>_share`` at or above 2 px (as the report's
    "disputed px" column)."""
    shares = sorted((float(m[len("disagree_"):-len("px_share")].replace("p", ".")), m) for m in metrics
                    if m.startswith("disagree_") and m.endswith("px_share"))
    return next((m for t, m in shares if t >= 2), shares[-1][1] if shares else None)


def _disputed_order(latest, share) -> list[str]:
    """The other categories of the latest run's pairs, most disputed boundary first (length times share)."""
    wide = latest.pivot_table(index="other", columns="metric", values="value", aggfunc="first")
    length = wide["boundary_px"] if "boundary_px" in wide else 1.0
    disputed = (length * wide[share]) if share in wide else wide.iloc[:, 0] * 0
    return list(disputed.fillna(-1).sort_values(ascending=False, kind="stable").index)


# --- two runs side by side ------------------------------------------------------------------------------------

def compare(request):
    """What ``qa diff A B`` prints: inputs, counts and figures that changed between two runs."""
    from qa.store import DIFF_SCOPES, diff, diff_changes

    a, b = request.query_params.get("a"), request.query_params.get("b")
    show_all = request.query_params.get("all") in ("1", "true", "on")
    with _store(request) as s:
        recent = s.runs(limit=200)
        if not a or not b:
            return render(request, "compare.html.j2", title="Compare two runs", d=None, recent=recent.to_dict("records"),
                          a=a or "", b=b or "", show_all=show_all)
        try:
            d = diff(s, a, b, scopes=DIFF_SCOPES)
        except StoreError as exc:
            return error_page(request, 404, str(exc).split(": ", 1)[-1])
    shown = d if show_all else diff_changes(d)
    runs_rows = []
    for r in d["runs"].to_dict("records"):
        runs_rows.append({"cells": [rp._cell("a" if r["run_id"] == d["a"] else "b"),
                                    rp._cell(r["seq"], 0, href=run_url(r["run_id"])), rp._cell(r["run_id"]),
                                    rp._cell(r["name"] if isinstance(r["name"], str) else ""),
                                    rp._cell(_time(r["started_at"])), _verdict_cell(r["verdict"]),
                                    rp._cell(r["n_images"], 0), rp._cell(r["n_objects"], 0), rp._cell(r["errors"], 0),
                                    rp._cell(r["warnings"], 0)]})
    runs_table = rp._table("compare-runs", ["", "#", "run", "batch", "started (UTC)", "verdict", "images", "objects",
                                            "errors", "warnings"], runs_rows, filter=False)
    inputs = rp._table("compare-inputs", ["annotator", "sha256 a", "sha256 b", "status"], [
        {"cells": [rp._annotator_cell(rp.Links(annotator=annotator_url), r["annotator"]),
                   rp._cell((r["sha256_a"] or "")[:16] if isinstance(r["sha256_a"], str) else ""),
                   rp._cell((r["sha256_b"] or "")[:16] if isinstance(r["sha256_b"], str) else ""),
                   rp._cell(r["status"])]} for r in shown["inputs"].to_dict("records")],
        empty="No input changed.", filter=False)
    counts = rp._table("compare-counts", ["what", "scope", "key", "a", "b", "change"], [
        {"cells": [rp._cell(r["what"]), rp._cell(r["scope"]), _key_cell(r["scope"], r["key"]), rp._cell(r["a"], 0),
                   rp._cell(r["b"], 0), rp._cell(r["delta"], 0, style=_delta_style(r["delta"], "count"))]}
        for r in shown["counts"].to_dict("records")], empty="No count changed.")
    scores = rp._table("compare-scores", ["scope", "key", "figure", "a", "b", "change"], [
        {"cells": [rp._cell(r["scope"]), _key_cell(r["scope"], r["key"]), rp._cell(rp.label(r["metric"]),
                                                                                  title=r["metric"]),
                   rp._metric_cell(r["metric"], r["a"]), rp._metric_cell(r["metric"], r["b"]),
                   rp._metric_cell(r["metric"], r["delta"], style=_delta_style(r["delta"], r["metric"]))]}
        for r in shown["scores"].to_dict("records")], empty="No figure changed.")
    n_inputs = int((d["inputs"]["status"] != "same").sum())
    n_counts = int((d["counts"]["delta"] != 0).sum())
    n_scores = len(diff_changes(d)["scores"])
    return render(request, "compare.html.j2", title="Compare two runs", d=d, runs_table=runs_table, inputs=inputs,
                  counts=counts, scores=scores, a=a, b=b, show_all=show_all, recent=recent.to_dict("records"),
                  closing=f"{n_inputs} inputs changed, {n_counts} counts changed, {n_scores} figures changed")


def _key_cell(scope, key):
    links = rp.Links(annotator=annotator_url, category=category_url)
    if scope == "annotator":
        return rp._annotator_cell(links, key)
    if scope == "category":
        return rp._category_cell(links, key)
    return rp._cell(key if isinstance(key, str) else "")


def _delta_style(delta, metric) -> str | None:
    """Green when the change is for the better (by the metric's direction), red when for the worse."""
    from qa import metric_registry

    if rp._isnan(delta) or delta == 0:
        return None
    way = metric_registry.direction(metric)
    if way not in ("higher", "lower"):
        return None
    better = delta > 0 if way == "higher" else delta < 0
    return "background:#dff3e4" if better else "background:#fbe3e1"


# --- jobs -----------------------------------------------------------------------------------------------------

def jobs(request):
    """The job queue, newest first."""
    queue = request.app.state.service.jobs
    listed, total = queue.list(limit=100)
    rows = []
    for j in listed:
        result = j["result"] or {}
        run_cell = rp._cell(result.get("seq"), 0, href=run_url(result["run_id"])) if result.get("run_id") \
            else rp._cell("")
        rows.append({"cells": [rp._cell(j["id"], href=f"/api/jobs/{q(j['id'])}"), rp._cell(j["state"],
                               cls={"done": "ok", "failed": "bad"}.get(j["state"])), rp._cell(j["kind"]),
                               rp._cell(j["submitted_at"]), rp._cell(j["finished_at"] or ""), run_cell,
                               _verdict_cell(result.get("verdict")) if result else rp._cell(""),
                               rp._cell(j["error"] or "")]})
    table = rp._table("jobs-table", ["job", "state", "kind", "submitted (UTC)", "finished (UTC)", "run", "verdict",
                                     "note"], rows, empty="No job submitted yet (POST /api/jobs; docs/serve.md).")
    return render(request, "list.html.j2", title="Jobs", main_table=table,
                  why=f"Batches submitted through the API ({total} in all), run one at a time against the store.")


ROUTES = (
    ("/", ["GET"], runs, "runs"),
    ("/runs/{ref}", ["GET"], run, "run"),
    ("/runs/{ref}/images/{image:path}", ["GET"], image, "image"),
    ("/annotators", ["GET"], annotators, "annotators"),
    ("/annotators/{name:path}", ["GET"], annotator, "annotator"),
    ("/categories", ["GET"], categories, "categories"),
    ("/categories/{name:path}", ["GET"], category, "category"),
    ("/compare", ["GET"], compare, "compare"),
    ("/jobs", ["GET"], jobs, "jobs"),
)
"""Every page: path, methods, handler, name."""
