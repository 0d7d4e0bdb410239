"""A consensus mask from several annotators' masks of one object: pixel vote or STAPLE.

Both take a ``(k, h, w)`` stack of masks cut from one window of the image (the cluster's window; see
:mod:`qa.analytics.consensus`) and run a numba kernel of :mod:`qa.engine._kernels_consensus` over it.
:func:`window_stack` paints objects' tight crops into such a window without building full-image masks,
and :func:`confusion_counts` scores a mask against the consensus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TIES = ("background", "foreground")
"""How :func:`majority_vote` settles a pixel marked by exactly half of the voters."""


def _stack(masks) -> np.ndarray:
    stack = np.asarray(masks)
    if stack.ndim != 3:
        raise ValueError(f"masks must be a (k, h, w) stack, got shape {stack.shape}")
    return np.ascontiguousarray(stack != 0, dtype=np.uint8)


def majority_vote(masks, *, voters: int | None = None, ties: str = "background") -> np.ndarray:
    """The pixels marked by more than half of the voters.

    Parameters
    ----------
    masks : array_like, (k, h, w)
        The masks of the annotators who drew the object, cut from one window (non-zero is
        foreground).
    voters : int, optional
        How many annotators vote, default ``k``. Annotators who cover the image but drew no object here
        vote background everywhere: pass their number included, so the threshold is half of all of
        them.
    ties : {"background", "foreground"}, default "background"
        A pixel marked by exactly ``voters / 2`` annotators (possible when ``voters`` is even) is
        background (a strict majority) or foreground (pylidc's ``consensus`` at ``clevel=0.5``).

    Returns
    -------
    (h, w) uint8
        The voted mask.

    Raises
    ------
    ValueError
        On a stack that is not 3-D, ``voters < k``, or an unknown ``ties``.

    Notes
    -----
    The vote is symmetric in the annotators and needs no iteration; a pixel's vote counts only the masks
    of ``masks``. With ``voters = k`` and odd ``k`` there are no ties.

    Examples
    --------
    >>> a = np.array([[1, 1, 0]]); b = np.array([[1, 0, 0]]); c = np.array([[1, 1, 1]])
    >>> majority_vote([a, b, c]).tolist()
    [[1, 1, 0]]
    >>> majority_vote([a, b], voters=4).tolist(), majority_vote([a, b], voters=4, ties="foreground").tolist()
    ([[0, 0, 0]], [[1, 0, 0]])
    """
    from qa.engine._kernels_consensus import _majority_vote

    stack = _stack(masks)
    k = stack.shape[0]
    voters = k if voters is None else int(voters)
    if voters < k:
        raise ValueError(f"voters ({voters}) must be at least the number of masks ({k})")
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    mask, _ = _majority_vote(stack, voters, ties == "foreground")
    return mask


@dataclass(frozen=True, slots=True)
class StapleResult:
    """What :func:`staple` estimated.

    Attributes
    ----------
    probability : (h, w) float64
        Posterior probability that each pixel belongs to the object.
    sensitivity, specificity : (k,) float64
        Each rater's estimated true-positive and true-negative rates.
    prior : float
        The prior probability of foreground used.
    iterations : int
        EM iterations run.
    """

    probability: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    prior: float
    iterations: int

    @property
    def mask(self) -> np.ndarray:
        """The consensus mask: pixels with probability >= 0.5, as uint8."""
        return (self.probability >= 0.5).astype(np.uint8)


def staple(masks, *, prior: float | None = None, max_iter: int = 1000, tol: float = 1e-7) -> StapleResult:
    """STAPLE (Simultaneous Truth And Performance Level Estimation) for binary masks.

    Parameters
    ----------
    masks : array_like, (k, h, w)
        The raters' masks, cut from one window (non-zero is foreground).
    prior : float, optional
        Prior probability that a pixel is foreground, in (0, 1); default the mean of the masks over
        the window (ITK's estimate).
    max_iter : int, default 1000
        Most EM iterations.
    tol : float, default 1e-7
        Stop when no rater's sensitivity or specificity moved by more than this in one iteration
        (ITK stops when the squared change is at most 1e-14, the same test).

    Returns
    -------
    StapleResult
        The probability map, each rater's sensitivity and specificity, the prior and the
        iterations; ``.mask`` thresholds the probability at 0.5.

    Raises
    ------
    ValueError
        On a stack that is not 3-D or is empty, a prior outside (0, 1), or ``max_iter < 1``.

    Notes
    -----
    The algorithm follows ITK's ``STAPLEImageFilter`` (no Markov random field): the probability
    starts as the raters' mean mask, then each iteration estimates every rater's sensitivity ``p`` and
    specificity ``q`` from it (M-step) and recomputes it (E-step) as
    ``f a / (f a + (1 - f) b)`` with ``a = prod p^d (1 - p)^(1 - d)`` and
    ``b = prod q^(1 - d) (1 - q)^d`` over the raters' decisions ``d``. The window matters: background
    pixels in it enter the specificities and the default prior, so the consensus uses the cluster's
    window (the members' union bbox grown by a margin). A rate whose denominator is zero (no
    background in the window, say) is set to 1, and a pixel whose two likelihoods are both zero gets
    the prior; ITK leaves both undefined. Products of up to a few dozen raters stay well inside
    float64.

    References
    ----------
    S. K. Warfield, K. H. Zou, W. M. Wells, "Simultaneous truth and performance level estimation
    (STAPLE): an algorithm for the validation of image segmentation", IEEE Transactions on Medical
    Imaging 23(7):903-921, 2004, doi:10.1109/TMI.2004.828354. Reference code: ITK,
    ``Modules/Filtering/ImageCompare/include/itkSTAPLEImageFilter.hxx`` (``GenerateData``).

    Examples
    --------
    Three raters agree on two pixels; the third rater also marks a third pixel alone:

    >>> masks = [[[1, 1, 0, 0]], [[1, 1, 0, 0]], [[1, 1, 1, 0]]]
    >>> r = staple(masks)
    >>> r.mask.tolist(), r.sensitivity.round(3).tolist(), r.specificity.round(3).tolist()
    ([[1, 1, 0, 0]], [1.0, 1.0, 1.0], [1.0, 1.0, 0.5])
    """
    from qa.engine._kernels_consensus import _staple_em

    stack = _stack(masks)
    if stack.size == 0:
        raise ValueError(f"masks must hold at least one non-empty mask window, got shape {stack.shape}")
    if prior is not None and not 0.0 < float(prior) < 1.0:
        raise ValueError(f"prior must lie in (0, 1), got {prior}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")
    weights, p, q, used, iterations = _staple_em(stack, -1.0 if prior is None else float(prior), int(max_iter),
                                                 float(tol))
    return StapleResult(weights, p, q, float(used), int(iterations))


def window_stack(crops, members, window) -> np.ndarray:
    """Several objects of one image in one shared window, as a ``(k, h, w)`` uint8 stack.

    Parameters
    ----------
    crops : qa.engine._masks.ObjectCrops
        Tight crops of the image's objects.
    members : sequence of int
        Positions in ``crops`` of the objects wanted.
    window : (x0, y0, x1, y1)
        End-exclusive window of the image; parts of the objects outside it are clipped.

    Examples
    --------
    >>> from qa.engine._masks import mask_to_rle, rle_crops
    >>> a = np.zeros((3, 4), np.uint8); a[1, 1:3] = 1
    >>> window_stack(rle_crops([mask_to_rle(a)], 3, 4), [0], (0, 0, 3, 3)).tolist()
    [[[0, 0, 0], [0, 1, 1], [0, 0, 0]]]
    """
    from qa.engine._kernels_consensus import _member_stack

    x0, y0, x1, y1 = (int(v) for v in window)
    return _member_stack(crops.buf, crops.starts, crops.boxes, np.asarray(members, dtype=np.int64),
                         x0, y0, max(y1 - y0, 0), max(x1 - x0, 0))


def confusion_counts(other, reference) -> tuple[int, int, int, int]:
    """``(tp, fp, fn, tn)`` pixel counts of ``other`` against ``reference`` (same shape).

    Examples
    --------
    >>> confusion_counts(np.array([[1, 1, 0, 0]]), np.array([[1, 0, 1, 0]]))
    (1, 1, 1, 1)
    """
    from qa.engine._kernels_consensus import _confusion_counts

    a = np.ascontiguousarray(other, dtype=np.uint8)
    b = np.ascontiguousarray(reference, dtype=np.uint8)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"masks must be two 2-D arrays of one shape, got {a.shape} and {b.shape}")
    tp, fp, fn, tn = (int(v) for v in _confusion_counts(a, b))
    return tp, fp, fn, tn
