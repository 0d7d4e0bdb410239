"""Numba kernels of the consensus: member masks in a shared window, pixel vote, STAPLE EM, confusion counts.

A consensus object is computed on one window of the image (the union of its cluster members' bboxes):
the members' tight crops are painted into a ``(k, h, w)`` stack
(:func:`_member_stack`), and the stack is reduced by a pixel vote (:func:`_majority_vote`) or by
STAPLE's expectation-maximisation (:func:`_staple_em`). :func:`_confusion_counts` scores one mask
against another in the same window. The wrappers are in :mod:`qa.engine.consensus`.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _member_stack(buf, starts, boxes, members, x0, y0, h, w):
    """Paint several objects' tight crops into one shared window.

    Parameters
    ----------
    buf : (size,) uint8
        Tight crops, 0/1, row-major, one after the other (:class:`qa.engine._masks.ObjectCrops`).
    starts : (n + 1,) int64
        Crop ``k`` is ``buf[starts[k]:starts[k + 1]]``.
    boxes : (n, 4) int64
        Tight bboxes ``x0, y0, x1, y1`` (end-exclusive).
    members : (k,) int64
        The objects to paint, as positions in ``boxes``.
    x0, y0 : int
        The window's top-left corner in the image.
    h, w : int
        The window's height and width.

    Returns
    -------
    (k, h, w) uint8
        Layer ``m`` is object ``members[m]`` inside the window (parts outside it are clipped).
    """
    k = members.shape[0]
    out = np.zeros((k, h, w), np.uint8)
    for m in range(k):
        o = members[m]
        bx0 = boxes[o, 0]
        by0 = boxes[o, 1]
        bx1 = boxes[o, 2]
        by1 = boxes[o, 3]
        cw = bx1 - bx0
        ix0 = max(bx0, x0)
        iy0 = max(by0, y0)
        ix1 = min(bx1, x0 + w)
        iy1 = min(by1, y0 + h)
        for y in range(iy0, iy1):
            row = starts[o] + (y - by0) * cw - bx0
            for x in range(ix0, ix1):
                out[m, y - y0, x - x0] = buf[row + x]
    return out


@njit(cache=True, nogil=True)
def _majority_vote(stack, voters, include_ties):
    """Pixel vote: a pixel is foreground when more than half of the voters mark it.

    Parameters
    ----------
    stack : (k, h, w) uint8
        The masks that vote for foreground (0/1); ``voters - k`` further voters mark nothing here.
    voters : int
        How many annotators vote (``>= k``); the threshold is ``voters / 2``.
    include_ties : bool
        When true a pixel marked by exactly half of the voters is foreground, otherwise background.

    Returns
    -------
    mask : (h, w) uint8
        The voted mask.
    votes : (h, w) int32
        How many of the ``k`` masks mark each pixel.
    """
    k, h, w = stack.shape
    votes = np.zeros((h, w), np.int32)
    mask = np.zeros((h, w), np.uint8)
    for i in range(h):
        for j in range(w):
            c = 0
            for m in range(k):
                if stack[m, i, j] != 0:
                    c += 1
            votes[i, j] = c
            if 2 * c > voters or (include_ties and 2 * c == voters and c > 0):
                mask[i, j] = 1
    return mask, votes


@njit(cache=True, nogil=True)
def _staple_em(stack, prior, max_iter, tol):
    """STAPLE for binary masks: expectation-maximisation of each rater's sensitivity and specificity.

    Follows ITK's ``STAPLEImageFilter``: the foreground probability ``W`` starts as the raters' mean
    mask; each iteration sets every rater's sensitivity ``p`` and specificity ``q`` from ``W``
    (M-step), then ``W`` from ``p``, ``q`` and the prior (E-step); the loop stops when no ``p`` or
    ``q`` moved by more than ``tol`` (not checked after the first iteration) or after ``max_iter``
    iterations.

    Parameters
    ----------
    stack : (k, h, w) uint8
        The raters' masks (0/1).
    prior : float
        Prior probability of foreground, in (0, 1); a negative value means the mean of the stack
        (ITK's ``g_t`` with a confidence weight of 1).
    max_iter : int
        Most iterations (at least 1).
    tol : float
        Convergence threshold on the largest change of a sensitivity or specificity.

    Returns
    -------
    weights : (h, w) float64
        Posterior probability that each pixel is foreground.
    p, q : (k,) float64
        Each rater's sensitivity and specificity.
    prior : float
        The prior used.
    iterations : int
        Iterations run.

    Notes
    -----
    Rates whose denominator is zero (no foreground weight, or no background weight, in the window)
    are set to 1; a pixel whose two likelihoods are both zero gets the prior.
    """
    k, h, w = stack.shape
    weights = np.zeros((h, w), np.float64)
    for i in range(h):
        for j in range(w):
            s = 0
            for m in range(k):
                if stack[m, i, j] != 0:
                    s += 1
            weights[i, j] = s / k
    if prior < 0.0:
        total = 0.0
        for i in range(h):
            for j in range(w):
                total += weights[i, j]
        prior = total / (h * w)
    p = np.ones(k, np.float64)
    q = np.ones(k, np.float64)
    last_p = np.full(k, -10.0)
    last_q = np.full(k, -10.0)
    it = 0
    while it < max_iter:
        # M-step: sensitivity and specificity of each rater from the current weights
        for m in range(k):
            p_num = 0.0
            p_den = 0.0
            q_num = 0.0
            q_den = 0.0
            for i in range(h):
                for j in range(w):
                    wt = weights[i, j]
                    if stack[m, i, j] != 0:
                        p_num += wt
                    else:
                        q_num += 1.0 - wt
                    p_den += wt
                    q_den += 1.0 - wt
            p[m] = p_num / p_den if p_den > 0.0 else 1.0
            q[m] = q_num / q_den if q_den > 0.0 else 1.0
        # E-step: posterior foreground probability of each pixel
        for i in range(h):
            for j in range(w):
                a = prior
                b = 1.0 - prior
                for m in range(k):
                    if stack[m, i, j] != 0:
                        a *= p[m]
                        b *= 1.0 - q[m]
                    else:
                        a *= 1.0 - p[m]
                        b *= q[m]
                weights[i, j] = a / (a + b) if a + b > 0.0 else prior
        it += 1
        converged = it > 1
        for m in range(k):
            if abs(p[m] - last_p[m]) > tol or abs(q[m] - last_q[m]) > tol:
                converged = False
            last_p[m] = p[m]
            last_q[m] = q[m]
        if converged:
            break
    return weights, p, q, prior, it


@njit(cache=True, nogil=True)
def _confusion_counts(other, reference):
    """Pixel confusion counts of one mask against a reference mask of the same shape.

    Parameters
    ----------
    other, reference : (h, w) uint8
        Masks (non-zero is foreground).

    Returns
    -------
    (4,) int64
        ``tp`` (in both), ``fp`` (in ``other`` only), ``fn`` (in ``reference`` only), ``tn`` (in
        neither).
    """
    h, w = other.shape
    out = np.zeros(4, np.int64)
    for i in range(h):
        for j in range(w):
            a = other[i, j] != 0
            b = reference[i, j] != 0
            if a and b:
                out[0] += 1
            elif a:
                out[1] += 1
            elif b:
                out[2] += 1
            else:
                out[3] += 1
    return out


@njit(cache=True, nogil=True)
def _vote_clusters(buf, starts, boxes, member_ptr, members, windows, voters, include_ties):
    """The pixel vote of several clusters of one image, each in its own window, in one call.

    Parameters
    ----------
    buf, starts, boxes :
        The image's objects' tight crops (:class:`qa.engine._masks.ObjectCrops`).
    member_ptr : (c + 1,) int64
        Cluster ``i``'s members are ``members[member_ptr[i]:member_ptr[i + 1]]``.
    members : (m,) int64
        Positions in ``boxes``.
    windows : (c, 4) int64
        Each cluster's window ``x0, y0, x1, y1`` (not empty).
    voters : int
        Annotators voting on the image (:func:`_majority_vote`).
    include_ties : bool

    Returns
    -------
    tight : (c, 4) int64
        Each voted mask's tight box in the image (zeros when the vote left no pixel).
    area : (c,) int64
    mask_buf : (size,) uint8
        The voted masks in their tight boxes, row-major, one after the other.
    mask_starts : (c + 1,) int64
    counts : (m, 4) int64
        Each member's ``tp, fp, fn, tn`` against its cluster's mask, in the window
        (:func:`_confusion_counts`).
    """
    nc = member_ptr.shape[0] - 1
    tight = np.zeros((nc, 4), np.int64)
    area = np.zeros(nc, np.int64)
    counts = np.zeros((members.shape[0], 4), np.int64)
    mask_starts = np.zeros(nc + 1, np.int64)
    mask_buf = np.zeros(1024, np.uint8)
    used = 0
    # a pixel is in the mask when its votes v satisfy 2 v > voters, or 2 v == voters > 0 with ties:
    # v >= least (as counts of members, at most the voters)
    least = voters // 2 + 1
    if include_ties and voters % 2 == 0 and voters > 0:
        least = voters // 2
    for c in range(nc):
        x0 = windows[c, 0]
        y0 = windows[c, 1]
        h = windows[c, 3] - y0
        w = windows[c, 2] - x0
        # votes: each member adds one where it marks a pixel (no (k, h, w) stack); rows without
        # branches, so they vectorise
        votes = np.zeros((h, w), np.int32)
        for m in range(member_ptr[c], member_ptr[c + 1]):
            o = members[m]
            bx0 = boxes[o, 0]
            by0 = boxes[o, 1]
            cw = boxes[o, 2] - bx0
            xa = max(bx0, x0)
            xb = min(boxes[o, 2], x0 + w)
            for y in range(max(by0, y0), min(boxes[o, 3], y0 + h)):
                src = buf[starts[o] + (y - by0) * cw - bx0 + xa:starts[o] + (y - by0) * cw - bx0 + xb]
                dst = votes[y - y0, xa - x0:xb - x0]
                for x in range(xb - xa):
                    dst[x] += np.int32(src[x] != 0)
        mask = np.empty((h, w), np.uint8)
        ty0 = h
        ty1 = -1
        tx0 = w
        tx1 = -1
        n = 0
        for i in range(h):
            row = votes[i]
            out = mask[i]
            k = 0
            for j in range(w):
                b = np.uint8(row[j] >= least)
                out[j] = b
                k += b
            if k > 0:
                n += k
                if i < ty0:
                    ty0 = i
                ty1 = i
                j = 0
                while out[j] == 0:
                    j += 1
                if j < tx0:
                    tx0 = j
                j = w - 1
                while out[j] == 0:
                    j -= 1
                if j > tx1:
                    tx1 = j
        # each member against the mask: tp and fp over its own pixels, the rest from the totals
        for m in range(member_ptr[c], member_ptr[c + 1]):
            o = members[m]
            bx0 = boxes[o, 0]
            by0 = boxes[o, 1]
            cw = boxes[o, 2] - bx0
            xa = max(bx0, x0)
            xb = min(boxes[o, 2], x0 + w)
            tp = 0
            marked = 0
            for y in range(max(by0, y0), min(boxes[o, 3], y0 + h)):
                src = buf[starts[o] + (y - by0) * cw - bx0 + xa:starts[o] + (y - by0) * cw - bx0 + xb]
                voted = mask[y - y0, xa - x0:xb - x0]
                for x in range(xb - xa):
                    a = np.int64(src[x] != 0)
                    marked += a
                    tp += a & np.int64(voted[x])
            fp = marked - tp
            counts[m, 0] = tp
            counts[m, 1] = fp
            counts[m, 2] = n - tp
            counts[m, 3] = h * w - tp - fp - (n - tp)
        area[c] = n
        if n > 0:
            tight[c, 0] = x0 + tx0
            tight[c, 1] = y0 + ty0
            tight[c, 2] = x0 + tx1 + 1
            tight[c, 3] = y0 + ty1 + 1
            size = (ty1 + 1 - ty0) * (tx1 + 1 - tx0)
            if used + size > mask_buf.shape[0]:
                grown = np.zeros(max(2 * mask_buf.shape[0], used + size), np.uint8)
                grown[:used] = mask_buf[:used]
                mask_buf = grown
            k = used
            for i in range(ty0, ty1 + 1):
                mask_buf[k:k + tx1 + 1 - tx0] = mask[i, tx0:tx1 + 1]
                k += tx1 + 1 - tx0
            used += size
        mask_starts[c + 1] = used
    return tight, area, mask_buf[:used].copy(), mask_starts, counts
