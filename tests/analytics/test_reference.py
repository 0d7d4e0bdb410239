"""Each annotator against a reference: PairPlan, the figures and their orientation, honeypots, panoptic PQ
pinned to panopticapi's convention, the consensus of the others, and the gate per annotator."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image as PILImage

import qa
from common import run_cli, write_json
from qa.analytics.reference import score_against_reference
from qa.engine.compare import PairPlan, compare_batch


def _mask_png(path, mask):
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path)


def _disk(h, w, cx, cy, r):
    yy, xx = np.mgrid[:h, :w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def _masks(tmp_path, name, shapes):
    for key, mask in shapes.items():
        _mask_png(tmp_path / name / f"{key}.png", mask)
    return f"{name}={tmp_path / name}"


def _coco(tmp_path, name, images, objects):
    """A COCO export: ``images`` {file: (w, h)}, ``objects`` [(file, category, polygon)]."""
    ids = {f: k + 1 for k, f in enumerate(images)}
    cats = sorted({c for _, c, _ in objects}) or ["thing"]
    doc = {"images": [{"id": ids[f], "file_name": f, "width": w, "height": h} for f, (w, h) in images.items()],
           "categories": [{"id": k + 1, "name": c} for k, c in enumerate(cats)],
           "annotations": [{"id": k + 1, "image_id": ids[f], "category_id": cats.index(c) + 1,
                            "segmentation": [list(map(float, np.asarray(p).ravel()))], "iscrowd": 0,
                            "area": 1.0, "bbox": [0, 0, 1, 1]} for k, (f, c, p) in enumerate(objects)]}
    path = tmp_path / f"{name}.json"
    write_json(path, doc)
    return f"{name}={path}"


def _square(x, y, s):
    return [[x, y], [x + s, y], [x + s, y + s], [x, y + s]]


def test_pair_plan_compares_annotators_with_the_reference_and_pairs_elsewhere():
    plan = PairPlan({"alice": "gold", "bob": "gold"})
    assert plan.image_pairs(["gold", "bob", "alice"]) == [("alice", "gold"), ("bob", "gold")]
    assert plan.image_pairs(["alice", "bob"]) == [("alice", "bob")]  # no reference here: pairwise
    assert plan.image_pairs(["gold", "alice", "bob"]) != PairPlan({"alice": "gold"}, pairs="all").image_pairs(
        ["gold", "alice", "bob"])
    assert PairPlan({"alice": "gold"}, pairs="all").image_pairs(["alice", "bob", "gold"]) == [
        ("alice", "bob"), ("alice", "gold"), ("bob", "gold")]


def test_figures_are_turned_to_the_annotator_side(tmp_path):
    """gold has 3 squares; alice draws 2 of them and one of her own; names sort both ways round the
    reference ('alice' < 'gold' < 'zed'), and the figures are the same."""
    images = {"a.png": (100, 100)}
    gold = [("a.png", "cell", _square(5, 5, 20)), ("a.png", "cell", _square(50, 5, 20)),
            ("a.png", "cell", _square(5, 50, 20))]
    drawn = [("a.png", "cell", _square(5, 5, 20)), ("a.png", "cell", _square(50, 5, 20)),
             ("a.png", "cell", _square(60, 60, 20))]
    specs = [_coco(tmp_path, "gold", images, gold), _coco(tmp_path, "alice", images, drawn),
             _coco(tmp_path, "zed", images, drawn)]
    batch = qa.load(*specs)
    reference_of = {"alice": "gold", "zed": "gold"}
    comparison = compare_batch(batch, workers=1, plan=PairPlan(reference_of))
    assert sorted(comparison.scores.query("scope == 'annotator_pair'")["key"].unique()) == ["alice|gold", "gold|zed"]
    result = score_against_reference(comparison, reference_of, reference="gold", bootstrap=0)
    table = result.annotators.set_index("annotator")
    for name in ("alice", "zed"):
        row = table.loc[name]
        assert (row["matched"], row["missing"], row["extra"]) == (2, 1, 1)
        assert row["precision"] == pytest.approx(2 / 3) and row["recall"] == pytest.approx(2 / 3)
        assert row["f1"] == pytest.approx(4 / 6) and row["label_accuracy"] == 1.0
        assert row["pq"] == pytest.approx(2 * 1.0 / (2 + 0.5 + 0.5))
        assert row["images"] == 1
    scores = result.scores.set_index(["scope", "key", "metric"])["value"]
    assert scores[("annotator", "alice", "f1")] == pytest.approx(4 / 6)
    assert scores[("category", "cell", "missing")] == 2 and scores[("image", "a.png", "extra")] == 2


def test_honeypots_score_annotators_on_the_reference_images_only(tmp_path):
    """The reference labels 2 of 4 images: annotators are scored on those 2, and compared pairwise on the
    other 2."""
    rng = np.random.default_rng(3)
    shapes = {f"im{k}": _disk(40, 40, 20 + rng.integers(-3, 4), 20, 10) for k in range(4)}
    gold = _masks(tmp_path, "gold", {k: v for k, v in shapes.items() if k in ("im0", "im2")})
    alice = _masks(tmp_path, "alice", shapes)
    bob = _masks(tmp_path, "bob", {k: np.roll(v, 2, axis=1) for k, v in shapes.items()})
    run = qa.run(gold, alice, bob, reference="gold", store=False, pack=None, workers=1)
    pairs = run.comparison.image_pairs
    assert sorted(pairs[pairs["pair"] == "alice|bob"]["image"].astype(str)) == ["im1", "im3"]
    assert sorted(pairs[pairs["pair"] == "alice|gold"]["image"].astype(str)) == ["im0", "im2"]
    table = run.reference.annotators.set_index("annotator")
    assert table.loc["alice", "images"] == 2 and table.loc["bob", "images"] == 2
    assert table.loc["alice", "mask_iou_mean"] == 1.0 and table.loc["bob", "mask_iou_mean"] < 1.0
    scores = run.scores.set_index(["scope", "key", "metric"])
    assert scores.loc[("annotator", "bob", "images"), "value"] == 2
    assert ("annotator", "gold", "mask_iou_mean") not in scores.index  # the reference is not scored
    assert run.settings["reference"] == "gold"
    # --pairs all: annotator pairs on the reference images too
    every = qa.run(gold, alice, bob, reference="gold", pairs="all", store=False, pack=None, workers=1)
    ip = every.comparison.image_pairs
    assert sorted(ip[ip["pair"] == "alice|bob"]["image"].astype(str)) == ["im0", "im1", "im2", "im3"]
    assert every.reference.annotators.set_index("annotator").loc["bob", "images"] == 2


def test_bootstrap_interval_over_images(tmp_path):
    rng = np.random.default_rng(0)
    gold, alice = {}, {}
    for k in range(12):
        gold[f"im{k:02d}"] = _disk(48, 48, 24, 24, 12)
        alice[f"im{k:02d}"] = _disk(48, 48, 24 + rng.integers(-6, 7), 24, 12)
    run = qa.run(_masks(tmp_path, "gold", gold), _masks(tmp_path, "alice", alice), reference="gold", store=False,
                 pack=None, workers=1)
    row = run.reference.annotators.iloc[0]
    assert row["mask_iou_mean_ci_low"] < row["mask_iou_mean"] < row["mask_iou_mean_ci_high"]
    again = qa.run(_masks(tmp_path, "gold", gold), _masks(tmp_path, "alice", alice), reference="gold",
                   store=False, pack=None, workers=1).reference.annotators.iloc[0]
    assert again["mask_iou_mean_ci_low"] == row["mask_iou_mean_ci_low"]  # seeded


def _panoptic(tmp_path, name, id_map, segments):
    """A one-image COCO panoptic export; ``segments`` [(id, category, iscrowd)]."""
    folder = tmp_path / name
    folder.mkdir()
    rgb = np.stack([id_map % 256, (id_map // 256) % 256, id_map // 65536], axis=-1).astype(np.uint8)
    PILImage.fromarray(rgb).save(folder / "p.png")
    h, w = id_map.shape
    doc = {"images": [{"id": 1, "file_name": "p.jpg", "width": w, "height": h}],
           "categories": [{"id": 1, "name": "car", "isthing": 1}, {"id": 2, "name": "road", "isthing": 0}],
           "annotations": [{"image_id": 1, "file_name": "p.png", "segments_info": [
               {"id": int(i), "category_id": c, "iscrowd": int(crowd), "area": int((id_map == i).sum()),
                "bbox": [0, 0, 1, 1]} for i, c, crowd in segments]}]}
    write_json(tmp_path / f"{name}.json", doc)
    return f"{name}={tmp_path / (name + '.json')}", doc["annotations"][0]["segments_info"]


def test_reference_pq_is_panopticapis_with_the_reference_as_ground_truth(tmp_path):
    """Void and a crowd region on the reference side: the reference-form PQ (panopticapi's pq_compute) and
    the symmetric form differ here, and the run's figure is the former."""
    h, w = 30, 40
    ref = np.zeros((h, w), np.int64)
    ref[:, :] = 9            # road
    ref[2:12, 2:12] = 1      # car
    ref[15:25, 5:15] = 2     # car
    ref[2:10, 25:35] = 3     # crowd car region
    ref[26:, 30:] = 0        # void
    other = np.full((h, w), 7, np.int64)
    other[3:12, 2:12] = 4    # car, IoU 0.9
    other[14:26, 4:16] = 0   # void over the second car: a FN for panopticapi, ignored by the symmetric form
    other[3:9, 26:34] = 6    # a car inside the reference's crowd region: not a FP for panopticapi
    other[24:, 28:] = 8      # a car mostly in the reference's void: not a FP for panopticapi
    gold_spec, gold_seg = _panoptic(tmp_path, "gold", ref, [(1, 1, 0), (2, 1, 0), (3, 1, 1), (9, 2, 0)])
    ann_spec, ann_seg = _panoptic(tmp_path, "zoe", other, [(4, 1, 0), (6, 1, 0), (7, 2, 0), (8, 1, 0)])
    run = qa.run(gold_spec, ann_spec, reference="gold", store=False, pack=None, workers=1, analytics=False)
    expected = qa.metrics.panoptic_quality(ref, other, categories=(gold_seg, ann_seg), compat="panopticapi")
    symmetric = qa.metrics.panoptic_quality(ref, other, categories=(gold_seg, ann_seg))
    assert expected["all"]["pq"] != pytest.approx(symmetric["all"]["pq"])
    row = run.reference.annotators.set_index("annotator").loc["zoe"]
    assert row["pq"] == pytest.approx(expected["all"]["pq"], abs=1e-12)
    assert row["sq"] == pytest.approx(expected["all"]["sq"], abs=1e-12)
    assert row["rq"] == pytest.approx(expected["all"]["rq"], abs=1e-12)
    assert run.comparison.settings["pq_form"] == "reference"
    # and without a reference the engine keeps the symmetric form
    plain = qa.run(gold_spec, ann_spec, store=False, pack=None, workers=1, analytics=False)
    pair = plain.scores.set_index(["scope", "key", "metric"]).loc[("annotator_pair", "gold|zoe", "pq"), "value"]
    assert pair == pytest.approx(symmetric["all"]["pq"], abs=1e-12)


def test_consensus_of_the_others_is_the_reference(tmp_path):
    """Three annotators agree on a disk, a fourth draws it shifted and adds one: it alone scores below 1."""
    base = {f"im{k}": _disk(40, 40, 20, 20, 9) for k in range(3)}
    specs = [_masks(tmp_path, n, base) for n in ("a", "b", "c")]
    specs.append(_masks(tmp_path, "d", {k: np.roll(v, 3, axis=1) for k, v in base.items()}))
    run = qa.run(*specs, reference="consensus", store=False, pack=None, workers=1)
    table = run.reference.annotators.set_index("annotator")
    assert table.loc["d", "mask_iou_mean"] < 1.0
    for name in ("a", "b", "c"):
        assert table.loc[name, "mask_iou_mean"] == 1.0 and table.loc[name, "f1"] == 1.0
    assert table.loc["a", "reference"] == "consensus~a"
    assert run.settings["reference"] == "consensus of the others (vote)"


def test_gate_per_annotator_against_the_reference(tmp_path, capsys):
    rng = np.random.default_rng(1)
    gold, good, bad = {}, {}, {}
    for k in range(4):
        gold[f"im{k}"] = _disk(40, 40, 20, 20, 9)
        good[f"im{k}"] = gold[f"im{k}"]
        bad[f"im{k}"] = gold[f"im{k}"] if k < 2 else np.zeros((40, 40), bool) | _disk(40, 40, 6, 6, 3)
    pack = tmp_path / "gate.toml"
    pack.write_text('name = "g"\n[gate]\nf1 = { min = 0.9, per = "annotator" }\n', encoding="utf-8")
    junit = tmp_path / "junit.xml"
    code, out, err = run_cli(["run", "--reference", "gold", _masks(tmp_path, "gold", gold),
                              _masks(tmp_path, "good", good), _masks(tmp_path, "bad", bad), "--gate", str(pack),
                              "--junit", str(junit), "--no-store", "--no-report", "--workers", "1"], capsys)
    assert code == 1, err
    assert "f1[annotator=bad] >= 0.9" in out and "against the reference (gold)" in out
    xml = junit.read_text(encoding="utf-8")
    assert xml.count("<testcase") == 2 and 'name="f1[annotator=good] &gt;= 0.9"' in xml


def test_unknown_reference_is_a_config_error(tmp_path, capsys):
    code, out, err = run_cli(["run", "--reference", "gold", _masks(tmp_path, "a", {"x": _disk(9, 9, 4, 4, 2)}),
                              _masks(tmp_path, "b", {"x": _disk(9, 9, 4, 4, 2)}), "--no-store", "--no-report"],
                             capsys)
    assert code == 2 and "the reference 'gold' is not an annotator of the batch (annotators: a, b)" in err


def test_dashed_layers_draw_every_other_run_of_outline():
    from qa.overlay import render_overlay

    square = np.ones((20, 20), np.uint8)
    solid = render_overlay(40, 40, [[(square, (5, 5), 1)], [(square, (10, 10), 1)]])
    dashed = render_overlay(40, 40, [[(square, (5, 5), 1)], [(square, (10, 10), 1)]], dashed=(1,))
    colour = solid[29, 20]  # the second layer's bottom edge, away from the first one's
    on_solid = (solid == colour).all(axis=-1).sum()
    on_dashed = (dashed == colour).all(axis=-1).sum()
    assert 0 < on_dashed < on_solid and (dashed[5:25, 5] == solid[5:25, 5]).all()  # layer 0 untouched


def test_the_report_has_a_section_against_the_reference_from_the_run_and_the_store(tmp_path, capsys):
    gold = {f"im{k}": _disk(48, 48, 24, 24, 10) for k in range(3)}
    off = {k: np.roll(v, 3, axis=0) for k, v in gold.items()}
    db, first, second = tmp_path / "qa.duckdb", tmp_path / "run.html", tmp_path / "stored.html"
    code, _, err = run_cli(["run", "--reference", "gold", _masks(tmp_path, "gold", gold), _masks(tmp_path, "bob", off),
                            "--db", str(db), "--report", str(first), "--workers", "1"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["report", "--db", str(db), "-o", str(second)], capsys)
    assert code == 0, err
    for page in (first, second):
        html = page.read_text(encoding="utf-8")
        assert "<h2>Against the reference</h2>" in html and 'id="reference-table"' in html
        assert html.count('alt="bob against gold on im') == 3  # the worst objects, reference dashed
    from qa import store

    with store.open(db) as s:
        rows = s.sql("SELECT scope, key, metric, value, n FROM scores WHERE metric IN ('f1', 'images') "
                     "AND scope = 'annotator'")
        settings = s.run("latest")["settings"]
    assert rows.set_index("metric").loc["images", "value"] == 3 and settings["reference"] == "gold"


def test_with_two_annotators_each_is_the_others_reference(tmp_path):
    base = {"im0": _disk(40, 40, 20, 20, 9)}
    run = qa.run(_masks(tmp_path, "a", base), _masks(tmp_path, "b", {"im0": np.roll(base["im0"], 2, axis=1)}),
                 reference="consensus", store=False, pack=None, workers=1)
    table = run.reference.annotators.set_index("annotator")
    assert table.loc["a", "reference"] == "b" and table.loc["b", "reference"] == "a"
    assert table.loc["a", "matched"] == 1 and 0.5 < table.loc["a", "mask_iou_mean"] < 1.0


def test_an_annotator_the_reference_never_saw_is_a_finding(tmp_path):
    disk = _disk(40, 40, 20, 20, 9)
    run = qa.run(_masks(tmp_path, "gold", {"im0": disk}), _masks(tmp_path, "alice", {"im0": disk, "im1": disk}),
                 _masks(tmp_path, "carol", {"im1": disk}), reference="gold", store=False, pack=None, workers=1)
    (finding,) = [f for f in run.batch.findings if f.code == "ALN009"]
    assert finding.annotator == "carol" and finding.severity == "warning"
    assert "carol labels none of the 1 image the reference gold labels" in finding.message
    assert list(run.reference.annotators["annotator"]) == ["alice"]
