"""Pair-area counts and panoptic quality (qa/engine/_kernels_panoptic.py, qa/engine/panoptic.py).

PQ is checked against panopticapi's ``pq_compute_single_core`` (``panopticapi_stat`` in tests/reference.py)
+ ``pq_average`` (below), reimplemented plainly from github.com/cocodataset/panopticapi
``panopticapi/evaluation.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import panopticapi_areas, panopticapi_stat, ref_pair_area_counts

from qa.engine.panoptic import Segments, add_counts, pair_area_counts, panoptic_counts, pq_summary


def panopticapi_pq(gt, pred, gt_segments, pred_segments, categories):
    """panopticapi's per-image algorithm, followed by pq_average over the given categories.

    ``gt_segments``/``pred_segments`` are segments_info lists; ``categories`` maps id -> isthing.
    Areas come from the PNGs (panopticapi reads the ground truth's from its JSON; they are equal here).
    """
    stat = panopticapi_stat(gt, pred, panopticapi_areas(gt, gt_segments), pred_segments)
    results = {}
    for name, isthing in (("all", None), ("things", True), ("stuff", False)):
        pq = sq = rq = 0.0
        n = 0
        for label, thing in categories.items():
            if isthing is not None and thing != isthing:
                continue
            tp, fp, fn, iou = stat[label] if label in stat else (0, 0, 0, 0.0)
            if tp + fp + fn == 0:
                continue
            n += 1
            pq += iou / (tp + 0.5 * fp + 0.5 * fn)
            sq += iou / tp if tp != 0 else 0
            rq += tp / (tp + 0.5 * fp + 0.5 * fn)
        results[name] = {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n} if n else None
    return results, {k: tuple(v) for k, v in stat.items() if sum(v[:3])}


def ours(gt, pred, gt_segments, pred_segments, categories, form="reference"):
    counts = panoptic_counts(gt, pred, Segments.from_info(gt_segments), Segments.from_info(pred_segments),
                             form=form)
    total = add_counts({}, counts)
    return pq_summary(total, isthing=categories), counts, total


def assert_same(expected, got):
    for name in ("all", "things", "stuff"):
        if expected[name] is None:
            assert got[name]["n"] == 0 and np.isnan(got[name]["pq"])
            continue
        assert got[name]["n"] == expected[name]["n"]
        for m in ("pq", "sq", "rq"):
            np.testing.assert_allclose(got[name][m], expected[name][m], rtol=1e-12)


# --- scenes ------------------------------------------------------------------------------------------

def random_scene(rng, h=40, w=50, n_cats=4):
    """A ground-truth map of rectangles (some crowd, some void) and a perturbed prediction."""
    gt = np.zeros((h, w), np.int32)
    segs = []
    for k in range(rng.integers(3, 12)):
        sid = int(rng.integers(1, 5000)) * 7 + k
        y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
        gt[y:y + rng.integers(3, h // 2), x:x + rng.integers(3, w // 2)] = sid
        segs.append({"id": sid, "category_id": int(rng.integers(1, n_cats + 1)),
                     "iscrowd": int(rng.random() < 0.2)})
    present = set(np.unique(gt).tolist())
    gt_segments = [s for s in segs if s["id"] in present]
    # prediction: shift, relabel some segments, drop some to void, add noise blobs
    pred = np.roll(gt, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), axis=(0, 1)).astype(np.int32)
    pred_segments = []
    for s in gt_segments:
        new = s["id"] + 1
        pred[pred == s["id"]] = new
        cat = s["category_id"] if rng.random() < 0.8 else int(rng.integers(1, n_cats + 1))
        pred_segments.append({"id": new, "category_id": cat, "iscrowd": 0})
    for k in range(rng.integers(0, 4)):
        sid = 900000 + k
        y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
        pred[y:y + rng.integers(2, 10), x:x + rng.integers(2, 10)] = sid
        pred_segments.append({"id": sid, "category_id": int(rng.integers(1, n_cats + 1)), "iscrowd": 0})
    present = set(np.unique(pred).tolist())
    pred_segments = [s for s in pred_segments if s["id"] in present]
    categories = {c: c % 2 == 1 for c in range(1, n_cats + 1)}
    return gt, pred, gt_segments, pred_segments, categories


# --- pair-area counts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_pair_area_counts_match_np_unique(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 70, size=2)
    a = rng.integers(0, rng.integers(1, 5000), size=(h, w)).astype(np.int32)  # many pairs: forces growth
    b = np.repeat(rng.integers(0, 9, size=(h, 1)), w, axis=1).astype(np.int32)
    ids_a, ids_b, counts = pair_area_counts(a, b)
    assert {(x, y): c for x, y, c in zip(ids_a.tolist(), ids_b.tolist(), counts.tolist())} == \
        ref_pair_area_counts(a, b)
    assert counts.sum() == a.size
    keys = list(zip(ids_a.tolist(), ids_b.tolist()))
    assert keys == sorted(keys)


def test_pair_area_counts_large_ids_and_shape_check():
    a = np.full((3, 4), 256 ** 3 - 1, np.int32)
    b = np.arange(12, dtype=np.int32).reshape(3, 4) * 1_000_003
    ids_a, ids_b, counts = pair_area_counts(a, b)
    assert ids_a.tolist() == [256 ** 3 - 1] * 12 and sorted(ids_b.tolist()) == b.ravel().tolist()
    with pytest.raises(ValueError, match="one shape"):
        pair_area_counts(a, b.T)


# --- PQ against panopticapi ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(25))
def test_reference_form_reproduces_panopticapi(seed):
    gt, pred, gs, ps, cats = random_scene(np.random.default_rng(seed))
    expected, expected_stat = panopticapi_pq(gt, pred, gs, ps, cats)
    got, _, total = ours(gt, pred, gs, ps, cats)
    assert_same(expected, got)
    assert {k: tuple(v[:3]) for k, v in total.items() if sum(v[:3])} == \
        {k: tuple(v[:3]) for k, v in expected_stat.items()}


def test_reference_form_hand_case_void_and_crowd():
    # gt: person 1 (crowd region 9 of person), car 2; pred: person 11 half in crowd, car 12 partly in void
    gt = np.array([[1, 1, 1, 9, 9, 9],
                   [1, 1, 1, 9, 9, 9],
                   [2, 2, 0, 0, 0, 0]], np.int32)
    pred = np.array([[11, 11, 11, 13, 13, 13],
                     [11, 11, 0, 13, 13, 13],
                     [12, 12, 12, 12, 0, 0]], np.int32)
    gs = [{"id": 1, "category_id": 1, "iscrowd": 0}, {"id": 9, "category_id": 1, "iscrowd": 1},
          {"id": 2, "category_id": 2, "iscrowd": 0}]
    ps = [{"id": 11, "category_id": 1}, {"id": 12, "category_id": 2}, {"id": 13, "category_id": 1}]
    got, counts, total = ours(gt, pred, gs, ps, {1: True, 2: True})
    # person: 11 vs 1 IoU 5/6 -> TP; 13 lies wholly in the crowd region -> ignored
    # car: 12 vs 2: intersection 2, union 2 + 4 - 2 - 2 (void) = 2 -> IoU 1
    assert total == {1: [1, 0, 0, 5 / 6], 2: [1, 0, 0, 1.0]}
    np.testing.assert_allclose(got["all"]["pq"], (5 / 6 + 1) / 2)
    expected, _ = panopticapi_pq(gt, pred, gs, ps, {1: True, 2: True})
    assert_same(expected, got)


def test_reference_form_raises_on_unlisted_prediction_id():
    gt = np.array([[1, 1]], np.int32)
    with pytest.raises(ValueError, match="segment id 5"):
        panoptic_counts(gt, np.array([[5, 0]]), Segments.of([1], [1]), Segments.of([], []), form="reference")
    with pytest.raises(ValueError, match="form must be"):
        panoptic_counts(gt, gt, Segments.of([1], [1]), Segments.of([1], [1]), form="other")


def test_panopticapi_sample_against_itself_and_a_shifted_copy(shared_data):
    from PIL import Image

    folder = shared_data / "panopticapi_sample" / "sample_data"
    doc = json.loads((folder / "panoptic_examples.json").read_text())
    cats = {c["id"]: bool(c["isthing"]) for c in
            json.loads((shared_data / "panopticapi_sample" / "panoptic_coco_categories.json").read_text())}
    for ann in doc["annotations"]:
        rgb = np.asarray(Image.open(folder / "panoptic_examples" / ann["file_name"]), dtype=np.uint32)
        id_map = (rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]).astype(np.int32)
        segs = ann["segments_info"]
        for form in ("reference", "symmetric"):
            got, counts, _ = ours(id_map, id_map, segs, segs, cats, form=form)
            assert got["all"]["pq"] == 1.0 and got["all"]["sq"] == 1.0 and got["all"]["rq"] == 1.0
            assert counts.fp.sum() == 0 and counts.fn.sum() == 0
        shifted = np.roll(id_map, (3, -4), axis=(0, 1))
        expected, _ = panopticapi_pq(id_map, shifted, segs, segs, cats)
        got, _, _ = ours(id_map, shifted, segs, segs, cats)
        assert_same(expected, got)
        assert 0.3 < got["all"]["pq"] < 1.0


# --- the symmetric form -------------------------------------------------------------------------------

def _sym(a, b, sa, sb):
    c = panoptic_counts(a, b, Segments.from_info(sa), Segments.from_info(sb), form="symmetric")
    return c, pq_summary(add_counts({}, c))


@pytest.mark.parametrize("seed", range(15))
def test_symmetric_form_is_symmetric(seed):
    gt, pred, gs, ps, cats = random_scene(np.random.default_rng(100 + seed))
    ps = [dict(p, iscrowd=int(k % 5 == 0)) for k, p in enumerate(ps)]
    c_ab, s_ab = _sym(gt, pred, gs, ps)
    c_ba, s_ba = _sym(pred, gt, ps, gs)
    np.testing.assert_array_equal(c_ab.categories, c_ba.categories)
    np.testing.assert_array_equal(c_ab.tp, c_ba.tp)
    np.testing.assert_array_equal(c_ab.fp, c_ba.fn)
    np.testing.assert_array_equal(c_ab.fn, c_ba.fp)
    np.testing.assert_allclose(c_ab.iou_sum, c_ba.iou_sum, rtol=1e-12)
    for m in ("pq", "sq", "rq"):
        np.testing.assert_allclose(s_ab["all"][m], s_ba["all"][m], rtol=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_symmetric_equals_reference_without_void_or_crowd(seed):
    gt, pred, gs, ps, cats = random_scene(np.random.default_rng(200 + seed))
    gt[gt == 0] = 1
    pred[pred == 0] = 2
    gs = [dict(s, iscrowd=0) for s in gs] + [{"id": 1, "category_id": 1, "iscrowd": 0}]
    ps = ps + [{"id": 2, "category_id": 1, "iscrowd": 0}]
    present_g, present_p = set(np.unique(gt).tolist()), set(np.unique(pred).tolist())
    gs = [s for s in gs if s["id"] in present_g]
    ps = [s for s in ps if s["id"] in present_p]
    ref, _, _ = ours(gt, pred, gs, ps, cats, form="reference")
    sym, _, _ = ours(gt, pred, gs, ps, cats, form="symmetric")
    for m in ("pq", "sq", "rq", "n"):
        np.testing.assert_allclose(sym["all"][m], ref["all"][m], rtol=1e-12)


def test_symmetric_void_and_crowd_by_hand():
    a = np.array([[1, 1, 1, 1, 0, 0],
                  [3, 3, 3, 3, 3, 3]], np.int32)
    b = np.array([[7, 7, 7, 7, 7, 7],
                  [0, 0, 0, 8, 8, 8]], np.int32)
    sa = [{"id": 1, "category_id": 1, "iscrowd": 0}, {"id": 3, "category_id": 2, "iscrowd": 1}]
    sb = [{"id": 7, "category_id": 1, "iscrowd": 0}, {"id": 8, "category_id": 2, "iscrowd": 0}]
    c, s = _sym(a, b, sa, sb)
    # 1 vs 7: inter 4, union 4 + 6 - 4 - |7 & void_a| 2 - 0 = 4 -> IoU 1
    # 8 lies wholly in a's crowd region of its category -> ignored
    assert c.categories.tolist() == [1, 2]
    assert (c.tp.tolist(), c.fp.tolist(), c.fn.tolist()) == ([1, 0], [0, 0], [0, 0])
    assert s["all"]["pq"] == 1.0 and s["all"]["n"] == 1


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2 ** 31 - 1))
def test_identical_maps_score_one(seed):
    gt, _, gs, _, cats = random_scene(np.random.default_rng(seed))
    gs = [dict(s, iscrowd=0) for s in gs]
    if not gs:
        return
    _, s = _sym(gt, gt, gs, gs)
    assert s["all"]["pq"] == 1.0


def test_pq_summary_leaves_out_empty_classes():
    s = pq_summary({1: (0, 0, 0, 0.0), 2: (0, 1, 0, 0.0)}, isthing={1: True, 2: False})
    assert s["all"] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 1}
    assert s["things"]["n"] == 0 and np.isnan(s["things"]["pq"])
    assert list(s["per_class"]) == [2]
