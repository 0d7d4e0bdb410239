"""Optimal one-to-one matching and object classification (qa/engine/match.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.engine.match import EXTRA, IGNORED, MATCHED, MISSING, assign, iou_matrix, match_objects


def brute_force_best(iou, threshold):
    """Largest total IoU over all one-to-one matchings that use only pairs >= threshold."""
    na, nb = iou.shape
    best = 0.0
    small, large = (na, nb) if na <= nb else (nb, na)
    m = iou if na <= nb else iou.T
    for perm in itertools.permutations(range(large), small):
        total = sum(m[i, j] for i, j in enumerate(perm) if m[i, j] >= threshold)
        best = max(best, total)
    return best


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 5), st.integers(0, 5), st.integers(0, 2 ** 31 - 1),
       st.sampled_from([0.3, 0.5, 0.75]))
def test_assignment_is_optimal_and_respects_threshold(na, nb, seed, threshold):
    rng = np.random.default_rng(seed)
    iou = np.round(rng.random((na, nb)), 2)
    rows, cols = assign(iou, iou_threshold=threshold)
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert (iou[rows, cols] >= threshold).all()
    np.testing.assert_allclose(iou[rows, cols].sum(), brute_force_best(iou, threshold), atol=1e-9)
    assert list(rows) == sorted(rows)


def test_threshold_is_inclusive_and_must_be_positive():
    rows, cols = assign(np.array([[0.5]]))
    assert rows.tolist() == [0] and cols.tolist() == [0]
    with pytest.raises(ValueError, match="> 0"):
        assign(np.array([[0.5]]), iou_threshold=0)


def test_iou_matrix_handles_empty_objects():
    got = iou_matrix(np.array([[0, 0], [3, 0]]), np.array([0, 3]), np.array([3, 0]))
    assert got.tolist() == [[0.0, 0.0], [1.0, 0.0]]


def test_label_disagreement_is_a_match_not_a_miss():
    # a0 ~ b1 (same object, other label), a1 ~ b0, a2 alone, b2 alone
    inter = np.array([[0, 90, 0], [50, 0, 0], [0, 0, 0]])
    area_a = np.array([100, 60, 10])
    area_b = np.array([55, 95, 20])
    m = match_objects(inter, area_a, area_b, categories_a=np.array([1, 2, 1]),
                      categories_b=np.array([2, 3, 1]))
    assert m.status.tolist() == [MATCHED, MATCHED, MISSING, EXTRA]
    assert m.index_a.tolist() == [0, 1, 2, -1]
    assert m.index_b.tolist() == [1, 0, -1, 2]
    assert m.label_disagreement.tolist() == [True, False, False, False]
    np.testing.assert_allclose(m.iou[:2], [90 / 105, 50 / 65])
    assert np.isnan(m.iou[2:]).all()
    assert m.count(MATCHED) == 2 and m.count(MISSING) == 1 and m.count(EXTRA) == 1


def test_crowd_regions_are_never_matched_and_cover_unmatched_objects():
    # b0 is a crowd region of category 1; a0 (cat 1) lies 80 % inside it; a1 (cat 2) too, but other category
    inter = np.array([[80, 0], [40, 0], [0, 30]])
    area_a = np.array([100, 50, 40])
    area_b = np.array([400, 35])
    m = match_objects(inter, area_a, area_b, categories_a=np.array([1, 2, 1]),
                      categories_b=np.array([1, 1]), crowd_b=np.array([True, False]))
    by_a = {int(i): int(s) for i, s in zip(m.index_a, m.status) if i >= 0}
    assert by_a == {2: MATCHED, 0: IGNORED, 1: MISSING}
    assert -1 not in m.index_b[m.status == MATCHED]
    np.testing.assert_allclose(m.crowd_share[m.index_a == 0], [0.8])
    # a crowd region on a's side is not missing either
    m2 = match_objects(inter, area_a, area_b, categories_a=np.array([1, 2, 1]), categories_b=np.array([1, 1]),
                       crowd_a=np.array([True, False, False]))
    assert 0 not in m2.index_a.tolist()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 6), st.integers(0, 6), st.integers(0, 2 ** 31 - 1))
def test_every_object_is_accounted_for_once(na, nb, seed):
    rng = np.random.default_rng(seed)
    area_a = rng.integers(0, 50, na)
    area_b = rng.integers(0, 50, nb)
    inter = np.minimum.outer(area_a, area_b) * (rng.random((na, nb)) < 0.5)
    crowd_a = rng.random(na) < 0.2
    crowd_b = rng.random(nb) < 0.2
    m = match_objects(inter, area_a, area_b, categories_a=rng.integers(0, 2, na),
                      categories_b=rng.integers(0, 2, nb), crowd_a=crowd_a, crowd_b=crowd_b)
    listed_a = sorted(i for i in m.index_a.tolist() if i >= 0)
    listed_b = sorted(j for j in m.index_b.tolist() if j >= 0)
    assert listed_a == np.flatnonzero(~crowd_a).tolist()
    assert listed_b == np.flatnonzero(~crowd_b).tolist()
    swapped = match_objects(inter.T, area_b, area_a, categories_a=np.zeros(nb), categories_b=np.zeros(na),
                            crowd_a=crowd_b, crowd_b=crowd_a)
    np.testing.assert_allclose(np.sort(swapped.iou[swapped.status == MATCHED]).sum(),
                               np.sort(m.iou[m.status == MATCHED]).sum())
