"""Real reports in a real browser: Debian's chromium driven by Playwright.

Two reports are opened: a ``qa synth`` street-scene batch of three annotators written by ``qa.run`` (from
memory), and an export with hostile names written by ``qa report`` (from the store). The tests check
that the sections, the agreement matrix and the overlay pictures are present and visible, that sorting
and filtering work, that nothing is requested from the network and nothing runs that should not, and
save a full-page screenshot. ``make test`` installs chromium when it is missing (as root).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import qa
from common import EVIL_CATEGORY, QUOTED_FILE, hostile_exports, run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test "
                                                          "installs it when run as root)")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]
SECTIONS = ("overview", "agreement", "categories", "boundaries", "violations", "worst", "images", "settings")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def synth_report(tmp_path_factory) -> Path:
    """The report ``qa.run`` writes for a 4-image street-scene batch of three annotators."""
    from qa.synth import synthesize

    folder = tmp_path_factory.mktemp("browser")
    synthesize(folder / "batch", images=4, size=(192, 384), annotators=3, seed=5, workers=1)
    run = qa.run(manifest=folder / "batch" / "batch.toml", db=folder / "qa.duckdb", workers=1,
                 gate="street-scenes", report=folder / "report.html")
    return Path(run.report)


class _Page:
    """A page with every request, dialog and console error recorded; requests off the page are refused."""

    def __init__(self, browser, path: Path):
        self.requests, self.dialogs, self.errors = [], [], []
        self.context = browser.new_context(viewport={"width": 1360, "height": 900})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.as_uri())

    def _route(self, route):
        url = route.request.url
        self.requests.append(url)
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            route.abort()

    def left_the_page(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(("file:", "data:"))]


def _column(page, table: str, header: str) -> list[float]:
    headers = page.locator(f"#{table} thead th").all_inner_texts()
    index = [h.strip() for h in headers].index(header) + 1
    texts = page.locator(f"#{table} tbody tr:visible td:nth-child({index})").all_inner_texts()
    return [float(t.replace(",", "")) if t.strip() not in ("–", "") else float("nan") for t in texts]


def test_synth_report_shows_every_section_sorts_filters_and_stays_offline(browser, synth_report, tmp_path):
    view = _Page(browser, synth_report)
    page = view.page
    for section in SECTIONS:
        assert page.locator(f"section#{section}").is_visible(), section
        assert page.locator(f"section#{section} h2").inner_text()
    # the verdict of the street-scenes pack's gate, and its checks
    assert page.locator("#verdict").is_visible() and page.locator("#verdict").inner_text().startswith("Gate ")
    assert page.locator("#gate-checks tbody tr").count() >= 1
    # the agreement matrix: three annotators, coloured cells with the pair figures
    matrix = page.locator("table.agreement-matrix")
    assert matrix.is_visible()
    # three annotators and the consensus column
    assert matrix.locator("tbody tr").count() == 3 and matrix.locator("tbody td").count() == 12
    cell = matrix.locator("tbody tr").nth(0).locator("td").nth(1)
    assert 0.0 < float(cell.inner_text()) <= 1.0 and "background" in cell.get_attribute("style")
    # the overlay pictures, decoded and on screen, with their legend
    pictures = page.locator("#gallery img")
    assert pictures.count() == 4
    for k in range(4):
        image = pictures.nth(k)
        image.scroll_into_view_if_needed()
        assert image.is_visible()
        assert page.evaluate("(img) => img.complete && img.naturalWidth", image.element_handle()) == 384
    assert page.locator("#legend").is_visible() and page.locator("#legend .swatch").count() == 5
    # click a picture: it spans the gallery, pixels enlarged
    card = page.locator("#gallery .card").first
    before = pictures.first.bounding_box()["width"]
    pictures.first.click()
    assert "big" in card.get_attribute("class") and pictures.first.bounding_box()["width"] > 1.5 * before
    # sorting: the per-image table, by agreement, both ways; missing values stay last
    header = page.locator("#image-table thead th", has_text="agreement").first
    header.click()
    values = _column(page, "image-table", "agreement")
    assert values == sorted(values) and len(values) == 4
    header.click()
    assert _column(page, "image-table", "agreement") == sorted(values, reverse=True)
    # and a text column
    page.locator("#rule-table thead th", has_text="rule").first.click()
    page.locator("#rule-table thead th", has_text="rule").first.click()
    codes = page.locator("#rule-table tbody tr td:nth-child(1)").all_inner_texts()
    assert codes == sorted(codes, reverse=True) and len(codes) > 3
    # filtering
    box = page.locator("input[data-table=rule-table]")
    box.fill("VTX")
    shown = page.locator("#rule-table tbody tr:visible td:nth-child(1)").all_inner_texts()
    assert shown and all(code.startswith("VTX") for code in shown) and len(shown) < len(codes)
    box.fill("")
    # a rule's explanation opens
    page.locator("details.rule summary").first.click()
    assert page.locator("details.rule .why-matters").first.is_visible()
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")
    assert view.left_the_page() == [] and view.dialogs == [] and view.errors == []
    view.context.close()


def test_hostile_names_show_as_text_from_the_store(browser, tmp_path, capsys):
    alice, bob = hostile_exports(tmp_path / "exports")
    db = tmp_path / "qa.duckdb"
    qa.run(f"alice={alice}", f"bob={bob}", db=db, workers=1)
    target = tmp_path / "report.html"
    code, _, _ = run_cli(["report", "latest", "--db", str(db), "-o", str(target)], capsys)
    assert code == 0
    view = _Page(browser, target)
    page = view.page
    assert view.dialogs == [] and view.errors == []  # no alert ran
    assert EVIL_CATEGORY in page.locator("#category-table").inner_text()
    caption = page.locator("#gallery .img-name").first
    assert caption.is_visible() and caption.inner_text() == QUOTED_FILE
    assert page.locator("#gallery img").first.get_attribute("alt") == f"overlay of {QUOTED_FILE}"
    assert page.evaluate("() => document.querySelectorAll('script').length") == 1
    page.screenshot(path=str(tmp_path / "hostile.png"), full_page=True)
    assert view.left_the_page() == []
    view.context.close()
