"""All-pairs intersection counts and crowd cover (qa/engine/_kernels_iou.py) against full-image numpy."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from reference import ref_intersection_counts

from qa.engine._kernels_iou import _box_pairs, _crowd_cover, _intersection_counts, _pair_intersections
from qa.engine._masks import mask_to_rle, rle_crops, segment_crops


def _random_masks(rng, n, h, w):
    masks = []
    for _ in range(n):
        m = np.zeros((h, w), np.uint8)
        kind = rng.integers(0, 5)
        if kind == 0:
            pass  # empty
        elif kind == 1:
            m[:] = 1  # full image
        else:
            y, x = rng.integers(0, h), rng.integers(0, w)
            blob = rng.random((rng.integers(1, h), rng.integers(1, w))) < 0.7
            m[y:y + blob.shape[0], x:x + blob.shape[1]] = blob[:h - y, :w - x]
        masks.append(m)
    return masks


def _counts(masks_a, masks_b, h, w):
    a = rle_crops([mask_to_rle(m) for m in masks_a], h, w)
    b = rle_crops([mask_to_rle(m) for m in masks_b], h, w)
    return _intersection_counts(a.buf, a.starts, a.boxes, b.buf, b.starts, b.boxes)


@pytest.mark.parametrize("seed", range(12))
def test_intersections_match_full_masks(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 48, size=2)
    masks_a = _random_masks(rng, rng.integers(0, 9), h, w)  # overlapping objects of one annotator
    masks_b = _random_masks(rng, rng.integers(0, 9), h, w)
    got = _counts(masks_a, masks_b, h, w)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, ref_intersection_counts(masks_a, masks_b).reshape(got.shape))


@pytest.mark.parametrize("seed", range(6))
def test_pair_intersections_of_one_side_count_each_overlapping_pair_once(seed):
    """The rules' overlaps: one annotator's objects against each other, the pairs whose boxes meet
    (each once, i < j), counted; every pair with a pixel in common is among them, with its count."""
    rng = np.random.default_rng(100 + seed)
    h, w = rng.integers(1, 48, size=2)
    masks = _random_masks(rng, rng.integers(0, 12), h, w)
    crops = rle_crops([mask_to_rle(m) for m in masks], h, w)
    pi, pj = _box_pairs(crops.boxes)
    got = np.zeros((len(masks), len(masks)), np.int64)
    got[pi, pj] = _pair_intersections(crops.buf, crops.starts, crops.boxes, pi, pj)
    assert (pi < pj).all() and len(set(zip(pi.tolist(), pj.tolist()))) == len(pi)
    expected = np.triu(ref_intersection_counts(masks, masks).reshape(len(masks), len(masks)), k=1)
    np.testing.assert_array_equal(got, expected)


def _brute_box_pairs(boxes):
    n = len(boxes)
    return {(i, j) for i in range(n) for j in range(i + 1, n)
            if max(boxes[i, 0], boxes[j, 0]) < min(boxes[i, 2], boxes[j, 2])
            and max(boxes[i, 1], boxes[j, 1]) < min(boxes[i, 3], boxes[j, 3])}


@pytest.mark.parametrize("seed", range(6))
def test_cover_counts_equal_the_union_of_the_masks_above(seed):
    """The rules' cover: each object's pixels under the union of the things above it, then of all
    objects above it, against full-image masks (objects overlapping, empty and full-image ones
    included)."""
    from qa.engine._kernels_iou import _cover_counts

    rng = np.random.default_rng(200 + seed)
    h, w = rng.integers(1, 48, size=2)
    masks = _random_masks(rng, int(rng.integers(2, 10)), h, w)
    crops = rle_crops([mask_to_rle(m) for m in masks], h, w)
    n = len(masks)
    lower = np.flatnonzero(crops.areas > 0).astype(np.int64)
    tops, ptr, thing = [], [0], []
    for o in lower.tolist():
        above = [t for t in range(n) if t != o and rng.random() < 0.6]
        tops.extend(above)
        thing.extend(bool(rng.random() < 0.5) for _ in above)
        ptr.append(len(tops))
    tops = np.asarray(tops, np.int64)
    thing = np.asarray(thing, bool)
    got = _cover_counts(crops.buf, crops.starts, crops.boxes, lower, np.asarray(ptr, np.int64), tops, thing)
    for k, o in enumerate(lower.tolist()):
        above = tops[ptr[k]:ptr[k + 1]]
        things = np.zeros((h, w), bool)
        for t in above[thing[ptr[k]:ptr[k + 1]]]:
            things |= masks[t] != 0
        every = things.copy()
        for t in above:
            every |= masks[t] != 0
        mine = masks[o] != 0
        assert got[k].tolist() == [int((mine & things).sum()), int((mine & every).sum())]


@pytest.mark.parametrize("shape", ["squares", "wide-strips", "tall-strips", "with-empty", "one-spot"])
def test_box_pairs_are_exactly_the_boxes_that_meet(shape):
    """Sort and sweep against every pair, along x or y (strips make the sweep change axis), with empty
    boxes (which meet nothing), touching edges (which do not share a pixel) and many boxes on one spot."""
    rng = np.random.default_rng(len(shape))
    n = 300
    x0, y0 = rng.integers(0, 200, n), rng.integers(0, 200, n)
    if shape == "wide-strips":
        w, h = rng.integers(100, 400, n), rng.integers(1, 4, n)
    elif shape == "tall-strips":
        w, h = rng.integers(1, 4, n), rng.integers(100, 400, n)
    elif shape == "one-spot":
        x0, y0, w, h = np.full(n, 5), np.full(n, 5), np.full(n, 3), np.full(n, 3)
    else:
        w, h = rng.integers(1, 20, n), rng.integers(1, 20, n)
    boxes = np.stack([x0, y0, x0 + w, y0 + h], axis=1).astype(np.int64)
    if shape == "with-empty":
        boxes[::7] = 0
        boxes[3::7, 2] = boxes[3::7, 0]  # zero width
    pi, pj = _box_pairs(boxes)
    got = set(zip(pi.tolist(), pj.tolist()))
    assert len(got) == len(pi)
    assert got == _brute_box_pairs(boxes)
    assert _box_pairs(np.zeros((0, 4), np.int64))[0].shape == (0,)


def test_intersections_agree_with_pycocotools_iou():
    rng = np.random.default_rng(5)
    h, w = 37, 53
    masks_a = [m for m in _random_masks(rng, 10, h, w) if m.any()]
    masks_b = [m for m in _random_masks(rng, 10, h, w) if m.any()]
    inter = _counts(masks_a, masks_b, h, w)
    area_a = np.array([m.sum() for m in masks_a])
    area_b = np.array([m.sum() for m in masks_b])
    iou = inter / (area_a[:, None] + area_b[None, :] - inter)
    expected = mask_utils.iou([mask_to_rle(m) for m in masks_a], [mask_to_rle(m) for m in masks_b],
                              [0] * len(masks_b))
    np.testing.assert_allclose(iou, expected, rtol=1e-12)


def test_disjoint_bboxes_and_touching_pixels():
    a = np.zeros((5, 8), np.uint8)
    a[0:2, 0:3] = 1
    b = np.zeros((5, 8), np.uint8)
    b[2:5, 3:8] = 1  # bboxes touch at a corner but do not overlap
    c = np.zeros((5, 8), np.uint8)
    c[1, 2] = 1  # one pixel of a
    got = _counts([a], [b, c], 5, 8)
    assert got.tolist() == [[0, 1]]


def test_segment_crops_and_rle_crops_mix():
    rng = np.random.default_rng(11)
    id_map = rng.integers(1, 4, size=(20, 30)).astype(np.int32)
    id_map[3:15, 5:25] = 9
    segs = segment_crops(id_map, [9, 1, 2, 3])
    masks_b = _random_masks(rng, 6, 20, 30)
    b = rle_crops([mask_to_rle(m) for m in masks_b], 20, 30)
    got = _intersection_counts(segs.buf, segs.starts, segs.boxes, b.buf, b.starts, b.boxes)
    masks_a = [(id_map == s).astype(np.uint8) for s in (9, 1, 2, 3)]
    np.testing.assert_array_equal(got, ref_intersection_counts(masks_a, masks_b))


def test_crowd_cover_takes_the_best_single_region_of_the_same_category():
    inter = np.array([[6, 3, 8], [0, 2, 0]], np.int64)
    areas = np.array([10, 0], np.int64)
    cats = np.array([1, 1], np.int64)
    other_crowd = np.array([True, True, True])
    other_cats = np.array([1, 1, 2], np.int64)
    got = _crowd_cover(inter, areas, cats, other_crowd, other_cats)
    assert got.tolist() == [0.6, 0.0]  # region 2 is another category; empty objects get 0


# --- intersections from run lengths -------------------------------------------------------------------


def _row_runs(masks):
    """Row runs of each mask as the outline kernels list them: (ptr, y, x0, x1)."""
    ptr, ys, x0s, x1s = [0], [], [], []
    for m in masks:
        for y in range(m.shape[0]):
            row = np.concatenate([[0], m[y].astype(np.int8), [0]])
            starts = np.flatnonzero(np.diff(row) == 1)
            ends = np.flatnonzero(np.diff(row) == -1)
            ys += [y] * len(starts)
            x0s += starts.tolist()
            x1s += ends.tolist()
        ptr.append(len(ys))
    return (np.array(ptr, np.int64), np.array(ys, np.int32), np.array(x0s, np.int32), np.array(x1s, np.int32))


@pytest.mark.parametrize("seed", range(8))
def test_run_intersections_match_full_masks(seed):
    from qa.engine._kernels_iou import _run_intersections

    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 48, size=2)
    masks_a = _random_masks(rng, rng.integers(0, 9), h, w)
    masks_b = _random_masks(rng, rng.integers(0, 9), h, w)
    inter, area_a, area_b = _run_intersections(*_row_runs(masks_a), *_row_runs(masks_b))
    np.testing.assert_array_equal(inter, ref_intersection_counts(masks_a, masks_b).reshape(inter.shape))
    assert area_a.tolist() == [int(m.sum()) for m in masks_a] and area_b.tolist() == [int(m.sum()) for m in masks_b]


def _rle_inputs(rles):
    """The flat inputs of _rle_intersections for a list of RLEs (compressed bytes or count lists)."""
    strings = [r["counts"] if not isinstance(r["counts"], list) else b"" for r in rles]
    raw = [r["counts"] if isinstance(r["counts"], list) else [] for r in rles]
    char_starts = np.concatenate([[0], np.cumsum([len(s) for s in strings])]).astype(np.int64)
    raw_starts = np.concatenate([[0], np.cumsum([len(c) for c in raw])]).astype(np.int64)
    return (np.frombuffer(b"".join(strings), np.uint8), char_starts,
            np.array([v for c in raw for v in c], np.int64), raw_starts,
            np.array([not isinstance(r["counts"], list) for r in rles], bool))


@pytest.mark.parametrize("seed", range(8))
def test_rle_intersections_match_full_masks(seed):
    from qa.engine._kernels_iou import _rle_intersections, _rle_intervals
    from reference import ref_runs

    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 40, size=2))
    masks_a = _random_masks(rng, rng.integers(1, 8), h, w)
    masks_b = _random_masks(rng, rng.integers(1, 8), h, w)
    rles = [mask_to_rle(m) for m in masks_a + masks_b]
    for k in range(0, len(rles), 2):  # every other one uncompressed
        rles[k] = {"size": [h, w], "counts": ref_runs((masks_a + masks_b)[k])}
    inter, area_a, area_b, ok = _rle_intersections(*_rle_inputs(rles), len(masks_a), h, w)
    assert ok.all()
    np.testing.assert_array_equal(inter, ref_intersection_counts(masks_a, masks_b))
    assert area_a.tolist() == [int(m.sum()) for m in masks_a] and area_b.tolist() == [int(m.sum()) for m in masks_b]
    _, _, _, boxes, _, _ = _rle_intervals(*_rle_inputs(rles), h, w)
    from reference import ref_bbox
    assert [tuple(b) for b in boxes.tolist()] == [ref_bbox(m) for m in masks_a + masks_b]


def test_rle_intervals_flag_malformed_counts():
    from qa.engine._kernels_iou import _rle_intervals

    good = mask_to_rle(np.eye(4, dtype=np.uint8))
    rles = [good, {"size": [4, 4], "counts": good["counts"][:-1] + b"h"},  # ends inside a number
            {"size": [4, 4], "counts": [3, 2]},                              # does not sum to 16
            {"size": [4, 4], "counts": [20, -4]}]                            # negative run
    ptr, start, end, boxes, areas, ok = _rle_intervals(*_rle_inputs(rles), 4, 4)
    assert ok.tolist() == [True, False, False, False]
    assert areas.tolist() == [4, 0, 0, 0] and ptr.tolist() == [0, 4, 4, 4, 4]
    # a run that wraps from one column into the next spans every row
    wrap = {"size": [4, 3], "counts": [2, 4, 6]}
    _, start, end, boxes, _, ok = _rle_intervals(*_rle_inputs([wrap]), 4, 3)
    assert ok.all() and boxes.tolist() == [[0, 0, 2, 4]] and (start.tolist(), end.tolist()) == ([2], [6])
