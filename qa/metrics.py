"""Agreement metrics on plain numpy masks and id maps.

Each function compares two inputs and says, in its Notes, the conventions behind the number: the value
when both inputs are empty, what the image border counts as, how the symmetric form treats each side, and
the ``compat=`` setting that reproduces the published reference implementation exactly. The defaults
serve annotation QA: tolerances in pixels, and symmetric forms, since two annotators have no ground
truth between them.

The functions run the same numba kernels as the batched engine (:mod:`qa.engine.boundary`,
:mod:`qa.engine.panoptic`), on the bbox window that holds both masks, so a metric computed here and one
computed by ``qa run`` agree.

==========================  ==================  ==============================================
function                    default             ``compat=``
==========================  ==================  ==============================================
:func:`mask_iou`            both empty -> 1     ``"pycocotools"``: ``maskUtils.iou``
:func:`boundary_f`          2 px tolerance      ``"davis"``: DAVIS 2017 ``f_measure``
:func:`boundary_iou`        border not boundary ``"cheng"``: Boundary IoU ``mask_to_boundary``
:func:`surface_distances`   (no default)        DeepMind ``surface_distance`` always
:func:`panoptic_quality`    symmetric           ``"panopticapi"``: ``pq_compute``
==========================  ==================  ==============================================
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "BoundaryOffset",
    "SurfaceDistances",
    "boundary_f",
    "boundary_iou",
    "mask_iou",
    "panoptic_quality",
    "signed_boundary_offset",
    "surface_distances",
]


class SurfaceDistances(NamedTuple):
    """Result of :func:`surface_distances`: NSD at the tolerance, ASSD and HD95, in pixels."""

    nsd: float
    assd: float
    hd95: float


class BoundaryOffset(NamedTuple):
    """Result of :func:`signed_boundary_offset`: mean and median signed distance (pixels) over ``n``
    boundary pixels."""

    mean: float
    median: float
    n: int


def _check_compat(compat, allowed):
    if compat is not None and compat not in allowed:
        raise ValueError(f"compat must be None or one of {allowed}, got {compat!r}")


def _pair(a, b, names=("a", "b")):
    """Two 2-D masks of one shape, as arrays (nonzero is inside; they are read, never modified)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"{names[0]} and {names[1]} must be 2-D masks, got {a.ndim}-D and {b.ndim}-D")
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have one shape, got {a.shape} and {b.shape}")
    return a, b


def _window(a, b):
    """The two masks cut to their union bbox plus one pixel, with the crop's image-border flags."""
    from qa.engine.boundary import crop_window, edges_of

    a_crop, b_crop, offset = crop_window(a, b, margin=1)
    return a_crop, b_crop, edges_of(a_crop.shape, offset, a.shape)


def _diagonal(shape) -> float:
    return float(np.linalg.norm(shape))


# --------------------------------------------------------------------------------------------------


def mask_iou(a, b, *, iscrowd=None, compat=None):
    """Intersection over union of two masks, or of every pair from two lists of COCO RLEs.

    Parameters
    ----------
    a, b : array_like (H, W) or list of dict
        Two masks (nonzero is inside), or two lists of COCO RLEs (compressed or not) of one image
        size. With lists, ``a`` plays pycocotools' detections and ``b`` its ground truth.
    iscrowd : bool or sequence of bool, optional
        Which of ``b`` are crowd regions (one flag for two masks, one per RLE of ``b``). A crowd IoU is
        ``|a & b| / |a|``: the share of ``a`` inside the crowd region.
    compat : {None, "pycocotools"}, default None
        ``"pycocotools"`` reproduces ``pycocotools.mask.iou``: an empty intersection scores 0, so two
        empty masks score 0.

    Returns
    -------
    float or ndarray of float64
        A float for two masks; a ``(len(a), len(b))`` array for two lists.

    Raises
    ------
    ValueError
        When shapes or RLE sizes differ, or ``iscrowd`` has the wrong length.

    See Also
    --------
    panoptic_quality : IoU-based matching of whole id maps.

    Notes
    -----
    IoU is ``|a & b| / |a | b|``, symmetric in ``a`` and ``b`` except for crowd regions. By default
    two empty masks score 1 (identical inputs score 1) and any other zero denominator scores 0;
    ``compat="pycocotools"`` scores every empty intersection 0, as pycocotools' ``rleIou`` does.
    RLE lists are intersected on their run lengths (decoded in one numba call, split at column ends,
    merged column by column), and pairs whose bboxes do not overlap are skipped.

    References
    ----------
    T.-Y. Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014,
    doi:10.1007/978-3-319-10602-1_48. Reference code: github.com/cocodataset/cocoapi,
    ``PythonAPI/pycocotools/mask.py`` (``iou``) and ``common/maskApi.c`` (``rleIou``).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((4, 4), bool); a[:2, :2] = True
    >>> b = np.zeros((4, 4), bool); b[:2, :3] = True
    >>> round(mask_iou(a, b), 4)
    0.6667
    >>> empty = np.zeros((4, 4), bool)
    >>> mask_iou(empty, empty), mask_iou(empty, empty, compat="pycocotools")
    (1.0, 0.0)
    >>> mask_iou(a, b, iscrowd=True)
    1.0
    """
    _check_compat(compat, ("pycocotools",))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return _rle_iou(list(a), list(b), iscrowd, compat)
    a, b = _pair(a, b)
    a_crop, b_crop, _ = _window(a, b)
    inter = int(np.count_nonzero(a_crop & b_crop))
    na = int(np.count_nonzero(a_crop))
    nb = int(np.count_nonzero(b_crop))
    crowd = bool(iscrowd) if iscrowd is not None else False
    denom = na if crowd else na + nb - inter
    return _iou_value(inter, denom, na == 0 and nb == 0, compat)


def _iou_value(inter, denom, both_empty, compat):
    if compat == "pycocotools":
        return 0.0 if inter == 0 else inter / denom
    if denom == 0:
        return 1.0 if both_empty else 0.0
    return inter / denom


def _rle_iou(a, b, iscrowd, compat):
    from qa.engine._kernels_iou import _rle_intersections

    crowd = np.zeros(len(b), bool) if iscrowd is None else np.asarray(iscrowd, dtype=bool).reshape(-1)
    if crowd.shape[0] != len(b):
        raise ValueError(f"iscrowd has {crowd.shape[0]} flags for {len(b)} RLEs of b")
    out = np.zeros((len(a), len(b)), dtype=np.float64)
    if not a or not b:
        return out
    height, width = (int(v) for v in a[0]["size"])
    rles = a + b
    for rle in rles:
        size = rle["size"]
        if size[0] != height or size[1] != width:
            raise ValueError(f"RLE size {size[0]}x{size[1]} differs from image {height}x{width}")
    counts = [rle["counts"] for rle in rles]
    raw_starts = np.zeros(len(rles) + 1, np.int64)
    if all(type(c) is bytes for c in counts):  # as pycocotools returns them: one join, one numba call
        strings = counts
        compressed = np.ones(len(rles), dtype=bool)
        raw_runs = np.zeros(0, np.int64)
    else:
        compressed = np.array([not isinstance(c, list) for c in counts], dtype=bool)
        strings = [c.encode("ascii") if isinstance(c, str) else b"" if isinstance(c, list) else bytes(c)
                   for c in counts]
        raw = [c if isinstance(c, list) else [] for c in counts]
        np.cumsum([len(c) for c in raw], out=raw_starts[1:])
        raw_runs = np.asarray([v for c in raw for v in c], dtype=np.int64)
    chars = np.frombuffer(b"".join(strings), dtype=np.uint8)
    char_starts = np.zeros(len(rles) + 1, np.int64)
    np.cumsum([len(c) for c in strings], out=char_starts[1:])
    inter, area_a, area_b, ok = _rle_intersections(chars, char_starts, raw_runs, raw_starts, compressed, len(a),
                                                   height, width)
    if not ok.all():
        raise ValueError(f"RLE counts do not describe a {height}x{width} mask")
    area_a = area_a[:, None]
    area_b = area_b[None, :]
    denom = area_a + area_b - inter
    if crowd.any():
        denom = np.where(crowd[None, :], area_a, denom)
    np.divide(inter, denom, out=out, where=denom != 0)
    if compat == "pycocotools":
        out[inter == 0] = 0.0
    else:  # a zero denominator: 1 when both are empty, else 0 (out holds 0 there)
        out[(denom == 0) & (area_a == 0) & (area_b == 0)] = 1.0
    return out


# --------------------------------------------------------------------------------------------------


def boundary_f(a, b, *, tolerance=None, tolerance_fraction=None, compat=None) -> float:
    """Boundary F-measure: how much of each outline lies within a tolerance of the other.

    Parameters
    ----------
    a, b : array_like (H, W)
        Two masks (nonzero is inside). In DAVIS terms ``a`` is the segmentation and ``b`` the
        annotation; F itself is symmetric.
    tolerance : float, pixels, default 2.0
        A boundary pixel matches when the other boundary is within this Euclidean distance.
    tolerance_fraction : float, optional
        Give the tolerance as a fraction of the image diagonal instead: ``ceil(fraction x diagonal)``
        pixels, as DAVIS computes it. With ``compat="davis"`` the default is 0.008.
    compat : {None, "davis"}, default None
        ``"davis"`` reproduces ``f_measure`` of the DAVIS 2017 evaluation: boundaries from
        ``seg2bmap`` and, unless ``tolerance`` is given, a tolerance of ``ceil(0.008 x diagonal)``.

    Returns
    -------
    float
        F in [0, 1]: ``2 P R / (P + R)`` with precision ``P`` the share of ``a``'s boundary pixels
        near ``b``'s boundary and recall ``R`` the share of ``b``'s near ``a``'s.

    Raises
    ------
    ValueError
        When shapes differ, both tolerances are given, or (``compat="davis"``) the tolerance is not a
        whole number of pixels (DAVIS's disk is only centred for whole radii).

    See Also
    --------
    boundary_iou, surface_distances

    Notes
    -----
    Default boundaries are inner boundaries: mask pixels with an edge neighbour outside the mask.
    ``"davis"`` boundaries are ``seg2bmap``'s: pixels that differ from their east, south or
    south-east neighbour, half a pixel towards the origin. In both the image border is never boundary
    (an object cut by the border has no outline there, so two annotators do not agree for free), a
    match is a Euclidean distance at most the tolerance (DAVIS dilates with a disk of that radius),
    two masks without boundary score 1, and a boundary on one side only scores 0. Distances are exact
    Euclidean distance transforms on the window holding both masks, which equals DAVIS's full-image
    dilation.

    References
    ----------
    F. Perazzi et al., "A Benchmark Dataset and Evaluation Methodology for Video Object
    Segmentation", CVPR 2016, doi:10.1109/CVPR.2016.85; D. Martin, C. Fowlkes, J. Malik, "Learning to
    Detect Natural Image Boundaries Using Local Brightness, Color, and Texture Cues", TPAMI 26(5)
    2004, doi:10.1109/TPAMI.2004.1273918. Reference code: github.com/davisvideochallenge/
    davis2017-evaluation, ``davis2017/metrics.py`` (``f_measure``, ``_seg2bmap``).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((10, 10), bool); a[2:8, 2:8] = True
    >>> b = np.zeros((10, 10), bool); b[2:8, 2:9] = True
    >>> round(boundary_f(a, b, tolerance=0.5), 3), boundary_f(a, b, tolerance=1)
    (0.762, 1.0)
    >>> round(boundary_f(a, b, compat="davis"), 3)
    1.0
    """
    from qa.engine.boundary import INNER, SEG2BMAP, boundary_f_counts, f_measure

    _check_compat(compat, ("davis",))
    a, b = _pair(a, b)
    if tolerance is not None and tolerance_fraction is not None:
        raise ValueError("give tolerance (pixels) or tolerance_fraction (of the diagonal), not both")
    if tolerance is None:
        if tolerance_fraction is None and compat == "davis":
            tolerance_fraction = 0.008
        if tolerance_fraction is not None:
            tolerance = float(np.ceil(tolerance_fraction * _diagonal(a.shape)))
        else:
            tolerance = 2.0
    tolerance = float(tolerance)
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
    if compat == "davis" and (tolerance != int(tolerance) or tolerance < 1):
        raise ValueError(f"compat='davis' needs a whole number of pixels >= 1 as tolerance, got {tolerance}; "
                         "DAVIS's disk is off-centre otherwise (use compat=None for fractional tolerances)")
    a_crop, b_crop, edges = _window(a, b)
    counts_a, counts_b = boundary_f_counts(a_crop, b_crop, edges, [tolerance],
                                           SEG2BMAP if compat == "davis" else INNER)
    return f_measure(int(counts_a[0]), int(counts_a[1]), int(counts_b[0]), int(counts_b[1]))


# --------------------------------------------------------------------------------------------------


def boundary_iou(a, b, *, dilation=None, dilation_ratio=None, compat=None) -> float:
    """Boundary IoU: the IoU of the two masks' inner boundary bands.

    Parameters
    ----------
    a, b : array_like (H, W)
        Two masks (nonzero is inside).
    dilation : int, pixels, optional
        Band width ``d``: a band holds the mask pixels within chessboard distance ``d`` of the
        background.
    dilation_ratio : float, default 0.02
        Band width as a fraction of the image diagonal when ``dilation`` is not given:
        ``d = max(1, round(ratio x diagonal))`` (Python's ``round``), as Cheng et al. compute it.
    compat : {None, "cheng"}, default None
        ``"cheng"`` reproduces ``mask_to_boundary`` of the Boundary IoU API: outside the image counts
        as background, so an object cut by the image border has a band along it, and two empty bands
        score 0.

    Returns
    -------
    float
        ``|band(a) & band(b)| / |band(a) | band(b)|`` in [0, 1].

    Raises
    ------
    ValueError
        When shapes differ, both widths are given, or the width is below 1.

    See Also
    --------
    boundary_f, mask_iou

    Notes
    -----
    The band of a mask is ``mask - erode(mask, 3x3 square, d times)``: the pixels within chessboard
    distance ``d`` of a background pixel. By default the image border is never boundary (outside
    the image is ignored rather than background) and two empty bands score 1, so identical masks
    score 1; ``compat="cheng"`` counts outside the image as background and scores two empty bands 0
    (as ``maskUtils.iou`` on the band RLEs does in the API's COCO evaluation). The API's COCO
    evaluation also takes the minimum of mask IoU and boundary IoU; this function returns the
    boundary IoU alone. Symmetric in ``a`` and ``b``.

    References
    ----------
    B. Cheng, R. Girshick, P. Dollár, A. C. Berg, A. Kirillov, "Boundary IoU: Improving
    Object-Centric Image Segmentation Evaluation", CVPR 2021, doi:10.1109/CVPR46437.2021.01508.
    Reference code: github.com/bowenc0221/boundary-iou-api, ``boundary_iou/utils/boundary_utils.py``
    (``mask_to_boundary``).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((10, 10), bool); a[2:8, 2:8] = True
    >>> b = np.zeros((10, 10), bool); b[2:8, 3:8] = True
    >>> round(boundary_iou(a, b, dilation=1), 3)
    0.583
    >>> full = np.ones((10, 10), bool)
    >>> boundary_iou(full, full), boundary_iou(full, full, compat="cheng")
    (1.0, 1.0)
    >>> empty = np.zeros((10, 10), bool)
    >>> boundary_iou(empty, empty), boundary_iou(empty, empty, compat="cheng")
    (1.0, 0.0)
    """
    from qa.engine.boundary import boundary_iou_counts

    _check_compat(compat, ("cheng",))
    a, b = _pair(a, b)
    if dilation is not None and dilation_ratio is not None:
        raise ValueError("give dilation (pixels) or dilation_ratio (of the diagonal), not both")
    if dilation is None:
        ratio = 0.02 if dilation_ratio is None else float(dilation_ratio)
        h, w = a.shape
        dilation = max(1, int(round(ratio * np.sqrt(h ** 2 + w ** 2))))
    if int(dilation) != dilation or dilation < 1:
        raise ValueError(f"dilation must be a whole number of pixels >= 1, got {dilation}")
    a_crop, b_crop, edges = _window(a, b)
    inter, union = boundary_iou_counts(a_crop, b_crop, edges, int(dilation), compat == "cheng")
    if union == 0:
        return 0.0 if compat == "cheng" else 1.0
    return inter / union


# --------------------------------------------------------------------------------------------------


def surface_distances(a, b, *, tolerance=None) -> SurfaceDistances:
    """Normalised surface distance at a tolerance, average symmetric surface distance and HD95.

    Parameters
    ----------
    a, b : array_like (H, W)
        Two masks (nonzero is inside).
    tolerance : float, pixels
        Required. The distance up to which two surface elements count as agreeing, for NSD. There is
        no default: NSD means nothing without its tolerance, so choose it (for example the inter-rater
        variation you accept, ``tolerance=2.0``).

    Returns
    -------
    SurfaceDistances
        ``nsd`` in [0, 1] (surface Dice at ``tolerance``), ``assd`` and ``hd95`` in pixels.

    Raises
    ------
    ValueError
        When ``tolerance`` is missing or negative, or shapes differ.

    See Also
    --------
    boundary_f : the same question on pixel boundaries, with DAVIS's conventions.

    Notes
    -----
    As DeepMind's ``surface_distance`` (spacing 1 pixel): the surface is made of contour elements at
    pixel corners, one per 2x2 neighbourhood that is neither all inside nor all outside, each with
    its length (0.71, 1 or 1.41 pixels); outside the image is background, so the image border is
    surface. Distances are exact Euclidean distances from each element to the nearest element of the
    other surface. NSD is ``compute_surface_dice_at_tolerance``; HD95 is
    ``compute_robust_hausdorff(.., 95)``, the larger of the two directed length-weighted 95th
    percentiles (reproduced to the bit, including numpy's summation order); ASSD is the
    length-weighted mean distance over the elements of both surfaces, ``(sum_a l d + sum_b l d) /
    (sum_a l + sum_b l)`` (``compute_average_surface_distance`` returns the two directed means).
    All three are symmetric. Two empty masks give NSD 1, ASSD 0 and HD95 0 (DeepMind gives NaN
    there); one empty mask gives NSD 0 and infinite distances, as DeepMind does.

    References
    ----------
    S. Nikolov et al., "Clinically Applicable Segmentation of Head and Neck Anatomy for
    Radiotherapy: Deep Learning Algorithm Development and Validation Study", J Med Internet Res
    23(7) 2021, doi:10.2196/26151. Reference code: github.com/google-deepmind/surface-distance,
    ``surface_distance/metrics.py`` (``compute_surface_distances``,
    ``compute_surface_dice_at_tolerance``, ``compute_robust_hausdorff``).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((10, 10), bool); a[2:8, 2:8] = True
    >>> b = np.zeros((10, 10), bool); b[2:8, 2:9] = True
    >>> r = surface_distances(a, b, tolerance=0.5)
    >>> round(r.nsd, 3), round(r.assd, 3), r.hd95
    (0.76, 0.24, 1.0)
    >>> surface_distances(a, b)
    Traceback (most recent call last):
    ...
    ValueError: surface_distances needs an explicit tolerance in pixels (NSD depends on it and has no neutral default); pass for example tolerance=2.0
    """
    from qa.engine.boundary import surface_stats, surface_summary

    if tolerance is None:
        raise ValueError("surface_distances needs an explicit tolerance in pixels (NSD depends on it and "
                         "has no neutral default); pass for example tolerance=2.0")
    tolerance = float(tolerance)
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
    a, b = _pair(a, b)
    a_crop, b_crop, _ = _window(a, b)
    stats_a, stats_b = surface_stats(a_crop, b_crop, [tolerance])
    s = surface_summary(stats_a, stats_b, 1)
    return SurfaceDistances(nsd=s["nsd"][0], assd=s["assd"], hd95=s["hd95"])


# --------------------------------------------------------------------------------------------------


def signed_boundary_offset(reference, other) -> BoundaryOffset:
    """How far, and on which side, ``other``'s outline lies from ``reference``'s.

    Parameters
    ----------
    reference : array_like (H, W)
        The mask whose outline is the zero line.
    other : array_like (H, W)
        The mask whose outline is measured.

    Returns
    -------
    BoundaryOffset
        ``mean`` and ``median`` signed distance in pixels over ``other``'s ``n`` boundary pixels:
        positive when ``other`` draws outside ``reference`` (looser), negative inside (tighter).
        NaN when either mask has no boundary.

    Raises
    ------
    ValueError
        When shapes differ.

    See Also
    --------
    surface_distances : unsigned distances between the two outlines.

    Notes
    -----
    Each inner-boundary pixel of ``other`` (a mask pixel with an edge neighbour outside the mask;
    the image border is never boundary) gets its Euclidean distance to the nearest inner-boundary
    pixel of ``reference``, negated when the pixel lies inside ``reference``. Identical masks give
    0, ``other`` grown by ``k`` pixels gives ``+k`` along straight edges and ``other`` shrunk by
    ``k`` gives ``-k`` (in the example the square's corners lie ``sqrt(8)`` pixels out, hence a mean
    above the median). Not symmetric: swapping the inputs roughly negates the offset. A mean near
    0 with a large :func:`surface_distances` ASSD means disagreement without bias; a mean near the
    ASSD means a systematic looser (or tighter) outline.

    Examples
    --------
    >>> import numpy as np
    >>> reference = np.zeros((12, 12), bool); reference[3:9, 3:9] = True
    >>> grown = np.zeros((12, 12), bool); grown[1:11, 1:11] = True
    >>> off = signed_boundary_offset(reference, grown)
    >>> round(off.mean, 2), off.median, off.n
    (2.14, 2.0, 36)
    >>> signed_boundary_offset(grown, reference).median
    -2.0
    """
    from qa.engine.boundary import offset_stats

    reference, other = _pair(reference, other, ("reference", "other"))
    r_crop, o_crop, edges = _window(reference, other)
    mean, median, n = offset_stats(r_crop, o_crop, edges)
    return BoundaryOffset(mean=mean, median=median, n=n)


# --------------------------------------------------------------------------------------------------


def panoptic_quality(reference_ids, other_ids, *, categories, isthing=None, compat=None) -> dict:
    """Panoptic quality (PQ = SQ x RQ) of two panoptic id maps, per category and averaged.

    Parameters
    ----------
    reference_ids, other_ids : array_like of int (H, W)
        Segment id maps (id 0 is void). For COCO panoptic PNGs the id is ``R + 256 G + 256^2 B``.
    categories : (segments, segments)
        The segments of each map, reference first: a panopticapi ``segments_info`` list of dicts
        (``id``, ``category_id``, optional ``iscrowd``) or a mapping ``{segment id: category id}``
        (no crowd regions).
    isthing : mapping of category id to bool, optional
        When given, the result also has ``things`` and ``stuff`` averages.
    compat : {None, "panopticapi"}, default None
        ``"panopticapi"`` reproduces ``pq_compute`` with ``reference_ids`` as the ground truth and
        ``other_ids`` as the prediction. The default is the symmetric form for two annotators.

    Returns
    -------
    dict
        ``{"all": {"pq", "sq", "rq", "n"}, "per_class": {category: {"pq", "sq", "rq", "tp", "fp",
        "fn"}}}`` plus ``"things"`` and ``"stuff"`` with ``isthing``. ``fn`` counts unmatched
        reference segments, ``fp`` unmatched segments of ``other``.

    Raises
    ------
    ValueError
        When shapes differ, or (``"panopticapi"``) ``other_ids`` holds a nonzero id that is not listed
        (panopticapi raises a KeyError there).

    See Also
    --------
    mask_iou

    Notes
    -----
    Both forms match segments of the same category with IoU > 0.5 (which makes matches unique),
    compute per category ``PQ = sum IoU / (TP + FP/2 + FN/2)``, ``SQ = sum IoU / TP`` (0 without TP)
    and ``RQ = TP / (TP + FP/2 + FN/2)``, leave out categories with no TP, FP or FN, and average over
    the rest (NaN when none is left; panopticapi divides by zero). Segment areas are pixel counts.

    ``compat="panopticapi"``: void (id 0) and crowd regions count on the reference side only; a pair's
    IoU leaves out the part of ``other``'s segment in reference void; an unmatched segment of
    ``other`` is not a false positive when more than half of it lies in reference void plus the
    reference crowd region of its category (panopticapi keeps one per category, the last listed).

    Default (symmetric): each side is treated as panopticapi treats the ground truth, so swapping the
    two maps swaps FP and FN and leaves PQ, SQ and RQ unchanged. Void is id 0 or an unlisted id on
    either side; a pair's IoU leaves out both sides' void; an unmatched segment of either side is
    ignored when more than half of it lies in the other side's void plus its crowd regions of the
    same category; crowd segments of either side are never matched. Both forms come from one pass
    over the two maps (:mod:`qa.engine.panoptic`).

    References
    ----------
    A. Kirillov, K. He, R. Girshick, C. Rother, P. Dollár, "Panoptic Segmentation", CVPR 2019,
    doi:10.1109/CVPR.2019.00963. Reference code: github.com/cocodataset/panopticapi,
    ``panopticapi/evaluation.py`` (``pq_compute_single_core``, ``PQStat.pq_average``).

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.array([[1, 1, 1, 2], [1, 1, 2, 2]])
    >>> other = np.array([[5, 5, 6, 6], [5, 5, 6, 6]])
    >>> r = panoptic_quality(ref, other, categories=({1: 10, 2: 20}, {5: 10, 6: 20}))
    >>> r["all"]["n"], round(r["all"]["pq"], 3), r["per_class"][20]["tp"]
    (2, 0.775, 1)
    """
    from qa.engine.panoptic import Segments, add_counts, panoptic_counts, pq_summary

    _check_compat(compat, ("panopticapi",))
    if not isinstance(categories, (tuple, list)) or len(categories) != 2:
        raise ValueError("categories must be a pair (reference segments, other segments)")
    ref = np.asarray(reference_ids)
    other = np.asarray(other_ids)
    if ref.shape != other.shape or ref.ndim != 2:
        raise ValueError(f"id maps must be 2-D and of one shape, got {ref.shape} and {other.shape}")
    segments = []
    for side in categories:
        if isinstance(side, dict):
            segments.append(Segments.of(list(side.keys()), list(side.values())))
        else:
            segments.append(Segments.from_info(side))
    counts = panoptic_counts(ref, other, segments[0], segments[1],
                             form="reference" if compat == "panopticapi" else "symmetric")
    return pq_summary(add_counts({}, counts), isthing)
