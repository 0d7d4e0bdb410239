"""The report in a real browser: sections visible, matrix and overlays drawn, sorting works, no network."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qa.overlay import data_uri, encode_image, render_overlay
from qa.report import ReportInput, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")

EVIL = "<script>alert(1)</script>"


def _report(tmp_path: Path) -> Path:
    annotators = ["alice", "bob", EVIL]
    rng = np.random.default_rng(1)
    rows = []
    for a, b in itertools.combinations(annotators, 2):
        key = "|".join(sorted((a, b)))
        rows += [("annotator_pair", key, "mask_iou_mean", float(rng.uniform(0.5, 1)), 12),
                 ("annotator_pair", key, "matched", 12.0, 12)]
    rows += [("batch", "", "mask_iou_mean", 0.8, 36), ("category", EVIL, "mask_iou_mean", 0.7, 4)]
    scores = pd.DataFrame(rows, columns=["scope", "key", "metric", "value", "n"])
    image_pairs = pd.DataFrame({
        "image": [f'img"{i}".jpg' for i in range(12)],
        "annotator_a": "alice", "annotator_b": "bob",
        "mask_iou_mean": rng.uniform(0, 1, 12),
    })
    crops = [[(np.ones((40, 60), np.uint8), (10 + 5 * k, 20))] for k in range(3)]
    uri = data_uri(encode_image(render_overlay(128, 256, crops)))
    gallery = [{"image": 'img"0".jpg', "reason": "mean IoU 0.41 (alice vs bob)", "uri": uri, "width": 256,
                "height": 128}]
    findings = pd.DataFrame([{"code": "VTX001", "severity": "warning", "message": f"category {EVIL}",
                              "annotator": "bob", "image": 'img"0".jpg', "file": "b.json",
                              "where": "annotations[3] id=5"}])
    data = ReportInput(title="browser test", annotators=annotators, meta={"images": 12, "objects": 40},
                       scores=scores, findings=findings, image_pairs=image_pairs, gallery=gallery)
    return write_report(data, tmp_path / "report.html")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def test_report_renders_sorts_and_stays_offline(browser, tmp_path):
    path = _report(tmp_path)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests, dialogs = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(path.as_uri())
    for section in ("overview", "matrix", "categories", "boundaries", "violations", "worst", "images", "settings"):
        assert page.locator(f"section#{section}").is_visible()
    assert page.locator("#agreement-matrix tbody tr").count() == 3
    image = page.locator("#gallery img").first
    assert image.is_visible()
    assert page.evaluate("(img) => img.naturalWidth", image.element_handle()) == 256
    # the hostile annotator and category names are shown as text, never run
    assert dialogs == []
    assert page.locator("#agreement-matrix").inner_text().count(EVIL) >= 1
    # sorting: click the IoU header twice -> descending
    header = page.locator("#image-table thead th", has_text="mask_iou_mean")
    header.click()
    header.click()
    values = [float(v) for v in page.locator("#image-table tbody tr td:nth-child(3)").all_inner_texts()]
    assert values == sorted(values, reverse=True)
    # filtering
    page.fill("input[data-table=image-table]", 'img"3"')
    assert page.locator("#image-table tbody tr:visible").count() == 1
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
