"""Agreement figures grouped every way a QA lead asks for them: per annotator pair, annotator, category,
image, object size and occlusion flag.

Everything is computed from the engine's ``object_pairs`` table (one row per matched pair, missing or
extra object per image and annotator pair) with pandas group-bys; no Python loop runs over its rows.
:func:`aggregate` returns one wide DataFrame per scope and the long rows for ``Run.scores``.

Orientation. In a pair ``a|b`` (names sorted) ``missing`` objects are ``a``'s with no match in ``b`` and
``extra`` objects ``b``'s with no match in ``a``; the signed boundary offset is ``a``'s boundary from
``b``'s outline (positive when ``a`` lies outside). The per-annotator scopes turn every pair around so
that it is seen from the annotator: its ``missing`` objects are the other annotators' objects it did not
draw, its ``extra`` objects those it drew and the other did not, and its offset is its own boundary from
the other's outline (``-signed_offset`` when it is ``b``; the engine measures ``a`` against ``b`` only,
and the two differ by the asymmetry of the distance transform, well under a pixel for smooth outlines).
The symmetric scopes (category, image, size, occluded) do not depend on name order, so they report
``unmatched`` objects (missing plus extra) instead.
"""

from __future__ import annotations

import numpy as np

from qa import metric_registry

SIZES = ("small", "medium", "large")
"""COCO's object size classes: area < 32**2, 32**2 <= area < 96**2, area >= 96**2 (square pixels)."""

SMALL_MAX = 32 ** 2
MEDIUM_MAX = 96 ** 2

SCOPES = ("annotator_pair", "annotator", "category", "image", "size", "annotator_size", "occluded", "batch")
"""The scopes :func:`aggregate` fills, in the order of :attr:`Aggregates.tables`."""

_KEYS = {"annotator_pair": ["pair"], "annotator": ["annotator"], "category": ["category"], "image": ["image"],
         "size": ["size"], "annotator_size": ["annotator", "size"], "occluded": ["occluded"], "batch": []}




def size_class(area) -> np.ndarray:
    """COCO size class of each area (square pixels): 0 small, 1 medium, 2 large (-1 for NaN).

    Examples
    --------
    >>> size_class([10, 1024, 9215, 9216]).tolist()
    [0, 1, 1, 2]
    """
    area = np.asarray(area, dtype=np.float64)
    out = np.where(area < SMALL_MAX, 0, np.where(area < MEDIUM_MAX, 1, 2))
    return np.where(np.isnan(area), -1, out).astype(np.int64)


def cohen_kappa(n, agree, x_true, y_true):
    """Cohen's kappa of two binary raters from counts (arrays or scalars).

    Parameters
    ----------
    n : int or array
        Items both raters rated.
    agree : int or array
        Items they rated alike.
    x_true, y_true : int or array
        Items each rater rated true.

    Returns
    -------
    float or ndarray
        ``(p_o - p_e) / (1 - p_e)`` with ``p_o = agree / n`` and
        ``p_e = p_x p_y + (1 - p_x)(1 - p_y)``; NaN when ``n == 0`` or ``p_e == 1`` (both raters
        constant and equal, where kappa is undefined).

    References
    ----------
    J. Cohen, "A coefficient of agreement for nominal scales", Educational and Psychological
    Measurement 20 (1960), doi:10.1177/001316446002000104; scikit-learn ``cohen_kappa_score``.

    Examples
    --------
    >>> round(float(cohen_kappa(10, 8, 5, 5)), 3)
    0.6
    """
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        po = np.asarray(agree, dtype=np.float64) / n
        px = np.asarray(x_true, dtype=np.float64) / n
        py = np.asarray(y_true, dtype=np.float64) / n
        pe = px * py + (1 - px) * (1 - py)
        kappa = np.where((n > 0) & (pe < 1), (po - pe) / np.where(pe < 1, 1 - pe, 1.0), np.nan)
    return kappa if kappa.ndim else float(kappa)


# --- the per-row frame ---------------------------------------------------------------------------------

def _flags(batch, names: list[str], facts: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every object's occlusion flag (1, 0, NaN when absent), flattened in ``names`` order, and offsets;
    from ``facts`` (:func:`qa.analytics.boundaries.batch_facts`) when given."""
    flags, offsets = [], [0]
    for name in names:
        if facts is not None:
            occluded = facts[name][0] if name in facts else np.zeros(0, np.int64)
            values = np.where(occluded < 0, np.nan, occluded.astype(np.float64))
        else:
            export = batch.exports.get(name)
            objs = export.objects if export is not None else []
            values = np.array([np.nan if o.occluded is None else float(o.occluded) for o in objs], dtype=np.float64)
        flags.append(values)
        offsets.append(offsets[-1] + len(values))
    return (np.concatenate(flags) if flags else np.zeros(0)), np.asarray(offsets[:-1], dtype=np.int64)


def _side_flag(flat, offsets, annotator, index) -> np.ndarray:
    codes = annotator.cat.codes.to_numpy().astype(np.int64)
    idx = index.to_numpy(dtype=np.float64, na_value=np.nan)
    valid = ~np.isnan(idx) & (codes >= 0)
    out = np.full(len(idx), np.nan)
    if valid.any():
        out[valid] = flat[offsets[codes[valid]] + idx[valid].astype(np.int64)]
    return out


_CODED = ("image", "pair", "annotator", "category")
"""The per-row frame's key columns kept as categoricals (:func:`_sorted_categorical`); the tables give them
as text."""


def _sorted_categorical(values, like=None):
    """``values`` as a categorical whose categories are its distinct values as text, sorted (with those of
    ``like``, so that two annotator columns share one list): grouped with ``sort=True`` it gives the
    groups in the order text keys would, with two bytes per row instead of a string."""
    import pandas as pd

    texts = {str(v) for v in pd.unique(values.dropna())}
    if like is not None:
        texts |= {str(v) for v in pd.unique(like.dropna())}
    categories = pd.Index(sorted(texts), dtype=object)
    if isinstance(values.dtype, pd.CategoricalDtype):
        own = np.asarray([categories.get_loc(str(c)) if str(c) in texts else -1 for c in values.cat.categories],
                         dtype=np.int64)
        codes = values.cat.codes.to_numpy()
        return pd.Categorical.from_codes(np.where(codes < 0, -1, own[codes]), categories=categories)
    return pd.Categorical(values.astype(object).map(lambda v: v if v is None or v != v else str(v)).to_numpy(),
                          categories=categories)


def _occluded_text(occ) -> np.ndarray:
    """``"true"`` where a flag is set, ``"false"`` where flags exist and none is, None without flags (two
    shared strings, not one per row)."""
    out = np.full(len(occ), None, dtype=object)
    known = ~np.isnan(occ)
    out[known & (occ > 0)] = "true"
    out[known & ~(occ > 0)] = "false"
    return out


def _rows(batch, comparison, facts=None):
    """The object pair table as plain columns, ignored rows dropped, with size and occlusion per row."""
    import pandas as pd

    boundary = {}  # the boundary figures the registry computes per category (boundary F, boundary IoU)
    for column in comparison.object_pair_columns():
        name = metric_registry.score_for_column(str(column))
        own = str(column) in ("iou", "signed_offset")  # mask_iou_mean and the offset have columns of their own
        if name is not None and not own and "category" in metric_registry.scopes(name):
            boundary[name] = column
    op = comparison.object_columns(  # every row but the ignored ones, only the columns read here
        ["status", "image", "pair", "annotator_a", "annotator_b", "object_index_a", "object_index_b", "category_a",
         "category_b", "area_a", "area_b", "label_disagreement", "iou", "signed_offset", *boundary.values()],
        status=("matched", "missing", "extra"))
    status = op["status"].astype(object).to_numpy()  # the categories' own strings, none made per row
    matched = status == "matched"
    missing = status == "missing"
    extra = status == "extra"
    area_a = op["area_a"].to_numpy(dtype=np.float64)
    area_b = op["area_b"].to_numpy(dtype=np.float64)
    area = np.where(matched, (area_a + area_b) / 2, np.where(missing, area_a, area_b))
    names = [str(c) for c in op["annotator_a"].cat.categories]
    flat, offsets = _flags(batch, names, facts)
    occ_a = _side_flag(flat, offsets, op["annotator_a"], op["object_index_a"])
    occ_b = _side_flag(flat, offsets, op["annotator_b"].cat.set_categories(names), op["object_index_b"])
    # a matched pair is occluded when either object is flagged; unmatched rows take their object's flag
    occ = np.where(matched, np.fmax(occ_a, occ_b), np.where(missing, occ_a, occ_b))
    formats = {name: export.format for name, export in batch.exports.items()}
    pan_pairs = {f"{a}|{b}" for a in formats for b in formats
                 if a < b and formats[a] == formats[b] == "coco_panoptic"}
    frame = pd.DataFrame({  # the grouping keys as codes (categories in text order), not a string per row
        "image": _sorted_categorical(op["image"]),
        "pair": _sorted_categorical(op["pair"]),
        "annotator_a": _sorted_categorical(op["annotator_a"]),
        "annotator_b": _sorted_categorical(op["annotator_b"], like=op["annotator_a"]),
        "matched": matched, "missing": missing, "extra": extra,
        "label": op["label_disagreement"].to_numpy(dtype=bool) & matched,
        "category_a": _sorted_categorical(op["category_a"], like=op["category_b"]),
        "category_b": _sorted_categorical(op["category_b"], like=op["category_a"]),
        "iou": op["iou"].to_numpy(dtype=np.float64),
        "size": pd.Categorical.from_codes(np.clip(size_class(area), 0, 2), categories=list(SIZES)),
        "occ_a": occ_a, "occ_b": occ_b,
        "occluded": _occluded_text(occ),
        "offset": op["signed_offset"].to_numpy(dtype=np.float64) if "signed_offset" in op else np.nan,
        "panoptic": op["pair"].astype(str).isin(pan_pairs).to_numpy(),
    })
    for metric, column in boundary.items():
        frame[metric] = op[column].to_numpy(dtype=np.float64)
    return frame, list(boundary)


def _oriented(frame):
    """Each row twice, once from each annotator's side (``annotator``, ``other``, oriented columns)."""
    import pandas as pd

    a = frame.assign(annotator=frame["annotator_a"], other=frame["annotator_b"],
                     missing=frame["extra"], extra=frame["missing"], occ_x=frame["occ_a"], occ_y=frame["occ_b"])
    b = frame.assign(annotator=frame["annotator_b"], other=frame["annotator_a"],
                     missing=frame["missing"], extra=frame["extra"], occ_x=frame["occ_b"], occ_y=frame["occ_a"],
                     offset=-frame["offset"])
    return pd.concat([a, b], ignore_index=True)


def _by_category(frame):
    """Rows by category: a matched pair with two labels counts in both categories."""
    import pandas as pd

    a, b = frame["category_a"].array, frame["category_b"].array  # one list of categories (:func:`_rows`)
    codes = np.where(frame["extra"].to_numpy(), b.codes, a.codes)
    main = frame.assign(category=pd.Categorical.from_codes(codes, dtype=a.dtype))
    second = frame[frame["label"].to_numpy()]
    second = second.assign(category=second["category_b"].array)
    return pd.concat([main, second], ignore_index=True)


# --- figures of one grouping ---------------------------------------------------------------------------

class _Figures:
    """Columns of one wide table and the ``n`` behind each figure."""

    def __init__(self, index):
        import pandas as pd

        self.values = pd.DataFrame(index=index)
        self.n = pd.DataFrame(index=index)

    def add(self, metric, value, n):
        self.values[metric] = np.asarray(value, dtype=np.float64)
        self.n[metric] = np.asarray(n, dtype=np.int64) if np.ndim(n) else np.full(len(self.values), int(n))


def _group(frame, keys):
    if keys:
        return frame.groupby(keys, sort=True, observed=True, dropna=True)
    return frame.groupby(np.zeros(len(frame), dtype=np.int64), sort=True)


def _share(num, den):
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _figures(frame, keys, boundary: list[str], *, roles: bool) -> _Figures:
    g = _group(frame, keys)
    sums = g[["matched", "missing", "extra", "label"]].sum()
    fig = _Figures(sums.index)
    rows = g.size().to_numpy()
    matched = sums["matched"].to_numpy()
    missing = sums["missing"].to_numpy()
    extra = sums["extra"].to_numpy()
    label = sums["label"].to_numpy()
    fig.add("matched", matched, rows)
    if roles:
        fig.add("missing", missing, rows)
        fig.add("extra", extra, rows)
        fig.add("missing_share", _share(missing, matched + missing), matched + missing)
        fig.add("extra_share", _share(extra, matched + extra), matched + extra)
    else:
        fig.add("unmatched", missing + extra, rows)
    fig.add("unmatched_share", _share(missing + extra, 2 * matched + missing + extra), 2 * matched + missing + extra)
    fig.add("label_disagreements", label, rows)
    fig.add("label_disagreement_share", _share(label, matched), matched)
    means = ["iou", *boundary, "offset"]
    mean = g[means].mean()
    count = g[means].count()
    for column in means:
        name = {"iou": metric_registry.score_for_column("iou"),
                "offset": metric_registry.score_for_column("signed_offset")}.get(column, column)
        fig.add(name, mean[column].to_numpy(), count[column].to_numpy())
    _occlusion(frame, keys, fig)
    return fig


def _occlusion(frame, keys, fig: _Figures) -> None:
    """Occlusion-flag agreement on matched pairs where both objects carry the flag."""
    oriented = "occ_x" in frame
    x = frame["occ_x" if oriented else "occ_a"].to_numpy()
    y = frame["occ_y" if oriented else "occ_b"].to_numpy()
    both = frame["matched"].to_numpy() & ~np.isnan(x) & ~np.isnan(y)
    if not both.any():
        return
    flags = frame.loc[:, keys].copy() if keys else frame.iloc[:, :0].copy()
    flags["n"] = both.astype(np.int64)
    flags["agree"] = (both & (x == y)).astype(np.int64)
    flags["x"] = (both & (x > 0)).astype(np.int64)
    flags["y"] = (both & (y > 0)).astype(np.int64)
    sums = _group(flags, keys)[["n", "agree", "x", "y"]].sum().reindex(fig.values.index, fill_value=0)
    n = sums["n"].to_numpy()
    fig.add("occluded_agreement_share", _share(sums["agree"].to_numpy(), n), n)
    fig.add("occluded_kappa", cohen_kappa(n, sums["agree"].to_numpy(), sums["x"].to_numpy(), sums["y"].to_numpy()), n)


def _pq_events(frame):
    """Panoptic quality events of the panoptic pairs: TP (same category, IoU > 0.5), FP and FN per category."""
    import pandas as pd

    frame = frame[frame["panoptic"].to_numpy()]
    matched = frame["matched"].to_numpy()
    tp = matched & ~frame["label"].to_numpy() & (frame["iou"].to_numpy() > 0.5)
    parts = [
        frame[tp].assign(category=frame["category_a"][tp], tp=1, fp=0, fn=0, iou_sum=frame["iou"][tp]),
        frame[(matched & ~tp) | frame["missing"].to_numpy()].pipe(
            lambda f: f.assign(category=f["category_a"], tp=0, fp=0, fn=1, iou_sum=0.0)),
        frame[(matched & ~tp) | frame["extra"].to_numpy()].pipe(
            lambda f: f.assign(category=f["category_b"], tp=0, fp=1, fn=0, iou_sum=0.0)),
    ]
    return pd.concat(parts, ignore_index=True)


def _pq(events, keys, fig: _Figures, *, per_class: bool = False) -> None:
    """PQ, SQ and RQ per group: per category, then averaged over categories (panopticapi's pq_average)."""
    if not len(events):
        return
    g = events.groupby([*keys, "category"], sort=True, observed=True)
    c = g[["tp", "fp", "fn", "iou_sum"]].sum()
    tp, fp, fn, iou = (c[k].to_numpy(dtype=np.float64) for k in ("tp", "fp", "fn", "iou_sum"))
    denom = tp + 0.5 * fp + 0.5 * fn
    c = c.assign(pq=_share(iou, denom), sq=np.where(tp > 0, _share(iou, tp), 0.0), rq=_share(tp, denom),
                 counted=(denom > 0).astype(np.int64))
    c = c[c["counted"] > 0]
    if per_class:
        avg = c[["pq", "sq", "rq"]].droplevel(list(range(len(keys)))) if keys else c[["pq", "sq", "rq"]]
        n = np.ones(len(avg), dtype=np.int64)
    elif keys:
        avg = c.groupby(level=list(range(len(keys))), sort=True)[["pq", "sq", "rq"]].mean()
        n = c.groupby(level=list(range(len(keys))), sort=True).size().to_numpy()
    else:
        avg = c[["pq", "sq", "rq"]].mean().to_frame().T
        avg.index = fig.values.index[:1]
        n = np.array([len(c)])
    import pandas as pd

    n = pd.Series(n, index=avg.index).reindex(fig.values.index, fill_value=0)
    avg = avg.reindex(fig.values.index)
    for metric in ("pq", "sq", "rq"):
        fig.add(metric, avg[metric].to_numpy(), n.to_numpy())


# --- the result ----------------------------------------------------------------------------------------

class Aggregates:
    """Wide tables per scope (``tables``) and the same figures as long scores rows (``scores``)."""

    __slots__ = ("tables", "scores")

    def __init__(self, tables: dict, scores):
        self.tables = tables
        self.scores = scores


def aggregate(batch, comparison, *, facts: dict | None = None) -> Aggregates:
    """Agreement figures per annotator pair, annotator, category, image, size and occlusion flag.

    Parameters
    ----------
    batch : Batch
        The batch that was compared (for the objects' occlusion flags and the export formats).
    comparison : qa.engine.compare.Comparison
        The engine's tables; only ``object_pairs`` is read.

    Returns
    -------
    Aggregates
        ``tables``: one wide DataFrame per scope in :data:`SCOPES`, keyed by ``pair``, ``annotator``,
        ``category``, ``image``, ``size``, ``annotator`` and ``size``, ``occluded`` (none for ``batch``),
        one column per figure. ``scores``: the long rows (``scope, key, metric, value, n``).

    Notes
    -----
    Figures (see ``docs/analytics.md``):

    - ``matched``, ``label_disagreements``: matched pairs, and those with two different categories;
      ``label_disagreement_share`` divides by ``matched``.
    - ``missing``, ``extra`` (pair and annotator scopes; oriented as the module docstring says),
      ``missing_share = missing / (matched + missing)``, ``extra_share = extra / (matched + extra)``;
      ``unmatched = missing + extra`` and ``unmatched_share = unmatched / (2 matched + unmatched)``, the
      share of all objects in the group without a counterpart.
    - ``mask_iou_mean``, ``boundary_f_<t>px_mean``, ``boundary_iou_mean``, ``signed_offset_px_mean``:
      means over the matched pairs (NaN values, such as an empty boundary, left out; ``n`` counts the rest).
    - ``image_iou_mean`` (annotator, image and category scopes): the mean of the engine's image-level IoU
      over the image pairs the annotator (or the image) is in, or of a category's IoU over the image pairs
      where either annotator drew it; unlike ``mask_iou_mean`` it counts images whose objects did not
      match.
    - ``occluded_agreement_share``, ``occluded_kappa``: agreement of the occlusion flag over matched
      pairs where both objects carry it, raw and as Cohen's kappa (:func:`cohen_kappa`); only where an
      export has the flag.
    - ``pq``, ``sq``, ``rq``: panoptic quality (Kirillov et al. 2019) of the pairs where both annotators
      export COCO panoptic, from the matched pairs: a TP has the same category and IoU > 0.5, every
      other matched pair is a FN of ``a``'s category and a FP of ``b``'s, a missing object a FN and an
      extra one a FP. Per category as panopticapi, then averaged over the categories with a TP, FP or FN
      (``n``). The IoU is the matched pair's mask IoU; with void pixels the engine's symmetric form
      leaves them out of the union, so the pair-level ``pq`` of :mod:`qa.engine.compare` is the
      reference figure for a pair and these are for the breakdowns.

    Size: the mean pixel area of a matched pair's two objects, or the area of an unmatched object
    (COCO: small < 32**2 <= medium < 96**2 <= large). Occluded: ``"true"`` when either object of a
    matched pair is flagged occluded, ``"false"`` when the flagged ones are not, absent when neither
    export has a flag. The ``batch`` scope pools every row. The ``category`` scope counts a matched pair
    with two labels in both categories.
    """
    import pandas as pd

    frame, boundary = _rows(batch, comparison, facts)
    image_level = _image_level(comparison)
    oriented = _oriented(frame)
    by_category = _by_category(frame)
    events = _pq_events(frame)
    tables: dict[str, pd.DataFrame] = {}
    records = []
    sources = {"annotator_pair": (frame, False), "annotator": (oriented, True), "category": (by_category, False),
               "image": (frame, False), "size": (frame, False), "annotator_size": (oriented, True),
               "occluded": (frame, False), "batch": (frame, False)}
    for scope in SCOPES:
        keys = _KEYS[scope]
        data, is_oriented = sources[scope]
        if not len(data) or (keys and not data[keys].notna().all(axis=1).any()):
            continue
        fig = _figures(data, keys, boundary, roles=is_oriented or scope in ("annotator_pair", "batch"))
        if scope in image_level:
            mean, count = image_level[scope]
            fig.add("image_iou_mean", mean.reindex(fig.values.index).to_numpy(dtype=np.float64),
                    count.reindex(fig.values.index, fill_value=0).to_numpy(dtype=np.int64))
        if scope == "category":
            _pq(events, [], fig, per_class=True)
        else:
            _pq(_oriented_events(events) if is_oriented else events, keys, fig)
        table = fig.values.reset_index()
        for column in _CODED:
            if column in table and isinstance(table[column].dtype, pd.CategoricalDtype):
                table[column] = table[column].astype(str)
        for column in table.columns:  # counts, as the metric registry declares them, are integer columns
            if metric_registry.is_count(column):
                table[column] = table[column].astype(np.int64)
        if not keys:
            table = table.drop(columns=table.columns[0])
        tables[scope] = table
        records.append(_long(scope, keys, fig))
    long = pd.concat(records, ignore_index=True) if records else pd.DataFrame(
        columns=["scope", "key", "metric", "value", "n"])
    return Aggregates(tables, long)


def _image_level(comparison) -> dict:
    """``{scope: (mean, count)}`` of the image pairs' ``image_iou_mean`` per annotator (every pair it is
    in) and per image (every pair that compared it), and the engine's per category one, as Series keyed
    like those scopes' tables."""
    pairs = comparison.image_pairs
    if pairs is None or not len(pairs) or "image_iou_mean" not in pairs:
        return {}
    import pandas as pd

    values = pairs["image_iou_mean"].to_numpy(dtype=np.float64)
    sides = pd.DataFrame({"key": np.concatenate([pairs["annotator_a"].astype(str).to_numpy(),
                                                 pairs["annotator_b"].astype(str).to_numpy()]),
                          "value": np.concatenate([values, values])})
    images = pd.DataFrame({"key": pairs["image"].astype(str).to_numpy(), "value": values})
    out = {}
    for scope, frame in (("annotator", sides), ("image", images)):
        grouped = frame.groupby("key", sort=True)["value"]
        out[scope] = (grouped.mean(), grouped.count())
    categories = getattr(comparison, "category_image_iou", None)
    if categories is not None and len(categories):
        keyed = categories.set_index(categories["category"].astype(str))
        out["category"] = (keyed["value"], keyed["n"])
    return out


def _oriented_events(events):
    import pandas as pd

    if not len(events):
        return events
    return pd.concat([events.assign(annotator=events["annotator_a"]),
                      events.assign(annotator=events["annotator_b"])], ignore_index=True)


def _long(scope, keys, fig: _Figures):
    """A wide figure table as long scores rows; compound keys joined by ``|``."""
    import pandas as pd

    values = fig.values
    if keys:
        index = values.index
        if isinstance(index, pd.MultiIndex):
            key = index.get_level_values(0).astype(str)
            for level in range(1, index.nlevels):
                key = key + "|" + index.get_level_values(level).astype(str)
        else:
            key = index.astype(str)
        key = np.asarray(key, dtype=object)
    else:
        key = np.full(len(values), "", dtype=object)
    metrics = list(values.columns)
    k = len(metrics)
    return pd.DataFrame({
        "scope": scope,
        "key": np.repeat(key, k),
        "metric": np.tile(np.asarray(metrics, dtype=object), len(values)),
        "value": values.to_numpy(dtype=np.float64).reshape(-1),
        "n": fig.n[metrics].to_numpy(dtype=np.int64).reshape(-1),
    })
