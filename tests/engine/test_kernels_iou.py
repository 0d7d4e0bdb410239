"""All-pairs intersection counts and crowd cover (qa/engine/_kernels_iou.py) against full-image numpy."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from reference import ref_intersection_counts

from qa.engine._kernels_iou import _crowd_cover, _intersection_counts
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
