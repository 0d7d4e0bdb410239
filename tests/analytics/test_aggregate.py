"""Aggregates: checked against the pycocotools reference on the LIDC readers, a planted qa synth fault,
hand-built occlusion flags and properties of the counts."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from common import make_batch, make_object, square

from qa.analytics import analyse
from qa.analytics.aggregate import SIZES, aggregate, cohen_kappa, size_class
from qa.engine.compare import compare_batch

pytestmark = pytest.mark.shared_data


def _sizes(area):
    return np.asarray(SIZES, dtype=object)[size_class(area)]


def test_lidc_pairwise_matrix_matches_pycocotools(lidc_run, lidc_reference):
    pairs = lidc_run.analytics.pairs.set_index("pair")
    ref = lidc_reference
    for pair, group in ref.groupby("pair"):
        matched = group[group["status"] == "matched"]
        missing = int((group["status"] == "missing").sum())
        extra = int((group["status"] == "extra").sum())
        row = pairs.loc[pair]
        assert (row["matched"], row["missing"], row["extra"]) == (len(matched), missing, extra)
        assert row["mask_iou_mean"] == pytest.approx(matched["iou"].mean(), rel=1e-12)
        assert row["missing_share"] == pytest.approx(missing / (len(matched) + missing))
        assert row["extra_share"] == pytest.approx(extra / (len(matched) + extra))
        assert row["unmatched_share"] == pytest.approx((missing + extra) / (2 * len(matched) + missing + extra))
    matrix = lidc_run.analytics.matrix("mask_iou_mean")
    assert list(matrix.index) == ["r1", "r2", "r3", "r4"]
    np.testing.assert_array_equal(matrix.to_numpy(), matrix.to_numpy().T)
    assert np.isnan(np.diag(matrix.to_numpy())).all()
    assert matrix.loc["r3", "r1"] == pytest.approx(pairs.loc["r1|r3", "mask_iou_mean"])


def test_lidc_per_reader_scores_match_pycocotools(lidc_run, lidc_reference):
    readers = lidc_run.analytics.annotators.set_index("annotator")
    ref = lidc_reference
    for name in ["r1", "r2", "r3", "r4"]:
        a, b = ref["pair"].str.split("|").str[0], ref["pair"].str.split("|").str[1]
        mine = ref[(a == name) | (b == name)]
        matched = mine[mine["status"] == "matched"]
        # the reader's missing objects: the other reader's objects it did not draw
        missing = int((((a == name) & (ref["status"] == "extra")) | ((b == name) & (ref["status"] == "missing"))).sum())
        extra = int((((a == name) & (ref["status"] == "missing")) | ((b == name) & (ref["status"] == "extra"))).sum())
        row = readers.loc[name]
        assert (row["matched"], row["missing"], row["extra"]) == (len(matched), missing, extra)
        assert row["mask_iou_mean"] == pytest.approx(matched["iou"].mean(), rel=1e-12)
        assert row["missing_share"] == pytest.approx(missing / (len(matched) + missing))


def test_lidc_size_breakdown_matches_pycocotools_areas(lidc_run, lidc_reference):
    ref = lidc_reference
    area = np.where(ref["status"] == "matched", (ref["area_a"] + ref["area_b"]) / 2,
                    np.where(ref["status"] == "missing", ref["area_a"], ref["area_b"]))
    ref = ref.assign(size=_sizes(area))
    sizes = lidc_run.analytics.sizes.set_index("size")
    assert list(sizes.index) == [s for s in SIZES if s in set(ref["size"])]  # small, medium, large order
    for size, group in ref.groupby("size"):
        matched = group[group["status"] == "matched"]
        assert sizes.loc[size, "matched"] == len(matched)
        assert sizes.loc[size, "unmatched"] == int((group["status"] != "matched").sum())
        assert sizes.loc[size, "mask_iou_mean"] == pytest.approx(matched["iou"].mean(), rel=1e-12)


def test_lidc_scores_rows_join_run_scores_once(lidc_run):
    scores = lidc_run.scores
    assert not scores.duplicated(["scope", "key", "metric"]).any()
    for scope in ("annotator", "category", "image", "size", "annotator_size"):
        assert (scores["scope"] == scope).any(), scope
    row = scores[(scores["scope"] == "annotator") & (scores["key"] == "r3") & (scores["metric"] == "mask_iou_mean")]
    assert row["value"].iloc[0] == lidc_run.analytics.annotators.set_index("annotator").loc["r3", "mask_iou_mean"]
    # the engine's pair rows are kept, not repeated
    pair_iou = scores[(scores["scope"] == "annotator_pair") & (scores["metric"] == "mask_iou_mean")]
    assert len(pair_iou) == 6
    # LIDC has no occlusion flags and no panoptic exports: no such figures
    assert not scores["metric"].isin(["occluded_kappa", "pq"]).any()
    assert not (scores["scope"] == "occluded").any()


def test_planted_miss_small_annotator_shows_in_the_size_breakdown(miss_small):
    _, summary, run = miss_small
    assert summary["planted"] == {"miss_small": summary["planted"]["miss_small"]} and summary["planted"]["miss_small"] > 0
    table = run.analytics.annotator_sizes.set_index(["annotator", "size"])
    carol_small = table.loc[("carol", "small")]
    assert carol_small["missing_share"] > 0.4
    for size in ("medium", "large"):
        assert table.loc[("carol", size), "missing"] == 0
    for name in ("alice", "bob"):
        assert table.loc[(name, "small"), "missing"] == 0
        assert table.loc[(name, "small"), "extra_share"] > 0.2  # they drew what carol left out
    sizes = run.analytics.sizes.set_index("size")
    assert sizes.loc["small", "unmatched_share"] > 0.1
    assert sizes.loc["large", "unmatched_share"] == 0
    # the long rows carry the same figure under the compound key
    s = run.scores
    row = s[(s["scope"] == "annotator_size") & (s["key"] == "carol|small") & (s["metric"] == "missing_share")]
    assert row["value"].iloc[0] == pytest.approx(carol_small["missing_share"])


def test_pq_breakdown_agrees_with_the_engine_on_panoptic_synth(miss_small):
    out, _, _ = miss_small
    import qa

    run = qa.run(manifest=out / "batch_panoptic.toml", store=False, workers=1, pack=None)
    raw = aggregate(run.batch, run.comparison).tables
    engine = run.comparison.scores
    for pair, value in zip(raw["annotator_pair"]["pair"], raw["annotator_pair"]["pq"]):
        expected = engine[(engine["scope"] == "annotator_pair") & (engine["key"] == pair) & (engine["metric"] == "pq")]
        assert value == pytest.approx(expected["value"].iloc[0], abs=1e-9)
    cats = raw["category"].set_index("category")
    assert cats["pq"].between(0, 1).all() and (cats["sq"] >= cats["pq"] - 1e-12).all()
    # per class: PQ = SQ x RQ
    np.testing.assert_allclose(cats["pq"], cats["sq"] * cats["rq"], rtol=1e-12)


def _occlusion_batch():
    # four objects on one image: alice and bob agree on the shapes; bob flips two occlusion flags
    flags_a = [True, True, False, False]
    flags_b = [True, False, True, False]
    objs = {"alice": [], "bob": []}
    for k, (fa, fb) in enumerate(zip(flags_a, flags_b)):
        objs["alice"].append(make_object(square(5 + 22 * k, 10, 15), occluded=fa))
        objs["bob"].append(make_object(square(5 + 22 * k, 10, 15), occluded=fb))
    objs["bob"].append(make_object(square(30, 60, 30), category="person"))  # 30 x 30 = 900 px: small, no flag
    return make_batch(objs, size=(100, 100))


def test_occlusion_agreement_and_kappa_by_hand():
    batch = _occlusion_batch()
    analytics = analyse(batch, compare_batch(batch, workers=1), alpha=False)
    pair = analytics.pairs.set_index("pair").loc["alice|bob"]
    # 4 flagged matched pairs, 2 agree; each rater says "occluded" twice: p_e = 0.5, kappa = 0
    assert pair["occluded_agreement_share"] == 0.5
    assert pair["occluded_kappa"] == 0.0
    assert (pair["matched"], pair["missing"], pair["extra"]) == (4, 0, 1)
    occluded = analytics.occluded.set_index("occluded")
    # a matched pair is occluded when either object is flagged
    assert occluded.loc["true", "matched"] == 3 and occluded.loc["false", "matched"] == 1
    annot = analytics.annotators.set_index("annotator")
    assert annot.loc["alice", "missing"] == 1 and annot.loc["bob", "extra"] == 1
    assert annot.loc["alice", "occluded_kappa"] == 0.0


@pytest.mark.parametrize("x, y", [([1, 1, 0, 0, 1], [1, 0, 0, 0, 1]), ([1, 0, 1, 0], [0, 1, 0, 1]),
                                  ([1, 1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 1])])
def test_cohen_kappa_matches_the_confusion_matrix_formula(x, y):
    x, y = np.asarray(x), np.asarray(y)
    table = np.zeros((2, 2))
    np.add.at(table, (x, y), 1)
    n = table.sum()
    po = np.trace(table) / n
    pe = (table.sum(0) * table.sum(1)).sum() / n ** 2
    expected = (po - pe) / (1 - pe)
    assert cohen_kappa(len(x), int((x == y).sum()), int(x.sum()), int(y.sum())) == pytest.approx(expected)
    assert np.isnan(cohen_kappa(3, 3, 3, 3))  # both raters constant: undefined
    assert np.isnan(cohen_kappa(0, 0, 0, 0))


def test_counts_add_up_across_scopes(lidc_run):
    a = lidc_run.analytics
    pairs = a.pairs
    # every unmatched object of a pair is one annotator's extra and the other's missing
    assert a.annotators["missing"].sum() == pairs["missing"].sum() + pairs["extra"].sum()
    assert a.annotators["extra"].sum() == a.annotators["missing"].sum()
    assert a.annotators["matched"].sum() == 2 * pairs["matched"].sum()
    assert a.images["matched"].sum() == pairs["matched"].sum() == a.sizes["matched"].sum()
    assert a.annotator_sizes.groupby("annotator")["missing"].sum().to_dict() == \
        a.annotators.set_index("annotator")["missing"].to_dict()
    for table in (a.pairs, a.annotators, a.images, a.sizes):
        for column in ("missing_share", "extra_share", "unmatched_share", "mask_iou_mean", "boundary_iou_mean"):
            if column in table:
                values = table[column].dropna()
                assert ((values >= 0) & (values <= 1)).all(), column


def test_size_class_bounds():
    assert size_class([0, 1023, 1024, 9215, 9216, np.nan]).tolist() == [0, 0, 1, 1, 2, -1]
