"""Every annotator scored against a reference: a gold export, a senior annotator, or a consensus.

The engine compares each annotator with its reference (:class:`qa.engine.compare.PairPlan`); this module
turns the reference pairs of the comparison's tables into the figures a QA lead pays and coaches by, per
annotator, per category and per image, each with a percentile bootstrap interval over images.

Orientation. In a reference pair the reference is the ground truth: a reference object the annotator did
not draw is a *miss* (false negative), an annotator's object the reference does not have is *extra*
(false positive). The engine names pairs ``a|b`` with the names sorted, so the reference is ``a`` or
``b``; every figure here is turned to the annotator's side. The signed offset is the annotator's outline
from the reference's (+ outside): the engine's value when the annotator is ``a``, its negation when it
is ``b`` (the distance transform's asymmetry makes the two differ by well under a pixel for smooth
outlines, see :mod:`qa.analytics.aggregate`).

Figures (``docs/reference.md``):

- ``matched``, ``missing``, ``extra``; ``precision = matched / (matched + extra)``,
  ``recall = matched / (matched + missing)``, ``f1 = 2 matched / (2 matched + missing + extra)``
  (matching is label-agnostic; ``label_accuracy`` is the share of matched pairs whose categories agree);
- ``mask_iou_mean`` (matched pairs), ``image_iou_mean`` (each compared image's category IoU, unmatched
  objects included), ``boundary_f_<t>_mean``, ``boundary_iou_mean``, ``nsd_<t>_mean``,
  ``signed_offset_px_mean`` (matched pairs);
- ``pq``, ``sq``, ``rq``: panoptic quality with the reference as the ground truth. Between two COCO
  panoptic exports the annotator's ``pq`` is the engine's, panopticapi's ``pq_compute`` exactly (void and
  crowd on the reference side); for instance exports it comes from the matched objects (a TP has the
  same category and IoU > 0.5, every other matched pair is a FN of the reference's category and a FP of
  the annotator's, background is a label, not void) and its interval from the same events.
- ``images``: images scored (the reference labels them, the annotator too); ``n`` of each row counts
  what the figure summarises (matched pairs for a mean, objects for a share, images for ``images``).

Honeypots: the reference may label a subset of the images; annotators are scored on that subset only,
and every annotator's ``images`` says how many.

Intervals: ``<figure>_ci_low`` and ``_ci_high`` are the percentile bootstrap over images (Efron and
Tibshirani 1993), as for Krippendorff's alpha and the boundary offsets: each replicate draws the scored
images with replacement and recomputes the figure from the drawn images' sums, so the objects of one
image move together. Groups scored on fewer than two images get none. Per image there is no interval
(one image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from qa import metric_registry

SCOPES = ("annotator", "category", "image", "batch")
"""The scopes of the scores table this module fills (``settings["reference"]`` names the reference)."""

COUNTS = ("matched", "missing", "extra")
RATIOS = {"precision": ("matched", "matched+extra"), "recall": ("matched", "matched+missing"),
          "f1": ("2matched", "2matched+missing+extra"), "label_accuracy": ("same", "matched")}
"""Figures that are ratios of additive per-image counts: ``(numerator, denominator)``."""
INTERVALS = ("f1", "precision", "recall", "label_accuracy", "mask_iou_mean", "image_iou_mean",
             "boundary_iou_mean", "signed_offset_px_mean", "pq")
"""Figures with a bootstrap interval (besides ``boundary_f_<t>_mean`` and ``nsd_<t>_mean``)."""


@dataclass(slots=True)
class ReferenceScores:
    """What :func:`score_against_reference` computed.

    Attributes
    ----------
    annotators, categories, images : pandas.DataFrame
        Wide tables, one row per annotator (``annotator``, ``reference``), category and image, one column
        per figure (``images`` first), with ``<figure>_ci_low`` and ``_ci_high`` on the first two.
    objects : pandas.DataFrame
        One row per reference pair row of the comparison, turned to the annotator's side: ``image``,
        ``annotator``, ``reference``, ``status`` (``matched``, ``missed``, ``extra``), ``object_index``
        (annotator's), ``reference_index``, ``category``, ``reference_category``, ``iou`` and the boundary
        columns (``signed_offset`` oriented); the report's worst objects come from it.
    scores : pandas.DataFrame
        The long rows (``scope, key, metric, value, n``).
    settings : dict
        ``reference`` (the name, or how the consensus was built), ``bootstrap``, ``confidence``, ``seed``.
    exports : dict
        Reference exports that are not in the batch (each annotator's consensus of the others), for pictures.
    """

    annotators: object
    categories: object
    images: object
    objects: object
    scores: object
    settings: dict = field(default_factory=dict)
    exports: dict = field(default_factory=dict)
    """References that are not exports of the batch (each annotator's consensus of the others), by name."""

    def summary(self) -> dict:
        """Plain data for the JSON summary and the text table."""
        from qa.analytics import _records

        return {"reference": self.settings.get("reference"), "annotators": _records(self.annotators),
                "categories": _records(self.categories)}


def _boundary_columns(op) -> dict[str, str]:
    """``{object_pairs column: scores-table name}`` of the boundary means scored against the reference."""
    out = {}
    for column in op.columns:
        name = metric_registry.score_for_column(str(column))
        if name is None or column == "iou":
            continue
        if name.startswith(("boundary_f_", "nsd_")) or name in ("boundary_iou_mean", "signed_offset_px_mean"):
            out[str(column)] = name
    return out


def oriented_rows(comparison, reference_of: dict):
    """The reference pairs' object rows, turned to the annotator's side (see :attr:`ReferenceScores.objects`).

    ``reference_of`` maps each annotator to its reference. Ignored rows (inside a crowd region) are left out.
    """
    import pandas as pd

    op = comparison.object_pairs
    a = op["annotator_a"].astype(str).to_numpy()
    b = op["annotator_b"].astype(str).to_numpy()
    status = op["status"].astype(str).to_numpy()
    frames = []
    # each orientation in turn: a pair whose two sides are each other's reference (two annotators, each
    # against the consensus of the other) gives both
    for ref_b in (True, False):
        keep = np.array([reference_of.get(x) == y if ref_b else reference_of.get(y) == x for x, y in zip(a, b)],
                        dtype=bool) & (status != "ignored")
        if keep.any():
            frames.append(_oriented(op[keep], a[keep], b[keep], status[keep], ref_b))
    if not frames:
        return _oriented(op.iloc[:0], a[:0], b[:0], status[:0], True)
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def _oriented(op, a, b, status, ref_is_b: bool):
    """Rows of one orientation (the reference is side ``b`` when ``ref_is_b``) turned to the annotator."""
    import pandas as pd

    mine, theirs = ("missing", "extra") if ref_is_b else ("extra", "missing")
    out_status = np.where(status == "matched", "matched", np.where(status == mine, "extra",
                                                                    np.where(status == theirs, "missed", status)))
    me, ref = ("a", "b") if ref_is_b else ("b", "a")

    def side(name, who):
        values = op[f"{name}_{who}"]
        return values.astype(object).to_numpy() if hasattr(values, "cat") else values.to_numpy(dtype=object)

    frame = pd.DataFrame({
        "image": op["image"].astype(str).to_numpy(),
        "annotator": a if ref_is_b else b, "reference": b if ref_is_b else a,
        "status": out_status,
        "object_index": side("object_index", me), "reference_index": side("object_index", ref),
        "category": side("category", me), "reference_category": side("category", ref),
        "iou": op["iou"].to_numpy(dtype=np.float64),
        "area": side("area", me), "reference_area": side("area", ref),
    })
    for column in _boundary_columns(op):
        values = op[column].to_numpy(dtype=np.float64)
        frame[column] = values if (ref_is_b or not column.startswith("signed_offset")) else -values
    return frame.reset_index(drop=True)


def _events(rows):
    """Per row: additive counts of the figures (``matched``, ``missing``, ``extra``, ``same``, sums and
    counts of each mean) and the PQ events (``pq_category``, ``tp``, ``fp``, ``fn``, ``iou_tp``)."""
    import pandas as pd

    matched = (rows["status"] == "matched").to_numpy()
    same = matched & (rows["category"].astype(str).to_numpy() == rows["reference_category"].astype(str).to_numpy())
    iou = rows["iou"].to_numpy(dtype=np.float64)
    tp = same & (iou > 0.5)
    ev = pd.DataFrame({"image": rows["image"].to_numpy(), "annotator": rows["annotator"].to_numpy(),
                       "matched": matched.astype(np.float64),
                       "missing": (rows["status"] == "missed").to_numpy().astype(np.float64),
                       "extra": (rows["status"] == "extra").to_numpy().astype(np.float64),
                       "same": same.astype(np.float64)})
    means = {"mask_iou_mean": "iou", **_boundary_columns_frame(rows)}
    for name, column in means.items():
        values = np.where(matched, rows[column].to_numpy(dtype=np.float64), np.nan)
        ok = ~np.isnan(values)
        ev[f"{name}:sum"] = np.where(ok, values, 0.0)
        ev[f"{name}:n"] = ok.astype(np.float64)
    # PQ events: a TP, or a FN of the reference's category and / or a FP of the annotator's
    ref_cat = rows["reference_category"].astype(object).to_numpy()
    cat = rows["category"].astype(object).to_numpy()
    missed = (rows["status"] == "missed").to_numpy()
    extra = (rows["status"] == "extra").to_numpy()
    parts = [ev[tp].assign(pq_category=ref_cat[tp], tp=1.0, fp=0.0, fn=0.0, iou_tp=iou[tp]),
             ev[(matched & ~tp) | missed].assign(pq_category=ref_cat[(matched & ~tp) | missed], tp=0.0,
                                                 fp=0.0, fn=1.0, iou_tp=0.0),
             ev[(matched & ~tp) | extra].assign(pq_category=cat[(matched & ~tp) | extra], tp=0.0, fp=1.0,
                                                fn=0.0, iou_tp=0.0)]
    pq = pd.concat(parts, ignore_index=True)[["image", "annotator", "pq_category", "tp", "fp", "fn", "iou_tp"]]
    return ev, list(means), pq


def _boundary_columns_frame(rows) -> dict[str, str]:
    out = {}
    for column in rows.columns:
        name = metric_registry.score_for_column(str(column))
        if name is not None and column != "iou" and (
                name.startswith(("boundary_f_", "nsd_")) or name in ("boundary_iou_mean", "signed_offset_px_mean")):
            out[name] = str(column)
    return out


# --- figures from sums -----------------------------------------------------------------------------------

def _ratio_figures(sums: dict) -> dict:
    """Figures from summed counts (arrays broadcast: one value per replicate)."""
    m, miss, extra, same = sums["matched"], sums["missing"], sums["extra"], sums["same"]
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"precision": m / (m + extra), "recall": m / (m + miss), "f1": 2 * m / (2 * m + miss + extra),
                "label_accuracy": same / m}


def _pq_value(tp, fp, fn, iou):
    """PQ averaged over categories (columns) with a TP, FP or FN; rows are replicates (or one)."""
    denom = tp + 0.5 * fp + 0.5 * fn
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(denom > 0, iou / np.where(denom > 0, denom, 1.0), np.nan)
        sq = np.where(tp > 0, iou / np.where(tp > 0, tp, 1.0), 0.0)
        rq = np.where(denom > 0, tp / np.where(denom > 0, denom, 1.0), np.nan)
        counted = (denom > 0).sum(axis=-1)
        pq = np.where(counted > 0, np.nansum(per, axis=-1) / np.maximum(counted, 1), np.nan)
        sqv = np.where(counted > 0, np.where(denom > 0, sq, 0.0).sum(axis=-1) / np.maximum(counted, 1), np.nan)
        rqv = np.where(counted > 0, np.nansum(rq, axis=-1) / np.maximum(counted, 1), np.nan)
    return pq, sqv, rqv, counted


def _group_figures(ev, means, pq_events, image_iou, *, bootstrap, confidence, rng):
    """One group's figures, their ``n`` and bootstrap intervals over its images."""
    images = sorted(set(ev["image"]) | set(image_iou.index))
    index = {k: i for i, k in enumerate(images)}
    n_img = len(images)
    columns = ["matched", "missing", "extra", "same"] + [f"{m}:{s}" for m in means for s in ("sum", "n")]
    per_image = np.zeros((n_img, len(columns)))
    if len(ev):
        codes = ev["image"].map(index).to_numpy()
        for k, column in enumerate(columns):
            per_image[:, k] = np.bincount(codes, weights=ev[column].to_numpy(dtype=np.float64), minlength=n_img)
    ii = np.zeros((n_img, 2))
    if len(image_iou):
        codes = np.array([index[k] for k in image_iou.index])
        ii[codes, 0] = image_iou.to_numpy(dtype=np.float64)
        ii[codes, 1] = 1.0
    cats = sorted(set(pq_events["pq_category"].astype(str))) if len(pq_events) else []
    pq_img = np.zeros((4, n_img, len(cats)))
    if len(pq_events):
        ci = pq_events["pq_category"].astype(str).map({c: k for k, c in enumerate(cats)}).to_numpy()
        ri = pq_events["image"].map(index).to_numpy()
        for k, column in enumerate(("tp", "fp", "fn", "iou_tp")):
            np.add.at(pq_img[k], (ri, ci), pq_events[column].to_numpy(dtype=np.float64))

    def figures(w):
        """Figures from image weights ``w`` (replicates x images); one row per replicate."""
        tot = w @ per_image
        sums = {c: tot[:, k] for k, c in enumerate(columns)}
        out = _ratio_figures(sums)
        with np.errstate(invalid="ignore", divide="ignore"):
            for m in means:
                out[m] = sums[f"{m}:sum"] / sums[f"{m}:n"]
            iis = w @ ii
            out["image_iou_mean"] = iis[:, 0] / iis[:, 1]
        if cats:
            tp, fp, fn, iou = (np.einsum("ri,ic->rc", w, pq_img[k]) for k in range(4))
            out["pq"], out["sq"], out["rq"], _ = _pq_value(tp, fp, fn, iou)
        return out, sums

    point, sums = figures(np.ones((1, n_img)))
    values = {k: float(v[0]) for k, v in point.items()}
    n = {"precision": sums["matched"][0] + sums["extra"][0], "recall": sums["matched"][0] + sums["missing"][0],
         "f1": 2 * sums["matched"][0] + sums["missing"][0] + sums["extra"][0], "label_accuracy": sums["matched"][0],
         "image_iou_mean": float(ii[:, 1].sum())}
    for m in means:
        n[m] = sums[f"{m}:n"][0]
    if cats:
        n["pq"] = n["sq"] = n["rq"] = float(_pq_value(*(pq_img[k].sum(axis=0) for k in range(4)))[3])
    out = {"images": (float(n_img), n_img)}
    for metric in COUNTS:
        out[metric] = (float(sums[metric][0]), n_img)
    for metric, value in values.items():
        out[metric] = (value, int(n.get(metric, n_img)))
    if bootstrap and n_img >= 2:
        tail = (1.0 - confidence) / 2.0
        draws = []
        block = max(1, 2_000_000 // n_img)
        for start in range(0, bootstrap, block):
            b = min(block, bootstrap - start)
            picks = rng.integers(0, n_img, size=(b, n_img))
            w = np.zeros((b, n_img))
            np.add.at(w, (np.repeat(np.arange(b), n_img), picks.ravel()), 1.0)
            draws.append(figures(w)[0])
        for metric in values:
            if not _has_interval(metric):
                continue
            reps = np.concatenate([d[metric] for d in draws])
            reps = reps[~np.isnan(reps)]
            if len(reps):
                low, high = np.quantile(reps, [tail, 1.0 - tail])
                out[f"{metric}_ci_low"] = (float(low), n_img)
                out[f"{metric}_ci_high"] = (float(high), n_img)
    return out


def _has_interval(metric: str) -> bool:
    return metric in INTERVALS or metric.startswith(("boundary_f_", "nsd_"))


def _image_iou(comparison, reference_of):
    """Per image and annotator: the engine's image-level IoU of the reference pair (a Series keyed by
    ``(annotator, image)``)."""
    import pandas as pd

    ip = comparison.image_pairs
    if ip is None or not len(ip) or "image_iou_mean" not in ip:
        return pd.Series(dtype=np.float64)
    a = ip["annotator_a"].astype(str).to_numpy()
    b = ip["annotator_b"].astype(str).to_numpy()
    image = ip["image"].astype(str).to_numpy()
    values = ip["image_iou_mean"].to_numpy(dtype=np.float64)
    ref_is_b = np.array([reference_of.get(x) == y for x, y in zip(a, b)], dtype=bool)
    ref_is_a = np.array([reference_of.get(y) == x for x, y in zip(a, b)], dtype=bool)
    annotator = np.concatenate([a[ref_is_b], b[ref_is_a]])
    s = pd.Series(np.concatenate([values[ref_is_b], values[ref_is_a]]),
                  index=pd.MultiIndex.from_arrays([annotator, np.concatenate([image[ref_is_b], image[ref_is_a]])]))
    return s.dropna()


def _scored_images(comparison, reference_of) -> dict:
    """``{annotator: [images]}``: the images of each annotator's reference pair."""
    ip = comparison.image_pairs
    out: dict[str, set] = {}
    if ip is None or not len(ip):
        return {}
    for img, x, y in zip(ip["image"].astype(str), ip["annotator_a"].astype(str), ip["annotator_b"].astype(str)):
        if reference_of.get(x) == y:
            out.setdefault(x, set()).add(img)
        if reference_of.get(y) == x:
            out.setdefault(y, set()).add(img)
    return {k: sorted(v) for k, v in out.items()}


def score_against_reference(comparison, reference_of: dict, *, reference: str, panoptic_pq: dict | None = None,
                            bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0) -> ReferenceScores:
    """Each annotator against its reference, per annotator, category and image.

    Parameters
    ----------
    comparison : qa.engine.compare.Comparison
        A comparison whose plan paired each annotator with its reference.
    reference_of : dict
        ``{annotator: its reference}`` (the plan's).
    reference : str
        What the reference is, as stored in ``settings["reference"]`` (a name, or ``"consensus of the
        others (vote)"``).
    panoptic_pq : dict, optional
        ``{annotator: (pq, sq, rq, n)}``: the engine's reference-form PQ of the annotator's pair when both
        exports are COCO panoptic; it replaces the object-level PQ (see the module notes).
    bootstrap : int, default 1000
        Replicates of each interval (0: none).
    confidence : float, default 0.95
    seed : int, default 0

    Returns
    -------
    ReferenceScores
    """
    import pandas as pd

    rows = oriented_rows(comparison, reference_of)
    ev, means, pq_events = _events(rows)
    image_iou = _image_iou(comparison, reference_of)
    scored = _scored_images(comparison, reference_of)
    rng_seed = int(seed)
    records = []
    tables = {}

    def add(scope, key, figures):
        for metric, (value, n) in figures.items():
            records.append((scope, key, metric, value, int(n)))

    # per annotator
    annotator_rows = []
    for k, name in enumerate(sorted(scored)):
        mine = ev["annotator"].to_numpy() == name
        ii = image_iou[name] if name in image_iou.index.get_level_values(0) else pd.Series(dtype=np.float64)
        ii = ii.reindex(scored[name]).dropna()
        figs = _group_figures(ev[mine].assign(image=ev["image"][mine]), means,
                              pq_events[pq_events["annotator"].to_numpy() == name], ii,
                              bootstrap=bootstrap, confidence=confidence,
                              rng=np.random.default_rng([rng_seed, 1, k]))
        figs["images"] = (float(len(scored[name])), len(scored[name]))
        if panoptic_pq and name in panoptic_pq:
            pq, sq, rq, n = panoptic_pq[name]
            figs.update(pq=(pq, n), sq=(sq, n), rq=(rq, n))
        add("annotator", name, figs)
        annotator_rows.append({"annotator": name, "reference": reference_of.get(name),
                               **{m: v for m, (v, _) in figs.items()}})
    tables["annotators"] = pd.DataFrame(annotator_rows)
    # per category (the reference's category of a matched pair or a miss, the annotator's of an extra)
    category = np.where(rows["status"].to_numpy() == "extra", rows["category"].astype(object).to_numpy(),
                        rows["reference_category"].astype(object).to_numpy()).astype(str)
    category_rows = []
    for k, cat in enumerate(sorted(set(category))):
        mine = category == cat
        pq_mine = pq_events[pq_events["pq_category"].astype(str).to_numpy() == cat]
        figs = _group_figures(ev[mine].assign(image=ev["image"][mine] + "\0" + ev["annotator"][mine]), means,
                              pq_mine.assign(image=pq_mine["image"] + "\0" + pq_mine["annotator"]),
                              pd.Series(dtype=np.float64), bootstrap=bootstrap, confidence=confidence,
                              rng=np.random.default_rng([rng_seed, 2, k]))
        figs.pop("image_iou_mean", None)
        figs.pop("image_iou_mean_ci_low", None)
        figs.pop("image_iou_mean_ci_high", None)
        figs.pop("sq", None)
        figs.pop("rq", None)
        images = len(set(rows["image"].to_numpy()[mine]))
        figs["images"] = (float(images), images)
        add("category", cat, figs)
        category_rows.append({"category": cat, **{m: v for m, (v, _) in figs.items()}})
    tables["categories"] = pd.DataFrame(category_rows)
    # per image, pooled over the annotators scored on it (no interval)
    image_rows = []
    all_images = sorted({i for v in scored.values() for i in v})
    for img in all_images:
        mine = ev["image"].to_numpy() == img
        ii = image_iou[image_iou.index.get_level_values(1) == img]
        figs = _group_figures(ev[mine].assign(image=ev["annotator"][mine]), means,
                              pq_events[pq_events["image"].to_numpy() == img].pipe(
                                  lambda f: f.assign(image=f["annotator"])),
                              pd.Series(ii.to_numpy(), index=ii.index.get_level_values(0)),
                              bootstrap=0, confidence=confidence, rng=None)
        annotators = sum(img in v for v in scored.values())
        figs["images"] = (1.0, 1)
        figs.pop("sq", None)
        figs.pop("rq", None)
        add("image", img, {k: v for k, v in figs.items() if k != "images"})
        image_rows.append({"image": img, "annotators": annotators, **{m: v for m, (v, _) in figs.items()
                                                                       if m != "images"}})
    tables["images"] = pd.DataFrame(image_rows)
    # the batch: every annotator's figures pooled
    if scored:
        figs = _group_figures(ev.assign(image=ev["image"] + "\0" + ev["annotator"]), means,
                              pq_events.assign(image=pq_events["image"] + "\0" + pq_events["annotator"]),
                              pd.Series(image_iou.to_numpy(),
                                        index=[f"{i}\0{a}" for a, i in image_iou.index]) if len(image_iou)
                              else pd.Series(dtype=np.float64),
                              bootstrap=0, confidence=confidence, rng=None)
        figs["images"] = (float(len(all_images)), len(all_images))
        add("batch", "", {k: v for k, v in figs.items() if k in ("f1", "precision", "recall", "label_accuracy",
                                                                   "images")})
    for table in tables.values():  # counts, as the metric registry declares them, are integer columns
        for column in table.columns:
            if metric_registry.is_count(column) and table[column].notna().all():
                table[column] = table[column].astype(np.int64)
    scores = pd.DataFrame.from_records(records, columns=["scope", "key", "metric", "value", "n"])
    scores["value"] = scores["value"].astype(np.float64)
    scores["n"] = scores["n"].astype(np.int64)
    unknown = sorted({m for m in scores["metric"] if not metric_registry.known(m)})
    if unknown:  # every figure is declared in the registry
        raise KeyError(f"figures not in the metric registry: {', '.join(unknown)}")
    settings = {"reference": reference, "bootstrap": int(bootstrap), "confidence": float(confidence),
                "seed": int(seed), "images": len(all_images)}
    return ReferenceScores(annotators=tables["annotators"], categories=tables["categories"],
                           images=tables["images"], objects=rows, scores=scores, settings=settings)


def panoptic_pair_pq(comparison, reference_of: dict, formats: dict) -> dict:
    """``{annotator: (pq, sq, rq, n)}`` from the engine's ``annotator_pair`` rows of the reference pairs
    whose two exports are COCO panoptic (the engine computed them in the reference form)."""
    scores = comparison.scores
    rows = scores[scores["scope"] == "annotator_pair"]
    out = {}
    for name, ref in reference_of.items():
        if formats.get(name) != "coco_panoptic" or formats.get(ref) != "coco_panoptic":
            continue
        key = "|".join(sorted((name, ref)))
        mine = rows[rows["key"] == key].set_index("metric")
        if "pq" in mine.index:
            out[name] = tuple(float(mine.loc[m, "value"]) for m in ("pq", "sq", "rq")) + (int(mine.loc["pq", "n"]),)
    return out


def interval_text(value, low, high, *, digits: int = 3) -> str:
    """``0.912 [0.88, 0.94]``, or the value alone without an interval.

    Examples
    --------
    >>> interval_text(0.9123, 0.881, 0.94), interval_text(0.5, float("nan"), float("nan"))
    ('0.912 [0.881, 0.940]', '0.500')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:.{digits}f}"
    if low is None or high is None or (isinstance(low, float) and math.isnan(low)):
        return text
    return f"{text} [{low:.{digits}f}, {high:.{digits}f}]"
