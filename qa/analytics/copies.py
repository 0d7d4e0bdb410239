"""Copied work: pairs of annotators whose labels are identical on a share of their images (``AGR001``).

Two people never draw the same pixels. An image pair is *identical* when every object of both
annotators is matched, with the same category and a mask IoU of exactly 1, and nothing is left over;
images where neither drew anything do not count. A pair with ``min_images`` identical images or more,
making up at least ``min_share`` of the images either of them labelled, is one finding. The figures
come from the comparison's object pair table, in one grouped pass.
"""

from __future__ import annotations

import numpy as np

from qa.model import Finding

CODE = "AGR001"


def identical_images(comparison):
    """Per annotator pair: images with objects, identical images, and their share.

    Parameters
    ----------
    comparison : qa.engine.compare.Comparison
        The engine's tables (``object_pairs``).

    Returns
    -------
    pandas.DataFrame
        ``pair``, ``annotator_a``, ``annotator_b``, ``images`` (images where at least one of the two
        drew an object), ``identical`` and ``share`` (``identical / images``), one row per pair with
        images, sorted by pair.

    Examples
    --------
    >>> import pandas as pd
    >>> op = pd.DataFrame({"pair": ["a|b"] * 3, "annotator_a": ["a"] * 3, "annotator_b": ["b"] * 3,
    ...                    "image": ["1", "2", "2"], "status": ["matched", "matched", "extra"],
    ...                    "label_disagreement": [False] * 3, "iou": [1.0, 1.0, float("nan")]})
    >>> from qa.engine.compare import Comparison
    >>> identical_images(Comparison(object_pairs=op))[["pair", "images", "identical", "share"]].values.tolist()
    [['a|b', 2, 1, 0.5]]
    """
    import pandas as pd

    op = comparison.object_columns(["pair", "image", "annotator_a", "annotator_b", "status", "iou",
                                    "label_disagreement"], status=("matched", "missing", "extra"))
    columns = ["pair", "annotator_a", "annotator_b", "images", "identical", "share"]
    if op is None or not len(op):
        return pd.DataFrame(columns=columns)
    status = op["status"].astype(str).to_numpy()
    iou = op["iou"].to_numpy(dtype=np.float64, na_value=np.nan)
    label = op["label_disagreement"].to_numpy(dtype=bool, na_value=False)
    same = (status == "matched") & ~label & (np.nan_to_num(iou) >= 1.0 - 1e-12)
    # grouped on codes, not on a string per row (the table has a row per object and pair)
    pair_codes, pairs = _sorted_codes(op["pair"])
    image_codes, images = _sorted_codes(op["image"])
    n_images = max(len(images), 1)
    keys, per_key = np.unique(pair_codes * n_images + image_codes, return_inverse=True)
    per_key = per_key.ravel()
    image_same = np.bincount(per_key, weights=same, minlength=len(keys)) == np.bincount(per_key, minlength=len(keys))
    pair_of_key = keys // n_images  # an image pair is identical when every row of it is
    first_row = np.unique(pair_codes, return_index=True)[1]  # each pair's first row: its two annotators
    out = pd.DataFrame({
        "pair": pairs,
        "annotator_a": op["annotator_a"].iloc[first_row].astype(str).to_numpy(),
        "annotator_b": op["annotator_b"].iloc[first_row].astype(str).to_numpy(),
        "images": np.bincount(pair_of_key, minlength=len(pairs)).astype(np.int64),
        "identical": np.bincount(pair_of_key, weights=image_same, minlength=len(pairs)).astype(np.int64)})
    out["share"] = out["identical"] / out["images"]
    return out[columns]


def _sorted_codes(values) -> tuple[np.ndarray, np.ndarray]:
    """Each value's code in the sorted list of the distinct values (as text), and that list (the
    aggregates' sorted categorical, :func:`qa.analytics.aggregate._sorted_categorical`)."""
    from qa.analytics.aggregate import _sorted_categorical

    coded = _sorted_categorical(values)
    return coded.codes.astype(np.int64), np.asarray(coded.categories, dtype=object)


def identical_labels(comparison, *, min_share: float = 0.5, min_images: int = 3,
                     severity: str = "warning", table=None) -> list[Finding]:
    """``AGR001`` findings: one per annotator pair with identical labels on a share of their images.

    Parameters
    ----------
    comparison : qa.engine.compare.Comparison
        The engine's tables.
    min_share : float, default 0.5
        Smallest share of the pair's labelled images that are identical.
    min_images : int, default 3
        Fewest identical images for a finding.
    severity : str, default "warning"
        The findings' severity (the pack's for ``AGR001``).
    table : pandas.DataFrame, optional
        :func:`identical_images` of ``comparison``, when already made.

    Returns
    -------
    list of Finding
        Batch-level findings (no annotator, no image); ``value`` is the share, ``limit`` ``min_share``.
    """
    table = identical_images(comparison) if table is None else table
    out = []
    for row in table.itertuples(index=False):
        if row.identical < max(int(min_images), 1) or row.share < min_share:
            continue
        out.append(Finding(
            CODE, severity,
            f"{row.annotator_a} and {row.annotator_b} have identical labels on {row.identical} of the "
            f"{row.images} images they labelled ({row.share:.0%}; minimum {min_share:.0%}): every object "
            "matched with IoU 1.000 and the same category; copied work, or one export given twice?",
            value=float(row.share), limit=float(min_share)))
    return out
