"""Systematic boundary disagreement on qa synth batches with one planted signal each, and on hand-made tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import qa
from qa import store as qstore
from qa.analytics.boundaries import (agreement_bins, analyse_boundaries, offset_distribution, offset_values,
                                     stage_tolerance)
from qa.cli import main
from qa.errors import ConfigError
from qa.synth import synthesize
from storekit import drop_schema_4

SIZE = (128, 256)


@pytest.fixture(scope="module")
def dilated(tmp_path_factory):
    """Three annotators; bob draws every thing 2 px outside (the only planted signal)."""
    out = tmp_path_factory.mktemp("dilated") / "batch"
    synthesize(out, images=3, size=SIZE, annotators=3, seed=11, faults=["bob:dilate=2"], workers=1)
    return out


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """Three annotators; alice moves the road|sidewalk boundary 3 px into the sidewalk (road grows)."""
    out = tmp_path_factory.mktemp("shifted") / "batch"
    synthesize(out, images=2, size=SIZE, annotators=3, seed=12, faults=["alice:shift=road/sidewalk,px=3"],
               formats=("coco", "coco_panoptic", "labelmap"), workers=1)
    return out


# --- the planted signals ---------------------------------------------------------------------------

def test_planted_dilation_is_the_top_offset_finding_with_its_sign(dilated):
    run = qa.run(manifest=dilated / "batch.toml", pack=None, db=None, workers=1)
    findings = run.boundaries.findings()
    top = findings[0]
    assert top["kind"] == "offset" and top["annotator"] == "bob"
    assert top["signed_offset_px_mean"] == pytest.approx(2.0, abs=0.5)
    assert top["text"].startswith(f"bob draws {top['category']} outlines +")
    assert "px outside the others (n=" in top["text"]
    offsets = run.boundaries.offsets
    things = offsets[offsets["category"].isin(["car", "person", "bicycle", "traffic sign"]) & (offsets["n"] >= 5)]
    bob = things[things["annotator"] == "bob"]
    assert len(bob) >= 3 and (bob["signed_offset_px_mean"] > 1.5).all()
    # the two others are compared with bob (-2 px) and with each other (0): between -1 and 0, and at most
    # -1 px as some small things of bob no longer match theirs
    others = things[things["annotator"] != "bob"]
    assert (others["signed_offset_px_mean"] < 0).all() and (others["signed_offset_px_mean"] >= -1.01).all()
    stuff = offsets[offsets["category"].isin(["road", "sidewalk", "building", "sky", "vegetation"])]
    assert (stuff["signed_offset_px_mean"].abs() < 0.25).all()  # stuff is not dilated
    # the figures are in the scores table for the gate
    scores = run.scores.set_index(["scope", "key", "metric"])["value"]
    key = f"bob|{top['category']}"
    assert scores[("annotator_category", key, "signed_offset_px_mean")] == pytest.approx(top["signed_offset_px_mean"])
    assert 0 <= scores[("annotator_category", key, "offset_beyond_2px_share")] <= 1


def test_against_a_reference_only_the_reference_pairs_count(dilated):
    batch = qa.load(manifest=dilated / "batch.toml")
    from qa.engine.compare import compare_batch

    comparison = compare_batch(batch, workers=1)
    result = analyse_boundaries(batch, comparison, reference="carol")
    offsets = result.offsets.set_index(["annotator", "category"])
    assert set(result.offset_values["other"]) == {"carol"}
    assert "carol" not in set(result.offset_values["annotator"])
    assert offsets.loc[("bob", "car"), "signed_offset_px_mean"] == pytest.approx(2.0, abs=0.5)
    assert abs(offsets.loc[("alice", "car"), "signed_offset_px_mean"]) < 0.25  # alice draws as carol does
    top = result.findings()[0]
    assert top["annotator"] == "bob" and f"outside carol (n={top['n']}; 95% CI +" in top["text"]
    with pytest.raises(ConfigError, match="not an annotator"):
        analyse_boundaries(batch, comparison, reference="zoe")


@pytest.mark.parametrize("manifest", ["batch_panoptic.toml", "batch_labelmap.toml"])
def test_planted_shift_is_the_top_category_pair_finding_with_its_direction(shifted, manifest):
    run = qa.run(manifest=shifted / manifest, pack=None, db=None, workers=1)
    pairs = [f for f in run.boundaries.findings() if f["kind"] == "category_pair"]
    top = pairs[0]
    assert (top["category_a"], top["category_b"]) == ("road", "sidewalk")
    assert top["annotator"] == "alice" and top["gains"] == "road"  # the road grows into the sidewalk
    assert top["gain_px"] == pytest.approx(3.0, abs=0.5)
    # alice's pairs (2 of 3) disagree beyond 2 px almost everywhere, bob|carol nowhere
    assert top["disagree_share"] == pytest.approx(2 / 3, abs=0.08)
    assert top["text"].startswith("road | sidewalk: ") and "road gains 3." in top["text"]
    assert "in alice's labels (vs the others)" in top["text"]
    table = run.boundaries.category_pairs
    assert table.iloc[0]["disagree_px"] > 5 * table.iloc[1]["disagree_px"]
    scores = run.scores.set_index(["scope", "key", "metric"])["value"]
    assert scores[("annotator_category_pair", "alice|road|sidewalk", "signed_displacement_px_mean")] > 2.5
    assert scores[("annotator_category_pair", "bob|road|sidewalk", "signed_displacement_px_mean")] < -1.0
    assert scores[("category_pair", "road|sidewalk", "disagree_2px_share")] == pytest.approx(top["disagree_share"])
    # interface rows for the store: per annotator pair, + when category_a gains in a's labels
    t = run.boundary_disagreement
    t = t[t["kind"] == "interface"].set_index(["annotator_a", "annotator_b", "category_a", "category_b"])
    assert t.loc[("alice", "bob", "road", "sidewalk"), "gains"] == "road"
    assert t.loc[("alice", "bob", "road", "sidewalk"), "signed_offset_px_mean"] == pytest.approx(3.0, abs=0.5)
    assert t.loc[("bob", "carol", "road", "sidewalk"), "beyond_tolerance_share"] == 0.0


def test_qa_run_prints_per_class_agreement_and_the_findings(shifted, capsys):
    code = main(["run", "--manifest", str(shifted / "batch_labelmap.toml"), "--no-store", "--workers", "1"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("class "))
    assert lines[header].split() == ["class", "image", "pairs", "class", "IoU", "class", "BF@1px", "class", "BF@2px",
                                     "class", "BF@4px"]
    assert {lines[header + 1].split()[0], lines[header + 2].split()[0]} == {"road", "sidewalk"}  # worst first
    start = lines.index("boundaries:")
    category = [line for line in lines[start:] if " | " in line]
    assert category[0].startswith("  road | sidewalk: ") and "road gains" in category[0]


# --- the store: interface rows, and the schema 1 to 2 upgrade -------------------------------------------

def test_stored_run_keeps_both_kinds_of_rows(shifted, tmp_path):
    db = tmp_path / "qa.duckdb"
    run = qa.run(manifest=shifted / "batch_panoptic.toml", pack=None, db=db, workers=1)
    with qstore.open(db) as s:
        rows = s.sql("SELECT * FROM boundary_disagreement WHERE run_id = ?", [run.run_id])
        assert set(rows["kind"]) == {"objects", "interface"}
        kerb = rows[(rows["kind"] == "interface") & (rows["annotator_a"] == "alice") & (rows["annotator_b"] == "bob")
                    & (rows["category_a"] == "road") & (rows["category_b"] == "sidewalk")].iloc[0]
        assert kerb["gains"] == "road" and kerb["tolerance_px"] == 2.0 and kerb["boundary_px"] > 100
        metrics = json.loads(kerb["metrics"])
        assert set(metrics) >= {"abs_displacement_px_mean", "boundary_f_2px", "disagree_1px_share"}
        objects = rows[rows["kind"] == "objects"]
        assert objects["beyond_tolerance_share"].between(0, 1).all()
        scopes = set(s.sql("SELECT DISTINCT scope FROM scores WHERE run_id = ?", [run.run_id])["scope"])
        assert {"annotator_category", "category_pair", "annotator_category_pair", "category"} <= scopes


def test_schema_2_store_is_upgraded_in_place(shifted, tmp_path):
    import duckdb

    db = tmp_path / "old.duckdb"
    with qstore.open(db, read_only=False):
        pass
    new_columns = ["kind", "tolerance_px", "beyond_tolerance_share", "signed_offset_px_median", "boundary_px",
                   "gains"]
    con = duckdb.connect(str(db))  # make it a schema 2 store holding one old row
    drop_schema_4(con)
    for column in new_columns:
        con.execute(f"ALTER TABLE boundary_disagreement DROP COLUMN {column}")
    con.execute("DELETE FROM qa_schema WHERE schema_version = 3")
    con.execute("INSERT INTO qa_schema VALUES ('annotation-qa', 2, '0.1.0', now()::TIMESTAMP)")
    con.execute("INSERT INTO boundary_disagreement (run_id, annotator_a, annotator_b, category_a, category_b, "
                "n_pairs) VALUES ('old', 'a', 'b', 'car', 'car', 3)")
    con.close()
    with pytest.raises(qa.StoreError, match=f"older than {qstore.SCHEMA_VERSION}"):
        qstore.open(db)  # read-only: asks for a run to upgrade it
    qa.run(manifest=shifted / "batch_labelmap.toml", pack=None, db=db, workers=1)
    with qstore.open(db) as s:
        assert s.sql("SELECT max(schema_version) AS v FROM qa_schema")["v"][0] == qstore.SCHEMA_VERSION
        columns = list(s.sql("SELECT * FROM boundary_disagreement LIMIT 0").columns)
        assert columns == qstore._table_columns("boundary_disagreement")
        old = s.sql("SELECT kind, gains FROM boundary_disagreement WHERE run_id = 'old'").iloc[0]
        assert old["kind"] == "objects" and old["gains"] is None
        assert "interface" in set(s.sql("SELECT kind FROM boundary_disagreement")["kind"])


# --- the tables on hand-made inputs -----------------------------------------------------------------

def _pairs():
    cat = pd.Categorical
    nan = math.nan
    return pd.DataFrame({
        "image": cat(["1", "1", "2", "2", "2"]),
        "annotator_a": cat(["alice"] * 5), "annotator_b": cat(["bob"] * 5),
        "status": cat(["matched", "matched", "matched", "missing", "extra"]),
        "object_index_a": pd.array([0, 1, 2, 3, None], dtype="Int64"),
        "object_index_b": pd.array([0, 1, 2, None, 3], dtype="Int64"),
        "category_a": cat(["car", "car", "person", "car", None]),
        "category_b": cat(["car", "car", "person", None, "car"]),
        "iou": [0.9, 0.7, 0.8, nan, nan], "area_a": [500, 5000, 20000, 100, 0], "area_b": [520, 5200, 19000, 0, 50],
        "boundary_iou": [0.6, 0.5, 0.7, nan, nan], "boundary_f_2px": [0.9, 0.8, 1.0, nan, nan],
        "signed_offset": [1.0, 3.0, -0.5, nan, nan],
    })


def test_offsets_are_taken_from_both_sides_with_opposite_signs():
    values = offset_values(_pairs())
    assert len(values) == 6
    alice = values[values["annotator"] == "alice"].sort_values("object_index")
    bob = values[values["annotator"] == "bob"].sort_values("object_index")
    assert alice["signed_offset_px"].tolist() == [1.0, 3.0, -0.5]
    assert bob["signed_offset_px"].tolist() == [-1.0, -3.0, 0.5]
    table = offset_distribution(values, tolerance=2.0).set_index(["annotator", "category"])
    row = table.loc[("alice", "car")]
    assert row["n"] == 2 and row["signed_offset_px_mean"] == 2.0 and row["beyond_tolerance_share"] == 0.5
    assert row["signed_offset_px_p10"] == pytest.approx(np.quantile([1.0, 3.0], 0.1))
    assert row["signed_offset_px_p90"] == pytest.approx(np.quantile([1.0, 3.0], 0.9))
    assert table.loc[("bob", "car"), "signed_offset_px_mean"] == -2.0
    assert list(offset_distribution(values).index[:2]) == [0, 1]
    assert abs(offset_distribution(values)["signed_offset_px_mean"]).is_monotonic_decreasing


@pytest.mark.parametrize("text", [False, True])
def test_offset_figures_equal_pandas_grouped_by_annotator_and_category(text):
    # the distribution groups by one small integer per row; its figures are those of a groupby on the two
    # keys, to the bit, whether the keys are categoricals (as offset_values makes them) or text; a row with
    # no category is in no group
    import pandas as pd

    rng = np.random.default_rng(3)
    n = 4000
    values = pd.DataFrame({"annotator": rng.choice(["carol", "alice", "bob"], n),
                           "category": rng.choice(["truck", "car", "person", "sky"], n).astype(object),
                           "image": [f"img{k:03d}" for k in rng.integers(0, 60, n)],
                           "signed_offset_px": rng.normal(0.3, 2.0, n)})
    values.loc[7, "category"] = None
    if not text:
        for key in ("annotator", "category", "image"):
            values[key] = pd.Categorical(values[key], categories=sorted(values[key].dropna().unique()))
    got = offset_distribution(values, tolerance=1.5, bootstrap=50).set_index(["annotator", "category"])
    v = values.assign(_abs=values["signed_offset_px"].abs(),
                      _beyond=(values["signed_offset_px"].abs() > 1.5).astype(np.float64))
    grouped = v.groupby(["annotator", "category"], sort=True, observed=True)
    expected = pd.DataFrame({"n": grouped.size(), "signed_offset_px_mean": grouped["signed_offset_px"].mean(),
                             "signed_offset_px_median": grouped["signed_offset_px"].median(),
                             **{f"signed_offset_px_p{round(q * 100):d}": grouped["signed_offset_px"].quantile(q)
                                for q in (0.1, 0.25, 0.75, 0.9)},
                             "abs_offset_px_mean": grouped["_abs"].mean(),
                             "beyond_tolerance_share": grouped["_beyond"].mean()})
    expected.index = expected.index.set_levels([level.astype(str) for level in expected.index.levels])
    assert len(got) == len(expected) == 12 and got["n"].sum() == n - 1
    for column in expected:
        for key, value in expected[column].items():
            assert got.loc[key, column] == value, (column, key)  # exact
    assert got["ci_low"].notna().all() and (got["ci_low"] <= got["ci_high"]).all()
    assert set(got["ci_unit"]) == {"images"}


def test_agreement_bins_by_size_occlusion_and_vertex_density():
    from pathlib import Path

    from qa.model import Batch, Category, Export, Image, Object, Source

    def obj(name, occluded, side):
        square = np.array([[0, 0], [side, 0], [side, side], [0, side]], float)
        return Object(name, "1", "car", "polygon", Source("x.json", 0, 1), polygons=(square,),
                      attributes={} if occluded is None else {"occluded": occluded})

    alice = [obj("alice", True, 10), obj("alice", False, 100), obj("alice", None, 100), obj("alice", False, 10)]
    bob = [obj("bob", False, 10), obj("bob", False, 100), obj("bob", None, 10), obj("bob", None, 10)]
    exports = {n: Export(n, Path(n), "coco", {"1": Image("1", "1.png", 200, 200)}, {"car": Category("car")}, o)
               for n, o in (("alice", alice), ("bob", bob))}
    batch = Batch(["alice", "bob"], exports, exports["alice"].images, {"car": Category("car")}, {"1": ("alice", "bob")})
    size, occlusion, density = agreement_bins(_pairs(), batch, tolerance=2.0)
    size = size.set_index("bin")
    assert size.loc["small", ["matched", "unmatched"]].tolist() == [1, 2]  # 510 px pair, 100 px and 50 px objects
    assert size.loc["medium", "matched"] == 1 and size.loc["large", "matched"] == 1
    assert size.loc["small", "matched_share"] == pytest.approx(2 / 4)
    assert size.loc["medium", "mask_iou_mean"] == 0.7 and size.loc["medium", "abs_offset_px_mean"] == 3.0
    occlusion = occlusion.set_index("bin")
    # either side flagged: true; flags present and none set: false; no flags: unknown
    assert occlusion["matched"].tolist() == [1, 1, 1] and occlusion["unmatched"].tolist() == [0, 1, 1]
    density = density.set_index("bin")  # a 10 px square: 4 vertices per 40 px = 10 per 100 px; 100 px: 1
    assert density.loc["10-20", "matched"] == 1 and density.loc["<2", "matched"] == 1
    assert density.loc["5-10", "matched"] == 1  # (10 + 1) / 2


def test_stage_tolerance_prefers_2px():
    assert stage_tolerance((1, 2, 4)) == 2.0 and stage_tolerance((1, 3, 5)) == 3.0 and stage_tolerance((4,)) == 4.0


# --- a finding needs an offset beyond the minimum and an interval that excludes zero -----------------

@pytest.mark.shared_data
def test_identical_exports_give_no_boundary_finding(shared_data):
    # panopticapi's sample as COCO RLE (det) and as panoptic PNGs (pan): the same 50 segments. Every
    # offset is 0.0, and qa run printed "det draws horse outlines +0.0 px inside pan" and the reverse.
    folder = shared_data / "panopticapi_sample" / "sample_data"
    run = qa.run(f"det={folder / 'panoptic_coco_detection_format.json'}", f"pan={folder / 'panoptic_examples.json'}",
                 store=False, pack=None, workers=1, analytics=False)
    offsets = run.boundaries.offsets
    assert (offsets["signed_offset_px_mean"] == 0).all() and offsets["n"].max() >= 5
    assert [f for f in run.boundaries.findings() if f["kind"] == "offset"] == []
    assert run.summary["boundary_findings"] == []


def _values(offsets_by_image):
    rows = [("bob", "car", image, k, v) for image, values in offsets_by_image.items() for k, v in enumerate(values)]
    return pd.DataFrame(rows, columns=["annotator", "category", "image", "object_index", "signed_offset_px"])


def _analysis(values, **settings):
    from qa.analytics.boundaries import BoundaryAnalysis

    empty = pd.DataFrame(columns=["category_a", "category_b", "disagree_px", "gains", "gain_px"])
    offsets = offset_distribution(values, min_pairs=5, seed=0)
    return BoundaryAnalysis(offsets=offsets, offset_values_of=lambda: values, category_pairs=empty,
                            category_pair_annotators=empty, by_size=None, by_occlusion=None,
                            by_vertex_density=None, table=None, scores=None,
                            settings={"tolerance_px": 2.0, "min_pairs": 5, "annotators": ["alice", "bob", "carol"],
                                      **settings})


def test_interval_resamples_images_and_a_steady_offset_is_a_finding():
    values = _values({f"{k}.png": [2.0 + 0.1 * (k % 3), 1.9] for k in range(8)})
    row = offset_distribution(values).iloc[0]
    assert row["ci_unit"] == "images" and 1.9 <= row["ci_low"] < row["signed_offset_px_mean"] < row["ci_high"] <= 2.2
    [f] = _analysis(values).findings()
    assert f["text"] == (f"bob draws car outlines +2.0 px outside the others (n=16; 95% CI "
                         f"{row['ci_low']:+.1f} to {row['ci_high']:+.1f})")
    # the same seed gives the same interval
    assert offset_distribution(values)["ci_low"].iloc[0] == row["ci_low"]


def test_an_offset_whose_interval_holds_zero_is_not_a_finding():
    # mean +1.05 px, but two images pull +9 px and six -1.6 px: the images disagree on the direction
    values = _values({**{f"{k}.png": [9.0] for k in range(2)}, **{f"{k}.png": [-1.6] for k in range(2, 8)}})
    row = offset_distribution(values).iloc[0]
    assert row["signed_offset_px_mean"] == pytest.approx(1.05) and row["ci_low"] < 0 < row["ci_high"]
    assert _analysis(values).findings() == []


def test_an_offset_below_the_minimum_is_not_a_finding():
    values = _values({f"{k}.png": [0.3, 0.3] for k in range(8)})  # steady, but a third of a pixel
    row = offset_distribution(values).iloc[0]
    assert row["ci_low"] > 0
    assert _analysis(values).findings() == []
    assert len(_analysis(values, min_offset_px=0.2).findings()) == 1


def test_interval_does_not_depend_on_the_draw_block_or_the_image_column_type(monkeypatch):
    import qa.analytics.boundaries as boundaries

    rng = np.random.default_rng(5)
    values = _values({f"{k:02d}.png": list(rng.normal(0.4, 1.0, size=1 + k % 4)) for k in range(37)})
    expected = offset_distribution(values, bootstrap=300)[["ci_low", "ci_high"]].to_numpy()
    monkeypatch.setattr(boundaries, "_DRAWS_PER_BLOCK", 101)  # many blocks of a few replicates each
    assert (offset_distribution(values, bootstrap=300)[["ci_low", "ci_high"]].to_numpy() == expected).all()
    # images as a categorical sorted as text (offset_values' codes) resample as their names do
    as_codes = values.assign(image=pd.Categorical(values["image"], categories=sorted(set(values["image"]))))
    assert (offset_distribution(as_codes, bootstrap=300)[["ci_low", "ci_high"]].to_numpy() == expected).all()


def test_few_images_resample_pairs():
    values = _values({"a.png": [2.0, 2.1, 1.9, 2.0, 2.2, 1.8]})
    row = offset_distribution(values).iloc[0]
    assert row["ci_unit"] == "pairs" and row["ci_low"] > 1.7


def test_vertex_densities_are_each_objects_to_the_bit():
    """The vectorised densities (every part's edges at once, numpy's pairwise sum per part) equal the
    per-object computation, for polygons of one and several parts, short and long, and other kinds."""
    import math

    from qa.analytics.boundaries import _vertex_density, vertex_densities
    from qa.model import Object, Source

    rng = np.random.default_rng(1)
    objects = []
    for k in range(60):
        parts = tuple(rng.random((int(rng.integers(1, 40)), 2)) * 300 for _ in range(int(rng.integers(1, 4))))
        objects.append(Object("a", "im", "car", "polygon", Source("f", k), polygons=parts))
    objects.append(Object("a", "im", "car", "polygon", Source("f", 60), polygons=(np.zeros((3, 2)),)))
    objects.append(Object("a", "im", "car", "rle", Source("f", 61), rle={"size": [2, 2], "counts": [4]}))
    got = vertex_densities(objects)
    want = np.array([_vertex_density(o) for o in objects])
    assert repr(got.tolist()) == repr(want.tolist())
    assert math.isnan(got[-1]) and math.isnan(got[-2])


def test_disagreement_rows_read_column_by_column_from_parts_equal_the_table_in_memory(tmp_path, monkeypatch):
    from qa.analytics.boundaries import disagreement_table
    from qa.engine import _pool, tables

    synthesize(tmp_path / "batch", images=6, size=(160, 320), annotators=3, seed=11, workers=1)
    monkeypatch.setattr(tables, "_SPILL_ROWS", 1)  # object_pairs in a part per image
    monkeypatch.setattr(_pool, "CHUNK_MAX", 1)
    run = qa.run(manifest=tmp_path / "batch" / "batch.toml", workers=1, store=False, analytics=False)
    assert len(run.comparison.object_parts().paths) == 6
    from_parts = disagreement_table(run.comparison, None, tolerances=[1, 2, 4])
    in_memory = disagreement_table(run.comparison.object_pairs, None, tolerances=[1, 2, 4])
    assert len(in_memory) > 3 and "boundary_f_2px_mean" in in_memory and in_memory["n_pairs"].sum() > 0
    pd.testing.assert_frame_equal(from_parts, in_memory, check_exact=True)
    # the plain definition: every figure's mean over a pair of annotators and categories, all at once
    op = run.comparison.object_pairs
    matched = op[op["status"] == "matched"]
    keys = ["annotator_a", "annotator_b", "category_a", "category_b"]
    frame = matched.assign(**{k: matched[k].astype(str) for k in keys})
    expected = frame.groupby(keys, sort=True)[["iou", "boundary_f_2px", "signed_offset"]].mean().reset_index()
    assert from_parts["mask_iou_mean"].tolist() == expected["iou"].tolist()
    assert from_parts["boundary_f_2px_mean"].tolist() == expected["boundary_f_2px"].tolist()
    assert from_parts["signed_offset_px_mean"].tolist() == expected["signed_offset"].tolist()


def test_fact_table_puts_chunks_in_place_in_any_order():
    from qa.analytics.boundaries import FactTable

    rng = np.random.default_rng(3)
    n = 1_000
    occluded = rng.integers(-1, 2, n).astype(np.int8)
    density = rng.random(n)
    positions = rng.permutation(n)[:-3]  # three objects no chunk names (the last position among them or not)
    table = FactTable()
    for chunk in np.array_split(positions, 17):
        table.add({"alice": (chunk, occluded[chunk], density[chunk]), "bob": (chunk[:0], occluded[:0], density[:0])})
    facts = table.finish()
    size = int(positions.max()) + 1
    expected_occluded = np.full(size, -1, np.int8)
    expected_density = np.full(size, np.nan)
    expected_occluded[positions], expected_density[positions] = occluded[positions], density[positions]
    assert facts["alice"][0].dtype == np.int8 and (facts["alice"][0] == expected_occluded).all()
    np.testing.assert_array_equal(facts["alice"][1], expected_density)
    assert len(facts["bob"][0]) == len(facts["bob"][1]) == 0
