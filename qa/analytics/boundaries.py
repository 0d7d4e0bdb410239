"""Systematic boundary disagreement: who draws loose or tight outlines, and which category boundaries move.

Guideline authors need the disagreements that repeat, not one number per pair. :func:`analyse_boundaries`
turns the engine's tables into four answers:

1. **Offsets per annotator and category.** Every matched object pair has a signed boundary offset
   (:func:`qa.engine.boundary.boundary_pair`: the mean signed distance of one outline from the other,
   positive outside). Each annotator's offsets against the other annotators are pooled per category:
   mean, median, quantiles, the share of pairs farther than the tolerance, and a bootstrap interval
   of the mean. ``bob draws car outlines +2.1 px outside the others (n=340; 95% CI +1.9 to +2.3)``;
   a finding needs a mean of at least ``min_offset_px`` and an interval that excludes zero.
2. **Category-pair boundaries** (panoptic and semantic labels): from the semantic comparison's
   interfaces (:mod:`qa.engine.semantic`, computed on the class maps with numba), per pair of touching
   categories the boundary length, the share of it where two annotators' boundaries lie farther apart
   than the tolerance, the mean displacement, and which category gains in whose labels. ``road |
   sidewalk: 38% of the boundary disagrees beyond 2 px; sidewalk gains 3.0 px in alice's labels``.
3. **Agreement against object size, occlusion and vertex density**: binned tables of matched pairs and
   unmatched objects.
4. The rows the store keeps in ``boundary_disagreement`` and the scores rows (scopes
   ``annotator_category``, ``category_pair`` and ``annotator_category_pair``).

Sign conventions
----------------
- An annotator's offset is measured **relative to the other annotators**: for each matched pair of
  annotator ``x`` with another annotator ``y``, the mean signed distance of ``x``'s outline from
  ``y``'s, positive when ``x`` draws outside ``y``. The engine measures ``a``'s outline from ``b``'s for
  the pair ``a|b``; ``b``'s offset is taken as its negation (exact for parallel outlines such as a
  uniform dilation; for other shapes the two directions differ by the outlines' curvature only). With
  ``reference="name"`` only the pairs with that annotator count (a gold set or senior annotator).
- A category pair ``A|B`` is named with the two names sorted. An annotator's displacement on it is
  positive when ``A`` gains in that annotator's labels relative to the others': their ``A`` region
  reaches beyond the others' boundary into what the others label ``B``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

QUANTILES = (0.1, 0.25, 0.75, 0.9)
"""Quantiles of the offset distribution reported per annotator and category."""

MIN_OFFSET_PX = 0.5
"""Smallest mean offset (pixels) a boundary finding reports: below half a pixel an outline's place is
within the rasterisation of the mask itself."""

MIN_CLUSTER_IMAGES = 5
"""Fewest images for the offset interval to resample images; fewer, and it resamples matched pairs."""

SIZE_BINS = (("small", 0.0, 32.0 ** 2), ("medium", 32.0 ** 2, 96.0 ** 2), ("large", 96.0 ** 2, math.inf))
"""COCO's area ranges in square pixels (a pair's area is the mean of its two objects' areas)."""

DENSITY_BINS = (("<2", 0.0, 2.0), ("2-5", 2.0, 5.0), ("5-10", 5.0, 10.0), ("10-20", 10.0, 20.0),
                (">=20", 20.0, math.inf))
"""Vertex density bins, vertices per 100 px of outline (polygon objects only)."""


@dataclass(slots=True)
class BoundaryAnalysis:
    """What :func:`analyse_boundaries` found. Every table is a pandas DataFrame.

    Attributes
    ----------
    offsets : DataFrame
        One row per annotator and category: ``annotator``, ``category``, ``n`` (matched pairs),
        ``signed_offset_px_mean``, ``signed_offset_px_median``, ``signed_offset_px_p10`` ... ``_p90``,
        ``abs_offset_px_mean``, ``beyond_tolerance_share``, ``ci_low`` and ``ci_high`` (the bootstrap
        interval of the mean, for groups of at least ``min_pairs`` pairs) and ``ci_unit`` (``"images"``
        or ``"pairs"``: what was resampled); sorted by the size of the mean, largest first.
    offset_values_of : callable
        Makes :attr:`offset_values` (the values behind ``offsets``) when asked.
    category_pairs : DataFrame
        One row per pair of touching categories (semantic and panoptic labels): ``category_a``,
        ``category_b``, ``images``, ``boundary_px`` (interface length per annotator pair, pixels),
        ``disagree_<t>_share`` and ``boundary_f_<t>`` at each tolerance, ``disagree_px`` (the length
        beyond the tolerance), ``abs_displacement_px_mean``, and the annotator whose boundary moves most
        (``annotator``, ``gains``, ``gain_px``); sorted by ``disagree_px``, largest first.
    category_pair_annotators : DataFrame
        One row per annotator and category pair: ``signed_displacement_px_mean`` (+ when
        ``category_a`` gains in this annotator's labels relative to the others'), ``gains``,
        ``beyond_tolerance_share``, ``n`` (image pairs).
    by_size, by_occlusion, by_vertex_density : DataFrame
        Agreement per bin: ``bin``, ``matched``, ``unmatched``, ``matched_share``, ``mask_iou_mean``,
        ``boundary_iou_mean``, ``boundary_f_<t>_mean``, ``abs_offset_px_mean``.
    table : DataFrame
        Rows of the store's ``boundary_disagreement`` table (``kind`` ``objects`` and ``interface``).
    scores : DataFrame
        Long scores rows.
    settings : dict
        ``tolerance_px``, ``reference``, ``min_pairs``, ``min_offset_px``, ``bootstrap``, ``confidence``,
        ``seed``.
    """

    offsets: "object"
    offset_values_of: "object" = field(repr=False, compare=False)
    category_pairs: "object"
    category_pair_annotators: "object"
    by_size: "object"
    by_occlusion: "object"
    by_vertex_density: "object"
    table: "object"
    scores: "object"
    settings: dict = field(default_factory=dict)

    @property
    def offset_values(self):
        """The values behind :attr:`offsets`: one row per matched pair and side (``annotator``, ``other``,
        ``category``, ``image``, ``object_index``, ``signed_offset_px``; :func:`offset_values`).

        Made again from the comparison's matched rows on each access, not held: the table has two rows
        per matched pair of the batch, about 21 bytes each (34 MB at 20,000 images of 30 objects per
        annotator)."""
        return self.offset_values_of()

    def findings(self, top: int = 3) -> list[dict]:
        """The top findings, largest first: offsets, then category pairs.

        An offset is a finding when its group has at least ``min_pairs`` matched pairs, its mean is at
        least ``min_offset_px`` from zero and its bootstrap interval excludes zero. A category pair is one
        when part of its boundary disagrees beyond the tolerance; which category gains is said when the
        displacement is at least ``min_offset_px``.

        Returns
        -------
        list of dict
            ``kind`` (``"offset"`` or ``"category_pair"``), ``text`` (one line) and the figures behind it.
        """
        tol = self.settings["tolerance_px"]
        minimum = self.settings.get("min_offset_px", MIN_OFFSET_PX)
        confidence = self.settings.get("confidence", 0.95)
        annotators = self.settings.get("annotators") or []
        versus = self.settings.get("reference") or (annotators if len(annotators) == 2 else None)
        out = []
        o = self.offsets
        mean_col = o["signed_offset_px_mean"]
        offsets = o[(o["n"] >= self.settings["min_pairs"]) & mean_col.notna() & (mean_col.abs() >= minimum)
                    & (((o["ci_low"] > 0) & (o["ci_high"] > 0)) | ((o["ci_low"] < 0) & (o["ci_high"] < 0)))]
        for row in offsets.head(top).itertuples(index=False):
            mean = float(row.signed_offset_px_mean)
            side = "outside" if mean > 0 else "inside"
            out.append({"kind": "offset", "annotator": row.annotator, "category": row.category,
                        "signed_offset_px_mean": mean, "n": int(row.n), "ci_low": float(row.ci_low),
                        "ci_high": float(row.ci_high),
                        "text": f"{row.annotator} draws {row.category} outlines {mean:+.1f} px {side} "
                                f"{_versus(versus, row.annotator)} (n={int(row.n)}; {confidence:.0%} CI "
                                f"{row.ci_low:+.1f} to {row.ci_high:+.1f})"})
        share_column = f"disagree_{_label(tol)}_share"
        pairs = self.category_pairs[self.category_pairs["disagree_px"] > 0]
        for row in pairs.head(top).to_dict("records"):
            text = (f"{row['category_a']} | {row['category_b']}: {row[share_column]:.0%} of the boundary "
                    f"disagrees beyond {tol:g} px")
            if isinstance(row["gains"], str) and row["gain_px"] >= minimum:
                text += (f"; {row['gains']} gains {row['gain_px']:.1f} px in {row['annotator']}'s labels "
                         f"(vs {_versus(versus, row['annotator'])})")
            out.append({"kind": "category_pair", "category_a": row["category_a"], "category_b": row["category_b"],
                        "disagree_share": float(row[share_column]), "boundary_px": float(row["boundary_px"]),
                        "annotator": row["annotator"], "gains": row["gains"],
                        "gain_px": None if row["gain_px"] != row["gain_px"] else float(row["gain_px"]),
                        "text": text})
        return out


def _versus(versus, annotator: str) -> str:
    """Whom an annotator is compared with: the reference, the one other annotator, or the others."""
    if isinstance(versus, str):
        return versus
    if versus:
        return next(a for a in versus if a != annotator)
    return "the others"


def _label(tolerance: float) -> str:
    from qa.engine.boundary import tolerance_label

    return tolerance_label(tolerance)


# --- offsets per annotator and category --------------------------------------------------------------

def offset_values(object_pairs, *, reference: str | None = None):
    """Each matched pair's signed offset, once from each annotator's side.

    Parameters
    ----------
    object_pairs : pandas.DataFrame
        The engine's object pair table (``status``, ``annotator_a/b``, ``category_a/b``,
        ``object_index_a/b``, ``signed_offset``).
    reference : str, optional
        Keep only offsets measured against this annotator.

    Returns
    -------
    pandas.DataFrame
        ``annotator``, ``other``, ``category``, ``image``, ``object_index``, ``signed_offset_px``:
        for side ``a`` the engine's offset, for side ``b`` its negation (see the module's sign
        conventions); ``object_index`` only when ``object_pairs`` has ``object_index_a/b``. Pairs
        without an offset (an empty boundary) are left out. The text columns are
        categoricals whose categories are sorted as text (a code per row, not a string: the table has
        two rows per matched pair of the batch).

    Examples
    --------
    >>> import pandas as pd
    >>> pairs = pd.DataFrame({"status": ["matched"], "annotator_a": ["alice"], "annotator_b": ["bob"],
    ...                       "category_a": ["car"], "category_b": ["car"], "image": ["1.png"],
    ...                       "object_index_a": [0], "object_index_b": [3], "signed_offset": [-2.0]})
    >>> offset_values(pairs)[["annotator", "other", "signed_offset_px"]].values.tolist()
    [['alice', 'bob', -2.0], ['bob', 'alice', 2.0]]
    """
    import pandas as pd

    columns = ["annotator", "other", "category", "image", "object_index", "signed_offset_px"]
    if object_pairs is None or len(object_pairs) == 0 or "signed_offset" not in object_pairs:
        return pd.DataFrame({c: pd.Series(dtype=float if c == "signed_offset_px" else object) for c in columns})
    from qa.analytics.aggregate import _sorted_categorical

    matched = object_pairs[(object_pairs["status"].astype(str) == "matched")
                           & object_pairs["signed_offset"].notna()]
    # text as categoricals whose categories are sorted as text (a code per row, groups in text order)
    text = {"annotator_a": _sorted_categorical(matched["annotator_a"], like=matched["annotator_b"]),
            "annotator_b": _sorted_categorical(matched["annotator_b"], like=matched["annotator_a"]),
            "category_a": _sorted_categorical(matched["category_a"], like=matched["category_b"]),
            "category_b": _sorted_categorical(matched["category_b"], like=matched["category_a"]),
            "image": _sorted_categorical(matched["image"])}
    sides = []
    for me, other, sign in (("a", "b", 1.0), ("b", "a", -1.0)):
        side = {"annotator": text[f"annotator_{me}"], "other": text[f"annotator_{other}"],
                "category": text[f"category_{me}"], "image": text["image"]}
        if f"object_index_{me}" in matched:
            side["object_index"] = matched[f"object_index_{me}"].to_numpy(dtype=np.int64, na_value=-1)
        side["signed_offset_px"] = sign * matched["signed_offset"].to_numpy(dtype=np.float64)
        sides.append(pd.DataFrame(side))
    out = pd.concat(sides, ignore_index=True)
    if reference is not None:
        out = out[(out["other"] == reference) & (out["annotator"] != reference)].reset_index(drop=True)
    return out


def _matched_offset_values(comparison, reference, objects: bool = True):
    """:func:`offset_values` of the comparison's matched rows, reading only the columns it needs (the
    table may be on disk; ``objects=False``: without ``object_index``, which the distribution does not
    use). Kept by :class:`BoundaryAnalysis` as a partial, not as the table."""
    matched = None
    if comparison is not None:
        sides = ["annotator_a", "annotator_b", "category_a", "category_b"]
        if objects:
            sides += ["object_index_a", "object_index_b"]
        matched = comparison.object_columns(["status", *sides, "image", "signed_offset"], status="matched")
    return offset_values(matched, reference=reference)


def offset_distribution(values, *, tolerance: float = 2.0, min_pairs: int = 5, bootstrap: int = 1000,
                        confidence: float = 0.95, seed: int = 0):
    """Per annotator and category: the distribution of the signed offset, with an interval of its mean.

    Parameters
    ----------
    values : pandas.DataFrame
        :func:`offset_values`.
    tolerance : float, pixels, default 2.0
        Pairs whose offset is farther from zero than this count in ``beyond_tolerance_share``.
    min_pairs : int, default 5
        Groups with fewer matched pairs get no interval (``ci_low``, ``ci_high`` NaN).
    bootstrap : int, default 1000
        Replicates of the interval (0: no interval).
    confidence : float, default 0.95
        Coverage of the interval.
    seed : int, default 0
        Seed of the resampling (the same seed gives the same interval).

    Returns
    -------
    pandas.DataFrame
        See :attr:`BoundaryAnalysis.offsets`.

    Notes
    -----
    The interval is the percentile bootstrap of the mean (Efron and Tibshirani 1993), as for
    Krippendorff's alpha: each replicate draws the group's images with replacement and pools the
    offsets of the pairs on them, so pairs of one image (which share the image's difficulty, and
    each object's several pairs) move together. A group whose pairs lie on fewer than
    :data:`MIN_CLUSTER_IMAGES` images is resampled pair by pair instead (``ci_unit``).

    Examples
    --------
    >>> import pandas as pd
    >>> v = pd.DataFrame({"annotator": ["bob"] * 4, "category": ["car"] * 4,
    ...                   "signed_offset_px": [1.5, 2.0, 2.5, 3.0]})
    >>> row = offset_distribution(v).iloc[0]
    >>> int(row["n"]), float(row["signed_offset_px_mean"]), float(row["beyond_tolerance_share"])
    (4, 2.25, 0.5)
    """
    import pandas as pd

    names = ["signed_offset_px_mean", "signed_offset_px_median",
             *[f"signed_offset_px_p{round(q * 100):d}" for q in QUANTILES], "abs_offset_px_mean",
             "beyond_tolerance_share"]
    if len(values) == 0:
        return pd.DataFrame(columns=["annotator", "category", "n", *names, "ci_low", "ci_high", "ci_unit"])
    group, keys = _offset_groups(values)
    offsets, by = values["signed_offset_px"].astype(np.float64), group
    if (group < 0).any():  # a missing annotator or category: in no group, as groupby leaves it out
        offsets, by = offsets[group >= 0], group[group >= 0]
    # one grouping at a time (each caches its codes and sort order): the sizes' first, then the offsets'
    size = offsets.abs()
    abs_mean = size.groupby(by, sort=True).mean()
    beyond = (size > tolerance).astype(np.float64).groupby(by, sort=True).mean()
    del size
    grouped = offsets.groupby(by, sort=True)
    out = pd.DataFrame({"n": grouped.size()})
    out["signed_offset_px_mean"] = grouped.mean()
    out["signed_offset_px_median"] = grouped.median()
    for q in QUANTILES:  # one at a time: all in one call sorts once, but holds 25 MB more at 1.6 million rows
        out[f"signed_offset_px_p{round(q * 100):d}"] = grouped.quantile(q)
    out["abs_offset_px_mean"], out["beyond_tolerance_share"] = abs_mean, beyond
    del grouped, offsets, by
    out.index = pd.MultiIndex.from_frame(keys.loc[out.index])
    out = out.reset_index()
    for key in ("annotator", "category"):  # categorical keys (offset_values) shown as text
        if isinstance(out[key].dtype, pd.CategoricalDtype):
            out[key] = out[key].astype(str)
    low, high, unit = _offset_intervals(values, group, out.index.size, min_pairs=min_pairs,
                                        bootstrap=bootstrap, confidence=confidence, seed=seed)
    out["ci_low"], out["ci_high"], out["ci_unit"] = low, high, unit
    order = np.argsort(-out["signed_offset_px_mean"].abs().to_numpy(), kind="stable")
    out = out.iloc[order].reset_index(drop=True)
    out["n"] = out["n"].astype(np.int64)
    return out


def _offset_groups(values):
    """Each row's (annotator, category) group as one small integer (-1 where either is missing), numbered in
    sorted order (as a ``groupby(["annotator", "category"], sort=True)`` orders its groups), and a frame of
    each number's annotator and category. Grouping the offsets by one integer instead of two keys held a third of the
    memory."""
    import pandas as pd

    def coded(column):  # a categorical's own codes (groupby orders its groups by its categories)
        if isinstance(column.dtype, pd.CategoricalDtype):
            return column.cat.codes.to_numpy(), column.cat.categories
        return pd.factorize(column, sort=True)

    annotators, annotator_names = coded(values["annotator"])
    categories, category_names = coded(values["category"])
    group = annotators.astype(np.int32) * np.int32(max(len(category_names), 1)) + categories.astype(np.int32)
    group[(annotators < 0) | (categories < 0)] = -1  # a missing key
    del annotators, categories
    numbers = np.arange(len(annotator_names) * len(category_names))
    keys = pd.DataFrame({"annotator": annotator_names.take(numbers // max(len(category_names), 1)),
                         "category": category_names.take(numbers % max(len(category_names), 1))})
    return group, keys


def _offset_intervals(values, group, n_groups: int, *, min_pairs, bootstrap, confidence, seed):
    """Bootstrap interval of each group's mean offset (see :func:`offset_distribution`'s Notes).

    ``group`` is each row's group (:func:`_offset_groups`); the groups present, in sorted order, are the
    ``n_groups`` rows of the distribution. Returns ``(low, high, unit)`` arrays aligned with them. A
    replicate draws the group's images (or pairs) with replacement as an index array and sums the drawn
    images' offset sums and counts; replicates go in blocks of at most :data:`_DRAWS_PER_BLOCK` drawn
    indices, so memory stays bounded whatever the batch. Each group's rows are taken in table order.
    """
    low = np.full(n_groups, np.nan)
    high = np.full(n_groups, np.nan)
    unit = np.full(n_groups, None, dtype=object)
    if not bootstrap or not n_groups:
        return low, high, unit
    tail = (1.0 - confidence) / 2.0
    offsets = values["signed_offset_px"].to_numpy(dtype=np.float64)
    images = None  # read once a group has enough pairs (a table of small groups needs no image)
    for k, number in enumerate(np.unique(group[group >= 0])):
        rows = np.flatnonzero(group == number)
        if len(rows) < min_pairs:
            continue
        if images is None:
            images = _image_keys(values["image"])
        codes = np.unique(images[rows], return_inverse=True)[1].ravel()
        n_images = int(codes.max()) + 1 if len(codes) else 0
        if n_images >= MIN_CLUSTER_IMAGES:
            sums = np.bincount(codes, weights=offsets[rows], minlength=n_images)
            counts = np.bincount(codes, minlength=n_images).astype(np.float64)
            unit[k] = "images"
        else:
            sums, counts = offsets[rows], np.ones(len(rows))
            unit[k] = "pairs"
        means = _bootstrap_means(sums, counts, int(bootstrap), np.random.default_rng([int(seed), k]))
        low[k], high[k] = np.quantile(means, [tail, 1.0 - tail])
    return low, high, unit


def _image_keys(images):
    """Keys that sort as the images' names: a categorical's codes when its categories are sorted (as
    :func:`offset_values` makes them: no text per row), else the names as text."""
    import pandas as pd

    if isinstance(images.dtype, pd.CategoricalDtype):
        categories = images.cat.categories
        if categories.is_monotonic_increasing and categories.is_unique:
            return images.cat.codes.to_numpy()
    return images.astype(str).to_numpy()


_DRAWS_PER_BLOCK = 1 << 20
"""Drawn indices held at once by :func:`_bootstrap_means` (8 MB of int64, and as much again for each
of the drawn sums and counts). The draws do not depend on the block size: numpy's generator gives the
same stream whether the indices are drawn in one call or several."""


def _bootstrap_means(sums, counts, replicates: int, rng) -> np.ndarray:
    """``replicates`` pooled means ``sum(sums[draw]) / sum(counts[draw])``, each drawing ``len(sums)``
    units with replacement."""
    n = len(sums)
    out = np.empty(replicates)
    block = max(1, _DRAWS_PER_BLOCK // max(n, 1))
    for start in range(0, replicates, block):
        stop = min(start + block, replicates)
        draw = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = sums[draw].sum(axis=1) / counts[draw].sum(axis=1)
    return out


# --- category-pair boundaries ------------------------------------------------------------------------

def _pair_sums(frame, keys, labels):
    """Interface counts added per group (``length``, ``matched`` at each tolerance, signed sums)."""
    columns = ["length_a", "length_b", "signed_sum", "abs_sum", "signed_n"] + \
        [f"matched_{s}_{label}" for label in labels for s in ("a", "b")]
    grouped = frame.groupby(keys, sort=True)
    sums = grouped[columns].sum()
    sums["images"] = grouped["image"].nunique()
    sums["n"] = grouped.size()
    return sums


def category_pair_tables(interfaces, *, tolerances, tolerance: float = 2.0, reference: str | None = None):
    """Category-pair boundary figures from the semantic comparison's interfaces.

    Parameters
    ----------
    interfaces : pandas.DataFrame
        :attr:`qa.engine.semantic.SemanticComparison.interfaces`.
    tolerances : sequence of float, pixels
        The tolerances the interfaces were matched at.
    tolerance : float, pixels, default 2.0
        The one used for ``disagree_px``, the ranking and ``beyond_tolerance_share`` (one of
        ``tolerances``).
    reference : str, optional
        Annotators' displacements against this annotator only.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        :attr:`BoundaryAnalysis.category_pairs` and :attr:`BoundaryAnalysis.category_pair_annotators`.
    """
    import pandas as pd

    from qa.engine.semantic import _f

    labels = [_label(t) for t in tolerances]
    main = _label(tolerance)
    pair_columns = ["category_a", "category_b", "images", "boundary_px",
                    *[f"disagree_{label}_share" for label in labels], *[f"boundary_f_{label}" for label in labels],
                    "disagree_px", "abs_displacement_px_mean", "annotator", "gains", "gain_px"]
    annotator_columns = ["annotator", "category_a", "category_b", "n", "signed_displacement_px_mean", "gains",
                         "beyond_tolerance_share"]
    if interfaces is None or len(interfaces) == 0:
        return pd.DataFrame(columns=pair_columns), pd.DataFrame(columns=annotator_columns)

    # per annotator, against the others (each interface row once from each side)
    sides = []
    for me, other, sign in (("a", "b", 1.0), ("b", "a", -1.0)):
        side = interfaces.assign(annotator=interfaces[f"annotator_{me}"], other=interfaces[f"annotator_{other}"],
                                 signed_sum=sign * interfaces["signed_sum"])
        sides.append(side)
    both = pd.concat(sides, ignore_index=True)
    if reference is not None:
        both = both[(both["other"] == reference) & (both["annotator"] != reference)]
    per_annotator = _pair_sums(both, ["annotator", "category_a", "category_b"], labels).reset_index()
    with np.errstate(invalid="ignore", divide="ignore"):
        n_signed = per_annotator["signed_n"]
        signed = np.where(n_signed > 0, per_annotator["signed_sum"] / n_signed.where(n_signed > 0, 1), np.nan)
        total = (per_annotator["length_a"] + per_annotator["length_b"]).to_numpy(np.float64)
        beyond = 1.0 - (per_annotator[f"matched_a_{main}"] + per_annotator[f"matched_b_{main}"]) / total
    annotators = pd.DataFrame({
        "annotator": per_annotator["annotator"], "category_a": per_annotator["category_a"],
        "category_b": per_annotator["category_b"], "n": per_annotator["n"].astype(np.int64),
        "signed_displacement_px_mean": signed,
        "gains": [None if not (s == s) or s == 0 else (a if s > 0 else b)
                  for s, a, b in zip(signed, per_annotator["category_a"], per_annotator["category_b"])],
        "beyond_tolerance_share": beyond,
    })

    # per category pair, over every annotator pair
    sums = _pair_sums(interfaces, ["category_a", "category_b"], labels)
    pairs_per_group = interfaces.groupby(["category_a", "category_b"], sort=True)[
        ["annotator_a", "annotator_b"]].apply(lambda g: len(g.drop_duplicates()))
    out = pd.DataFrame(index=sums.index)
    out["images"] = sums["images"]
    total = (sums["length_a"] + sums["length_b"]).astype(np.float64)
    out["boundary_px"] = total / 2.0 / pairs_per_group
    for label in labels:
        out[f"disagree_{label}_share"] = 1.0 - (sums[f"matched_a_{label}"] + sums[f"matched_b_{label}"]) / total
    for label in labels:
        out[f"boundary_f_{label}"] = _f(sums[f"matched_a_{label}"], sums["length_a"], sums[f"matched_b_{label}"],
                                        sums["length_b"])
    out["disagree_px"] = (total - sums[f"matched_a_{main}"] - sums[f"matched_b_{main}"]) / 2.0 / pairs_per_group
    with np.errstate(invalid="ignore", divide="ignore"):
        out["abs_displacement_px_mean"] = np.where(sums["signed_n"] > 0, sums["abs_sum"] / sums["signed_n"].where(
            sums["signed_n"] > 0, 1), np.nan)
    out = out.reset_index()
    top = annotators.assign(_size=annotators["signed_displacement_px_mean"].abs()).sort_values(
        ["_size", "annotator"], ascending=[False, True], kind="stable", na_position="last")
    top = top.drop_duplicates(["category_a", "category_b"]).set_index(["category_a", "category_b"])
    keys = list(zip(out["category_a"], out["category_b"]))
    out["annotator"] = [top["annotator"].get(k) for k in keys]
    out["gains"] = [top["gains"].get(k) for k in keys]
    out["gain_px"] = [top["_size"].get(k, math.nan) for k in keys]
    out = out.sort_values(["disagree_px", "category_a", "category_b"], ascending=[False, True, True],
                          kind="stable").reset_index(drop=True)
    annotators = annotators.assign(_size=annotators["signed_displacement_px_mean"].abs()).sort_values(
        ["_size", "annotator"], ascending=[False, True], kind="stable", na_position="last").drop(
        columns="_size").reset_index(drop=True)
    return out[pair_columns], annotators[annotator_columns]


# --- agreement against size, occlusion and vertex density ---------------------------------------------

def _vertex_density(obj) -> float:
    """Vertices per 100 px of outline of a polygon object; NaN for other geometry."""
    if obj.kind != "polygon" or not obj.polygons:
        return math.nan
    vertices = 0
    length = 0.0
    for part in obj.polygons:
        p = np.asarray(part, dtype=np.float64).reshape(-1, 2)
        if len(p) == 0:
            continue
        vertices += len(p)
        length += float(np.hypot(*(np.roll(p, -1, axis=0) - p).T).sum())
    return 100.0 * vertices / length if length > 0 else math.nan


def vertex_densities(objects) -> np.ndarray:
    """:func:`_vertex_density` of every object, vectorised: the edges of all polygon parts at once, each
    part's length by numpy's pairwise sum (:func:`qa.engine._kernels_sdf._outline_lengths`), so every value
    is the one :func:`_vertex_density` gives, to the bit."""
    from qa.engine._kernels_sdf import _outline_lengths

    parts, owner = [], []
    vertices = np.zeros(len(objects), dtype=np.int64)
    polygon = np.zeros(len(objects), dtype=bool)
    for k, obj in enumerate(objects):
        if obj.kind != "polygon" or not obj.polygons:
            continue
        polygon[k] = True
        for part in obj.polygons:
            p = np.asarray(part, dtype=np.float64).reshape(-1, 2)
            if len(p):
                parts.append(p)
                owner.append(k)
                vertices[k] += len(p)
    density = np.full(len(objects), math.nan)
    if not parts:
        return density
    lengths = np.asarray([len(p) for p in parts], dtype=np.int64)
    start = np.zeros(len(parts), dtype=np.int64)
    np.cumsum(lengths[:-1], out=start[1:])
    xy = np.concatenate(parts)
    nxt = np.arange(1, len(xy) + 1, dtype=np.int64)
    nxt[start + lengths - 1] = start  # each part closes on its first vertex (np.roll)
    d = xy[nxt] - xy
    edges = np.ascontiguousarray(np.hypot(d[:, 0], d[:, 1]))
    length = _outline_lengths(edges, start, lengths, np.asarray(owner, dtype=np.int64), len(objects))
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = polygon & (length > 0)
        density[ok] = 100.0 * vertices[ok] / length[ok]
    return density


def object_facts(objects) -> tuple[np.ndarray, np.ndarray]:
    """Each object's occluded flag (1, 0, -1 unknown) and vertex density (:func:`vertex_densities`)."""
    occluded = np.array([-1 if o.occluded is None else int(o.occluded) for o in objects], np.int8)
    return occluded, vertex_densities(objects)


def batch_facts(batch) -> dict:
    """Per annotator: arrays of each object's occluded flag (1, 0, -1 unknown) and vertex density, by the
    object's position in its export (:func:`object_facts`)."""
    return {name: object_facts(export.objects) for name, export in batch.exports.items()}


class FactTable:
    """The reduce of :func:`object_facts`: each chunk's ``{annotator: (positions, occluded, density)}``
    put in place as it comes, so the whole batch's facts (1 + 8 bytes per object) are built without its
    objects, and without holding the chunks' arrays until the end.

    The columns grow by doubling (chunks can come in any export order); :meth:`finish` trims them to
    the last position seen. Positions no chunk gave stay unknown (-1, NaN)."""

    def __init__(self):
        self.columns: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.sizes: dict[str, int] = {}

    def add(self, part: dict) -> None:
        for name, (positions, occluded, density) in part.items():
            have_occluded, have_density = self.columns.get(name, (np.zeros(0, np.int8), np.zeros(0)))
            need = int(positions.max()) + 1 if len(positions) else 0
            if need > len(have_occluded):
                grown = max(need, 2 * len(have_occluded))
                have_occluded = np.concatenate([have_occluded, np.full(grown - len(have_occluded), -1, np.int8)])
                have_density = np.concatenate([have_density, np.full(grown - len(have_density), math.nan)])
            have_occluded[positions] = occluded
            have_density[positions] = density
            self.columns[name] = (have_occluded, have_density)
            self.sizes[name] = max(self.sizes.get(name, 0), need)

    def finish(self) -> dict:
        out = {}
        for name, (occluded, density) in self.columns.items():
            n = self.sizes[name]
            out[name] = (occluded[:n].copy(), density[:n].copy())
        self.columns = {}
        return out


def _side_fact(pairs, facts, side: str, which: int, missing):
    import pandas as pd

    out = np.full(len(pairs), missing, dtype=np.float64)
    codes, names = pd.factorize(pairs[f"annotator_{side}"])  # codes, not a string per row
    index = pairs[f"object_index_{side}"].to_numpy(dtype=np.int64, na_value=-1)
    for code, name in enumerate(names):
        rows = np.flatnonzero((codes == code) & (index >= 0))
        if len(rows) and str(name) in facts:
            out[rows] = facts[str(name)][which][index[rows]]
    return out


def agreement_bins(object_pairs, batch, *, tolerance: float = 2.0, facts: dict | None = None):
    """Agreement of matched pairs, and the share of objects matched, per size, occlusion and vertex density.

    Parameters
    ----------
    object_pairs : pandas.DataFrame or qa.engine.compare.Comparison
        The engine's object pair table, or a comparison (its table read part by part, only the columns
        used).
    batch : Batch
        The batch the pairs come from (for each object's occluded flag and polygon).
    tolerance : float, pixels, default 2.0
        Which boundary F column to summarise.
    facts : dict, optional
        Each object's occluded flag and vertex density by annotator (:func:`batch_facts`), when already
        known; made from ``batch`` otherwise.

    Returns
    -------
    (DataFrame, DataFrame, DataFrame)
        By size (COCO small/medium/large on the mean area of a pair's two objects, or the unmatched
        object's area), by occlusion (``true`` when either object of a pair is flagged occluded,
        ``false`` when flags exist and none is set, ``unknown`` without flags) and by vertex density
        (the mean over the pair's polygon objects, :data:`DENSITY_BINS`; objects that are not
        polygons are left out). ``matched_share`` is ``2 matched / (2 matched + unmatched)``:
        the share of objects that found a partner.
    """
    import pandas as pd

    f_column = f"boundary_f_{_label(tolerance)}"
    metric_columns = ["mask_iou_mean", "boundary_iou_mean", f"{f_column}_mean", "abs_offset_px_mean"]
    empty = pd.DataFrame(columns=["bin", "matched", "unmatched", "matched_share", *metric_columns])
    if object_pairs is None:
        return empty, empty.copy(), empty.copy()
    if hasattr(object_pairs, "object_pieces"):  # a comparison: read part by part, only these columns
        pieces = (piece for _, piece in object_pairs.object_pieces(
            ["status", "annotator_a", "annotator_b", "object_index_a", "object_index_b", "area_a", "area_b", "iou",
             "boundary_iou", f_column, "signed_offset"]))
    else:
        pieces = iter([object_pairs])
    binnings = {"size": [b[0] for b in SIZE_BINS], "occluded": ["true", "false", "unknown"],
                "density": [b[0] for b in DENSITY_BINS]}
    counts = {name: np.zeros((len(bins), 2), np.int64) for name, bins in binnings.items()}  # matched, unmatched
    # the matched rows' figures once, in table order, and their bin in each binning (not a copy per bin)
    figures = {m: [] for m in metric_columns}
    matched_codes = {name: [] for name in binnings}
    rows = 0
    for pairs in pieces:
        rows += len(pairs)
        status = pairs["status"].astype(object).to_numpy()  # the categories' own strings, none made per row
        keep = np.isin(status, ("matched", "missing", "extra"))
        if not keep.any():
            continue
        pairs = pairs[keep]
        status = status[keep]
        matched = status == "matched"
        if facts is None:
            facts = batch_facts(batch)
        for name, codes in _bin_codes(pairs, status, facts).items():
            for b in range(len(binnings[name])):
                inside = codes == b
                m = inside & matched
                counts[name][b] += (int(m.sum()), int((inside & ~matched).sum()))
            matched_codes[name].append(codes[matched].astype(np.int8))
        for metric, column in zip(metric_columns, _bin_figures(pairs[matched], f_column)):
            figures[metric].append(column)
    if rows == 0:
        return empty, empty.copy(), empty.copy()
    codes = {name: np.concatenate(parts) if parts else np.zeros(0, np.int8) for name, parts in matched_codes.items()}
    means = {name: np.full((len(bins), len(metric_columns)), math.nan) for name, bins in binnings.items()}
    for j, metric in enumerate(metric_columns):  # one figure's column at a time
        column = np.concatenate(figures.pop(metric)) if figures[metric] else np.zeros(0)
        for name in binnings:
            for b in range(len(binnings[name])):
                v = column[codes[name] == b]  # the bin's values in table order, as one array gives them
                v = v[~np.isnan(v)]
                if len(v):
                    means[name][b, j] = float(v.mean())

    def table(name):
        out = []
        for b, label in enumerate(binnings[name]):
            matched, unmatched = (int(x) for x in counts[name][b])
            row = {"bin": label, "matched": matched, "unmatched": unmatched}
            denominator = 2 * matched + unmatched
            row["matched_share"] = 2 * matched / denominator if denominator else math.nan
            for j, metric in enumerate(metric_columns):
                row[metric] = float(means[name][b, j])
            out.append(row)
        return pd.DataFrame(out, columns=empty.columns)

    return table("size"), table("occluded"), table("density")


def _bin_codes(pairs, status, facts: dict) -> dict:
    """Each row's bin, as an index into its binning (-1 for none): by size (the mean area of a matched
    pair's objects, or the unmatched object's), occlusion flag and vertex density."""
    area_a = pairs["area_a"].to_numpy(np.float64)
    area_b = pairs["area_b"].to_numpy(np.float64)
    area = np.where(status == "matched", (area_a + area_b) / 2.0, np.where(status == "missing", area_a, area_b))
    size = np.full(len(pairs), -1, np.int64)
    for b, (_, lo, hi) in enumerate(SIZE_BINS):
        size[(area >= lo) & (area < hi)] = b
    occ_a = _side_fact(pairs, facts, "a", 0, -1)
    occ_b = _side_fact(pairs, facts, "b", 0, -1)
    occluded = np.where((occ_a == 1) | (occ_b == 1), 0, np.where((occ_a == 0) | (occ_b == 0), 1, 2))
    sides = np.vstack([_side_fact(pairs, facts, "a", 1, math.nan), _side_fact(pairs, facts, "b", 1, math.nan)])
    known = (~np.isnan(sides)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        density_value = np.where(known > 0, np.nansum(sides, axis=0) / np.maximum(known, 1), np.nan)
    density = np.full(len(pairs), -1, np.int64)
    for b, (_, lo, hi) in enumerate(DENSITY_BINS):
        density[(density_value >= lo) & (density_value < hi)] = b
    return {"size": size, "occluded": occluded, "density": density}


def _bin_figures(pairs, f_column: str) -> list:
    """The figures the bins average, per row: mask IoU, boundary IoU, boundary F, absolute offset."""
    def column(name):
        return pairs[name].to_numpy(np.float64) if name in pairs else np.full(len(pairs), np.nan)

    return [column("iou"), column("boundary_iou"), column(f_column), np.abs(column("signed_offset"))]


# --- store rows and scores ---------------------------------------------------------------------------

def disagreement_table(object_pairs, interfaces, *, tolerances, tolerance: float = 2.0):
    """Rows of the store's ``boundary_disagreement`` table.

    ``kind = "objects"``: matched object pairs per annotator pair and category pair, the mean of every
    boundary figure (``signed_offset_px_mean``: + when ``annotator_a`` draws outside ``annotator_b``),
    the median offset and the share of pairs whose offset is beyond ``tolerance``. ``kind =
    "interface"``: the boundary between ``category_a`` and ``category_b`` (names sorted) in the two
    annotators' class maps: its length, the share beyond ``tolerance``, the signed displacement (+ when
    ``category_a`` gains in ``annotator_a``'s labels relative to ``annotator_b``'s) and which category
    gains; per-tolerance figures go to ``metrics``.

    ``object_pairs`` is the engine's table, or a :class:`~qa.engine.compare.Comparison`, whose matched rows
    are then read one figure column at a time (:func:`_matched_figures`).
    """
    import pandas as pd

    from qa.engine.semantic import _f

    frames = []
    keys = ["annotator_a", "annotator_b", "category_a", "category_b"]
    if hasattr(object_pairs, "object_columns"):  # a comparison: its matched rows read column by column
        comparison = object_pairs
        read = lambda names: comparison.object_columns(names, status="matched")  # noqa: E731
        columns = comparison.object_pair_columns()
    elif object_pairs is not None and len(object_pairs):
        matched = object_pairs[object_pairs["status"].astype(str) == "matched"]
        read, columns = (lambda names: matched[names]), list(matched.columns)
    else:
        read = None
    if read is not None:
        out = _matched_figures(read, keys, tolerance, columns)
        if out is not None:
            frames.append(out)
    if interfaces is not None and len(interfaces):
        labels = [_label(t) for t in tolerances]
        main = _label(tolerance)
        sums = _pair_sums(interfaces, keys, labels)
        total = (sums["length_a"] + sums["length_b"]).astype(np.float64)
        out = pd.DataFrame(index=sums.index)
        out["n_pairs"] = sums["images"].astype(np.int64)
        out["boundary_px"] = total / 2.0
        out["tolerance_px"] = float(tolerance)
        out["beyond_tolerance_share"] = 1.0 - (sums[f"matched_a_{main}"] + sums[f"matched_b_{main}"]) / total
        with np.errstate(invalid="ignore", divide="ignore"):
            n_signed = sums["signed_n"].where(sums["signed_n"] > 0)
            out["signed_offset_px_mean"] = sums["signed_sum"] / n_signed
            out["abs_displacement_px_mean"] = sums["abs_sum"] / n_signed
        for label in labels:
            out[f"boundary_f_{label}"] = _f(sums[f"matched_a_{label}"], sums["length_a"],
                                            sums[f"matched_b_{label}"], sums["length_b"])
            out[f"disagree_{label}_share"] = 1.0 - (sums[f"matched_a_{label}"] + sums[f"matched_b_{label}"]) / total
        out = out.reset_index()
        s = out["signed_offset_px_mean"].to_numpy()
        out["gains"] = [None if not (v == v) or v == 0 else (a if v > 0 else b)
                        for v, a, b in zip(s, out["category_a"], out["category_b"])]
        out.insert(0, "kind", "interface")
        frames.append(out)
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True)


def _records(rows, scope: str, key, metrics: dict, n) -> None:
    for metric, value in metrics.items():
        rows.append((scope, key, metric, float(value) if value is not None else math.nan, int(n)))


def _matched_figures(read, keys: list[str], tolerance: float, columns=None):
    """The ``objects`` rows of :func:`disagreement_table` from ``read(names)`` (the matched rows' columns
    ``names``, in one row order): the groups are made once from the key columns, then each figure is read
    and averaged on its own (pandas' grouped mean of one column is the mean of it in a frame of many, so
    the figures are equal to the bit and only one figure's column is held at a time). None without rows
    or without ``signed_offset``."""
    import pandas as pd

    from qa.engine.compare import _score_name

    frame = read(keys + ["signed_offset"])
    if not len(frame) or "signed_offset" not in frame:
        return None
    figures = [c for c in columns if _score_name(c) is not None]
    for key in keys:
        frame[key] = frame[key].astype(str)
    grouped = frame.groupby(keys, sort=True)
    group = grouped.ngroup().to_numpy()  # each row's group, in the sorted order of the keys (-1: a key is NaN)
    kept = group >= 0
    group = group[kept]
    index = grouped.size().index
    offset = frame["signed_offset"].to_numpy(dtype=np.float64)[kept]
    by_group = pd.Series(offset).groupby(group, sort=True)
    out = pd.DataFrame(index=index)
    for name in ["iou", *figures]:
        values = offset if name == "signed_offset" else read([name])[name].to_numpy()[kept]
        out[_score_name(name) or "mask_iou_mean"] = pd.Series(values).groupby(group, sort=True).mean().to_numpy()
    out.insert(0, "n_pairs", grouped.size())
    out["signed_offset_px_median"] = by_group.median().to_numpy()
    beyond = np.where(~np.isnan(offset), (np.abs(offset) > tolerance).astype(np.float64), np.nan)
    out["beyond_tolerance_share"] = pd.Series(beyond).groupby(group, sort=True).mean().to_numpy()
    out = out.reset_index()
    out.insert(0, "kind", "objects")
    out["tolerance_px"] = float(tolerance)
    return out


def boundary_scores(offsets, category_pairs, category_pair_annotators, *, tolerances, tolerance: float = 2.0):
    """The analysis as long scores rows (``scope, key, metric, value, n``).

    Scopes: ``annotator_category`` (key ``bob|car``: the offset distribution and
    ``offset_beyond_<t>_share``), ``category_pair`` (key ``road|sidewalk``: ``boundary_px``,
    ``disagree_<t>_share`` and ``boundary_f_<t>`` at each tolerance, ``abs_displacement_px_mean``) and
    ``annotator_category_pair`` (key ``alice|road|sidewalk``: ``signed_displacement_px_mean``, + when the
    first category gains in this annotator's labels, and ``disagree_<t>_share``).
    """
    import pandas as pd

    labels = [_label(t) for t in tolerances]
    main = _label(tolerance)
    rows: list[tuple] = []
    distribution = [c for c in offsets.columns if c.startswith("signed_offset_px_")]  # not the interval
    for r in offsets.to_dict("records"):
        metrics = {c: r[c] for c in distribution}
        metrics[f"offset_beyond_{main}_share"] = r["beyond_tolerance_share"]
        _records(rows, "annotator_category", f"{r['annotator']}|{r['category']}", metrics, r["n"])
    for r in category_pairs.to_dict("records"):
        metrics = {"boundary_px": r["boundary_px"]}
        metrics.update({f"disagree_{label}_share": r[f"disagree_{label}_share"] for label in labels})
        metrics.update({f"boundary_f_{label}": r[f"boundary_f_{label}"] for label in labels})
        metrics["abs_displacement_px_mean"] = r["abs_displacement_px_mean"]
        _records(rows, "category_pair", f"{r['category_a']}|{r['category_b']}", metrics, r["images"])
    for r in category_pair_annotators.to_dict("records"):
        metrics = {"signed_displacement_px_mean": r["signed_displacement_px_mean"],
                   f"disagree_{main}_share": r["beyond_tolerance_share"]}
        _records(rows, "annotator_category_pair", f"{r['annotator']}|{r['category_a']}|{r['category_b']}",
                 metrics, r["n"])
    scores = pd.DataFrame.from_records(rows, columns=["scope", "key", "metric", "value", "n"])
    scores["value"] = scores["value"].astype(np.float64)
    scores["n"] = scores["n"].astype(np.int64)
    return scores


# --- entry point --------------------------------------------------------------------------------------

def analyse_boundaries(batch, comparison, semantic=None, *, tolerance: float = 2.0, reference: str | None = None,
                       min_pairs: int = 5, min_offset_px: float = MIN_OFFSET_PX, bootstrap: int = 1000,
                       confidence: float = 0.95, seed: int = 0, facts: dict | None = None) -> BoundaryAnalysis:
    """Find systematic boundary disagreement in a compared batch.

    Parameters
    ----------
    batch : Batch
        The aligned batch.
    comparison : qa.engine.compare.Comparison
        Its comparison (the ``object_pairs`` table with ``signed_offset``).
    semantic : qa.engine.semantic.SemanticComparison, optional
        Its semantic comparison, for the category-pair boundaries (label maps and panoptic exports).
    tolerance : float, pixels, default 2.0
        Offsets and boundary pixels farther than this disagree. Must be one of the semantic
        comparison's tolerances when ``semantic`` is given.
    reference : str, optional
        Measure every annotator against this one instead of against all the others.
    min_pairs : int, default 5
        Fewest matched pairs for an annotator and category to be a finding (:meth:`BoundaryAnalysis.findings`).
    min_offset_px : float, pixels, default 0.5
        Smallest mean offset (and category-pair displacement) a finding reports (:data:`MIN_OFFSET_PX`).
    bootstrap : int, default 1000
        Replicates of each offset's interval; an offset is a finding only when its interval excludes zero.
    confidence : float, default 0.95
        Coverage of the interval.
    seed : int, default 0
        Seed of the resampling.
    facts : dict, optional
        Each object's occluded flag and vertex density (:func:`batch_facts`), when already known.

    Returns
    -------
    BoundaryAnalysis

    Raises
    ------
    ConfigError
        When ``reference`` is not an annotator of the batch, or ``tolerance`` was not computed.

    Notes
    -----
    See the module docstring for the sign conventions. Offsets are per matched pair (the mean over the
    pair's outline), so every pair weighs the same whatever its size; the interface figures are per
    pixel of boundary, pooled over images and annotator pairs before dividing.

    Examples
    --------
    >>> result = qa.run(manifest="batch.toml", db=None)  # doctest: +SKIP
    >>> result.boundaries.offsets.head(3)  # doctest: +SKIP
    """
    from qa.errors import ConfigError

    if reference is not None and reference not in batch.annotators:
        raise ConfigError(f"reference {reference!r} is not an annotator of the batch "
                          f"({', '.join(batch.annotators)})")
    tolerances = [float(tolerance)]
    interfaces = None
    if semantic is not None:
        tolerances = [float(t) for t in semantic.settings["tolerances"]]
        if float(tolerance) not in tolerances:
            raise ConfigError(f"tolerance {tolerance:g} px was not computed; the comparison's tolerances are "
                              f"{', '.join(f'{t:g}' for t in tolerances)}")
        interfaces = semantic.interfaces
    values_of = functools.partial(_matched_offset_values, comparison, reference)
    offsets = offset_distribution(values_of(objects=False), tolerance=tolerance, min_pairs=min_pairs,
                                  bootstrap=bootstrap, confidence=confidence, seed=seed)
    pairs, annotators = category_pair_tables(interfaces, tolerances=tolerances, tolerance=tolerance,
                                             reference=reference)
    by_size, by_occlusion, by_density = agreement_bins(comparison, batch, tolerance=tolerance, facts=facts)
    table = disagreement_table(comparison, interfaces, tolerances=tolerances, tolerance=tolerance)
    scores = boundary_scores(offsets, pairs, annotators, tolerances=tolerances, tolerance=tolerance)
    return BoundaryAnalysis(offsets=offsets, offset_values_of=values_of, category_pairs=pairs,
                            category_pair_annotators=annotators, by_size=by_size, by_occlusion=by_occlusion,
                            by_vertex_density=by_density, table=table, scores=scores,
                            settings={"tolerance_px": float(tolerance), "reference": reference,
                                      "min_pairs": int(min_pairs), "min_offset_px": float(min_offset_px),
                                      "bootstrap": int(bootstrap), "confidence": float(confidence),
                                      "seed": int(seed), "annotators": sorted(batch.annotators)})


# --- the pipeline's stage -----------------------------------------------------------------------------

def stage_tolerance(tolerances) -> float:
    """The tolerance the findings use: 2 px when computed, else the middle one of ``tolerances``."""
    values = sorted(float(t) for t in tolerances)
    return 2.0 if 2.0 in values else values[len(values) // 2]


def boundary_stage(batch, comparison, *, tolerances=(1, 2, 4), workers=None, progress=None, max_pixels=None,
                   reference: str | None = None, executor=None, semantic=None, facts=None):
    """The run's boundary stage: the semantic comparison (label maps, binary masks, panoptic) when the
    batch has one (``semantic``, when the run's one pass over the images has made it), then
    :func:`analyse_boundaries` (offsets against ``reference`` when given).

    Returns
    -------
    (SemanticComparison or None, BoundaryAnalysis, pandas.DataFrame)
        The semantic comparison, the analysis, and the comparison's scores with both of theirs appended.
    """
    import pandas as pd

    from qa.engine.semantic import compare_semantic, is_semantic

    if semantic is None and is_semantic(batch):
        semantic = compare_semantic(batch, tolerances=tolerances, workers=workers, progress=progress,
                                    max_pixels=max_pixels, executor=executor)
    if progress:
        progress("boundaries", 0, 1)
    analysis = analyse_boundaries(batch, comparison, semantic, tolerance=stage_tolerance(tolerances),
                                  reference=reference, facts=facts)
    if progress:
        progress("boundaries", 1, 1)
    parts = [comparison.scores, semantic.scores if semantic is not None else None, analysis.scores]
    scores = pd.concat([p for p in parts if p is not None and len(p)], ignore_index=True)
    return semantic, analysis, scores


def stage_summary(semantic, analysis, *, top: int = 3) -> dict:
    """Plain-data entries for the run summary: ``classes`` (per-class agreement of a semantic batch)
    and ``boundary_findings`` (:meth:`BoundaryAnalysis.findings`)."""
    out: dict = {"boundary_findings": analysis.findings(top=top)}
    if semantic is not None:
        rows = []
        for r in semantic.class_table().to_dict("records"):
            rows.append({k: (None if isinstance(v, float) and v != v else
                             (int(v) if k == "images" else (float(v) if not isinstance(v, str) else v)))
                         for k, v in r.items()})
        out["classes"] = rows
    return out
