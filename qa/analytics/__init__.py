"""Agreement analytics: the engine's per-pair numbers turned into answers, as pandas DataFrames.

:func:`analyse` is the entry point; it takes a :class:`~qa.model.Run` (or a batch and its
comparison) and returns :class:`Analytics`, a dataclass of DataFrames. Each sub-analysis is one module
and one call in :func:`analyse`:

- :mod:`qa.analytics.aggregate`: figures per annotator pair, annotator, category, image, object size
  and occlusion flag;
- :mod:`qa.analytics.alpha`: Krippendorff's alpha over pixel labels with a bootstrap interval, and
  kalphacv's object-level alpha per pair;
- :mod:`qa.analytics.review`: the review queue, worst first;
- :mod:`qa.analytics.copies`: annotator pairs with identical labels (copied work, ``AGR001`` findings);
- :mod:`qa.analytics.consensus`: the consensus of three or more annotators, each scored against it;
- :mod:`qa.analytics.boundaries`: systematic boundary disagreement (offsets per annotator and category,
  category-pair boundaries), run by the pipeline right after the comparison.

Every figure also becomes a row of the long scores table (``Analytics.scores``), which the pipeline
appends to ``Run.scores`` so the gate, the store and the report see it. ``docs/analytics.md`` defines
every figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Analytics", "analyse"]

_SCORE_COLUMNS = ["scope", "key", "metric", "value", "n"]


@dataclass(slots=True)
class Analytics:
    """Everything :func:`analyse` computed; every table a pandas DataFrame.

    Attributes
    ----------
    pairs, annotators, categories, images, sizes, annotator_sizes, occluded, batch : DataFrame
        Wide figure tables, one row per annotator pair (``pair``), annotator, category, image, size
        class, annotator and size class, occlusion flag (``"true"``/``"false"``), and one for the batch
        (see :func:`qa.analytics.aggregate.aggregate`). ``pairs`` and ``images`` carry the pixel
        ``alpha``; ``pairs`` also ``object_alpha``.
    alpha : DataFrame
        One row: Krippendorff's alpha over pixel labels, its bootstrap interval and how it was made
        (:func:`qa.analytics.alpha.pixel_alpha`).
    review_queue : DataFrame
        Images and objects to review, worst first (:func:`qa.analytics.review.review_queue`); read
        whole from disk at each access when the queue is kept there (``review_table``).
    review_table : DataFrame or qa.parts.Parts
        The same queue as it is kept: in memory, or on disk as Parquet (:func:`analyse` with ``folder``),
        where ``len``, ``head(n)`` and ``["column"]`` read no more than they need.
    consensus : qa.analytics.consensus.Consensus or None
        With three or more annotators: the consensus objects and each annotator scored against them
        (:func:`qa.analytics.consensus.build_consensus`); None with two.
    scores : DataFrame
        The long rows (``scope, key, metric, value, n``) these analyses add to ``Run.scores``; rows the
        engine already has are not repeated.
    identical : DataFrame
        Per annotator pair, the images both labelled identically (:func:`qa.analytics.copies.identical_images`).
    findings : list of Finding
        The agreement codes raised (``AGR001``, as the pack selects and sets them).
    settings : dict
        The options used.
    """

    pairs: object = None
    annotators: object = None
    categories: object = None
    images: object = None
    sizes: object = None
    annotator_sizes: object = None
    occluded: object = None
    batch: object = None
    alpha: object = None
    review_table: object = None
    consensus: object = None
    scores: object = None
    identical: object = None
    findings: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    _score_parts: list = field(default_factory=list, repr=False)

    @property
    def review_queue(self):
        """The review queue as one DataFrame (None when not made)."""
        table = self.review_table
        return table.read() if hasattr(table, "paths") else table

    def matrix(self, metric: str = "mask_iou_mean"):
        """An annotator x annotator matrix of one pair figure (symmetric; the diagonal is NaN).

        Examples
        --------
        >>> run.analytics.matrix("alpha")  # doctest: +SKIP
        """
        import numpy as np
        import pandas as pd

        pairs = self.pairs
        names = sorted({n for p in pairs["pair"] for n in str(p).split("|")}) if pairs is not None else []
        out = pd.DataFrame(np.nan, index=pd.Index(names, name="annotator"), columns=names)
        if metric not in (pairs.columns if pairs is not None else ()):
            raise KeyError(f"no pair figure {metric!r}; pair figures: {', '.join(map(str, pairs.columns[1:]))}")
        for pair, value in zip(pairs["pair"], pairs[metric]):
            a, b = str(pair).split("|")
            out.loc[a, b] = out.loc[b, a] = value
        return out

    def summary(self, *, top: int = 10) -> dict:
        """Plain data for the JSON summary and the text output: the per-annotator table, alpha with
        its interval, the pair matrix figures and the top of the review queue."""
        return {
            "annotators": _records(self.annotators),
            "pairs": _records(self.pairs),
            "sizes": _records(self.sizes),
            "categories": _records(self.categories),
            "occluded": _records(self.occluded),
            "alpha": (_records(self.alpha) or [None])[0],
            "review_queue": _records(self.review_table.head(top) if self.review_table is not None else None),
            "review_queue_total": 0 if self.review_table is None else int(len(self.review_table)),
            "consensus": _records(self.consensus.annotators if self.consensus is not None else None),
        }


def _records(df) -> list[dict]:
    import math

    if df is None:
        return []
    out = []
    for row in df.to_dict("records"):
        clean = {}
        for k, v in row.items():
            if hasattr(v, "item"):
                v = v.item()
            if v is None or (isinstance(v, float) and math.isnan(v)):
                v = None
            elif v.__class__.__name__ in ("NAType", "NaTType"):
                v = None
            clean[str(k)] = v
        out.append(clean)
    return out


def analyse(run_or_batch, comparison=None, *, violations=None, alpha: bool = True, bootstrap: int = 1000,
            confidence: float = 0.95, seed: int = 0, min_score: float = 0.25,
            max_pixels: int | None = None, consensus: bool = True, workers: int | None = None,
            progress=None, pack="default", executor=None, alpha_counts=None, consensus_result=None,
            facts=None, folder=None, owner=None) -> Analytics:
    """Agreement analytics of a compared batch.

    Parameters
    ----------
    run_or_batch : qa.model.Run or Batch
        A run (its batch, comparison and rule violations are used), or a batch with ``comparison``.
    comparison : qa.engine.compare.Comparison, optional
        Needed when ``run_or_batch`` is a batch.
    violations : list of Finding, optional
        Rule violations for the review queue (a run's own by default).
    alpha : bool, default True
        Compute Krippendorff's alpha over pixel labels (decodes every image once more).
    bootstrap : int, default 1000
        Bootstrap replicates of alpha's interval.
    confidence : float, default 0.95
        Coverage of alpha's interval.
    seed : int, default 0
        Seed of the bootstrap.
    min_score : float, default 0.25
        Smallest review-queue score kept.
    max_pixels : int, optional
        Largest panoptic PNG decoded.
    consensus : bool, default True
        With three or more annotators, build the consensus (majority pixel vote) and score each
        annotator against it.
    workers : int, optional
        Processes for the per-image analyses; default one per CPU (a batch of a few images stays in
        this process).
    executor : optional
        The run's executor (:func:`qa.engine._executors.open_executor`); when given, ``workers`` is not used.
    progress : callable, optional
        ``progress(stage, images_done, images_total)`` for the per-image analyses (``"alpha"``,
        ``"consensus"``).
    pack : Pack, str or None, default "default"
        The rule pack whose selection, parameters and severities the agreement codes (``AGR001``)
        follow: a resolved :class:`~qa.rules.packs.Pack`, a pack name or file; None raises none.
    alpha_counts : qa.analytics.alpha.AlphaCounts, optional
        Pixel alpha's per-image statistics, already counted (by the run's one pass over the images,
        :mod:`qa.task`); the images are not decoded again.
    consensus_result : qa.analytics.consensus.Consensus, optional
        The consensus, already built (by the run's one pass over the images).
    facts : dict, optional
        Each object's occluded flag and vertex density (:func:`qa.analytics.boundaries.batch_facts`), when
        already known.
    folder : str or os.PathLike, optional
        Keep the review queue there, on disk (``Analytics.review_table`` is then a
        :class:`qa.parts.Parts`); ``owner`` is what keeps the folder alive (:func:`qa.parts.run_folder`).

    Returns
    -------
    Analytics

    Raises
    ------
    ConfigError
        Without a comparison (one annotator, or a batch without ``comparison``), or on a bad option.

    Examples
    --------
    >>> analytics = qa.analyse(qa.run("a=a.json", "b=b.json", store=False))  # doctest: +SKIP
    >>> analytics.annotators  # doctest: +SKIP
    """
    from qa.errors import ConfigError

    batch = getattr(run_or_batch, "batch", run_or_batch)
    if comparison is None:
        comparison = getattr(run_or_batch, "comparison", None)
    if violations is None:
        violations = getattr(run_or_batch, "violations", None)
    if comparison is None:
        raise ConfigError("analytics need a comparison of two or more annotators; pass a run of two or more "
                          "exports, or a batch and its qa.engine.compare.compare_batch result")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must lie in (0, 1), got {confidence}")
    if bootstrap < 0:
        raise ConfigError(f"bootstrap must not be negative, got {bootstrap}")
    result = Analytics(settings={"alpha": bool(alpha), "bootstrap": int(bootstrap), "confidence": float(confidence),
                                 "seed": int(seed), "min_score": float(min_score)})
    _aggregates(result, batch, comparison, facts)
    if alpha:
        _alpha(result, batch, comparison, bootstrap=bootstrap, confidence=confidence, seed=seed,
               max_pixels=max_pixels, workers=workers, progress=progress, executor=executor, counts=alpha_counts)
    _review(result, batch, comparison, violations=violations, min_score=min_score, folder=folder, owner=owner,
            executor=executor)
    _copies(result, comparison, pack)
    if consensus and len(batch.annotators) >= 3:
        _consensus(result, batch, comparison, max_pixels=max_pixels, workers=workers, progress=progress,
                   executor=executor, built=consensus_result)
    result.scores = _scores(result, comparison)
    result._score_parts = []  # merged into ``scores``, not held twice (rows per image and category)
    return result


# --- one function per sub-analysis ---------------------------------------------------------------------

_TABLES = {"annotator_pair": "pairs", "annotator": "annotators", "category": "categories", "image": "images",
           "size": "sizes", "annotator_size": "annotator_sizes", "occluded": "occluded", "batch": "batch"}


def _aggregates(result: Analytics, batch, comparison, facts=None) -> None:
    from qa.analytics.aggregate import aggregate

    agg = aggregate(batch, comparison, facts=facts)
    engine = comparison.scores
    for scope, attr in _TABLES.items():
        table = agg.tables.get(scope)
        if table is not None and scope in ("annotator_pair", "batch"):
            table = _with_engine_figures(table, engine, scope)
        setattr(result, attr, table)
    result._score_parts.append(agg.scores)


def _with_engine_figures(table, engine, scope: str):
    """The engine's own figures replace recomputed ones (the batch's are means over pairs)."""
    rows = engine[engine["scope"] == scope]
    if not len(rows):
        return table
    wide = rows.pivot_table(index="key", columns="metric", values="value", aggfunc="first", dropna=False)
    table = table.copy()
    keyed = wide.iloc[[0] * len(table)] if scope == "batch" else wide.reindex(table["pair"].astype(str).to_numpy())
    for metric in keyed.columns:
        if metric in table.columns:
            values = keyed[metric].to_numpy(dtype=float)
            table[metric] = values.astype(table[metric].dtype) if table[metric].dtype.kind == "i" else values
    return table


def _alpha(result: Analytics, batch, comparison, *, bootstrap, confidence, seed, max_pixels, workers,
           progress, executor=None, counts=None) -> None:
    import pandas as pd

    from qa.analytics.alpha import object_alpha, pixel_alpha

    if counts is not None:
        pa = counts.finish(bootstrap=bootstrap, confidence=confidence, seed=seed)
    else:
        pa = pixel_alpha(batch, bootstrap=bootstrap, confidence=confidence, seed=seed, max_pixels=max_pixels,
                         workers=workers, progress=progress, executor=executor)
    oa = object_alpha(comparison)
    result.alpha = pa.batch
    if result.pairs is not None:
        result.pairs = result.pairs.merge(pa.pairs[["pair", "alpha"]], on="pair", how="left") \
            .merge(oa[["pair", "alpha"]].rename(columns={"alpha": "object_alpha"}), on="pair", how="left")
    if result.images is not None:
        result.images = result.images.merge(pa.images[["image", "alpha"]], on="image", how="left")
    row = pa.batch.iloc[0]
    parts = [pd.DataFrame({"scope": "batch", "key": "", "metric": ["alpha", "alpha_ci_low", "alpha_ci_high"],
                           "value": [row["alpha"], row["ci_low"], row["ci_high"]], "n": int(row["images"])}),
             pd.DataFrame({"scope": "annotator_pair", "key": pa.pairs["pair"], "metric": "alpha",
                           "value": pa.pairs["alpha"], "n": pa.pairs["pixels"]}),
             pd.DataFrame({"scope": "annotator_pair", "key": oa["pair"], "metric": "object_alpha",
                           "value": oa["alpha"], "n": oa["images"]}),
             pd.DataFrame({"scope": "image", "key": pa.images["image"], "metric": "alpha",
                           "value": pa.images["alpha"], "n": pa.images["pixels"]})]
    result._score_parts.extend(p for p in parts if len(p))


def _review(result: Analytics, batch, comparison, *, violations, min_score, folder=None, owner=None,
            executor=None) -> None:
    import pandas as pd

    from qa.analytics.review import reason_counts, review_queue

    queue = review_queue(batch, comparison, violations=violations, min_score=min_score, folder=folder, owner=owner,
                         executor=executor)
    result.review_table = queue
    counts = reason_counts(queue) if len(queue) else pd.Series(dtype=int)
    result._score_parts.append(pd.DataFrame({
        "scope": "batch", "key": "", "metric": ["review_items", *[f"review_{r}" for r in counts.index]],
        "value": [float(len(queue)), *counts.to_numpy(dtype=float)], "n": int(len(queue))}))


def _copies(result: Analytics, comparison, pack) -> None:
    from qa.analytics.copies import CODE, identical_images, identical_labels

    result.identical = identical_images(comparison)
    if pack is None:
        return
    from qa.rules.packs import Pack, read

    pack = pack if isinstance(pack, Pack) else read(pack)
    if CODE in pack.selected:
        result.findings = identical_labels(comparison, severity=pack.severity_of(CODE), table=result.identical,
                                           **pack.params_for(CODE))


def _consensus(result: Analytics, batch, comparison, *, max_pixels, workers, progress, executor=None,
               built=None) -> None:
    from qa.analytics.consensus import build_consensus

    result.consensus = built if built is not None else build_consensus(
        batch, comparison, max_pixels=max_pixels, workers=workers, progress=progress, executor=executor)
    result._score_parts.append(result.consensus.scores)


def _scores(result: Analytics, comparison):
    """The sub-analyses' long rows, without the (scope, key, metric) rows the engine already has."""
    import numpy as np
    import pandas as pd

    parts = [p[_SCORE_COLUMNS] for p in result._score_parts if p is not None and len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(_SCORE_COLUMNS, (object, object, object,
                                                                                     float, np.int64))})
    rows = pd.concat(parts, ignore_index=True)
    rows["scope"] = rows["scope"].astype(str)
    rows["key"] = rows["key"].astype(str)
    rows["metric"] = rows["metric"].astype(str)
    rows["value"] = rows["value"].astype(np.float64)
    rows["n"] = rows["n"].astype(np.int64)
    rows = rows.drop_duplicates(["scope", "key", "metric"], keep="first")
    engine = comparison.scores
    have = pd.MultiIndex.from_arrays([engine["scope"].astype(str), engine["key"].astype(str),
                                      engine["metric"].astype(str)])
    mine = pd.MultiIndex.from_arrays([rows["scope"], rows["key"], rows["metric"]])
    return rows[~mine.isin(have)].reset_index(drop=True)
