"""RLE parsing, bboxes and crops (qa/engine/_masks.py) against full-image numpy and pycocotools."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils
from reference import coco_decode, ref_bbox, ref_runs, ref_window

from qa.engine._masks import (
    decode_crop, decode_crops, decode_full, mask_to_rle, rle_bbox, rle_crops, rle_runs, segment_crops, union_window,
)


def _mask(h, w, *cells):
    m = np.zeros((h, w), dtype=np.uint8)
    for y, x in cells:
        m[y, x] = 1
    return m


def _ring():
    m = np.zeros((9, 11), np.uint8)
    m[1:8, 2:9] = 1
    m[3:6, 4:7] = 0
    return m


def _two_blobs():
    m = np.zeros((10, 12), np.uint8)
    m[1:3, 1:4] = 1
    m[6:9, 8:12] = 1
    return m


EDGE_MASKS = {
    "empty": np.zeros((6, 7), np.uint8),
    "full": np.ones((6, 7), np.uint8),
    "dot": _mask(6, 7, (3, 4)),
    "corner_dot": _mask(6, 7, (5, 6)),
    "first_pixel": _mask(6, 7, (0, 0)),
    "row_line": np.pad(np.ones((1, 7), np.uint8), ((2, 3), (0, 0))),
    "column_line": np.pad(np.ones((6, 1), np.uint8), ((0, 0), (3, 3))),
    "border_touch": np.pad(np.ones((3, 4), np.uint8), ((0, 3), (3, 0))),
    "ring": _ring(),
    "two_blobs": _two_blobs(),
    "wrapping_run": _mask(5, 4, (4, 0), (0, 1)),  # one run wraps from the bottom of column 0 to column 1
    "one_by_one": np.ones((1, 1), np.uint8),
}


@pytest.mark.parametrize("name", sorted(EDGE_MASKS))
def test_runs_bbox_and_crop_match_full_mask(name):
    m = EDGE_MASKS[name]
    rle = mask_to_rle(m)
    assert rle_runs(rle).tolist() == ref_runs(m)
    assert rle_bbox(rle) == ref_bbox(m)
    crop, (x0, y0) = decode_crop(rle)
    bx0, by0, bx1, by1 = ref_bbox(m)
    assert (x0, y0) == (bx0, by0)
    np.testing.assert_array_equal(crop, m[by0:by1, bx0:bx1])
    assert crop.dtype == np.uint8


@pytest.mark.parametrize("name", sorted(EDGE_MASKS))
def test_uncompressed_counts_give_the_same_runs(name):
    m = EDGE_MASKS[name]
    runs = ref_runs(m)
    rle = {"size": list(m.shape), "counts": runs}
    assert rle_runs(rle).tolist() == runs
    np.testing.assert_array_equal(decode_crop(rle, (0, 0, m.shape[1], m.shape[0]))[0], m)


def test_bbox_agrees_with_pycocotools_on_random_masks():
    rng = np.random.default_rng(7)
    for _ in range(50):
        h, w = rng.integers(1, 40, size=2)
        m = (rng.random((h, w)) < rng.random() * 0.3).astype(np.uint8)
        rle = mask_to_rle(m)
        x, y, bw, bh = mask_utils.toBbox(rle)
        assert rle_bbox(rle) == (int(x), int(y), int(x + bw), int(y + bh))
        assert rle_runs(rle).tolist() == ref_runs(m)


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.integers(0, 1)),
       st.tuples(st.integers(-3, 14), st.integers(-3, 14), st.integers(0, 8), st.integers(0, 8)))
def test_window_equals_full_mask_slice(m, win):
    x0, y0, ww, wh = win
    window = (x0, y0, x0 + ww, y0 + wh)
    crop, offset = decode_crop(mask_to_rle(m), window)
    assert offset == (x0, y0)
    np.testing.assert_array_equal(crop, ref_window(m, window))


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=st.integers(0, 1)),
       st.integers(0, 200))
def test_runs_split_by_empty_runs_of_zeros_paint_as_one(m, cut):
    # counts may hold a zero-length run of zeros between two runs of ones (pycocotools writes such
    # counts for polygons whose outline meets itself): the two runs are one stretch of ones
    runs = ref_runs(m)
    ones = [i for i in range(1, len(runs), 2) if runs[i] > 1]
    if ones:
        i = ones[cut % len(ones)]
        head = 1 + cut % (runs[i] - 1)
        runs = runs[:i] + [head, 0, runs[i] - head] + runs[i + 1:]
    rle = {"size": list(m.shape), "counts": runs}
    np.testing.assert_array_equal(decode_full(rle), m)
    window = (-1, 1, m.shape[1] + 1, m.shape[0])
    np.testing.assert_array_equal(decode_crop(rle, window)[0], ref_window(m, window))


def test_shared_window_stack():
    a, b = EDGE_MASKS["ring"], np.roll(EDGE_MASKS["ring"], 2, axis=1)
    window = union_window(ref_bbox(a), ref_bbox(b), margin=1, shape=a.shape)
    stack = decode_crops([mask_to_rle(a), mask_to_rle(b)], window)
    assert stack.shape == (2, window[3] - window[1], window[2] - window[0])
    np.testing.assert_array_equal(stack[0], ref_window(a, window))
    np.testing.assert_array_equal(stack[1], ref_window(b, window))


def test_union_window_ignores_empty_boxes_and_clips():
    assert union_window((0, 0, 0, 0), (2, 3, 4, 5), margin=2, shape=(6, 5)) == (0, 1, 5, 6)
    assert union_window((0, 0, 0, 0), (0, 0, 0, 0)) == (0, 0, 0, 0)


def test_rle_crops_of_overlapping_objects():
    masks = [EDGE_MASKS[k][:6, :7] for k in ("dot", "full", "empty", "border_touch", "wrapping_run")]
    masks[-1] = np.pad(masks[-1], ((0, 1), (0, 3)))
    crops = rle_crops([mask_to_rle(m) for m in masks], 6, 7)
    assert len(crops) == len(masks)
    for k, m in enumerate(masks):
        assert tuple(crops.boxes[k]) == ref_bbox(m)
        assert crops.areas[k] == m.sum()
        crop, (x0, y0) = crops.crop(k)
        bx0, by0, bx1, by1 = ref_bbox(m)
        np.testing.assert_array_equal(crop, m[by0:by1, bx0:bx1])
        np.testing.assert_array_equal(crops.window(k, (-1, 2, 5, 8)), ref_window(m, (-1, 2, 5, 8)))


def test_segment_crops_match_id_map():
    rng = np.random.default_rng(3)
    id_map = rng.integers(0, 5, size=(17, 23)).astype(np.int32) * 1000
    id_map[5:9, 3:20] = 77
    ids = [77, 3000, 1000, 4000, 12345]  # 12345 is absent: empty crop
    crops = segment_crops(id_map, ids)
    for k, sid in enumerate(ids):
        m = (id_map == sid).astype(np.uint8)
        assert tuple(crops.boxes[k]) == ref_bbox(m)
        assert crops.areas[k] == m.sum()
        bx0, by0, bx1, by1 = ref_bbox(m)
        np.testing.assert_array_equal(crops.crop(k)[0], m[by0:by1, bx0:bx1])


def test_bad_rle_counts_raise():
    with pytest.raises(ValueError, match="do not describe a 3x3 mask"):
        rle_runs({"size": [3, 3], "counts": b"8"})  # one run of 8
    with pytest.raises(ValueError, match="do not describe"):
        rle_runs({"size": [3, 3], "counts": b"h"})  # ends inside a number
    assert rle_runs({"size": [3, 3], "counts": b"9"}).tolist() == [9]
    with pytest.raises(ValueError, match="do not describe"):
        rle_runs({"size": [3, 3], "counts": [4, 4]})
    with pytest.raises(ValueError, match="differs from image"):
        rle_crops([mask_to_rle(np.ones((2, 2)))], 3, 2)


def _one_by_one(rles, h, w):
    """rle_crops' runs, boxes and areas as they were made before the image's strings were parsed in one
    call: rle_runs and rle_bbox of each RLE."""
    runs = [rle_runs(r) for r in rles]
    return runs, [rle_bbox(r) for r in rles]


@pytest.mark.parametrize("seed", range(4))
def test_rle_crops_parse_every_string_of_an_image_as_each_alone(seed):
    """One call parses and checks an image's compressed counts: the same runs, boxes, areas and crops as
    rle_runs of each string (empty, full, wrapping, random masks; str and bytes counts)."""
    from qa.formats._rle_counts import _rle_strings_runs, counts_runs

    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 30, 2))
    masks = [np.zeros((h, w), np.uint8), np.ones((h, w), np.uint8)]
    masks += [(rng.random((h, w)) < p).astype(np.uint8) for p in (0.05, 0.5, 0.95)]
    rles = [mask_to_rle(m) for m in masks]
    rles[1] = {"size": rles[1]["size"], "counts": rles[1]["counts"].decode("ascii")}  # str counts too
    crops = rle_crops(rles, h, w)
    runs, boxes = _one_by_one(rles, h, w)
    for k, m in enumerate(masks):
        assert tuple(int(v) for v in crops.boxes[k]) == boxes[k] and crops.areas[k] == m.sum()
        if m.any():
            x0, y0, x1, y1 = boxes[k]
            np.testing.assert_array_equal(crops.crop(k)[0], m[y0:y1, x0:x1])
    # the kernel: the runs of each string, and ok exactly where rle_runs would not raise
    strings = [bytes(r["counts"], "ascii") if isinstance(r["counts"], str) else r["counts"] for r in rles]
    strings += [b"h", b"8", b"9", b"\x7f", b""]  # ends inside a number, sums to 8, 9, a bad byte, empty
    ptr = np.cumsum([0] + [len(b) for b in strings]).astype(np.int64)
    got, run_ptr, ok = _rle_strings_runs(np.frombuffer(b"".join(strings), np.uint8), ptr, h * w)
    for k, b in enumerate(strings):
        expected = counts_runs(b)
        good = expected is not None and (expected >= 0).all() and int(expected.sum()) == h * w
        assert bool(ok[k]) == good, k
        if expected is not None:
            np.testing.assert_array_equal(got[run_ptr[k]:run_ptr[k + 1]], expected)


def test_rle_crops_raise_for_the_first_bad_rle():
    good = mask_to_rle(np.ones((3, 3), np.uint8))
    with pytest.raises(ValueError, match="do not describe a 3x3 mask"):
        rle_crops([good, {"size": [3, 3], "counts": b"8"}, mask_to_rle(np.ones((2, 2)))], 3, 3)
    with pytest.raises(ValueError, match="differs from image"):
        rle_crops([good, mask_to_rle(np.ones((2, 2))), {"size": [3, 3], "counts": b"8"}], 3, 3)
    assert len(rle_crops([], 3, 3)) == 0


@pytest.mark.parametrize("name", sorted(EDGE_MASKS))
def test_decode_full_matches_pycocotools_without_a_warning(name):
    m = EDGE_MASKS[name]
    rle = mask_to_rle(m)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pycocotools' own decode warns under numpy 2
        full = decode_full(rle)
        uncompressed = decode_full({"size": list(m.shape), "counts": ref_runs(m)})
    assert full.dtype == np.uint8 and full.flags.c_contiguous
    np.testing.assert_array_equal(full, coco_decode(rle))
    np.testing.assert_array_equal(uncompressed, m)
