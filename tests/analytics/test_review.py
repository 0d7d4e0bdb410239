"""The review queue: its values against the pycocotools reference on the LIDC readers, its order, the
store table (and the upgrade of a version-1 store), and what qa run prints."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from common import make_batch, make_object, run_cli, square
from storekit import drop_schema_4

from qa import store as qstore
from qa.errors import StoreError
from qa.analytics.review import COLUMNS, REASONS, review_queue
from qa.engine.compare import compare_batch


@pytest.mark.shared_data
def test_lidc_queue_is_ordered_and_unique(lidc_run):
    q = lidc_run.analytics.review_queue
    assert list(q.columns) == COLUMNS and len(q) > 100
    assert q["rank"].tolist() == list(range(1, len(q) + 1))
    assert (np.diff(q["score"].to_numpy()) <= 0).all()
    assert q["score"].between(0.25, 1).all() and set(q["reason"]) <= set(REASONS)
    objects = q[q["kind"] == "object"]
    assert not objects.duplicated(["annotator", "object_index"]).any()
    assert not q[q["kind"] == "image"].duplicated("image").any()


@pytest.mark.shared_data
def test_lidc_unmatched_objects_match_pycocotools(lidc_run, lidc_reference):
    q = lidc_run.analytics.review_queue
    ref = lidc_reference
    unmatched = q[q["reason"] == "unmatched"]
    assert len(unmatched) > 50
    # every object's unmatched rows in the reference: which readers lack it, and its best IoU among them
    a = ref["pair"].str.split("|").str[0]
    b = ref["pair"].str.split("|").str[1]
    side = np.where(ref["status"] == "extra", b, a)
    other = np.where(ref["status"] == "extra", a, b)
    index = np.where(ref["status"] == "extra", ref["index_b"], ref["index_a"])
    frame = ref.assign(who=side, other=other, index=index)
    frame = frame[frame["status"] != "matched"]
    for _, row in unmatched.iterrows():
        mine = frame[(frame["who"] == row["annotator"]) & (frame["index"] == row["object_index"])]
        assert row["reasons"] == len(mine)
        assert row["other_annotator"] == ", ".join(sorted(mine["other"]))
        # the row's value is the best IoU over its pairs (how close the nearest outline came)
        assert row["value"] == pytest.approx(mine["best_iou"].max(), abs=1e-12)
        assert row["score"] == pytest.approx(1 - mine["best_iou"].max(), abs=1e-12)
    # the objects only one reader drew come first among unmatched ones with nothing near them
    top = unmatched[unmatched["score"] == 1.0]
    assert top["reasons"].iloc[0] == 3


@pytest.mark.shared_data
def test_lidc_image_agreement_matches_pycocotools(lidc_run, lidc_reference):
    q = lidc_run.analytics.review_queue
    images = q[q["kind"] == "image"].head(20)
    ref = lidc_reference
    for _, row in images.iterrows():
        values = []
        for pair, g in ref[ref["image"] == row["image"]].groupby("pair"):
            tp = g[g["status"] == "matched"]
            denom = len(tp) + 0.5 * (g["status"] != "matched").sum()
            if denom:
                values.append(tp["iou"].sum() / denom)
        assert row["value"] == pytest.approx(np.mean(values), abs=1e-12)
        assert row["score"] == pytest.approx(1 - np.mean(values), abs=1e-12)


@pytest.mark.shared_data
def test_lidc_rule_errors_point_at_their_objects(lidc_run):
    q = lidc_run.analytics.review_queue
    rules = q[q["reason"] == "rule_error"]
    errors = [f for f in lidc_run.violations if f.severity == "error"]
    assert len(rules) > 0 and len(rules) <= len(errors)
    for _, row in rules.iterrows():
        obj = lidc_run.batch.exports[row["annotator"]].objects[row["object_index"]]
        assert obj.source.index == row["source_index"] and row["metric"].startswith("VTX")
        assert row["image"] == obj.image


def test_label_disagreement_low_iou_and_offset_reasons():
    objs = {"alice": [make_object(square(10, 10, 20), category="car"),
                      make_object(square(50, 10, 20), category="car"),
                      make_object(square(10, 50, 30), category="car")],
            "bob": [make_object(square(10, 10, 20), category="truck"),          # same shape, other label
                    make_object(square(55, 12, 20), category="car"),            # IoU 0.52
                    make_object(square(8, 48, 34), category="car")]}            # 2 px outside all round
    batch = make_batch(objs, size=(100, 100))
    q = review_queue(batch, compare_batch(batch, workers=1), min_score=0)
    by = q[q["kind"] == "object"].set_index("object_index")
    assert by.loc[0, "reason"] == "label_disagreement" and by.loc[0, "score"] == 1.0
    assert "alice says car, bob says truck" in by.loc[0, "detail"]
    # 20 x 20 squares 5 px and 2 px apart: 15 x 18 = 270 shared pixels of 530
    assert by.loc[1, "reason"] == "low_iou" and by.loc[1, "value"] == pytest.approx(270 / 530)
    assert by.loc[1, "score"] == pytest.approx(1 - 270 / 530)
    # alice's 30 px square inside bob's 34 px one: offset -2 px scores 2 / (2 + 4), above 1 - IoU = 0.22
    assert by.loc[2, "reason"] == "boundary_offset" and by.loc[2, "value"] == pytest.approx(-2.0)
    assert by.loc[2, "score"] == pytest.approx(2 / 6) and "2.0 px inside bob's" in by.loc[2, "detail"]
    assert q["reason"].tolist() == ["label_disagreement", "low_agreement", "low_iou", "boundary_offset"]


def test_review_queue_is_stored_and_a_version_1_store_is_upgraded(tmp_path, miss_small):
    import duckdb

    _, _, run = miss_small
    # a store as version 1 left it: every table but review_queue
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    sql = qstore._schema_sql()
    start = sql.index("CREATE TABLE IF NOT EXISTS review_queue")
    con.execute(sql[:start] + sql[sql.index(");", start) + 2:])
    drop_schema_4(con)
    for column in ("kind", "tolerance_px", "beyond_tolerance_share", "signed_offset_px_median", "boundary_px",
                   "gains"):  # and without the columns version 3 added
        con.execute(f"ALTER TABLE boundary_disagreement DROP COLUMN {column}")
    con.execute("INSERT INTO qa_schema VALUES ('annotation-qa', 1, '0.1.0', now())")
    con.close()
    with pytest.raises(StoreError, match="older"):
        qstore.open(db)  # read-only: too old, asks for a run to upgrade it
    qstore.store_run(run, db)
    with qstore.open(db) as s:
        assert s.sql("SELECT max(schema_version) AS v FROM qa_schema")["v"].iloc[0] == qstore.SCHEMA_VERSION
        stored = s.table("review_queue", run.run_id)
        fresh = tmp_path / "new.duckdb"
        with qstore.open(fresh, read_only=False) as f:
            assert list(f.sql("SELECT * FROM review_queue LIMIT 0").columns) == list(stored.columns)
        assert len(stored) == len(run.analytics.review_queue) > 0
        assert stored["rank"].tolist() == run.analytics.review_queue["rank"].tolist()
        scores = s.scores(run.run_id)
        assert {"alpha", "missing_share"} <= set(scores["metric"])


def test_qa_run_prints_analytics_and_json_carries_more(tmp_path, capsys):
    from qa.synth import synthesize

    out = tmp_path / "b"
    synthesize(out, images=2, size=(128, 256), annotators=3, seed=2, faults=["carol:miss_small"], workers=1)
    code, text, _ = run_cli(["run", "--manifest", out / "batch.toml", "--no-store", "--workers", "1"], capsys)
    assert code == 0
    assert "annotator  matched  missing  miss. share" in text
    assert "Krippendorff's alpha (pixel labels):" in text and "95% CI" in text
    assert "review queue: top" in text and "drawn by " in text
    code, text, _ = run_cli(["run", "--manifest", out / "batch.toml", "--no-store", "--workers", "1",
                             "--format", "json"], capsys)
    doc = json.loads(text)["analytics"]
    assert {"annotators", "pairs", "sizes", "categories", "alpha", "review_queue"} <= set(doc)
    assert doc["alpha"]["ci_low"] <= doc["alpha"]["alpha"] <= doc["alpha"]["ci_high"]
    carol = next(r for r in doc["annotators"] if r["annotator"] == "carol")
    assert carol["missing"] > 0


@pytest.mark.shared_data
def test_an_object_all_others_drew_below_the_threshold_says_so_with_the_best_iou(bubil_experts):
    # BU-BIL seg_B09: Person5_Amira's cell is matched by Person3_Amira only; the eight others drew the
    # cell with IoU 0.36 to 0.499 against it. The queue said "not by [8 experts] (best IoU 0.36)": the
    # worst of the eight, and as if they had not drawn it.
    batch, comparison = bubil_experts
    q = review_queue(batch, comparison)
    [row] = q[(q["annotator"] == "experts/Person5_Amira") & (q["image"] == "seg_b09")].to_dict("records")
    op = comparison.object_pairs
    me = "experts/Person5_Amira"
    mine = op[(op["image"] == "seg_b09") & (((op["annotator_a"] == me) & (op["status"] == "missing"))
                                           | ((op["annotator_b"] == me) & (op["status"] == "extra")))]
    assert row["reason"] == "unmatched" and row["reasons"] == len(mine) == 8
    assert row["value"] == pytest.approx(mine["best_iou"].max()) and 0.49 < row["value"] < 0.5
    assert mine["best_iou"].min() < 0.37
    assert row["score"] == pytest.approx(1 - row["value"])
    others = sorted((set(mine["annotator_a"]) | set(mine["annotator_b"])) - {me})
    assert row["detail"] == (f"drawn by experts/Person5_Amira; {', '.join(others)} drew it below the matching "
                             f"IoU 0.5 (best {row['value']:.3f}, experts/Person3_ImageJ)")
    assert "not drawn" not in row["detail"]


# --- the rows below min_score are dropped as they are made ------------------------------------------------

def _queue_both_ways(run, monkeypatch, min_score):
    import pandas as pd

    from qa.analytics import review

    early = review.review_queue(run.batch, run.comparison, violations=run.violations, min_score=min_score)
    made = review._object_rows

    def late(op, tolerance, min_score=0.0, first_row=0):  # every candidate, filtered only at the end
        return made(op, tolerance, 0.0, first_row)

    monkeypatch.setattr(review, "_object_rows", late)
    whole = review.review_queue(run.batch, run.comparison, violations=run.violations, min_score=min_score)
    return early, whole


@pytest.mark.parametrize("min_score", [0.0, 0.25, 0.6, 0.999, 2.0])
def test_queue_of_candidates_dropped_early_equals_the_queue_filtered_at_the_end(tmp_path, monkeypatch, min_score):
    import qa
    from qa.synth import synthesize

    synthesize(tmp_path / "batch", images=4, size=(160, 320), annotators=3, seed=7, workers=1)
    run = qa.run(manifest=tmp_path / "batch" / "batch.toml", workers=1, store=False, analytics=False)
    early, whole = _queue_both_ways(run, monkeypatch, min_score)
    import pandas as pd

    pd.testing.assert_frame_equal(early, whole, check_exact=True)
    if min_score < 1:
        assert len(early)


def test_queue_of_candidates_dropped_early_equals_the_queue_filtered_at_the_end_real(shared_data, monkeypatch):
    import qa
    from common import REAL_BATCHES

    import pandas as pd

    run = qa.run(*REAL_BATCHES["shuffler"](shared_data), workers=1, store=False, analytics=False)
    for min_score in (0.25, 0.5):
        early, whole = _queue_both_ways(run, monkeypatch, min_score)
        pd.testing.assert_frame_equal(early, whole, check_exact=True)
        monkeypatch.undo()


# --- made range by range, kept on disk ---------------------------------------------------------------------

def _queue_ways(run, monkeypatch, tmp_path, min_score):
    """The queue made at once, made a few images at a time, and kept on disk (read back whole)."""
    from qa.analytics import review
    from qa.parts import Parts, run_folder

    args = dict(violations=run.violations, min_score=min_score)
    once = review_queue(run.batch, run.comparison, **args)
    monkeypatch.setattr(review, "_RANGE_ROWS", 7)
    assert len(review._ranges(run.comparison.object_pairs)) > 2
    ranged = review_queue(run.batch, run.comparison, **args)
    folder = run_folder(tmp_path)
    kept = review_queue(run.batch, run.comparison, folder=folder.path, owner=folder, **args)
    # sorted a range of scores at a time: at most 3 candidates a sort (more where one score bin has more)
    monkeypatch.setattr(review, "SORT_ROWS", 3)
    in_ranges = review_queue(run.batch, run.comparison, folder=folder.path / "ranges", owner=folder, **args)
    monkeypatch.undo()
    if len(once):
        assert isinstance(kept, Parts) and len(kept) == len(once) and kept.owner is folder
        pd.testing.assert_frame_equal(kept.head(5), once.head(5), check_exact=True)
        pd.testing.assert_series_equal(kept["reason"], once["reason"], check_exact=True)
        kept = kept.read()
        pd.testing.assert_frame_equal(in_ranges.read(), kept, check_exact=True)
        assert not list((folder.path / "ranges").glob("review_*.parquet"))  # the ranges' files are gone
    return once, ranged, kept


@pytest.mark.parametrize("min_score", [0.0, 0.25, 0.999, 2.0])
def test_queue_made_range_by_range_and_on_disk_equals_the_queue_made_at_once(tmp_path, monkeypatch, min_score):
    import qa
    from qa.synth import synthesize

    synthesize(tmp_path / "batch", images=6, size=(160, 320), annotators=3, seed=11, workers=1)
    run = qa.run(manifest=tmp_path / "batch" / "batch.toml", workers=1, store=False, analytics=False)
    once, ranged, kept = _queue_ways(run, monkeypatch, tmp_path, min_score)
    pd.testing.assert_frame_equal(ranged, once, check_exact=True)
    pd.testing.assert_frame_equal(kept, once, check_exact=True)
    assert (len(once) > 0) == (min_score < 1)


def test_queue_from_the_comparison_in_parts_equals_the_queue_from_the_table_in_memory(tmp_path, monkeypatch):
    import qa
    from qa.analytics import review
    from qa.engine import _pool, tables
    from qa.engine.compare import Comparison
    from qa.synth import synthesize

    synthesize(tmp_path / "batch", images=6, size=(160, 320), annotators=3, seed=11, workers=1)
    monkeypatch.setattr(tables, "_SPILL_ROWS", 1)  # the run's object_pairs: a part per chunk of one image
    monkeypatch.setattr(_pool, "CHUNK_MAX", 1)
    run = qa.run(manifest=tmp_path / "batch" / "batch.toml", workers=1, store=False, analytics=False)
    parts = run.comparison.object_parts()
    assert parts is not None and len(parts.paths) == 6
    in_memory = Comparison(object_pairs=run.comparison.object_pairs, settings=run.comparison.settings)
    assert in_memory.object_parts() is None
    for min_score in (0.0, 0.25):
        args = dict(violations=run.violations, min_score=min_score)
        expected = review_queue(run.batch, in_memory, **args)
        assert len(expected)
        pd.testing.assert_frame_equal(review_queue(run.batch, run.comparison, **args), expected, check_exact=True)
        monkeypatch.setattr(review, "_RANGE_ROWS", 7)  # ranges within the parts, too
        pd.testing.assert_frame_equal(review_queue(run.batch, run.comparison, **args), expected, check_exact=True)
        monkeypatch.setattr(review, "_RANGE_ROWS", 10_000)


def _parted_run(monkeypatch, *exports, **kwargs):
    """A run whose ``object_pairs`` is kept in a part per image (one image per chunk)."""
    import qa
    from qa.engine import _pool, tables

    monkeypatch.setattr(tables, "_SPILL_ROWS", 1)
    monkeypatch.setattr(_pool, "CHUNK_MAX", 1)
    run = qa.run(*exports, workers=1, store=False, analytics=False, **kwargs)
    monkeypatch.undo()
    return run


def _queue_on_executor_and_in_process(run, tmp_path, **args):
    """The queue made in this process from the table in memory, and from the parts, a task per range, on a
    local pool of two workers (in memory and kept on disk)."""
    from qa.engine._executors import open_executor
    from qa.engine.compare import Comparison
    from qa.parts import run_folder

    in_memory = Comparison(object_pairs=run.comparison.object_pairs, settings=run.comparison.settings)
    expected = review_queue(run.batch, in_memory, **args)
    pool = open_executor(None, workers=2)
    try:
        on_pool = review_queue(run.batch, run.comparison, executor=pool, **args)
        folder = run_folder(tmp_path)
        kept = review_queue(run.batch, run.comparison, executor=pool, folder=folder.path, owner=folder, **args)
    finally:
        pool.close()
    return expected, on_pool, kept.read() if len(expected) else kept


def test_queue_made_range_by_range_on_a_pool_equals_the_queue_made_in_this_process(tmp_path, monkeypatch):
    from qa.synth import synthesize

    from dataclasses import replace

    from qa.model import Finding

    synthesize(tmp_path / "batch", images=6, size=(160, 320), annotators=3, seed=11, workers=1)
    run = _parted_run(monkeypatch, manifest=tmp_path / "batch" / "batch.toml")
    assert len(run.comparison.object_parts().paths) == 6  # six parts, a task per range of each
    # an error on an object of no compared image (here: of no image) goes with the last range; one
    # without its image, with the range of its object's image
    name = run.batch.annotators[0]
    last = run.batch.exports[name].objects[-1]
    violations = [*run.violations,
                  Finding("VTX001", "error", "planted", annotator=name, image="not-compared.png",
                          source=replace(last.source, index=10 ** 6, id=None)),
                  Finding("VTX001", "error", "planted", annotator=name, image=None, source=last.source)]
    for min_score in (0.0, 0.25):
        expected, on_pool, kept = _queue_on_executor_and_in_process(run, tmp_path, violations=violations,
                                                                    min_score=min_score)
        assert len(expected) and "not-compared.png" in set(expected["image"])
        pd.testing.assert_frame_equal(on_pool, expected, check_exact=True)
        pd.testing.assert_frame_equal(kept, expected, check_exact=True)


def test_queue_made_range_by_range_on_a_pool_equals_the_queue_made_in_this_process_real(shared_data, tmp_path,
                                                                                       monkeypatch):
    from common import REAL_BATCHES

    run = _parted_run(monkeypatch, *REAL_BATCHES["lidc"](shared_data))
    assert len(run.comparison.object_parts().paths) > 100
    expected, on_pool, kept = _queue_on_executor_and_in_process(run, tmp_path, violations=run.violations,
                                                                min_score=0.25)
    errors = expected[expected["reason"] == "rule_error"]
    assert len(errors) and errors["object_index"].isna().sum() < len(errors)  # rule rows given to their ranges
    pd.testing.assert_frame_equal(on_pool, expected, check_exact=True)
    pd.testing.assert_frame_equal(kept, expected, check_exact=True)


def test_queue_made_range_by_range_and_on_disk_equals_the_queue_made_at_once_real(shared_data, monkeypatch,
                                                                                  tmp_path):
    import qa
    from common import REAL_BATCHES

    for name in ("lidc", "shuffler"):
        run = qa.run(*REAL_BATCHES[name](shared_data), workers=1, store=False, analytics=False)
        once, ranged, kept = _queue_ways(run, monkeypatch, tmp_path, 0.25)
        assert len(once)
        pd.testing.assert_frame_equal(ranged, once, check_exact=True, obj=name)
        pd.testing.assert_frame_equal(kept, once, check_exact=True, obj=name)


def test_ranges_cut_between_images():
    from qa.analytics import review

    image = pd.Series(pd.Categorical(list("aaabbbbbcd"), categories=list("abcd")))
    op = pd.DataFrame({"image": image})
    old = review._RANGE_ROWS
    try:
        review._RANGE_ROWS = 4
        assert review._ranges(op) == [(0, 8), (8, 10)]  # b's rows stay with the range they start in
        review._RANGE_ROWS = 2
        assert review._ranges(op) == [(0, 3), (3, 8), (8, 10)]  # a cut at the first image start from each 2 rows
        scattered = pd.DataFrame({"image": pd.Series(pd.Categorical(list("abab")))})
        assert review._ranges(scattered) == [(0, 4)]  # an image's rows apart: one range
    finally:
        review._RANGE_ROWS = old


def _attribute_exports(tmp_path):
    """One image, three squares per annotator, one moved (a low IoU) and two with other attribute values."""
    from common import write_json

    def export(name, shifts, values):
        anns = [{"id": k + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 900.0,
                 "bbox": [10 + 40 * k + dx, 10, 30, 30], "attributes": v,
                 "segmentation": [[10 + 40 * k + dx, 10, 40 + 40 * k + dx, 10, 40 + 40 * k + dx, 40,
                                   10 + 40 * k + dx, 40]]} for k, (dx, v) in enumerate(zip(shifts, values))]
        write_json(tmp_path / f"{name}.json", {"images": [{"id": 1, "file_name": "a.jpg", "width": 140, "height": 60}],
                                               "categories": [{"id": 1, "name": "box"}], "annotations": anns})
        return f"{name}={tmp_path / f'{name}.json'}"

    return (export("gold", (0, 0, 0), [{"colour": "red"}, {"colour": "blue"}, {"colour": "red"}]),
            export("ann", (0, 9, 0), [{"colour": "blue"}, {"colour": "blue"}, {"colour": "green"}]))


def test_requeue_on_disk_equals_requeue_in_memory(tmp_path):
    import qa
    from qa.analytics.review import requeue
    from qa.parts import Parts

    gold, ann = _attribute_exports(tmp_path)
    run = qa.run(gold, ann, reference="gold", attributes={"colour": "nominal"}, store=False, pack=None, workers=1)
    kept = run.analytics.review_table
    assert isinstance(kept, Parts)  # a run keeps its queue on disk, the attribute rows ranked in
    assert "attribute_mismatch" in set(kept["reason"])
    extra = run.attributes.review
    base = run.analytics.review_queue
    base = base[base["reason"] != "attribute_mismatch"].drop(columns=["rank"])
    base.insert(0, "rank", np.arange(1, len(base) + 1))
    in_memory = requeue(base.reset_index(drop=True), extra)
    folder = tmp_path / "q" / "review_queue"
    folder.mkdir(parents=True)
    base.to_parquet(folder / "part-00000.parquet", index=False)
    on_disk = requeue(Parts([folder / "part-00000.parquet"], len(base)), extra)
    pd.testing.assert_frame_equal(on_disk.read(), in_memory, check_exact=True)
    pd.testing.assert_frame_equal(in_memory, run.analytics.review_queue, check_exact=True)


@pytest.mark.parametrize("text", [object, "str"])
def test_requeue_on_disk_equals_requeue_in_memory_over_many_row_groups(tmp_path, text):
    """25,000 queue rows (three row groups read), 400 extra rows with tied scores, some of them objects
    already queued (kept under the worse score once) and one image row; extra's text as Python objects
    or as pandas' text columns (as :func:`qa.analytics.attributes.attribute_agreement` makes them)."""
    from qa.analytics.review import _TEXT, _typed, requeue
    from qa.parts import Parts

    rng = np.random.default_rng(5)
    n = 25_000
    score = np.sort(rng.choice(np.linspace(0.25, 1.0, 61), n))[::-1]
    queue = pd.DataFrame({"rank": np.arange(1, n + 1), "kind": "object", "image": [f"i{k % 97}" for k in range(n)],
                          "reason": "low_iou", "metric": "mask_iou", "value": 1 - score, "score": score, "reasons": 1,
                          "annotator": "a", "object_index": pd.array(np.arange(n), dtype="Int64"), "category": "car",
                          "other_annotator": "b", "other_object_index": pd.array([None] * n, dtype="Int64"),
                          "area": rng.random(n), "file": "a.json", "source_index": pd.array(np.arange(n), dtype="Int64"),
                          "source_id": None, "detail": "x"})
    queue.loc[[3, 97, 9_999, 20_000], "object_index"] = pd.NA  # violations whose object was not found
    queue = _typed(queue)  # the queue's own column types (text as object)
    extra = queue.drop(columns=["rank"]).sample(400, random_state=1).reset_index(drop=True)
    extra["reason"] = "attribute_mismatch"
    extra["score"] = rng.choice(np.linspace(0.25, 1.0, 61), 400)
    extra.loc[:199, "object_index"] = pd.array(np.arange(n, n + 200), dtype="Int64")  # new objects
    extra.loc[0, "kind"] = "image"
    extra.loc[1, ["image", "object_index"]] = ["i3", pd.NA]  # the same unknown object as queue rows 3 and 97
    extra.loc[2, "category"] = None
    extra = extra.astype({c: text for c in _TEXT})
    in_memory = requeue(queue, extra)
    folder = tmp_path / "review_queue"
    folder.mkdir()
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(queue, preserve_index=False), folder / "part-00000.parquet",
                   row_group_size=10_000)
    on_disk = requeue(Parts([folder / "part-00000.parquet"], n), extra)
    assert len(in_memory) < n + 400  # some objects were in both
    pd.testing.assert_frame_equal(on_disk.read(), in_memory, check_exact=True)


def test_score_cuts_make_ranges_of_whole_bins_worst_first():
    from qa.analytics.review import _score_bins, _score_cuts

    # bins: below 0, [0, 1) in 1024, then 1 and up with NaN (DuckDB orders NaN above every number)
    scores = np.array([-0.5, 0.0, 1 / 1024, 0.5, 0.999, 1.0, 7.0, np.nan])
    assert _score_bins(scores).tolist() == [0, 1, 2, 513, 1023, 1025, 1025, 1025]
    counts = np.bincount(_score_bins([0.9] * 4 + [0.5] * 3 + [0.2] * 2 + [0.1]), minlength=1026)
    cuts = _score_cuts(counts, 5)  # 4 at 0.9, then 3 + 2 at 0.5 and 0.2, then 1 at 0.1
    assert len(cuts) == 2 and cuts[0] <= 0.9 and 0.5 < cuts[0] and cuts[1] <= 0.2 and 0.1 < cuts[1]
    assert _score_cuts(counts, 100) == []  # one sort takes them all
    assert _score_cuts(np.bincount(_score_bins([0.3] * 9), minlength=1026), 2) == []  # one bin is not split


def test_reason_counts_of_a_queue_on_disk_equal_value_counts_ties_in_order_of_first_appearance(tmp_path):
    from qa.analytics.review import reason_counts
    from qa.parts import Parts

    reasons = ["rule_error", "low_iou", "unmatched", "low_iou", "boundary_offset", "unmatched", "rule_error",
               "low_agreement", None]
    frames = [pd.DataFrame({"reason": reasons[:4]}), pd.DataFrame({"reason": reasons[4:]})]
    whole = pd.concat(frames, ignore_index=True)
    parts = Parts.of(frames, tmp_path / "queue")
    got = reason_counts(parts)
    pd.testing.assert_series_equal(got, whole["reason"].value_counts(), check_index_type=False)
    # three reasons twice, in the order first met; the two met once after them, in their order too
    assert list(got.index) == ["rule_error", "low_iou", "unmatched", "boundary_offset", "low_agreement"]
    pd.testing.assert_series_equal(reason_counts(whole), whole["reason"].value_counts())
