"""Consensus kernels (qa/engine/_kernels_consensus.py) and their wrappers (qa/engine/consensus.py) against
the plain numpy versions in tests/reference.py; clusters of qa.engine.match.cluster_objects by hand."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from common import NAMED_MASKS, random_mask
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qa.engine._kernels_consensus import _majority_vote, _staple_em
from qa.engine._masks import mask_to_rle, rle_crops
from qa.engine.consensus import confusion_counts, majority_vote, staple, window_stack
from qa.engine.match import cluster_objects


def _noisy_raters(rng, shape, k, flip):
    """k raters: one blobby truth with a share ``flip`` of each rater's pixels flipped."""
    truth = random_mask(rng, shape)
    return np.stack([np.where(rng.random(shape) < flip, 1 - truth, truth) for _ in range(k)]).astype(np.uint8)


# --- member windows -----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
def test_window_stack_equals_cutting_full_masks(seed):
    rng = np.random.default_rng(seed)
    shape = (21, 17)
    masks = [random_mask(rng, shape) for _ in range(5)] + [NAMED_MASKS["EMPTY"][:21, :16].copy()]
    masks[-1] = np.zeros(shape, np.uint8)  # an empty object: box (0, 0, 0, 0)
    crops = rle_crops([mask_to_rle(m) for m in masks], *shape)
    for window in [(0, 0, 17, 21), (3, 2, 12, 19), (5, 5, 6, 6), (10, 0, 17, 4)]:
        members = rng.permutation(len(masks))[:4]
        got = window_stack(crops, members, window)
        want = np.stack([ref.ref_window(masks[m], window) for m in members])
        np.testing.assert_array_equal(got, want)


# --- pixel vote ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("extra_voters", [0, 1, 2])
@pytest.mark.parametrize("ties", ["background", "foreground"])
def test_majority_vote_equals_reference(seed, extra_voters, ties):
    rng = np.random.default_rng(seed)
    for k in (1, 2, 3, 4):
        stack = _noisy_raters(rng, (13, 11), k, 0.3)
        voters = k + extra_voters
        got = majority_vote(stack, voters=voters, ties=ties)
        np.testing.assert_array_equal(got, ref.majority_vote(stack, voters, ties == "foreground"))
        _, votes = _majority_vote(stack, voters, ties == "foreground")
        np.testing.assert_array_equal(votes, stack.sum(axis=0))


def test_majority_vote_by_hand():
    a = np.array([[1, 1, 1, 0]])
    b = np.array([[1, 1, 0, 0]])
    c = np.array([[1, 0, 0, 1]])
    assert majority_vote([a, b, c]).tolist() == [[1, 1, 0, 0]]  # 3, 2, 1, 1 votes of 3
    # four annotators cover the image, three drew the object: 2 of 4 is a tie
    assert majority_vote([a, b, c], voters=4).tolist() == [[1, 0, 0, 0]]
    assert majority_vote([a, b, c], voters=4, ties="foreground").tolist() == [[1, 1, 0, 0]]
    assert majority_vote([a, b], ties="foreground").tolist() == [[1, 1, 1, 0]]


def test_majority_vote_rejects_bad_input():
    with pytest.raises(ValueError, match="voters"):
        majority_vote(np.ones((3, 2, 2)), voters=2)
    with pytest.raises(ValueError, match="ties"):
        majority_vote(np.ones((3, 2, 2)), ties="coin")
    with pytest.raises(ValueError, match="stack"):
        majority_vote(np.ones((2, 2)))


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, (7, 6), elements=st.integers(0, 1)), st.integers(1, 5))
def test_identical_masks_vote_and_staple_to_the_mask(mask, k):
    stack = np.repeat(mask[None], k, axis=0)
    np.testing.assert_array_equal(majority_vote(stack), mask)
    if mask.any():
        np.testing.assert_array_equal(staple(stack).mask, mask)


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, (4, 5, 6), elements=st.integers(0, 1)), st.integers(0, 3))
def test_vote_ignores_annotator_order_and_shrinks_with_more_voters(stack, extra):
    k = stack.shape[0]
    base = majority_vote(stack, voters=k + extra)
    np.testing.assert_array_equal(majority_vote(stack[::-1], voters=k + extra), base)
    assert not (majority_vote(stack, voters=k + extra + 1) & ~base.astype(bool)).any()


# --- STAPLE -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [2, 3, 5])
def test_staple_equals_reference(seed, k):
    rng = np.random.default_rng(seed)
    stack = _noisy_raters(rng, (15, 12), k, rng.uniform(0.02, 0.25))
    got = staple(stack)
    w, p, q, f, it = ref.staple(stack)
    np.testing.assert_allclose(got.probability, w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.sensitivity, p, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.specificity, q, rtol=1e-9, atol=1e-12)
    assert got.prior == pytest.approx(f)
    assert got.iterations == it
    np.testing.assert_array_equal(got.mask, (w >= 0.5).astype(np.uint8))


@pytest.mark.parametrize("prior", [0.2, 0.5])
def test_staple_with_a_given_prior_and_few_iterations(prior):
    rng = np.random.default_rng(7)
    stack = _noisy_raters(rng, (9, 9), 3, 0.2)
    for max_iter in (1, 2, 5):
        got = staple(stack, prior=prior, max_iter=max_iter)
        w, p, q, f, it = ref.staple(stack, prior=prior, max_iter=max_iter)
        assert got.iterations == it == max_iter
        np.testing.assert_allclose(got.probability, w, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got.sensitivity, p, rtol=1e-9, atol=1e-12)


def test_staple_by_hand():
    # rater 3 also marks a pixel nobody else does: its specificity drops, the pixel stays out
    masks = np.array([[[1, 1, 0, 0]], [[1, 1, 0, 0]], [[1, 1, 1, 0]]], np.uint8)
    r = staple(masks)
    assert r.mask.tolist() == [[1, 1, 0, 0]]
    np.testing.assert_allclose(r.sensitivity, [1, 1, 1])
    np.testing.assert_allclose(r.specificity, [1, 1, 0.5])
    # degenerate window: every rater marks every pixel (no background): rates of 1, all foreground
    full = staple(np.ones((3, 2, 2), np.uint8))
    assert full.mask.all() and np.all(full.sensitivity == 1) and np.all(full.specificity == 1)
    # a rater who marks nothing gets sensitivity 0 and does not move the result
    with_empty = staple(np.concatenate([masks, np.zeros((1, 1, 4), np.uint8)]))
    np.testing.assert_allclose(with_empty.probability, r.probability, atol=1e-12)
    assert with_empty.sensitivity[-1] == 0


def test_staple_rejects_bad_input():
    with pytest.raises(ValueError, match="prior"):
        staple(np.ones((2, 2, 2)), prior=1.0)
    with pytest.raises(ValueError, match="max_iter"):
        staple(np.ones((2, 2, 2)), max_iter=0)
    with pytest.raises(ValueError, match="at least one"):
        staple(np.ones((2, 0, 2)))


def test_staple_kernel_returns_only_arrays_and_numbers():
    w, p, q, f, it = _staple_em(np.ones((2, 3, 3), np.uint8), -1.0, 10, 1e-7)
    assert w.dtype == np.float64 and p.shape == q.shape == (2,) and isinstance(it, int) and f == 1.0


# --- confusion counts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
def test_confusion_counts_equal_numpy(seed):
    rng = np.random.default_rng(seed)
    a, b = random_mask(rng, (14, 9)), random_mask(rng, (14, 9))
    tp, fp, fn, tn = confusion_counts(a, b)
    a, b = a.astype(bool), b.astype(bool)
    assert (tp, fp, fn, tn) == ((a & b).sum(), (a & ~b).sum(), (~a & b).sum(), (~a & ~b).sum())


# --- clusters -----------------------------------------------------------------------------------------

def test_clusters_at_most_one_object_per_annotator():
    # annotator 0 drew two objects that both match annotator 1's one object: the better match wins
    labels = cluster_objects([0, 0, 1], [[0, 2], [1, 2]], [0.6, 0.8])
    assert labels.tolist() == [0, 1, 1]


def test_clusters_grow_through_one_missing_link_but_never_bridge_two_groups():
    # 0-1 and 1-2 match, 0-2 does not: 1 of 2 cross pairs are linked, so the three merge
    assert cluster_objects([0, 1, 2], [[0, 1], [1, 2]], [0.9, 0.6]).tolist() == [0, 0, 0]
    # {0, 1} and {2, 3} are two groups joined only by the weaker 1-2: 1 of 4 cross pairs, kept apart
    assert cluster_objects([0, 1, 2, 3], [[0, 1], [2, 3], [1, 2]], [0.9, 0.9, 0.6]).tolist() == [0, 0, 1, 1]


def test_clusters_bridge_rejection_exactly():
    # best pair 1-2 merges first; then 0-1 (cross pairs 0-1 linked, 0-2 not: 1 of 2) merges;
    # then 2-3 (cross pairs 0-3, 1-3 not linked, 2-3 linked: 1 of 3) is refused
    labels = cluster_objects([0, 1, 2, 3], [[0, 1], [2, 3], [1, 2]], [0.9, 0.9, 0.95])
    assert labels.tolist() == [0, 0, 0, 1]


def test_clusters_of_a_full_clique_and_of_unmatched_objects():
    pairs = [[0, 1], [0, 2], [1, 2], [3, 4]]
    labels = cluster_objects([0, 1, 2, 0, 2, 1], pairs, [0.7, 0.8, 0.9, 0.6])
    assert labels.tolist() == [0, 0, 0, 1, 1, 2]
    assert cluster_objects([0, 1], np.zeros((0, 2)), []).tolist() == [0, 1]
    assert cluster_objects([], np.zeros((0, 2)), []).tolist() == []


def test_clusters_reject_pairs_within_one_annotator():
    with pytest.raises(ValueError, match="same annotator"):
        cluster_objects([0, 0], [[0, 1]], [0.9])
    with pytest.raises(ValueError, match="outside"):
        cluster_objects([0, 1], [[0, 2]], [0.9])


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 5), st.integers(1, 4), st.randoms(use_true_random=False))
def test_clusters_never_hold_two_objects_of_one_annotator(n_annotators, per_annotator, rnd):
    codes = [a for a in range(n_annotators) for _ in range(per_annotator)]
    pairs, ious = [], []
    for i in range(len(codes)):
        for j in range(i + 1, len(codes)):
            if codes[i] != codes[j] and rnd.random() < 0.5:
                pairs.append([i, j])
                ious.append(rnd.random())
    labels = cluster_objects(codes, np.asarray(pairs, np.int64).reshape(-1, 2), ious)
    for c in set(labels.tolist()):
        owners = [codes[i] for i in np.flatnonzero(labels == c)]
        assert len(owners) == len(set(owners))


@pytest.mark.parametrize("voters", [2, 3, 4, 7])
@pytest.mark.parametrize("ties", [False, True])
def test_vote_clusters_equals_the_stack_one_cluster_at_a_time(ties, voters):
    """The image's clusters voted in one call give each cluster's stack vote, tight mask and confusion
    counts (odd and even numbers of voters, so ties and clusters the vote leaves empty occur)."""
    from qa.engine._kernels_consensus import _confusion_counts, _majority_vote, _member_stack, _vote_clusters
    from qa.engine._masks import mask_to_rle, rle_crops

    rng = np.random.default_rng(4)
    h, w = 40, 50
    masks = []
    for _ in range(12):
        m = np.zeros((h, w), np.uint8)
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        m[y:y + rng.integers(2, 12), x:x + rng.integers(2, 12)] = 1
        m &= (rng.random((h, w)) < 0.9).astype(np.uint8)
        masks.append(m)
    crops = rle_crops([mask_to_rle(m) for m in masks], h, w)
    clusters = [[0, 1, 2], [3, 4], [5], [6, 7, 8, 9], [10, 11]]
    ptr = np.cumsum([0] + [len(c) for c in clusters]).astype(np.int64)
    members = np.concatenate([np.array(c, np.int64) for c in clusters])
    windows = []
    for c in clusters:
        b = crops.boxes[c]
        windows.append((b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()))
    windows = np.array(windows, np.int64)
    tight, area, buf, starts, counts = _vote_clusters(crops.buf, crops.starts, crops.boxes, ptr, members, windows,
                                                      voters, ties)
    for k, c in enumerate(clusters):
        x0, y0, x1, y1 = windows[k]
        stack = _member_stack(crops.buf, crops.starts, crops.boxes, np.array(c, np.int64), x0, y0, y1 - y0, x1 - x0)
        mask, _ = _majority_vote(stack, voters, ties)
        assert area[k] == mask.sum()
        for m in range(len(c)):
            assert counts[ptr[k] + m].tolist() == _confusion_counts(stack[m], mask).tolist()
        full = np.zeros((h, w), np.uint8)
        full[y0:y1, x0:x1] = mask
        got = np.zeros((h, w), np.uint8)
        tx0, ty0, tx1, ty1 = tight[k]
        got[ty0:ty1, tx0:tx1] = buf[starts[k]:starts[k + 1]].reshape(ty1 - ty0, tx1 - tx0)
        np.testing.assert_array_equal(got, full)
