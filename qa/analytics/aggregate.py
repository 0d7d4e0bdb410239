"""Agreement figures grouped every way a QA lead asks for them: per annotator pair, annotator, category,
image, object size and occlusion flag.

Everything is computed from the engine's ``object_pairs`` table (one row per matched pair, missing or
extra object per image and annotator pair), read part by part (:meth:`Comparison.object_pieces`, whole
images per part), so the main process holds per-group sums and never a per-row frame of the batch; no
Python loop runs over its rows. :func:`aggregate` returns one wide DataFrame per scope and the long rows
for ``Run.scores``.

Sums. Counts are integer sums. A mean is a compensated (Kahan) sum over the rows in table order, carried
from one part to the next, divided by the values that are not NaN: the figure pandas' Cython group-by
gives on the whole table, whatever the parts (:mod:`qa.analytics._kernels_sums`). pandas 3.1 itself sums
a sorted, NaN-free group pairwise instead (``ufunc.reduceat``), so a plain ``groupby().mean()`` can differ
from these figures in the last bit.

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

_SOURCES = {"annotator_pair": "frame", "annotator": "oriented", "category": "by_category", "image": "frame",
            "size": "frame", "annotator_size": "oriented", "occluded": "frame", "batch": "frame"}
"""The rows each scope groups (:func:`_segment`): the pairs as they are, seen from each annotator's side,
or under each of their categories."""




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


def _occluded_codes(occ) -> np.ndarray:
    """0 (``"false"``) where flags exist and none is set, 1 (``"true"``) where one is, -1 without flags."""
    return np.where(np.isnan(occ), -1, (occ > 0).astype(np.int64))


_OCCLUDED = np.array(["false", "true"], dtype=object)
"""The occluded scope's keys, by code (text order)."""


def _text_codes(values, texts) -> np.ndarray:
    """Codes of ``values`` (categorical or not) in ``texts`` (a sorted :class:`pandas.Index`); -1 where missing."""
    import pandas as pd

    if isinstance(values.dtype, pd.CategoricalDtype):
        own = texts.get_indexer(pd.Index([str(c) for c in values.cat.categories], dtype=object))
        codes = values.cat.codes.to_numpy().astype(np.int64)
        return np.where(codes < 0, -1, own[codes] if len(own) else -1)
    missing = values.isna().to_numpy()
    codes = texts.get_indexer(pd.Index(values.astype(object).astype(str).to_numpy(), dtype=object))
    return np.where(missing, -1, codes).astype(np.int64)


def _column_texts(comparison, columns) -> dict:
    """Every value of each of ``columns`` of the object pair table, as text: from the categories when the
    column is categorical (the engine's tables give every value in every part), else from every part."""
    import pandas as pd

    seen: dict = {c: set() for c in columns}
    for _, piece in comparison.object_pieces(columns):
        for c in columns:
            values = piece[c]
            if isinstance(values.dtype, pd.CategoricalDtype):
                seen[c].update(str(v) for v in values.cat.categories)
            else:
                seen[c].update(str(v) for v in pd.unique(values.dropna()))
        if all(isinstance(piece[c].dtype, pd.CategoricalDtype) for c in columns):
            break
    return seen


class _Context:
    """What the rows of every part need from the whole batch: the columns read, the boundary figures
    averaged, each key column's values as sorted text, every object's occlusion flag and the panoptic pairs."""

    def __init__(self, batch, comparison, facts=None):
        import pandas as pd

        self.boundary = {}  # the boundary figures the registry computes per category (boundary F, boundary IoU)
        for column in comparison.object_pair_columns():
            name = metric_registry.score_for_column(str(column))
            own = str(column) in ("iou", "signed_offset")  # mask_iou_mean and the offset have columns of their own
            if name is not None and not own and "category" in metric_registry.scopes(name):
                self.boundary[name] = column
        self.columns = ["status", "image", "pair", "annotator_a", "annotator_b", "object_index_a", "object_index_b",
                        "category_a", "category_b", "area_a", "area_b", "label_disagreement", "iou", "signed_offset",
                        *self.boundary.values()]
        seen = _column_texts(comparison, ("image", "pair", "annotator_a", "annotator_b", "category_a", "category_b"))
        self.texts = {key: pd.Index(sorted(values), dtype=object) for key, values in (
            ("image", seen["image"]), ("pair", seen["pair"]), ("annotator", seen["annotator_a"] | seen["annotator_b"]),
            ("category", seen["category_a"] | seen["category_b"]))}
        self.names = []  # the annotator columns' own categories, in their order
        for _, piece in comparison.object_pieces(["annotator_a"]):
            self.names = [str(c) for c in piece["annotator_a"].cat.categories]
            break
        self.flat, self.offsets = _flags(batch, self.names, facts)
        formats = {name: export.format for name, export in batch.exports.items()}
        self.pan_pairs = {f"{a}|{b}" for a in formats for b in formats
                          if a < b and formats[a] == formats[b] == "coco_panoptic"}

    def radix(self, key: str) -> int:
        """How many values ``key`` can take."""
        return {"size": len(SIZES), "occluded": len(_OCCLUDED)}.get(key) or len(self.texts[key])

    def column(self, key: str, codes):
        """A key column from its codes, typed as the group-bys see it: categorical in text order (sizes in
        size order), the occluded flag as text."""
        import pandas as pd

        if key == "occluded":
            return _OCCLUDED[codes]
        categories = list(SIZES) if key == "size" else self.texts[key]
        return pd.Categorical.from_codes(codes, categories=categories)


def _part_rows(piece, ctx: _Context) -> dict:
    """One part of the object pair table (ignored rows dropped) as plain arrays: the keys as codes, size
    and occlusion per row, the figures averaged."""
    status = piece["status"].astype(object).to_numpy()  # the categories' own strings, none made per row
    matched = status == "matched"
    missing = status == "missing"
    extra = status == "extra"
    area_a = piece["area_a"].to_numpy(dtype=np.float64)
    area_b = piece["area_b"].to_numpy(dtype=np.float64)
    area = np.where(matched, (area_a + area_b) / 2, np.where(missing, area_a, area_b))
    occ_a = _side_flag(ctx.flat, ctx.offsets, piece["annotator_a"], piece["object_index_a"])
    occ_b = _side_flag(ctx.flat, ctx.offsets, piece["annotator_b"].cat.set_categories(ctx.names),
                       piece["object_index_b"])
    # a matched pair is occluded when either object is flagged; unmatched rows take their object's flag
    occ = np.where(matched, np.fmax(occ_a, occ_b), np.where(missing, occ_a, occ_b))
    texts = ctx.texts
    floats = [piece["iou"].to_numpy(dtype=np.float64)]
    floats += [piece[column].to_numpy(dtype=np.float64) for column in ctx.boundary.values()]
    floats.append(piece["signed_offset"].to_numpy(dtype=np.float64) if "signed_offset" in piece
                  else np.full(len(piece), np.nan))
    return {
        "image": _text_codes(piece["image"], texts["image"]), "pair": _text_codes(piece["pair"], texts["pair"]),
        "annotator_a": _text_codes(piece["annotator_a"], texts["annotator"]),
        "annotator_b": _text_codes(piece["annotator_b"], texts["annotator"]),
        "category_a": _text_codes(piece["category_a"], texts["category"]),
        "category_b": _text_codes(piece["category_b"], texts["category"]),
        "size": np.clip(size_class(area), 0, 2), "occluded": _occluded_codes(occ),
        "matched": matched, "missing": missing, "extra": extra,
        "label": piece["label_disagreement"].to_numpy(dtype=bool) & matched,
        "iou": floats[0], "floats": np.column_stack(floats), "occ_a": occ_a, "occ_b": occ_b,
        "panoptic": piece["pair"].astype(str).isin(ctx.pan_pairs).to_numpy(),
    }


# --- the rows each scope groups, in the order pandas would see them ---------------------------------------
#
# Each source is a sequence of segments, each segment taken from every part in turn: the per-annotator
# scopes see every pair from ``a``'s side, then from ``b``'s; the category scope every row under its own
# category, then the label disagreements again under ``b``'s. Sums follow that order (see _GroupSums).

def _segment(source: str, k: int, r: dict) -> dict | None:
    """Segment ``k`` of ``source`` from one part's rows ``r`` (None past the last): the rows' keys and
    figures, turned to the side they are seen from."""
    if source == "frame":
        return r if k == 0 else None
    if source == "oriented":
        if k == 0:
            return {**r, "annotator": r["annotator_a"], "missing": r["extra"], "extra": r["missing"],
                    "occ_x": r["occ_a"], "occ_y": r["occ_b"]}
        if k == 1:
            floats = r["floats"].copy()
            floats[:, -1] = -floats[:, -1]  # the offset of b's boundary from a's outline
            return {**r, "annotator": r["annotator_b"], "occ_x": r["occ_b"], "occ_y": r["occ_a"], "floats": floats}
        return None
    if source == "by_category":  # a matched pair with two labels counts in both categories
        if k == 0:
            return {**r, "category": np.where(r["extra"], r["category_b"], r["category_a"])}
        if k == 1:
            keep = r["label"]
            return {**{name: v[keep] for name, v in r.items()}, "category": r["category_b"][keep]}
        return None
    raise ValueError(source)


def _events(k: int, r: dict, *, oriented: bool) -> dict | None:
    """Segment ``k`` of the panoptic quality events of one part's panoptic pairs: true positives (same
    category, IoU > 0.5), then false negatives (``a``'s category), then false positives (``b``'s); each
    of them from ``a``'s side and then from ``b``'s when ``oriented``."""
    if k >= (6 if oriented else 3):
        return None
    pan = r["panoptic"]
    matched = r["matched"] & pan
    tp = matched & ~r["label"] & (r["iou"] > 0.5)
    kind = k % 3
    keep = [tp, (matched & ~tp) | (r["missing"] & pan), (matched & ~tp) | (r["extra"] & pan)][kind]
    out = {name: v[keep] for name, v in r.items()}
    n = int(keep.sum())
    out["category"] = (r["category_b"] if kind == 2 else r["category_a"])[keep]
    counts = np.zeros((n, 3), np.int64)  # tp, fp, fn
    counts[:, (0, 2, 1)[kind]] = 1
    out["counts"] = counts
    out["iou_sum"] = (r["iou"][keep] if kind == 0 else np.zeros(n)).reshape(-1, 1)
    if oriented:
        out["annotator"] = (r["annotator_a"] if k < 3 else r["annotator_b"])[keep]
    return out


# --- sums per group, part by part -------------------------------------------------------------------------

class _GroupSums:
    """Rows, integer sums and compensated float sums per group, fed a part at a time; groups are integer
    keys (:func:`_combined`). The float sums equal those of a pandas group-by over the rows of every part
    in the order they came (:func:`qa.analytics._kernels_sums.compensated_add`)."""

    def __init__(self, n_int: int, n_float: int):
        self.slots: dict[int, int] = {}
        self.rows = np.zeros(0, np.int64)
        self.ints = np.zeros((0, n_int), np.int64)
        self.sums = np.zeros((0, n_float))
        self.compensation = np.zeros((0, n_float))
        self.counts = np.zeros((0, n_float), np.int64)

    def _grow(self, n: int) -> None:
        if n <= len(self.rows):
            return
        size = max(n, 2 * len(self.rows), 64)
        for name in ("rows", "ints", "sums", "compensation", "counts"):
            old = getattr(self, name)
            new = np.zeros((size, *old.shape[1:]), old.dtype)
            new[:len(old)] = old
            setattr(self, name, new)

    def add(self, keys, ints, floats) -> None:
        """Rows with group ``keys`` (negative: no group), their integer columns and float columns."""
        from qa.analytics._kernels_sums import compensated_add

        valid = keys >= 0
        unique, inverse = np.unique(keys[valid], return_inverse=True)
        slots = np.fromiter((self.slots.setdefault(k, len(self.slots)) for k in unique.tolist()), np.int64,
                            count=len(unique))
        self._grow(len(self.slots))
        labels = np.full(len(keys), -1, np.int64)
        labels[valid] = slots[inverse]
        size = len(self.rows)
        self.rows += np.bincount(labels[valid], minlength=size)
        for j in range(ints.shape[1]):
            self.ints[:, j] += np.bincount(labels[valid], weights=ints[valid, j], minlength=size).astype(np.int64)
        compensated_add(labels, np.ascontiguousarray(floats, dtype=np.float64), self.sums, self.compensation,
                        self.counts)

    def groups(self) -> tuple[np.ndarray, np.ndarray]:
        """The keys met, sorted, and their slots."""
        keys = np.fromiter(self.slots, np.int64, count=len(self.slots))
        order = np.argsort(keys, kind="stable")
        return keys[order], np.fromiter(self.slots.values(), np.int64, count=len(self.slots))[order]


def _combined(columns: list, radix: list[int], n: int) -> np.ndarray:
    """One integer key per row from key codes (the first column most significant, so keys sort as the
    group-by sorts groups); -1 where a code is missing. No columns: one group, 0."""
    out = np.zeros(n, np.int64)
    missing = np.zeros(n, bool)
    for codes, size in zip(columns, radix):
        out = out * size + codes
        missing |= codes < 0
    return np.where(missing, -1, out)


def _split(keys: np.ndarray, radix: list[int]) -> list[np.ndarray]:
    """The key codes of combined keys (:func:`_combined`)."""
    out = []
    for size in reversed(radix):
        out.append(keys % size)
        keys = keys // size
    return out[::-1]


class _ScopeSums:
    """The sums one scope's figures are made of: per group its rows, matched, missing and extra objects,
    label disagreements, the occlusion flags' counts and the averaged figures; and its panoptic quality
    events per group and category."""

    def __init__(self, keys: list[str], ctx: _Context, n_float: int, *, pq_keys: list[str] | None = None):
        self.keys = keys
        self.radix = [ctx.radix(k) for k in keys]
        self.pq_keys = keys if pq_keys is None else pq_keys  # the groups the events are averaged over
        self.sums = _GroupSums(8, n_float)
        self.pq = _GroupSums(3, 1)
        self.rows = 0  # every row of the source, keys missing or not
        self.events = 0
        self.flagged = False  # whether any matched pair of the source has both flags

    def add(self, seg: dict) -> None:
        n = len(seg["matched"])
        self.rows += n
        x = seg.get("occ_x", seg["occ_a"])
        y = seg.get("occ_y", seg["occ_b"])
        both = seg["matched"] & ~np.isnan(x) & ~np.isnan(y)
        self.flagged |= bool(both.any())
        ints = np.column_stack([seg["matched"], seg["missing"], seg["extra"], seg["label"], both, both & (x == y),
                                both & (x > 0), both & (y > 0)]).astype(np.float64)
        self.sums.add(_combined([seg[k] for k in self.keys], self.radix, n), ints, seg["floats"])

    def add_events(self, seg: dict, ctx: _Context) -> None:
        n = len(seg["counts"])
        self.events += n
        keys = [*self.pq_keys, "category"]
        self.pq.add(_combined([seg[k] for k in keys], [ctx.radix(k) for k in keys], n),
                    seg["counts"].astype(np.float64), seg["iou_sum"])


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


def _index(keys: list[str], codes: list[np.ndarray], ctx: _Context):
    """The index a group-by on ``keys`` gives for the groups of these codes (one row each, in its order)."""
    import pandas as pd

    n = len(codes[0]) if codes else 1
    frame = pd.DataFrame({key: ctx.column(key, c) for key, c in zip(keys, codes)}, index=range(n))
    index = _group(frame, keys).size().index
    if len(index) != n:
        raise AssertionError("groups and their index differ")
    return index


def _share(num, den):
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _figures(scope: _ScopeSums, ctx: _Context, boundary: list[str], *, roles: bool) -> _Figures:
    """One scope's figures from its sums (averages as ``sum / count`` of the values that are not NaN)."""
    keys, slots = scope.sums.groups()
    fig = _Figures(_index(scope.keys, _split(keys, scope.radix), ctx))
    rows = scope.sums.rows[slots]
    ints = scope.sums.ints[slots]
    matched, missing, extra, label = ints[:, 0], ints[:, 1], ints[:, 2], ints[:, 3]
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
    sums, counts = scope.sums.sums[slots], scope.sums.counts[slots]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.where(counts > 0, counts, 1), np.nan)
    for j, column in enumerate(["iou", *boundary, "offset"]):
        name = {"iou": metric_registry.score_for_column("iou"),
                "offset": metric_registry.score_for_column("signed_offset")}.get(column, column)
        fig.add(name, means[:, j], counts[:, j])
    if scope.flagged:  # occlusion-flag agreement on matched pairs where both objects carry the flag
        n, agree, x, y = ints[:, 4], ints[:, 5], ints[:, 6], ints[:, 7]
        fig.add("occluded_agreement_share", _share(agree, n), n)
        fig.add("occluded_kappa", cohen_kappa(n, agree, x, y), n)
    return fig


def _pq(scope: _ScopeSums, ctx: _Context, fig: _Figures, *, per_class: bool = False) -> None:
    """PQ, SQ and RQ per group: per category, then averaged over categories (panopticapi's pq_average)."""
    import pandas as pd

    if not scope.events:
        return
    keys = scope.pq_keys
    combined, slots = scope.pq.groups()
    index = _index([*keys, "category"], _split(combined, [ctx.radix(k) for k in [*keys, "category"]]), ctx)
    ints = scope.pq.ints[slots]
    c = pd.DataFrame({"tp": ints[:, 0], "fp": ints[:, 1], "fn": ints[:, 2], "iou_sum": scope.pq.sums[slots, 0]},
                     index=index)
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

    ctx = _Context(batch, comparison, facts)
    boundary = list(ctx.boundary)
    scopes = {scope: _ScopeSums(_KEYS[scope], ctx, 2 + len(boundary), pq_keys=[] if scope == "category" else None)
              for scope in SCOPES}
    sources = {scope: _SOURCES[scope] for scope in SCOPES}
    # part by part, segment by segment (a pass over the parts for each): the rows in the order of the
    # per-row frames they stand for, so every sum equals the group-by's
    passes = 6 if ctx.pan_pairs else 2
    for k in range(passes):
        for _, piece in comparison.object_pieces(ctx.columns, status=("matched", "missing", "extra")):
            r = _part_rows(piece, ctx)
            if not len(r["matched"]):
                continue
            segments = {source: _segment(source, k, r) for source in set(sources.values())}
            events = {oriented: _events(k, r, oriented=oriented) for oriented in (False, True)} if ctx.pan_pairs else {}
            for scope, sums in scopes.items():
                if segments[sources[scope]] is not None:
                    sums.add(segments[sources[scope]])
                event = events.get(sources[scope] == "oriented")
                if event is not None:
                    sums.add_events(event, ctx)
    image_level = _image_level(comparison)
    tables: dict[str, pd.DataFrame] = {}
    records = []
    for scope in SCOPES:
        keys = _KEYS[scope]
        sums = scopes[scope]
        if not sums.rows or (keys and not sums.sums.slots):
            continue
        is_oriented = sources[scope] == "oriented"
        fig = _figures(sums, ctx, boundary, roles=is_oriented or scope in ("annotator_pair", "batch"))
        if scope in image_level:
            mean, count = image_level[scope]
            fig.add("image_iou_mean", mean.reindex(fig.values.index).to_numpy(dtype=np.float64),
                    count.reindex(fig.values.index, fill_value=0).to_numpy(dtype=np.int64))
        _pq(sums, ctx, fig, per_class=scope == "category")
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
