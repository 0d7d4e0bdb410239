"""Batch-level tables made part by part: the compensated sums equal pandas' Cython group-by, and a
comparison read in many parts gives the same aggregates and agreement bins, to the bit, as the same table
in memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def test_compensated_sums_fed_in_parts_equal_the_cython_group_by():
    from qa.analytics._kernels_sums import compensated_add

    rng = np.random.default_rng(3)
    n, groups = 50_000, 23
    labels = rng.integers(-1, groups, n)  # unsorted, with rows of no group: pandas' Kahan summation
    values = rng.standard_normal((n, 3)) * np.exp(rng.uniform(-25, 25, (n, 3)))
    values[rng.random((n, 3)) < 0.05] = np.nan
    values[rng.random(n) < 0.01, 1] = 0.0
    values[7, 2] = np.inf
    sums, compensation = np.zeros((groups, 3)), np.zeros((groups, 3))
    counts = np.zeros((groups, 3), np.int64)
    for lo in range(0, n, 7_001):
        compensated_add(labels[lo:lo + 7_001], values[lo:lo + 7_001], sums, compensation, counts)
    frame = pd.DataFrame(values, columns=list("xyz")).assign(
        key=pd.Categorical.from_codes(labels, categories=[f"g{k:02d}" for k in range(groups)]))
    grouped = frame.groupby("key", observed=True, sort=True)[list("xyz")]
    np.testing.assert_array_equal(sums, grouped.sum().to_numpy())
    np.testing.assert_array_equal(counts, grouped.count().to_numpy())
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan),
                                      grouped.mean().to_numpy())
    plain = np.array([[np.nansum(values[labels == g, j]) for j in range(3)] for g in range(groups)])
    assert not np.array_equal(plain, sums)  # the order and the compensation matter: the test can fail


def _tables(aggregates):
    return {scope: table.copy() for scope, table in aggregates.tables.items()}, aggregates.scores


@pytest.fixture(scope="module", params=["batch.toml", "batch_panoptic.toml"])
def parted(request, tmp_path_factory):
    """A synth run whose object_pairs are on disk in one part per image: (batch, comparison, facts, manifest,
    the attribute values its pass collected)."""
    import qa
    from qa.analytics import aggregate as module
    from qa.analytics import attributes
    from qa.engine import _pool, tables
    from qa.synth import synthesize

    folder = tmp_path_factory.mktemp("parted")
    synthesize(folder / "batch", images=6, size=(160, 320), annotators=3, seed=5, workers=1,
               faults=["bob:miss_small", "carol:drop_occluded", "carol:swap"])
    captured = {}
    aggregate = module.aggregate

    def spy(batch, comparison, *, facts=None):
        captured.update(batch=batch, comparison=comparison, facts=facts)
        return aggregate(batch, comparison, facts=facts)

    agreement = attributes.attribute_agreement

    def spy_values(batch, comparison, **kw):
        captured.update(values=kw["values"])
        return agreement(batch, comparison, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tables, "_SPILL_ROWS", 1)  # the run's object_pairs: a part per chunk of one image
        mp.setattr(_pool, "CHUNK_MAX", 1)
        mp.setattr(module, "aggregate", spy)
        mp.setattr(attributes, "attribute_agreement", spy_values)
        qa.run(manifest=folder / "batch" / request.param, workers=1, store=False)
    comparison = captured["comparison"]
    assert comparison.object_parts() is not None and len(comparison.object_parts().paths) == 6
    return captured["batch"], comparison, captured["facts"], request.param, captured["values"]


def _in_memory(comparison):
    from qa.engine.compare import Comparison

    return Comparison(object_pairs=comparison.object_pairs, image_pairs=comparison.image_pairs,
                      settings=comparison.settings, category_image_iou=comparison.category_image_iou)


def test_aggregates_from_a_comparison_in_parts_equal_those_from_the_table_in_memory(parted):
    from qa.analytics.aggregate import aggregate

    batch, comparison, facts, manifest, _ = parted
    in_memory = _in_memory(comparison)
    assert in_memory.object_parts() is None
    parts_tables, parts_scores = _tables(aggregate(batch, comparison, facts=facts))
    whole_tables, whole_scores = _tables(aggregate(batch, in_memory, facts=facts))
    assert list(parts_tables) == list(whole_tables) and "annotator_size" in parts_tables
    for scope in whole_tables:
        pd.testing.assert_frame_equal(parts_tables[scope], whole_tables[scope], check_exact=True, obj=scope)
    pd.testing.assert_frame_equal(parts_scores, whole_scores, check_exact=True)
    if manifest == "batch_panoptic.toml":
        assert {"pq", "sq", "rq"} <= set(whole_tables["annotator"].columns)
        assert {"pq", "sq", "rq"} <= set(whole_tables["category"].columns)
    else:
        assert "occluded_kappa" in whole_tables["annotator"].columns

    # and the figures are the plain definitions: a pair's mean mask IoU over its matched rows, each
    # annotator's counts from both sides
    op = comparison.object_pairs
    matched = op[op["status"] == "matched"]
    pairs = whole_tables["annotator_pair"].set_index("pair")
    for pair, group in matched.groupby("pair", observed=True):
        assert pairs.loc[str(pair), "mask_iou_mean"] == pytest.approx(group["iou"].mean(), rel=1e-14)
        assert pairs.loc[str(pair), "matched"] == len(group)
    annotators = whole_tables["annotator"].set_index("annotator")
    for name in batch.annotators:
        sides = (op["annotator_a"] == name) | (op["annotator_b"] == name)
        assert annotators.loc[name, "matched"] == int((sides & (op["status"] == "matched")).sum())


def test_agreement_bins_from_a_comparison_in_parts_equal_those_from_the_table(parted):
    from qa.analytics.boundaries import agreement_bins

    batch, comparison, facts, _, _ = parted
    for tolerance in (1.0, 2.0):
        from_parts = agreement_bins(comparison, batch, tolerance=tolerance, facts=facts)
        from_table = agreement_bins(comparison.object_pairs, batch, tolerance=tolerance, facts=facts)
        for a, b in zip(from_parts, from_table):
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        matched = int((comparison.object_pairs["status"] == "matched").sum())  # every pair in a size bin
        assert from_parts[0]["matched"].sum() == from_parts[1]["matched"].sum() == matched > 0


def test_object_alpha_from_a_comparison_in_parts_equals_that_from_the_table(parted):
    from qa.analytics.alpha import object_alpha

    batch, comparison, facts, _, _ = parted
    in_memory = _in_memory(comparison)
    for per_image in (False, True):
        from_parts = object_alpha(comparison, per_image=per_image)
        assert len(from_parts) and from_parts["alpha"].notna().all()
        pd.testing.assert_frame_equal(from_parts, object_alpha(in_memory, per_image=per_image), check_exact=True)


def test_work_by_whole_images_reads_the_table_whole_when_an_image_is_in_two_parts(parted):
    from qa.analytics import alpha
    from qa.engine.compare import ImageAcrossParts, _whole_images, by_whole_images

    batch, comparison, facts, _, _ = parted
    halves = _Halves(comparison)
    columns = ["status", "category_a", "category_b", "pair", "image"]
    with pytest.raises(ImageAcrossParts):
        list(_whole_images(halves.object_pieces(columns)))
    calls = []

    def pieces_seen(pieces):
        calls.append(len(list(pieces)))
        return calls[-1]

    assert by_whole_images(comparison, pieces_seen, columns) == 6 and calls == [6]  # a part per image: as they are
    calls.clear()
    assert by_whole_images(halves, pieces_seen, columns) == 1 and calls == [1]  # cut inside an image: whole
    pd.testing.assert_frame_equal(alpha.object_alpha(halves), alpha.object_alpha(comparison), check_exact=True)


class _Halves:
    """A comparison's table in two parts, cut inside one image (of its middle row)."""

    def __init__(self, comparison):
        self.comparison = comparison
        self.image_pairs = comparison.image_pairs
        self.whole = whole = comparison.object_pairs
        rows = np.flatnonzero((whole["image"] == whole["image"].iloc[len(whole) // 2]).to_numpy())
        self.cut = int(rows[len(rows) // 2])  # within that image's rows

    def object_pieces(self, columns, status=None):
        whole, cut = self.whole, self.cut
        status = None if status is None else [status] if isinstance(status, str) else status
        columns = [*columns, "status"] if status is not None and "status" not in columns else columns
        for first, rows in ((0, whole.iloc[:cut][columns]), (cut, whole.iloc[cut:][columns])):
            yield first, rows if status is None else rows[rows["status"].isin(status).to_numpy()]

    def object_columns(self, columns, status=None):
        return self.comparison.object_columns(columns, status=status)


def _same_attributes(a, b):
    assert (a is None) == (b is None)
    for name in () if a is None else ("attributes", "annotators", "confusion", "review", "scores"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True, obj=name)
    assert a is None or a.settings == b.settings


@pytest.mark.parametrize("reference", [None, "alice"])
def test_attribute_agreement_from_a_comparison_in_parts_equals_that_from_the_table(parted, reference):
    from qa.analytics.attributes import attribute_agreement

    batch, comparison, facts, manifest, values = parted
    from_parts = attribute_agreement(batch, comparison, levels={"z_order": "ordinal"}, reference=reference)
    in_memory = attribute_agreement(batch, _in_memory(comparison), levels={"z_order": "ordinal"},
                                    reference=reference)
    _same_attributes(from_parts, in_memory)
    if manifest == "batch_panoptic.toml":  # segments carry no attributes
        assert in_memory is None and not values
        return
    table = in_memory.attributes.set_index("attribute")
    assert table.loc["z_order", "how"] == "declared ordinal"  # a bookkeeping key, declared
    # the polygons carry occluded flags (carol's dropped ones disagree)
    assert table.loc["occluded", "pairs"] > 0 and 0 < table.loc["occluded", "alpha"] < 1
    assert (in_memory.review["metric"] == "attribute:occluded").any()
    # an image cut in two parts: its clusters are made from the whole table
    _same_attributes(attribute_agreement(batch, _Halves(comparison), levels={"z_order": "ordinal"},
                                         reference=reference), in_memory)


def test_attribute_values_from_the_pass_equal_those_read_from_the_objects(parted):
    from qa.analytics.attributes import attribute_agreement, collect_values

    batch, comparison, facts, _, values = parted
    read = collect_values(batch)
    assert list(values) == list(read)
    for key in read:
        assert values[key][0] == read[key][0]
        for name in read[key][1]:  # each object's value code, by its position in the export
            np.testing.assert_array_equal(values[key][1][name], read[key][1][name])
    _same_attributes(attribute_agreement(batch, comparison, values=values), attribute_agreement(batch, comparison))
