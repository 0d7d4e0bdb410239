"""The service's pages in a real browser: Debian's chromium driven by Playwright, against the real server.

A walk from the runs page to a run, to an annotator's trends and to a category's boundaries: every page
renders its tables and charts, no request leaves the server (each is intercepted), no script runs that
should not (hostile names), and the table sorting script served by the server works under its CSP.
"""

from __future__ import annotations

import shutil
from urllib.parse import quote

import pytest

from common import EVIL_CATEGORY
from servekit import EVIL_ANNOTATOR, Server, seed_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test "
                                                          "installs it when run as root)"),
              pytest.mark.timeout(600)]
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve-browser")
    seeded = seed_store(folder)
    with Server(folder, seeded["db"]) as s:
        s.runs = seeded["runs"]
        yield s


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


class _View:
    """A page whose requests are all recorded; any request not to the server is refused."""

    def __init__(self, browser, server):
        self.server, self.requests, self.dialogs, self.errors = server, [], [], []
        self.context = browser.new_context(viewport={"width": 1360, "height": 900})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _route(self, route):
        url = route.request.url
        self.requests.append(url)
        if url.startswith(self.server.url + "/") or url.startswith("data:"):
            route.continue_()
        else:
            route.abort()

    def left_the_server(self):
        return [u for u in self.requests if not (u.startswith(self.server.url + "/") or u.startswith("data:"))]


def test_walk_from_the_runs_page_to_an_annotators_trend(browser, server, tmp_path):
    view = _View(browser, server)
    page = view.page
    page.goto(server.url + "/")
    rows = page.locator("#runs-table tbody tr")
    assert rows.count() == 3
    # the oldest gated run (seq 1), then its report sections
    page.locator("#runs-table tbody tr").last.locator("a").first.click()
    page.wait_for_url(f"**/runs/{server.runs[0]}")
    for section in ("overview", "agreement", "categories", "boundaries", "violations", "review", "images",
                    "settings"):
        assert page.locator(f"section#{section}").is_visible(), section
    assert page.locator("table.agreement-matrix tbody tr").count() == 3
    # sorting works: the page's script is the server's own, allowed by its CSP
    header = page.locator("#image-table thead th", has_text="agreement").first
    header.click()
    assert "sorted-" in (header.get_attribute("class") or "")
    # an annotator from the matrix: its trends, drawn inline
    page.locator("table.agreement-matrix tbody th a", has_text="alice").click()
    page.wait_for_url("**/annotators/alice")
    charts = page.locator("svg.trend")
    assert charts.count() >= 4
    for k in range(charts.count()):
        chart = charts.nth(k)
        chart.scroll_into_view_if_needed()
        assert chart.is_visible() and chart.bounding_box()["width"] > 300
        assert chart.locator("circle").count() >= 1
    assert page.locator("#trend-mask_iou_mean polyline").count() == 1
    page.screenshot(path=str(tmp_path / "annotator.png"), full_page=True)
    # a point links to its run
    page.locator("#trend-mask_iou_mean a").first.click()
    page.wait_for_url("**/runs/**")
    # a category's boundaries across runs
    page.goto(server.url + "/categories/road")
    assert page.locator("#trend-category-pairs").is_visible()
    assert page.locator("#category-pair-table tbody tr").count() >= 1
    page.goto(server.url + f"/compare?a={server.runs[0]}&b={server.runs[1]}")
    assert page.locator("#compare-scores tbody tr").count() >= 1 and page.locator("#closing").is_visible()
    assert view.left_the_server() == [] and view.dialogs == [] and view.errors == []
    assert any(u.endswith("/static/report.js") for u in view.requests)
    view.context.close()


def test_hostile_names_run_nothing_in_the_browser(browser, server):
    view = _View(browser, server)
    page = view.page
    page.add_init_script("window.__ran = 0; window.alert = function () { window.__ran += 1; };")
    for path in (f"/runs/{server.runs[2]}", "/categories/" + quote(EVIL_CATEGORY, safe=""),
                 "/annotators/" + quote(EVIL_ANNOTATOR, safe=""), "/annotators", "/categories"):
        page.goto(server.url + path)
        assert page.evaluate("window.__ran") == 0, path
        assert page.locator("img").count() == 0, path
    page.goto(server.url + f"/runs/{server.runs[2]}")
    assert EVIL_CATEGORY in page.locator("#category-table").inner_text()
    assert EVIL_ANNOTATOR in page.locator("#annotator-table").inner_text()
    assert view.left_the_server() == [] and view.dialogs == []
    view.context.close()
