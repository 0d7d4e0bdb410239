"""Krippendorff's alpha: against the krippendorff package, independently decoded pixel labels, and
kalphacv's object-level alpha (with the one difference explained)."""

from __future__ import annotations

import copy
import itertools
import json
import warnings

import numpy as np
import pytest
from common import make_batch, make_object, square, write_json

import qa
from qa.analytics.alpha import (alpha_from_counts, bootstrap_interval, image_labels, nominal_alpha, object_alpha,
                                pixel_alpha)
from qa.engine.compare import compare_batch

krippendorff = pytest.importorskip("krippendorff")


# --- the figure -----------------------------------------------------------------------------------------

def test_krippendorffs_worked_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal data with missing values
    data = np.array([[1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
                     [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
                     [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
                     [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan]])
    assert round(nominal_alpha(data), 3) == 0.743


@pytest.mark.parametrize("seed", range(30))
def test_nominal_alpha_equals_the_krippendorff_package(seed):
    rng = np.random.default_rng(seed)
    m, n, k = rng.integers(2, 6), rng.integers(3, 60), rng.integers(2, 6)
    data = rng.integers(0, k, size=(m, n)).astype(float)
    data[rng.random((m, n)) < 0.25] = np.nan
    valid = ~np.isnan(data)
    pairable = valid.sum(axis=0) >= 2
    if len(np.unique(data[:, pairable][valid[:, pairable]])) < 2:
        assert np.isnan(nominal_alpha(data))
        return
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert nominal_alpha(data) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_alpha_bounds_and_identity():
    assert nominal_alpha([[1, 2, 3, 1], [1, 2, 3, 1]]) == 1.0
    assert np.isnan(nominal_alpha([[1, 1, 1], [1, 1, 1]]))  # one label: no expected disagreement
    assert alpha_from_counts(4, 2, [3, 1]) == 0.0  # units (1, 1) and (1, 2)
    assert nominal_alpha([[1, 2], [2, 1]]) < 0  # systematic disagreement is below chance


# --- pixel labels -----------------------------------------------------------------------------------------

def _three_annotators():
    # 40 x 30 image; alice and bob agree on a car, carol shifts it; bob adds a person over the car
    # (painted later, so it wins where they overlap); carol labels an extra object far away
    objs = {
        "alice": [make_object(square(5, 5, 10), category="car")],
        "bob": [make_object(square(5, 5, 10), category="car"), make_object(square(12, 8, 6), category="person")],
        "carol": [make_object(square(7, 5, 10), category="car"), make_object(square(30, 20, 5), category="car")],
    }
    return make_batch(objs, size=(40, 30))


def _full_labels(batch, codes):
    """Each annotator's label map over the whole image, painted independently with pycocotools."""
    from pycocotools import mask as mask_utils

    from common import rle_to_mask

    out = []
    for name in sorted(batch.annotators):
        img = next(iter(batch.images.values()))
        labels = np.zeros((img.height, img.width), np.int64)
        for o in batch.exports[name].objects:
            rle = mask_utils.merge(mask_utils.frPyObjects([p.ravel().tolist() for p in o.polygons],
                                                          img.height, img.width))
            labels[rle_to_mask(rle).astype(bool)] = codes[o.category]
        out.append(labels.ravel())
    return np.stack(out)


def test_pixel_alpha_equals_alpha_over_every_pixel():
    batch = _three_annotators()
    codes = {c: k + 1 for k, c in enumerate(batch.categories)}
    full = _full_labels(batch, codes)
    result = pixel_alpha(batch, bootstrap=0)
    assert result.batch["alpha"].iloc[0] == pytest.approx(nominal_alpha(full), rel=1e-12)
    assert result.batch["pixels"].iloc[0] == 40 * 30
    names = sorted(batch.annotators)
    for (i, a), (j, b) in itertools.combinations(enumerate(names), 2):
        row = result.pairs.set_index("pair").loc[f"{a}|{b}"]
        assert row["alpha"] == pytest.approx(nominal_alpha(full[[i, j]]), rel=1e-12)
    # the window covers the objects only; the rest is counted as agreed background
    _, labels, window, outside = image_labels(batch, "img.png", codes=codes)
    assert outside == 40 * 30 - (window[2] - window[0]) * (window[3] - window[1]) > 0


def _assert_stats_give_alpha_of_every_pixel(labels: np.ndarray, k: int) -> None:
    """Alpha from :func:`image_stats` of ``labels`` (annotator, y, x; -1 no value) equals alpha over every
    pixel as a unit, for all annotators and for each pair."""
    from qa.analytics.alpha import image_stats

    m = len(labels)
    names = [f"r{i}" for i in range(m)]
    stats = image_stats(names, labels, 0, k)
    data = np.where(labels >= 0, labels, np.nan).reshape(m, -1)
    assert alpha_from_counts(stats.n, stats.diagonal, stats.marginals) == pytest.approx(nominal_alpha(data),
                                                                                         rel=1e-12)
    for i, j in itertools.combinations(range(m), 2):
        n, d, marg = stats.pairs[(names[i], names[j])]
        assert alpha_from_counts(n, d, marg) == pytest.approx(nominal_alpha(data[[i, j]]), rel=1e-12)


@pytest.mark.parametrize("m", [2, 3, 4, 5])
def test_image_stats_give_alpha_of_every_pixel_with_missing_values(m):
    """Alpha from one image's statistics equals alpha over its pixels as units (no value: NaN), for all
    annotators and for each pair; 4 and 5 annotators make o_cc fractions (m_u - 1 of 3 and 4)."""
    rng = np.random.default_rng(m)
    labels = rng.integers(0, 4, size=(m, 9, 13)).astype(np.int32)
    labels[rng.random(labels.shape) < 0.25] = -1
    _assert_stats_give_alpha_of_every_pixel(labels, 4)


@pytest.mark.parametrize("m", [2, 3, 5])
def test_image_stats_count_runs_of_equal_pixels_as_every_pixel(m):
    """The kernel counts a run of pixels with the same values from every annotator once, weighted by
    its length: blocky labels (runs of 1 to 12 pixels, some crossing rows, with missing values) give
    alpha over every pixel as units, overall and for each pair."""
    rng = np.random.default_rng(10 + m)
    blocks = rng.integers(-1, 3, size=(m, 60))
    labels = np.repeat(blocks, rng.integers(1, 13, size=60), axis=1)
    width = 17
    labels = labels[:, :labels.shape[1] // width * width].reshape(m, -1, width).astype(np.int32)
    _assert_stats_give_alpha_of_every_pixel(labels, 3)


@pytest.mark.parametrize("seed", range(4))
def test_paint_codes_paints_each_crop_over_the_ones_before(seed):
    """The label painter against numpy on full masks: objects overlapping, empty, cut by the window."""
    from qa.analytics._kernels_alpha import _paint_codes
    from qa.engine._masks import mask_to_rle, rle_crops

    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(5, 40, 2))
    masks = []
    for _ in range(int(rng.integers(1, 9))):
        m = np.zeros((h, w), np.uint8)
        y, x = (int(v) for v in rng.integers(0, (h, w)))
        m[y:y + int(rng.integers(0, h)), x:x + int(rng.integers(0, w))] = 1
        m &= (rng.random((h, w)) < 0.8).astype(np.uint8)
        masks.append(m)
    crops = rle_crops([mask_to_rle(m) for m in masks], h, w)
    order = rng.permutation(len(masks)).astype(np.int64)
    codes = rng.integers(1, 6, len(masks)).astype(np.int32)
    x0, y0 = (int(v) for v in rng.integers(0, 4, 2))
    x1, y1 = int(rng.integers(x0, w + 1)), int(rng.integers(y0, h + 1))
    got = np.full((y1 - y0, x1 - x0), -1, np.int32)
    _paint_codes(crops.buf, crops.starts, crops.boxes, order, codes, x0, y0, got)
    expected = np.full((h, w), -1, np.int32)
    for k, o in enumerate(order.tolist()):
        expected[masks[o] != 0] = codes[k]
    np.testing.assert_array_equal(got, expected[y0:y1, x0:x1])


@pytest.mark.parametrize("seed", range(6))
def test_objects_window_is_the_union_of_each_objects_box(seed):
    """The label window from every polygon point at once equals the union of the objects' boxes taken one
    by one: polygons off every side of the image, empty parts, RLE objects (one empty)."""
    from qa.analytics.alpha import _object_box, _objects_window
    from qa.engine._masks import mask_to_rle

    rng = np.random.default_rng(seed)
    h, w = 30, 40
    objs = []
    for _ in range(int(rng.integers(0, 6))):
        parts = [rng.uniform(-15, 55, (int(rng.integers(3, 7)), 2)) for _ in range(int(rng.integers(1, 3)))]
        if rng.random() < 0.2:
            parts.append(np.zeros((0, 2)))
        objs.append(make_object(parts=parts))
    for _ in range(int(rng.integers(0, 3))):
        m = np.zeros((h, w), np.uint8)
        if rng.random() < 0.7:
            y, x = (int(v) for v in rng.integers(0, (h, w)))
            m[y:y + 5, x:x + 7] = 1
        objs.append(make_object(kind="rle", rle=mask_to_rle(m)))
    boxes = [b for b in (_object_box(o, h, w) for o in objs) if b is not None]
    expected = ((min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                 max(b[3] for b in boxes)) if boxes else (0, 0, 0, 0))
    assert _objects_window(objs, h, w) == expected


def test_overlapping_instances_paint_in_z_order_then_export_order():
    top_first = make_object(square(0, 0, 10), category="person", z=2)
    under = make_object(square(0, 0, 10), category="car", z=1)
    batch = make_batch({"alice": [top_first, under], "bob": [make_object(square(0, 0, 10), category="car"),
                                                             make_object(square(0, 0, 10), category="person")]},
                       size=(20, 20))
    codes = {"car": 1, "person": 2}
    names, labels, _, _ = image_labels(batch, "img.png", codes=codes)
    assert names == ["alice", "bob"]
    assert labels[0][labels[0] > 0].tolist() == [2] * int((labels[0] > 0).sum())  # alice: z_order 2 on top
    assert set(labels[1][labels[1] > 0].tolist()) == {2}  # bob: no z_order, the later object on top
    assert pixel_alpha(batch, bootstrap=0).batch["alpha"].iloc[0] == 1.0


@pytest.mark.parametrize("manifest", ["batch.toml", "batch_panoptic.toml"])
def test_pixel_alpha_does_not_depend_on_the_workers(tmp_path, manifest):
    """Images labelled in worker processes, a chunk each, give the same tables to the bit."""
    import pandas as pd

    from qa.synth import synthesize

    synthesize(tmp_path, images=4, size=(64, 128), annotators=3, seed=6, faults=["bob:miss_small"], workers=1)
    batch = qa.load(manifest=tmp_path / manifest)
    serial, pooled = pixel_alpha(batch, bootstrap=20, workers=1), pixel_alpha(batch, bootstrap=20, workers=2)
    for table in ("batch", "pairs", "images"):
        pd.testing.assert_frame_equal(getattr(pooled, table), getattr(serial, table), check_exact=True)
    assert len(serial.images) == 4 and serial.batch["alpha"].iloc[0] < 1


def test_panoptic_void_pixels_have_no_value(tmp_path):
    from qa.formats.coco_panoptic import read_id_map
    from qa.model import Limits
    from qa.synth import synthesize

    out = tmp_path / "pan"
    synthesize(out, images=2, size=(64, 128), annotators=2, seed=5, faults=["bob:miss_small"], workers=1)
    batch = qa.load(manifest=out / "batch_panoptic.toml")
    codes = {c: k + 1 for k, c in enumerate(batch.categories)}
    rows = {name: [] for name in sorted(batch.annotators)}
    for key in batch.images:
        for name in rows:
            segs = {o.segment_id: codes[o.category] for o in batch.exports[name].objects if o.image == key}
            ids = read_id_map(batch.exports[name].id_maps[key], Limits()).ravel()
            rows[name].append(np.array([segs.get(int(i), np.nan) if i else np.nan for i in ids]))
    data = np.stack([np.concatenate(v) for v in rows.values()])
    result = pixel_alpha(batch, bootstrap=0)
    assert result.batch["alpha"].iloc[0] == pytest.approx(nominal_alpha(data), rel=1e-12)


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate(lidc_run):
    alpha = lidc_run.analytics.alpha.iloc[0]
    assert alpha["images"] == 257 and alpha["bootstrap"] == 1000 and alpha["seed"] == 0
    assert alpha["ci_low"] < alpha["alpha"] < alpha["ci_high"]
    assert 0.6 < alpha["alpha"] < 0.9  # the readers agree well on nodule outlines
    stats = np.array([[100, 90], [100, 60], [100, 80], [100, 70]], dtype=float)
    marg = np.array([[50, 50], [60, 40], [55, 45], [50, 50]], dtype=float)
    a = bootstrap_interval(stats[:, 0], stats[:, 1], marg, replicates=200, seed=1)
    assert a == bootstrap_interval(stats[:, 0], stats[:, 1], marg, replicates=200, seed=1)
    assert a != bootstrap_interval(stats[:, 0], stats[:, 1], marg, replicates=200, seed=2)
    assert np.isnan(bootstrap_interval(stats[:1, 0], stats[:1, 1], marg[:1], replicates=200)).all()
    # the pair matrix and the image rows join Run.scores
    s = lidc_run.scores
    assert len(s[(s["scope"] == "annotator_pair") & (s["metric"] == "alpha")]) == 6
    assert len(s[(s["scope"] == "image") & (s["metric"] == "alpha")]) == 257
    assert set(s[s["scope"] == "batch"]["metric"]) >= {"alpha", "alpha_ci_low", "alpha_ci_high"}


# --- kalphacv ---------------------------------------------------------------------------------------------

kalphacv = pytest.importorskip("kalphacv.calculate_iaa")

EXAMPLES = ["fruits.json", "landscape_annotations.json", "smile_fruits.json", "test_annotation.json"]


def _kalphacv(doc, raters):
    """kalphacv's segmentation alpha (IoU threshold 0.5) of the given raters' image copies."""
    d = copy.deepcopy(doc)
    keep = {im["id"] for im in d["images"] if im["annotator"] in raters}
    d["images"] = [im for im in d["images"] if im["id"] in keep]
    d["annotations"] = [a for a in d["annotations"] if a["image_id"] in keep]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its numpy and tqdm use, not ours
        return kalphacv.calculate_iaa("segm", d, None, None, iou_thresholds=[0.5], iaa_threshold=0.6,
                                      silent=True)[0.5]


@pytest.mark.shared_data
@pytest.mark.parametrize("name", EXAMPLES)
def test_object_alpha_reproduces_kalphacv_for_every_pair(shared_data, name):
    path = shared_data / "kalphacv_multirater_examples" / name
    doc = json.loads(path.read_text())
    batch = qa.load(path)
    ours = object_alpha(compare_batch(batch, workers=1)).set_index("pair")["alpha"]
    for a, b in itertools.combinations(sorted(batch.annotators), 2):
        expected = _kalphacv(doc, {a, b})
        if (name, a, b) == ("test_annotation.json", "ann1", "ann3"):
            # the one difference, explained in the next test: one pair on fruits.png
            assert ours[f"{a}|{b}"] == pytest.approx(-0.1373, abs=1e-4) and expected == pytest.approx(-0.2762)
            continue
        assert ours[f"{a}|{b}"] == pytest.approx(expected, abs=1e-4)  # kalphacv rounds each image's alpha to 4


def _kalphacv_per_image(doc, raters):
    """kalphacv's alpha of each image (its own matching and calculate_alpha), keyed by file name."""
    from kalphacv import krippendorff_alpha, pre_processing, reliability_data

    d = copy.deepcopy(doc)
    keep = {im["id"] for im in d["images"] if im["annotator"] in raters}
    d["images"] = [im for im in d["images"] if im["id"] in keep]
    d["annotations"] = [a for a in d["annotations"] if a["image_id"] in keep]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = pre_processing.Preprocess(d, None, None, True)
        out = {}
        for name in p.image_names:
            data = reliability_data.ReliabilityData(name, p.annotations_per_image[name], p.raters_per_image[name],
                                                    p.size_per_image[name])
            out[name] = krippendorff_alpha.calculate_alpha(data.run("segm", 0.5))
    return out


@pytest.mark.shared_data
def test_the_difference_is_one_pair_between_raster_and_polygon_iou(shared_data):
    from kalphacv.iou import calc_iou_segm_poly

    path = shared_data / "kalphacv_multirater_examples" / "test_annotation.json"
    doc = json.loads(path.read_text())
    by_id = {a["id"]: a for a in doc["annotations"]}
    batch = qa.load(path)
    c = compare_batch(batch, workers=1)
    theirs = _kalphacv_per_image(doc, {"ann1", "ann3"})
    ours = object_alpha(c, per_image=True)
    ours = ours[ours["pair"] == "ann1|ann3"].set_index("image")["alpha"]
    assert ours["orange.jpg"] == pytest.approx(theirs["orange.jpg"], abs=1e-4)
    assert ours["apple_banana.jpg"] == pytest.approx(theirs["apple_banana.jpg"], abs=1e-4)
    assert ours["fruits.png"] != pytest.approx(theirs["fruits.png"], abs=1e-3)
    # on fruits.png one matched pair has raster IoU (pycocotools, what qa measures) >= 0.5 but polygon IoU
    # (shapely, what kalphacv measures) < 0.5; with that pair split into two units, the figures agree
    op = c.object_pairs
    rows = op[(op["pair"] == "ann1|ann3") & (op["image"] == "fruits.png")]
    units = []
    for _, row in rows.iterrows():
        if row["status"] == "matched":
            sa = by_id[batch.exports["ann1"].objects[row["object_index_a"]].source.id]["segmentation"]
            sb = by_id[batch.exports["ann3"].objects[row["object_index_b"]].source.id]["segmentation"]
            polygon_iou = calc_iou_segm_poly(sa, sb)
            if polygon_iou <= 0.5:
                assert row["iou"] >= 0.5 and polygon_iou == pytest.approx(0.4896, abs=1e-4)
                units += [(row["category_a"], "absent"), ("absent", row["category_b"])]
                continue
        units.append((row["category_a"] if row["status"] != "extra" else "absent",
                      row["category_b"] if row["status"] != "missing" else "absent"))
    labels = {v: k for k, v in enumerate(sorted({x for u in units for x in u}))}
    data = np.array([[labels[u[0]] for u in units], [labels[u[1]] for u in units]])
    assert nominal_alpha(data) == pytest.approx(theirs["fruits.png"], abs=1e-4)


def test_pixel_and_object_alpha_answer_different_questions(tmp_path):
    # one image, two annotators: a 20 x 20 car drawn by both, 2 px apart, and a 3 x 3 sign only alice drew
    objs = {"alice": [make_object(square(10, 10, 20), category="car"), make_object(square(60, 60, 3), category="sign")],
            "bob": [make_object(square(12, 10, 20), category="car")]}
    batch = make_batch(objs, size=(100, 100))
    c = compare_batch(batch, workers=1)
    pixel = pixel_alpha(batch, bootstrap=0).batch["alpha"].iloc[0]
    obj = object_alpha(c)["alpha"].iloc[0]
    # objects: units (car, car) and (sign, absent): n = 4, o_cc = 2, n_c = (2, 1, 1) -> 1 - 3 * 2 / 10
    assert obj == pytest.approx(0.4)
    # pixels: the outline shift and the small sign cost little of 10,000 mostly agreeing pixels
    assert 0.8 < pixel < 1.0
    # with the sign drawn by both, every object unit agrees (alpha 1) while the pixels still see the shift
    objs["bob"].append(make_object(square(60, 60, 3), category="sign"))
    batch = make_batch(objs, size=(100, 100))
    assert object_alpha(compare_batch(batch, workers=1))["alpha"].iloc[0] == 1.0
    assert pixel < pixel_alpha(batch, bootstrap=0).batch["alpha"].iloc[0] < 1.0
