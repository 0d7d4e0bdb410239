"""``qa serve`` as a real server (uvicorn in a subprocess) driven over HTTP with httpx.

One server (module scope) over a store of three runs: pages render with their charts, every link of the
pages leads somewhere, hostile names are escaped, the API answers and its OpenAPI document lists every
route, submissions need the token and are checked, two concurrent submissions both finish with nothing
lost, and a queued job can be cancelled. A second server is killed (SIGKILL) while its worker is inside
the store's write transaction: restarted, it marks the job failed and the store is as it was.
"""

from __future__ import annotations

import re
import threading
import time
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from common import EVIL_CATEGORY
from servekit import EVIL_ANNOTATOR, Server, seed_store, tiny_batch, wait_job, workers_alive, zip_folder

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    return {"folder": folder, **seed_store(folder)}


@pytest.fixture(scope="module")
def server(seeded):
    roots = seeded["folder"] / "roots"
    roots.mkdir()
    with Server(seeded["folder"], seeded["db"], roots=[roots]) as s:
        s.root = roots
        yield s
    assert not workers_alive(s.jobs_dir)


@pytest.fixture(scope="module")
def client():
    with httpx.Client(timeout=60) as c:
        yield c


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.sources = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        for key in ("src", "href"):
            if tag in ("script", "link", "img") and attrs.get(key):
                self.sources.append(attrs[key])


def _links(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


# --- pages ---------------------------------------------------------------------------------------------------

def test_runs_page_lists_the_runs_with_verdicts_filters_and_figures(server, client, seeded):
    r = client.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    for run_id in seeded["runs"]:
        assert f'href="/runs/{run_id}"' in r.text
    assert r.text.count("<tr>") == 1 + 3  # header and three runs
    assert "failed" in r.text and "not gated" in r.text and "matched-object IoU" in r.text
    only_failed = client.get(server.url + "/", params={"verdict": "failed"}).text
    assert only_failed.count('href="/runs/2026') + only_failed.count("href=\"/runs/20") >= 1
    assert seeded["runs"][2] not in only_failed  # the ungated run
    gated = client.get(server.url + "/", params={"pack": "street-scenes", "batch": "synth-seed5"}).text
    assert all(run_id in gated for run_id in seeded["runs"][:2]) and seeded["runs"][2] not in gated
    assert "No runs match" in client.get(server.url + "/", params={"until": "2001-01-01"}).text


def test_every_link_of_the_pages_leads_somewhere(server, client):
    """Crawl from the runs page: every same-site link answers 200 (pages) and nothing points elsewhere."""
    seen, todo, outside = set(), ["/"], []
    while todo and len(seen) < 400:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        r = client.get(server.url + path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        if not r.headers["content-type"].startswith("text/html"):
            continue
        parsed = _links(r.text)
        for href in parsed.links + parsed.sources:
            target = urljoin(server.url + path, href)
            parts = urlsplit(target)
            if parts.netloc != urlsplit(server.url).netloc:
                outside.append((path, href))
                continue
            local = parts.path + (f"?{parts.query}" if parts.query else "")
            if local not in seen and not parts.path.startswith("/api/jobs"):
                todo.append(local)
    assert not outside
    assert len(seen) > 40
    for page in ("/annotators/alice", "/categories/road", "/compare", "/jobs", "/annotators", "/categories"):
        assert any(p.startswith(page) for p in seen), page
    assert any(re.match(r"/runs/[^/]+/images/", p) for p in seen)


def test_annotator_and_category_pages_draw_trends_as_inline_svg(server, client, seeded):
    page = client.get(server.url + "/annotators/alice").text
    charts = re.findall(r'<svg [^>]*class="trend"[^>]*data-metric="([^"]+)"', page)
    assert {"mask_iou_mean", "missing_share", "signed_offset_px_mean", "violations"} <= set(charts)
    assert page.count("<circle") >= 2 * 4  # two runs, a point each, on every chart
    assert f'href="/runs/{seeded["runs"][1]}"' in page  # points and rows link to their runs
    assert "Worst objects of the latest run" in page and 'id="review-table"' in page
    road = client.get(server.url + "/categories/road").text
    assert 'data-metric="boundary_f_2px_mean"' in road and 'id="trend-category-pairs"' in road
    assert 'id="category-pair-table"' in road and "road | sidewalk" in road or "road | " in road
    assert client.get(server.url + "/annotators/nobody").status_code == 404
    assert client.get(server.url + "/runs/nope").status_code == 404


def test_a_run_page_renders_the_report_sections_from_the_same_builders(server, client, seeded):
    """The page's sections are the report's: the same HTML once links are taken out."""
    from qa import report, store

    run_id = seeded["runs"][0]
    page = client.get(f"{server.url}/runs/{run_id}").text
    with store.open(seeded["db"]) as s:
        data = report.from_store(s, run_id, pictures=0)
    html = report.render_html(data)

    def section(text, name):
        found = re.search(rf'<section id="{name}">.*?</section>', text, re.S)
        return re.sub(r'<a href="[^"]*">|</a>', "", found.group(0))

    for name in ("agreement", "categories", "boundaries", "violations", "review", "images", "settings"):
        assert section(page, name) == section(html, name), name
    assert 'href="/annotators/alice"' in page and 'href="/categories/road"' in page
    assert f'href="/runs/{run_id}/images/' in page


def test_compare_shows_what_qa_diff_prints(server, client, seeded, capsys):
    from common import run_cli

    a, b = seeded["runs"][:2]
    page = client.get(server.url + "/compare", params={"a": a, "b": b}).text
    code, out, _ = run_cli(["diff", a, b, "--db", str(seeded["db"])], capsys)
    assert code == 0
    closing = out.strip().splitlines()[-1]
    assert f'<p id="closing">{closing}</p>' in page
    assert 'id="compare-scores"' in page and 'id="compare-counts"' in page
    assert client.get(server.url + "/compare", params={"a": a, "b": "nope"}).status_code == 404


def test_hostile_names_are_escaped_in_pages(server, client, seeded):
    run_id = seeded["runs"][2]
    pages = [client.get(f"{server.url}/runs/{run_id}").text, client.get(server.url + "/categories").text,
             client.get(server.url + "/annotators").text]
    evil_category = client.get(server.url + "/categories/" + httpx.URL("/").copy_with().path[1:]
                               + __import__("urllib.parse").parse.quote(EVIL_CATEGORY, safe=""))
    evil_annotator = client.get(server.url + "/annotators/" + __import__("urllib.parse").parse.quote(
        EVIL_ANNOTATOR, safe=""))
    assert evil_category.status_code == 200 and evil_annotator.status_code == 200
    pages += [evil_category.text, evil_annotator.text]
    for text in pages:
        assert "<script>alert" not in text and "<img src=x" not in text and '"><img' not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in pages[0]


# --- the API -----------------------------------------------------------------------------------------------

def test_api_reads_runs_scores_violations_and_the_review_queue(server, client, seeded):
    listed = client.get(server.url + "/api/runs").json()
    assert listed["total"] == 3 and [r["run_id"] for r in listed["runs"]] == seeded["runs"][::-1]
    assert set(listed["runs"][1]["figures"]) >= {"mask_iou_mean", "pq"}
    run_id = seeded["runs"][0]
    summary = client.get(f"{server.url}/api/runs/{run_id}").json()
    assert summary["run_id"] == run_id and summary["verdict"] in ("passed", "failed")
    assert summary["verdict_document"]["success"] == (summary["verdict"] == "passed")
    assert 0 < summary["figures"]["mask_iou_mean"] <= 1
    scores = client.get(f"{server.url}/api/runs/{run_id}/scores", params={"scope": "annotator"}).json()
    assert scores["count"] > 0 and {s["scope"] for s in scores["scores"]} == {"annotator"}
    violations = client.get(f"{server.url}/api/runs/{run_id}/violations", params={"limit": 3}).json()
    assert violations["total"] >= len(violations["violations"]) and len(violations["violations"]) <= 3
    queue = client.get(f"{server.url}/api/runs/latest~2/review-queue", params={"limit": 5}).json()
    assert queue["run_id"] == run_id and [r["rank"] for r in queue["review_queue"]] == [1, 2, 3, 4, 5]
    assert client.get(server.url + "/api/runs/nope").status_code == 404


def test_openapi_documents_every_api_route(server, client):
    from qa.serve import api

    doc = client.get(server.url + "/api/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    assert documented == {(r.path, r.method) for r in api.ROUTES}
    assert doc["paths"]["/api/jobs"]["post"]["security"] == [{"token": []}]


# --- submitting -----------------------------------------------------------------------------------------

def test_a_submit_without_the_token_is_refused(server, client, tmp_path):
    batch = tiny_batch(server.root / "refused")
    body = {"manifest": str(batch / "batch.toml")}
    assert client.post(server.url + "/api/jobs", json=body).status_code == 401
    assert client.post(server.url + "/api/jobs", json=body, headers=server.headers("x" * 26)).status_code == 401
    assert client.post(server.url + "/api/jobs/job-000/cancel").status_code == 401
    assert client.get(server.url + "/api/jobs").json()["total"] == 0  # nothing was queued


def test_submissions_are_checked_like_any_input(server, client, tmp_path):
    h = server.headers()
    outside = tiny_batch(tmp_path / "outside")
    r = client.post(server.url + "/api/jobs", json={"manifest": str(outside / "batch.toml")}, headers=h)
    assert r.status_code == 403 and "outside the server's roots" in r.json()["error"]
    sneaky = server.root / "sneaky"
    sneaky.mkdir()
    (sneaky / "batch.toml").write_text(f'[[exports]]\nannotator = "a"\npath = "{outside / "alice.json"}"\n')
    r = client.post(server.url + "/api/jobs", json={"manifest": str(sneaky / "batch.toml")}, headers=h)
    assert r.status_code == 403 and "exports[0].path" in r.json()["error"]
    (server.root / "link").symlink_to(outside)
    r = client.post(server.url + "/api/jobs", json={"manifest": str(server.root / "link" / "batch.toml")}, headers=h)
    assert r.status_code == 403
    r = client.post(server.url + "/api/jobs", json={"manifest": str(sneaky / "batch.toml"), "gate": "/etc/x.toml"},
                    headers=h)
    assert r.status_code == 403
    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as z:
        z.writestr("../../evil.json", "{}")
    r = client.post(server.url + "/api/jobs", content=slip.read_bytes(),
                    headers={**h, "content-type": "application/zip"})
    assert r.status_code == 400 and "'..'" in r.json()["error"]
    big = tmp_path / "big.zip"
    big.write_bytes(b"PK" + b"\0" * (3 * 2**20))  # over the server's --max-upload 2
    r = client.post(server.url + "/api/jobs", content=big.read_bytes(), headers={**h, "content-type": "application/zip"})
    assert r.status_code == 413
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("alice.json", b"\0" * (64 * 2**20))
    r = client.post(server.url + "/api/jobs", content=bomb.read_bytes(), headers={**h, "content-type": "application/zip"})
    assert r.status_code == 413 and "decompression bomb" in r.json()["error"]
    assert client.post(server.url + "/api/jobs", content=b"x", headers={**h, "content-type": "text/plain"}
                       ).status_code == 415
    assert client.get(server.url + "/api/jobs").json()["total"] == 0
    assert not list(server.jobs_dir.glob("job-*"))  # refused uploads leave nothing behind


def test_two_concurrent_submits_both_finish_with_nothing_lost(server, client, tmp_path):
    before = client.get(server.url + "/api/runs").json()["total"]
    manifest_batch = tiny_batch(server.root / "concurrent")
    zipped = zip_folder(tiny_batch(tmp_path / "zipped", shift=2), tmp_path / "zipped.zip")
    answers = {}

    def by_manifest():
        answers["manifest"] = client.post(server.url + "/api/jobs", headers=server.headers(),
                                          json={"manifest": str(manifest_batch / "batch.toml"),
                                                "gate": "street-scenes"})

    def by_zip():
        answers["zip"] = client.post(server.url + "/api/jobs", content=zipped.read_bytes(),
                                     params={"gate": "street-scenes", "baseline": "latest", "max_drop": "0.05"},
                                     headers={**server.headers(), "content-type": "application/zip"})

    threads = [threading.Thread(target=by_manifest), threading.Thread(target=by_zip)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert {k: v.status_code for k, v in answers.items()} == {"manifest": 202, "zip": 202}
    jobs = [wait_job(client, server, a.json()["id"]) for a in answers.values()]
    assert [j["state"] for j in jobs] == ["done", "done"], jobs
    runs = client.get(server.url + "/api/runs").json()
    assert runs["total"] == before + 2
    stored = {r["run_id"]: r for r in runs["runs"]}
    for job in jobs:
        assert job["result"]["run_id"] in stored and job["result"]["verdict"] in ("passed", "failed")
        assert stored[job["result"]["run_id"]]["verdict"] == job["result"]["verdict"]
        assert client.get(server.url + job["links"]["page"]).status_code == 200
    assert "done" in client.get(server.url + "/jobs").text


def test_a_queued_job_can_be_cancelled_and_a_bad_batch_fails_with_its_error(server, client):
    bad = server.root / "bad"
    bad.mkdir()
    (bad / "alice.json").write_text("{not json")
    (bad / "batch.toml").write_text('[[exports]]\nannotator = "alice"\npath = "alice.json"\n'
                                    '[[exports]]\nannotator = "bob"\npath = "alice.json"\n')
    first = client.post(server.url + "/api/jobs", json={"manifest": str(bad / "batch.toml")}, headers=server.headers())
    second = client.post(server.url + "/api/jobs", json={"manifest": str(bad / "batch.toml")}, headers=server.headers())
    cancelled = client.post(f"{server.url}/api/jobs/{second.json()['id']}/cancel", headers=server.headers()).json()
    assert cancelled["state"] in ("cancelled", "running")
    failed = wait_job(client, server, first.json()["id"])
    assert failed["state"] == "failed" and "alice.json" in failed["error"]
    assert wait_job(client, server, second.json()["id"])["state"] in ("cancelled", "failed")
    assert client.post(server.url + "/api/jobs/job-nope/cancel", headers=server.headers()).status_code == 404


# --- a killed server ------------------------------------------------------------------------------------

def test_a_server_killed_during_a_job_restarts_with_the_job_failed_and_the_store_intact(seeded, tmp_path, client):
    import shutil

    from qa import store

    db = tmp_path / "qa.duckdb"
    shutil.copy(seeded["db"], db)
    roots = tmp_path / "roots"
    batch = tiny_batch(roots / "b")
    with store.open(db) as s:
        before = s.runs()
    server = Server(tmp_path, db, roots=[roots], env={"QA_TEST_PAUSE_IN_WRITE": "60"}).start()
    try:
        killed = client.post(server.url + "/api/jobs", json={"manifest": str(batch / "batch.toml")},
                             headers=server.headers()).json()["id"]
        queued = client.post(server.url + "/api/jobs", json={"manifest": str(batch / "batch.toml")},
                             headers=server.headers()).json()["id"]
        log = server.jobs_dir / killed / "log.txt"
        deadline = time.monotonic() + 120
        while not (log.exists() and "inside the write transaction" in log.read_text()):
            assert time.monotonic() < deadline, server.log.read_text()
            time.sleep(0.1)
        assert workers_alive(server.jobs_dir)
        server.kill()
        deadline = time.monotonic() + 20
        while workers_alive(server.jobs_dir):  # the worker ends itself when the server is gone
            assert time.monotonic() < deadline, "the worker outlived its server"
            time.sleep(0.1)
        with store.open(db) as s:  # the half-written run is not there; every earlier run is
            assert s.runs().equals(before)
        server.env = {}
        server.start()
        job = client.get(f"{server.url}/api/jobs/{killed}").json()
        assert job["state"] == "failed" and "server stopped" in job["error"]
        assert wait_job(client, server, queued)["state"] == "done"  # the queued one ran after the restart
        runs = client.get(server.url + "/api/runs").json()
        assert runs["total"] == len(before) + 1 and job["run_id"] not in {r["run_id"] for r in runs["runs"]}
    finally:
        server.stop()
    assert not workers_alive(server.jobs_dir)
