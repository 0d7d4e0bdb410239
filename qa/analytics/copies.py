"""Copied work: pairs of annotators whose labels are identical on a share of their images (``AGR001``).

Two people never draw the same pixels. An image pair is *identical* when every object of both
annotators is matched, with the same category and a mask IoU of exactly 1, and nothing is left over;
images where neither drew anything do not count. A pair with ``min_images`` identical images or more,
making up at least ``min_share`` of the images either of them labelled, is one finding. The figures
come from the comparison's object pair table, grouped on codes part by part (integer counts per annotator
pair and image).
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

    from qa.analytics.aggregate import _column_texts, _GroupSums, _text_codes

    columns = ["pair", "annotator_a", "annotator_b", "images", "identical", "share"]
    if comparison.object_pair_columns() == []:
        return pd.DataFrame(columns=columns)
    texts = _column_texts(comparison, ("pair", "image"))
    pair_texts = pd.Index(sorted(texts["pair"]), dtype=object)
    image_texts = pd.Index(sorted(texts["image"]), dtype=object)
    n_images = max(len(image_texts), 1)
    # per (pair, image), grouped on codes part by part: its rows, and those that are the same object twice
    sums = _GroupSums(1, 0)
    annotators: dict[int, tuple[str, str]] = {}  # each pair's two annotators, from its first row
    for _, op in comparison.object_pieces(["pair", "image", "annotator_a", "annotator_b", "status", "iou",
                                           "label_disagreement"], status=("matched", "missing", "extra")):
        if not len(op):
            continue
        iou = op["iou"].to_numpy(dtype=np.float64, na_value=np.nan)
        label = op["label_disagreement"].to_numpy(dtype=bool, na_value=False)
        same = (op["status"] == "matched").to_numpy() & ~label & (np.nan_to_num(iou) >= 1.0 - 1e-12)
        pair_codes = _text_codes(op["pair"], pair_texts)
        codes, first_row = np.unique(pair_codes, return_index=True)
        for code, row in zip(codes.tolist(), first_row.tolist()):
            if code not in annotators:
                annotators[code] = (str(op["annotator_a"].iloc[row]), str(op["annotator_b"].iloc[row]))
        sums.add(pair_codes * n_images + _text_codes(op["image"], image_texts), same.reshape(-1, 1).astype(np.float64),
                 np.zeros((len(op), 0)))
    keys, slots = sums.groups()
    if not len(keys):
        return pd.DataFrame(columns=columns)
    image_same = sums.ints[slots, 0] == sums.rows[slots]  # an image pair is identical when every row of it is
    pair_of_key = keys // n_images
    present = np.unique(pair_of_key)
    out = pd.DataFrame({
        "pair": np.asarray(pair_texts[present], dtype=object),
        "annotator_a": np.asarray([annotators[int(c)][0] for c in present], dtype=object),
        "annotator_b": np.asarray([annotators[int(c)][1] for c in present], dtype=object),
        "images": np.bincount(pair_of_key, minlength=len(pair_texts))[present].astype(np.int64),
        "identical": np.bincount(pair_of_key, weights=image_same,
                                 minlength=len(pair_texts))[present].astype(np.int64)})
    out["share"] = out["identical"] / out["images"]
    return out[columns]


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
