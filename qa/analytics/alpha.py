"""Krippendorff's alpha (nominal): chance-corrected agreement of the annotators' pixel labels.

Units are pixels, values the label each annotator gives a pixel: the category of the object painted
there, or background. :func:`pixel_alpha` computes alpha for the batch (with a bootstrap confidence
interval over images), per annotator pair and per image, from per-image sufficient statistics, so no
coincidence matrix larger than one image's label set is ever built and no pixel is visited in Python.

:func:`nominal_alpha` is the same figure for any reliability matrix (raters x units), and
:func:`object_alpha` reproduces kalphacv's object-level alpha from the engine's matched pairs; the
docs (``docs/analytics.md``) compare the three.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qa.engine import _pool
from qa.model import Batch, Limits


# --- the figure from sufficient statistics ------------------------------------------------------------

def alpha_from_counts(n, diagonal, marginals):
    """Nominal alpha from its sufficient statistics (arrays broadcast; the last axis of ``marginals``).

    Parameters
    ----------
    n : float or array
        Pairable values ``n`` (the sum of the coincidence matrix).
    diagonal : float or array
        The coincidence matrix's trace, ``sum_c o_cc`` (values paired with an equal value).
    marginals : array
        ``n_c``, pairable values per label (last axis).

    Returns
    -------
    float or ndarray
        ``1 - (n - 1) (n - sum_c o_cc) / (n**2 - sum_c n_c**2)``; NaN where the expected disagreement
        is zero (a single label in all the data) or ``n < 2``.

    Examples
    --------
    >>> alpha_from_counts(4, 2, [3, 1])   # two units, one agreeing pair (1, 1), one split pair (1, 2)
    0.0
    """
    n = np.asarray(n, dtype=np.float64)
    diagonal = np.asarray(diagonal, dtype=np.float64)
    marginals = np.asarray(marginals, dtype=np.float64)
    expected = n * n - (marginals * marginals).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where((expected > 0) & (n > 1),
                         1.0 - (n - 1.0) * (n - diagonal) / np.where(expected > 0, expected, 1.0), np.nan)
    return value if value.ndim else float(value)


def nominal_alpha(data) -> float:
    """Krippendorff's alpha (nominal) of a reliability matrix.

    Parameters
    ----------
    data : array_like, (raters, units)
        Integer labels; NaN or a negative value marks a missing value. Units with fewer than two values
        are not pairable and are left out.

    Returns
    -------
    float
        Alpha; NaN when the pairable values hold a single label.

    Notes
    -----
    Computed from the per-unit label counts ``n_uc``: ``o_cc = sum_u n_uc (n_uc - 1) / (m_u - 1)`` and
    ``n_c = sum_u n_uc`` over pairable units, then :func:`alpha_from_counts`. The result equals
    ``krippendorff.alpha(data, level_of_measurement="nominal")`` (tested).

    References
    ----------
    K. Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011),
    https://repository.upenn.edu/asc_papers/43; K. Krippendorff, Content Analysis, 4th ed. (2018),
    doi:10.4135/9781071878781; pypi ``krippendorff`` (``krippendorff.alpha``).

    Examples
    --------
    >>> nominal_alpha([[1, 1, 2, 2], [1, 1, 2, 1]])
    0.5333333333333333
    """
    values = np.asarray(data, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"a reliability matrix is 2-D (raters, units), got shape {values.shape}")
    valid = ~np.isnan(values) & (values >= 0)
    labels = np.where(valid, values, 0).astype(np.int64)
    _, codes = np.unique(labels, return_inverse=True)
    codes = codes.reshape(labels.shape)
    k = int(codes.max()) + 1 if codes.size else 1
    m_u = valid.sum(axis=0)
    pairable = m_u >= 2
    units = np.broadcast_to(np.arange(values.shape[1]), values.shape)
    take = valid & pairable[None, :]
    n_uc = np.bincount(units[take] * k + codes[take], minlength=values.shape[1] * k).reshape(-1, k)
    n_uc = n_uc[pairable].astype(np.float64)
    diagonal = (n_uc * (n_uc - 1)).sum(axis=1) / (m_u[pairable] - 1)
    marginals = n_uc.sum(axis=0)
    return alpha_from_counts(marginals.sum(), diagonal.sum(), marginals)


# --- pixel labels ----------------------------------------------------------------------------------------

BACKGROUND = 0
"""The label code of a pixel no object covers (instance exports); categories are 1, 2, ..."""
MISSING = -1
"""No value: the annotator did not label the image, or the pixel is void in its panoptic PNG."""


def _painting_order(objs: list) -> list[int]:
    """Painter's order: ascending ``z_order`` (0 when absent), export order within equal ``z_order``."""
    return sorted(range(len(objs)), key=lambda k: (objs[k].z_order or 0, k))


def _instance_labels(objs: list, codes: dict, height: int, width: int, window, out: np.ndarray,
                     crops=None) -> None:
    """Paint ``objs`` (category codes) into ``out``, the label array of ``window``; later objects on top.

    ``crops`` holds the objects' tight crops in ``objs`` order (:class:`qa.engine._masks.ObjectCrops`,
    the run's one decode of the image); made here from the objects when not given.
    """
    from qa.analytics._kernels_alpha import _paint_codes
    from qa.engine._masks import polygons_to_rle, rle_crops

    if not objs:
        return
    order = _painting_order(objs)
    slots = order
    if crops is None:  # painted here, in painting order
        rles = [polygons_to_rle(objs[k].polygons, height, width) if objs[k].kind == "polygon" else objs[k].rle
                for k in order]
        crops = rle_crops(rles, height, width)
        slots = range(len(order))
    _paint_codes(crops.buf, crops.starts, crops.boxes, np.asarray(list(slots), dtype=np.int64),
                 np.asarray([codes[objs[k].category] for k in order], dtype=np.int32), int(window[0]),
                 int(window[1]), out)


def _panoptic_labels(objs: list, codes: dict, id_map: np.ndarray) -> np.ndarray:
    """A panoptic id map as label codes: listed segments get their category, void and unlisted ids MISSING."""
    from qa.analytics._kernels_alpha import _segment_codes

    ids = np.asarray([int(o.segment_id) for o in objs], dtype=np.int64)
    cats = np.asarray([codes[o.category] for o in objs], dtype=np.int32)
    order = np.argsort(ids, kind="stable")
    out = np.empty(id_map.size, np.int32)
    _segment_codes(np.ascontiguousarray(id_map).reshape(-1), ids[order], cats[order], np.int32(MISSING), out)
    return out.reshape(id_map.shape)


def image_labels(batch: Batch, image: str, *, codes: dict | None = None, max_pixels: int | None = None,
                 objects: dict | None = None):
    """Every covering annotator's label of every pixel of one image, cut to the window that matters.

    Parameters
    ----------
    batch : Batch
    image : str
        An image key of ``batch``.
    codes : dict, optional
        ``{category: code}`` with codes from 1; default: the batch's categories in order.
    max_pixels : int, optional
        Largest panoptic PNG decoded (default: the model's limit).
    objects : dict, optional
        ``{annotator: [objects of the image]}``, this image's entry of :meth:`qa.model.Batch.by_image`;
        found by scanning the exports when not given (pass it when labelling many images).

    Returns
    -------
    names : list of str
        The annotators covering the image (sorted).
    labels : (len(names), h, w) int32
        Label codes inside ``window``: :data:`BACKGROUND`, a category code, or :data:`MISSING`.
    window : (x0, y0, x1, y1)
        The part of the image the labels cover: the union of every object's bbox when every covering
        export is an instance export (all pixels outside it are background for every annotator), the
        whole image otherwise.
    outside : int
        Pixels outside the window (background for every annotator).

    Notes
    -----
    Overlapping instances of one annotator: the pixel takes the category of the object painted last,
    in ascending ``z_order`` (0 when the export has none) and export order within equal ``z_order``,
    the rule CVAT and the COCO-to-panoptic converters use. Crowd regions are painted like any object.
    A panoptic pixel whose id is 0 or not listed in ``segments_info`` is void: no value (MISSING).
    """
    from qa.engine._decoded import Decoded, is_panoptic

    img = batch.images[image]
    h, w = int(img.height), int(img.width)
    if codes is None:
        codes = {c: k + 1 for k, c in enumerate(batch.categories)}
    names = sorted(batch.coverage.get(image, ()))
    if objects is None:
        objects = {name: [o for o in batch.exports[name].objects if o.image == image] for name in names}
    limit = max_pixels or Limits().max_pixels
    decoded = {}
    for name in names:
        objs = objects.get(name, [])
        export = batch.exports[name]
        decoded[name] = Decoded(name, objs, np.arange(len(objs), dtype=np.int64),
                                np.asarray([codes[o.category] for o in objs], dtype=np.int64),
                                export.id_maps.get(image), is_panoptic(export, objs), h, w, limit)
    return decoded_labels(decoded, codes)


def decoded_labels(decoded: dict, codes: dict):
    """:func:`image_labels` of one image from every covering annotator's decoded labels
    (:class:`qa.engine._decoded.Decoded`, names sorted): ``(names, labels, window, outside)``."""
    names = list(decoded)
    if not names:
        return names, np.zeros((0, 0, 0), np.int32), (0, 0, 0, 0), 0
    h, w = next(iter(decoded.values())).shape
    panoptic = {name for name, d in decoded.items() if d.png is not None or not d.comparable
                or any(o.kind == "segment" for o in d.objects)}
    if panoptic:
        window = (0, 0, w, h)
    else:
        window = _objects_window([o for name in names for o in decoded[name].objects], h, w)
    x0, y0, x1, y1 = window
    labels = np.full((len(names), y1 - y0, x1 - x0), BACKGROUND, dtype=np.int32)
    for k, name in enumerate(names):
        d = decoded[name]
        if name in panoptic:
            if d.png is None:
                labels[k] = MISSING
                continue
            segments = [o for o in d.objects if o.kind == "segment"]
            labels[k] = _panoptic_labels(segments, codes, d.id_map)
            # instance objects an export mixes in are painted over its segments
            _instance_labels([o for o in d.objects if o.kind != "segment"], codes, h, w, window, labels[k])
        else:
            _instance_labels(d.objects, codes, h, w, window, labels[k], crops=d.crops())
    return names, labels, window, h * w - (x1 - x0) * (y1 - y0)


def _objects_window(objs: list, h: int, w: int) -> tuple[int, int, int, int]:
    """The union of :func:`_object_box` of ``objs``, ``(0, 0, 0, 0)`` when none has one.

    Each side of a box is a monotone function of its object's extreme coordinate (floor, ceil, a shift,
    a clip), so the union's sides come from the extremes of every polygon point at once, and equal the
    union of the objects' boxes taken one by one.
    """
    parts = [p for o in objs if o.kind == "polygon" and o.polygons for p in o.polygons]
    boxes = [b for b in (_object_box(o, h, w) for o in objs if o.kind == "rle") if b is not None]
    if parts:
        pts = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in parts])
        if len(pts):
            x0, y0 = np.floor(pts.min(axis=0)) - 1
            x1, y1 = np.ceil(pts.max(axis=0)) + 2
            boxes.append((int(max(x0, 0)), int(max(y0, 0)), int(min(x1, w)), int(min(y1, h))))
    if not boxes:
        return (0, 0, 0, 0)
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _object_box(obj, h: int, w: int):
    """A conservative pixel box (x0, y0, x1, y1) around an instance object, from its geometry."""
    if obj.kind == "polygon" and obj.polygons:
        pts = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in obj.polygons])
        if not len(pts):
            return None
        x0, y0 = np.floor(pts.min(axis=0)) - 1
        x1, y1 = np.ceil(pts.max(axis=0)) + 2
    elif obj.kind == "rle" and obj.rle is not None:
        from qa.engine._masks import rle_bbox

        x0, y0, x1, y1 = rle_bbox(obj.rle)
        if x1 <= x0 or y1 <= y0:
            return None
    else:
        return None
    return (int(max(x0, 0)), int(max(y0, 0)), int(min(x1, w)), int(min(y1, h)))


# --- per-image statistics ------------------------------------------------------------------------------

@dataclass(slots=True)
class _ImageStats:
    n: float
    diagonal: float
    marginals: np.ndarray                 # (K,)
    pairs: dict = field(default_factory=dict)  # (a, b) -> (n, diagonal, marginals)


def image_stats(names: list[str], labels: np.ndarray, outside: int, k: int) -> _ImageStats:
    """Alpha's sufficient statistics of one image, for all annotators and for each pair.

    With ``m_u`` values at pixel ``u``, ``o_cc`` gets ``2 * (agreeing annotator pairs at u) / (m_u - 1)``
    and ``n_c`` the count of label ``c`` at ``u`` (pairable pixels only). Pixels outside the window are
    background for all ``m`` annotators: each adds ``m`` to ``n``, ``o_00`` and ``n_0``.
    """
    from qa.analytics._kernels_alpha import _pixel_counts

    m = len(names)
    flat = np.ascontiguousarray(labels.reshape(m, -1), dtype=np.int32)
    agree_by_values, counts, pair_n, pair_same, pair_counts = _pixel_counts(flat, int(k))
    pairs = {}
    p = 0
    for i in range(m):
        for j in range(i + 1, m):
            marg = pair_counts[p].astype(np.float64)
            marg[BACKGROUND] += 2 * outside
            pairs[(names[i], names[j])] = (2.0 * (int(pair_n[p]) + outside), 2.0 * (int(pair_same[p]) + outside),
                                           marg)
            p += 1
    # o_cc summed over the pixels: each agreeing pair counts twice, over m_u - 1 (grouped by m_u)
    diagonal = float(sum(2.0 * int(agree_by_values[v]) / (v - 1) for v in range(2, m + 1)))
    marginals = counts.astype(np.float64)
    if m >= 2:
        marginals[BACKGROUND] += m * outside
        diagonal += m * outside
    return _ImageStats(float(marginals.sum()), diagonal, marginals, pairs)


# --- the batch --------------------------------------------------------------------------------------------

@dataclass(slots=True)
class PixelAlpha:
    """What :func:`pixel_alpha` computed.

    Attributes
    ----------
    batch : pandas.DataFrame
        One row: ``alpha``, ``ci_low``, ``ci_high``, ``confidence``, ``images``, ``pixels`` (pairable
        pixels), ``bootstrap`` (replicates) and ``seed``.
    pairs : pandas.DataFrame
        ``pair``, ``alpha`` and ``pixels`` per annotator pair (two-rater alpha on the pixels both label).
    images : pandas.DataFrame
        ``image``, ``alpha``, ``pixels``, ``annotators`` per image (NaN where one label fills the image).
    """

    batch: object
    pairs: object
    images: object


def pixel_alpha(batch: Batch, *, bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0,
                max_pixels: int | None = None, progress=None, workers: int | None = None,
                executor=None) -> PixelAlpha:
    """Krippendorff's alpha (nominal) over pixel labels, with a bootstrap interval over images.

    Parameters
    ----------
    batch : Batch
        Aligned exports; every image labelled by two or more annotators is used.
    bootstrap : int, default 1000
        Bootstrap replicates for the interval (0: no interval).
    confidence : float, default 0.95
        Coverage of the percentile interval.
    seed : int, default 0
        Seed of the bootstrap's resampling (the same seed gives the same interval).
    max_pixels : int, optional
        Largest panoptic PNG decoded.
    progress : callable, optional
        ``progress("alpha", images_done, images_total)``.
    workers : int, optional
        Processes labelling and counting the images, a chunk of images each (default: one per CPU;
        small batches run in this process). The result does not depend on it.
    executor : optional
        The run's executor (:func:`qa.engine._executors.open_executor`); when given, ``workers`` is not used.

    Returns
    -------
    PixelAlpha

    Notes
    -----
    Every pixel counts; nothing is sampled. Outside the union of all objects' bboxes (instance exports)
    every annotator says background, and those pixels enter the counts as one number; inside it the
    labels are painted from the objects' crops and counted by one numba pass per image. Per image only
    the sufficient statistics of alpha are kept (``n``, the coincidence matrix's trace and its
    marginals), and the batch figure sums them over images, which is alpha with all pixels of all images
    as units.

    Values: background (0) or the category of the object painted on the pixel; overlapping instances of
    one annotator resolve by painter's order (:func:`image_labels`); a void panoptic pixel has no value.
    An annotator who did not label an image has no values there.

    With a dominant background, alpha of a two-label image approaches the Dice coefficient of the
    foreground (the chance agreement on background is nearly total, so the expected disagreement
    counts only foreground pixels), so large empty areas do not inflate it.

    Interval: the percentile bootstrap over images (Efron and Tibshirani 1993): ``bootstrap``
    replicates, each drawing the batch's images with replacement (numpy ``default_rng(seed)``) and
    summing their statistics. Images, not pixels, are resampled because neighbouring pixels are not
    independent; Hayes and Krippendorff (2007) resample pairable values instead, which treats every
    pixel as independent and gives far too narrow an interval here. With fewer than two images there is
    no interval (NaN).

    References
    ----------
    K. Krippendorff, Content Analysis, 4th ed. (2018), doi:10.4135/9781071878781; A. F. Hayes and
    K. Krippendorff, "Answering the call for a standard reliability measure for coding data",
    Communication Methods and Measures 1 (2007), doi:10.1080/19312450709336664; B. Efron and
    R. Tibshirani, An Introduction to the Bootstrap (1993), doi:10.1201/9780429246593.
    """
    import pandas as pd

    from qa.engine.chunks import chunks_of

    settings = alpha_settings(batch, max_pixels=max_pixels)
    counts = AlphaCounts(settings)
    keys = [key for key in batch.images if len(batch.coverage.get(key, ())) >= 2]
    size, workers = _pool.plan(len(keys), workers, executor)
    done = 0
    if progress:
        progress("alpha", 0, len(keys))
    for counted in _pool.run_chunks(_alpha_chunk, chunks_of(batch, _pool.chunks(keys, size)), settings, workers,
                                    executor):
        counts.add(counted)
        done += len(counted)
        if progress:
            progress("alpha", done, len(keys))
    return counts.finish(bootstrap=bootstrap, confidence=confidence, seed=seed)


@dataclass(slots=True)
class AlphaSettings:
    """What each worker needs: every category's label code (from 1), their number plus background, and
    the largest panoptic PNG decoded."""

    codes: dict
    k: int
    max_pixels: int


def alpha_settings(batch: Batch, *, max_pixels: int | None = None) -> AlphaSettings:
    """Label codes of a batch: its categories in order, then any other category an object carries (the
    comparison's :func:`qa.engine.compare.category_list`), numbered from 1 (0 is background)."""
    from qa.engine.compare import category_list

    codes = {c: k + 1 for k, c in enumerate(category_list(batch))}
    return AlphaSettings(codes=codes, k=len(codes) + 1, max_pixels=max_pixels or Limits().max_pixels)


def alpha_image(key: str, decoded: dict, settings: AlphaSettings) -> tuple[str, list[str], _ImageStats]:
    """``(image, annotators, statistics)`` of one image from every covering annotator's decoded labels
    (:class:`qa.engine._decoded.Decoded`, names sorted)."""
    names, labels, _, outside = decoded_labels(decoded, settings.codes)
    return key, names, image_stats(names, labels, outside, settings.k)


def _alpha_chunk(chunk, settings: AlphaSettings) -> list[tuple[str, list[str], _ImageStats]]:
    """:func:`alpha_image` of each image of a chunk (:class:`qa.engine.chunks.Chunk`), in order."""
    from qa.engine._decoded import grouped_objects, image_labels as decode

    batch = chunk.load()
    grouped = grouped_objects(batch)
    return [alpha_image(key, decode(batch, key, settings.codes, settings.max_pixels, grouped), settings)
            for key in chunk.keys]


class AlphaCounts:
    """Pixel alpha's reduce: each image's statistics, taken in image order and summed here, so the sums
    (floating point) do not depend on the chunks or the workers. Per image it keeps ``n``, the trace and
    the marginals (for the bootstrap) and one row of the image table."""

    def __init__(self, settings: AlphaSettings):
        self.k = settings.k
        self.image_rows: list[dict] = []
        self.n: list[float] = []
        self.diagonal: list[float] = []
        self.marginals: list[np.ndarray] = []
        self.pair_totals: dict = {}

    def add(self, counted: list) -> None:
        k = self.k
        for key, names, s in counted:
            self.n.append(s.n)
            self.diagonal.append(s.diagonal)
            self.marginals.append(s.marginals)
            self.image_rows.append({"image": key, "alpha": alpha_from_counts(s.n, s.diagonal, s.marginals),
                                    "pixels": int(round(s.n / len(names))) if names else 0,
                                    "annotators": len(names)})
            for pair, (n, d, marg) in s.pairs.items():
                t = self.pair_totals.setdefault(pair, [0.0, 0.0, np.zeros(k)])
                t[0] += n
                t[1] += d
                t[2] += marg

    def finish(self, *, bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0) -> "PixelAlpha":
        import pandas as pd

        k = self.k
        n = np.array(self.n)
        d = np.array(self.diagonal)
        marg = np.stack(self.marginals) if self.marginals else np.zeros((0, k))
        value = alpha_from_counts(n.sum(), d.sum(), marg.sum(axis=0)) if len(n) else float("nan")
        low, high = bootstrap_interval(n, d, marg, replicates=bootstrap, confidence=confidence, seed=seed)
        batch_row = pd.DataFrame([{"alpha": value, "ci_low": low, "ci_high": high, "confidence": confidence,
                                   "images": len(n), "pixels": int(sum(r["pixels"] for r in self.image_rows)),
                                   "bootstrap": int(bootstrap), "seed": int(seed)}])
        pairs = pd.DataFrame([{"pair": f"{a}|{b}", "alpha": alpha_from_counts(t[0], t[1], t[2]),
                               "pixels": int(t[0] // 2)} for (a, b), t in sorted(self.pair_totals.items())],
                             columns=["pair", "alpha", "pixels"])
        images = pd.DataFrame(self.image_rows, columns=["image", "alpha", "pixels", "annotators"])
        return PixelAlpha(batch=batch_row, pairs=pairs, images=images)


def bootstrap_interval(n, diagonal, marginals, *, replicates: int = 1000, confidence: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of alpha over units of resampling (images).

    Parameters
    ----------
    n, diagonal : (N,) array
        Each image's pairable values and coincidence trace.
    marginals : (N, K) array
        Each image's label marginals.
    replicates : int, default 1000
    confidence : float, default 0.95
    seed : int, default 0

    Returns
    -------
    (float, float)
        The ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the replicates' alpha
        (replicates where alpha is undefined left out); NaN with fewer than two images or no replicates.
    """
    n = np.asarray(n, dtype=np.float64)
    count = len(n)
    if count < 2 or replicates <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    chunk = max(1, 2_000_000 // count)
    for start in range(0, replicates, chunk):
        b = min(chunk, replicates - start)
        draws = rng.integers(0, count, size=(b, count))
        weights = np.bincount((np.arange(b)[:, None] * count + draws).ravel(), minlength=b * count)
        weights = weights.reshape(b, count).astype(np.float64)
        values.append(alpha_from_counts(weights @ n, weights @ np.asarray(diagonal, dtype=np.float64),
                                        weights @ np.asarray(marginals, dtype=np.float64)))
    values = np.concatenate(values)
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


# --- kalphacv's object-level alpha ------------------------------------------------------------------------

def object_alpha(comparison, *, per_image: bool = False):
    """kalphacv's object-level alpha for each annotator pair, from the engine's matched pairs.

    Parameters
    ----------
    comparison : qa.engine.compare.Comparison
    per_image : bool, default False
        Return each image's alpha (``pair``, ``image``, ``alpha``) instead of the means.

    Returns
    -------
    pandas.DataFrame
        ``pair``, ``alpha`` (the mean of the per-image alphas, as kalphacv reports), ``images``.

    Notes
    -----
    kalphacv (Tschirschwitz et al. 2022) takes objects as units: per image, the two annotators'
    objects are matched one to one on IoU; each matched pair is a unit with two values (the
    categories), each unmatched object a unit with the object's category and an "absent" value, which
    counts as a label of its own (kalphacv writes it as 0 and does not treat it as missing). Alpha
    (nominal) is computed per image and averaged over images, with kalphacv's special cases: an image
    whose units hold a single value (all matched and agreeing, or no objects at all) scores 1, and an
    undefined alpha 0. The matching here is the engine's (IoU >= threshold, optimal assignment);
    kalphacv matches on IoU > threshold with polygons in shapely, which agrees except on ties.
    kalphacv builds units for three or more raters by matching each new rater against the earlier ones
    in turn; this function gives the two-rater figure of every pair.

    References
    ----------
    D. Tschirschwitz, F. Klemstein, B. Stein, V. Rodehorst, "A dataset for analysing complex document
    layouts in the digital humanities and its evaluation with Krippendorff's alpha", DAGM GCPR 2022,
    doi:10.1007/978-3-031-16788-1_22; pypi ``kalphacv`` (``kalphacv/krippendorff_alpha.py``,
    ``calculate_alpha``).
    """
    import pandas as pd

    columns = ["status", "category_a", "category_b", "pair", "image"]
    kept = ("matched", "missing", "extra")  # every row but the ignored ones
    from qa.engine.compare import by_whole_images

    # part by part: each image's units in one piece
    values = by_whole_images(comparison, lambda pieces: _object_alphas(pieces, comparison.image_pairs), columns,
                             status=kept)
    rows = []
    for pair in sorted(values):
        images, value = values[pair]
        if per_image:
            rows.extend({"pair": pair, "image": im, "alpha": float(v)} for im, v in zip(images, value))
            continue
        rows.append({"pair": pair, "alpha": float(value.mean()) if len(images) else float("nan"),
                     "images": len(images)})
    return pd.DataFrame(rows, columns=["pair", "image", "alpha"] if per_image else ["pair", "alpha", "images"])


def _object_alphas(pieces, image_pairs) -> dict:
    """``{pair: (images, alphas)}``: each annotator pair's images (in ``image_pairs`` order) and the
    object-level alpha of each (:func:`object_alpha`), from the pieces of the object pair table, each
    image's rows in one piece (:func:`qa.engine.compare.by_whole_images`).
    """
    import pandas as pd

    ip_pair = image_pairs["pair"].astype(str).to_numpy()
    ip_image = image_pairs["image"].astype(str).to_numpy()
    out: dict = {}
    cats = None
    for _, op in pieces:
        if op is None:
            continue
        if not len(op):
            continue
        if cats is None:
            cats = list(op["category_a"].cat.categories)
        absent = len(cats)
        k = absent + 1
        ca = op["category_a"].cat.set_categories(cats).cat.codes.to_numpy().astype(np.int64)
        cb = op["category_b"].cat.set_categories(cats).cat.codes.to_numpy().astype(np.int64)
        ca = np.where(ca < 0, absent, ca)
        cb = np.where(cb < 0, absent, cb)
        pair_codes, pairs = pd.factorize(op["pair"])
        image_codes, image_names = pd.factorize(op["image"])
        image_names = np.asarray([str(v) for v in image_names], dtype=object)
        for code, pair in enumerate(str(v) for v in pairs):
            if pair not in out:
                images = pd.unique(ip_image[ip_pair == pair])
                out[pair] = (images, np.ones(len(images)))  # an image without units scores 1
            images, value = out[pair]
            rows = pair_codes == code
            img = pd.Index(images).get_indexer(image_names)[image_codes[rows]]
            present, local = np.unique(img, return_inverse=True)
            m = len(present)
            local = local.ravel()
            a, b = ca[rows], cb[rows]
            n = np.bincount(local, minlength=m) * 2.0
            diagonal = np.bincount(local, weights=2.0 * (a == b), minlength=m)
            marg = (np.bincount(local * k + a, minlength=m * k) + np.bincount(local * k + b, minlength=m * k))
            marg = marg.reshape(m, k).astype(np.float64)
            alpha = alpha_from_counts(n, diagonal, marg)
            single = (marg > 0).sum(axis=1) <= 1
            value[present] = np.where(single, 1.0, np.where(np.isnan(alpha), 0.0, alpha))
    return out
