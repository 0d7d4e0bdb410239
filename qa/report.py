"""Render one self-contained HTML report per run (jinja2, autoescape on).

The report is built from plain tables, the same ones the store keeps, so ``qa run`` (from the run in
memory, :func:`from_run`) and ``qa report RUN`` (from the store, :func:`from_store`) draw the same page.
Each section fills from the rows it needs when the run has them and says plainly when it has not:
the agreement matrix from the ``annotator_pair`` scores, the per-category table from the ``category``
scores, the boundary tables from ``annotator_category`` and ``category_pair`` scores and the
``boundary_disagreement`` table, and so on (see docs/report.md).

Images are data URIs, CSS and JavaScript are inline, and a Content-Security-Policy forbids every
network request. Every value from an export (category, file and annotator names, messages) is escaped.

Worst images first: each image is scored by the panoptic-quality form of its annotator pairs' object
matching (:func:`rank_images`), and the ``pictures`` lowest get an overlay picture
(:mod:`qa.overlay`). At 640 px a picture takes about 5 KB as a drawing and about 19 KB over a
photograph, so the default of 100 pictures adds at most about 2.5 MB to a report of any size (a
1,000-image run is 2.9 MB in all; see benchmarks/README.md, "Report").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

from qa._resources import templates_dir

TEMPLATE = "report.html.j2"
DEFAULT_PICTURES = 100
"""How many of the worst images get an overlay picture."""
EXAMPLES_PER_RULE = 25
"""Violations listed under each rule (the count covers all of them)."""
PROBLEMS_PER_PICTURE = 8
"""Unmatched or relabelled objects listed under each picture."""
REVIEW_ROWS = 200
"""Rows of the review queue the report lists (the count covers all of them)."""

_MATRIX_METRICS = ("mask_iou_mean", "image_iou_mean", "boundary_f_2px_mean", "boundary_iou_mean", "pq", "alpha")
_FIGURES = ("pq", "mask_iou_mean", "image_iou_mean", "boundary_f_2px_mean", "boundary_iou_mean", "alpha",
            "missing_share", "label_disagreements")


def label(metric: str) -> str:
    """A column heading for a metric name, from the metric registry (:mod:`qa.metric_registry`).

    Examples
    --------
    >>> label("mask_iou_mean"), label("boundary_f_2px_mean"), label("nsd_4px_mean")
    ('matched-object IoU', 'boundary F 2px', 'NSD 4px')
    """
    from qa import metric_registry

    text = metric_registry.label(metric)
    found = metric_registry.find(metric)
    if found is not None and found.metric.unit == "px":
        text += " px"
    return text


def is_count(metric: str) -> bool:
    """Whether a metric is a count (shown without decimals), as the metric registry declares it."""
    from qa import metric_registry

    return metric_registry.is_count(metric)


@dataclass
class ReportInput:
    """Everything a report shows; every table is optional (None or empty when the run has none).

    Attributes
    ----------
    title : str
    annotators : list of str
        In the run's order (it sets each annotator's colour).
    meta : dict
        ``run_id``, ``name``, ``description``, ``started``, ``tool_version``, ``images``, ``objects``,
        ``stored`` (the store's path, when stored).
    verdict : dict or None
        The gate's verdict document (:meth:`qa.gate.Verdict.to_dict`).
    scores : DataFrame
        The long scores table ``scope, key, metric, value, n``.
    findings : DataFrame
        The store's ``findings`` columns (``code, severity, message, annotator, image, file,
        source_section, source_index, source_id, value, limit_value``).
    image_pairs : DataFrame
        One row per image and annotator pair (``image, annotator_a, annotator_b, matched, missing,
        extra, label_disagreements, mask_iou_mean, ...``).
    object_pairs : DataFrame
        Matched and unmatched objects (``image, annotator_a, annotator_b, status, category_a,
        category_b, iou, label_disagreement``, and where each object is in its export).
    boundary : DataFrame
        The ``boundary_disagreement`` table (per annotator pair and category pair).
    annotator_table, image_table, category_table : DataFrame
        The store's ``annotators``, ``images`` and ``categories`` rows.
    inputs : list of dict
        Each export's ``annotator, path, format, sha256``.
    settings : dict
        The run's settings.
    review_queue : DataFrame or qa.parts.Parts
        The analytics' review queue (the store's ``review_queue`` columns), worst first (its length
        and first rows are read).
    gallery : list of dict
        Overlay pictures, worst image first (see :func:`gallery`).
    pictures_note : str
        Why some or all pictures are missing (empty when none are).
    """

    title: str
    annotators: list[str]
    meta: dict = field(default_factory=dict)
    verdict: dict | None = None
    scores: Any = None
    findings: Any = None
    image_pairs: Any = None
    object_pairs: Any = None
    boundary: Any = None
    annotator_table: Any = None
    image_table: Any = None
    category_table: Any = None
    review_queue: Any = None
    inputs: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    gallery: list[dict] = field(default_factory=list)
    pictures_note: str = ""
    report_settings: dict = field(default_factory=dict)
    reference_pictures: list[dict] = field(default_factory=list)
    """The worst objects against the reference, drawn with its outline dashed (:func:`reference_pictures`)."""
    reference_note: str = ""
    """Why the reference pictures are missing, when they are."""


# --- ranking ------------------------------------------------------------------------------------------

def pair_agreement(matched, missing, extra, label_disagreements, mask_iou_mean) -> float:
    """The panoptic-quality form of one image pair's object matching, in [0, 1].

    ``sum of IoU over same-label matches / (matched + (missing + extra) / 2)``: a matched pair with
    different labels counts as one miss and one extra, as in PQ; the IoU sum is estimated as the mean
    IoU times the same-label matches. An image pair with no objects on either side scores 1.

    Examples
    --------
    >>> pair_agreement(4, 0, 0, 0, 0.9)
    0.9
    >>> pair_agreement(2, 1, 1, 1, 0.8)
    0.26666666666666666
    >>> pair_agreement(0, 0, 0, 0, float("nan"))
    1.0
    """
    def num(v) -> float:
        v = 0.0 if v is None else float(v)
        return 0.0 if math.isnan(v) else v

    matched, missing, extra, labels = num(matched), num(missing), num(extra), num(label_disagreements)
    denominator = matched + 0.5 * (missing + extra)
    if denominator <= 0:
        return 1.0
    return num(mask_iou_mean) * max(matched - labels, 0.0) / denominator


def rank_images(image_pairs, images=()):
    """Images worst first: one row per image with its agreement and its worst annotator pair.

    Parameters
    ----------
    image_pairs : DataFrame
        One row per image and annotator pair (``image, annotator_a, annotator_b, matched, missing,
        extra, label_disagreements, mask_iou_mean``).
    images : iterable of str, optional
        Every image of the run; those without a pair row get NaN agreement and sort last.

    Returns
    -------
    DataFrame
        ``image, agreement`` (mean of :func:`pair_agreement` over the image's pairs), ``worst_pair``,
        ``worst_agreement``, ``pairs``, ``matched``, ``missing``, ``extra``, ``label_disagreements``
        (sums over the pairs) and ``mask_iou_mean`` (mean over the pairs), sorted by agreement
        (ties by image key).
    """
    import pandas as pd

    columns = ["image", "agreement", "worst_pair", "worst_agreement", "pairs", "matched", "missing", "extra",
               "label_disagreements", "mask_iou_mean"]
    rows = []
    if image_pairs is not None and len(image_pairs):
        ip = image_pairs.copy()
        for c in ("matched", "missing", "extra", "label_disagreements", "mask_iou_mean"):
            if c not in ip:
                ip[c] = float("nan")
        ip["agreement"] = [pair_agreement(*v) for v in zip(ip["matched"], ip["missing"], ip["extra"],
                                                           ip["label_disagreements"], ip["mask_iou_mean"])]
        ip["pair"] = ip["annotator_a"].astype(str) + " vs " + ip["annotator_b"].astype(str)
        for image, part in ip.groupby(ip["image"].astype(str), sort=False):
            worst = part["agreement"].idxmin()
            rows.append({
                "image": image, "agreement": float(part["agreement"].mean()),
                "worst_pair": part.at[worst, "pair"], "worst_agreement": float(part.at[worst, "agreement"]),
                "pairs": len(part), "matched": int(part["matched"].fillna(0).sum()),
                "missing": int(part["missing"].fillna(0).sum()), "extra": int(part["extra"].fillna(0).sum()),
                "label_disagreements": int(part["label_disagreements"].fillna(0).sum()),
                "mask_iou_mean": float(part["mask_iou_mean"].mean()),
            })
    seen = {r["image"] for r in rows}
    for image in images:
        if str(image) not in seen:
            rows.append({"image": str(image), "agreement": float("nan"), "worst_pair": "", "pairs": 0})
    df = pd.DataFrame(rows, columns=columns)
    return df.sort_values(["agreement", "image"], na_position="last", kind="stable").reset_index(drop=True)


# --- pictures -----------------------------------------------------------------------------------------

def _image_file(batch, key: str):
    """The image's file: ``Image.path``, else its file name inside an export's folder (or None)."""
    from qa.formats._safe import resolve_inside

    for name in batch.annotators:
        export = batch.exports[name]
        image = export.images.get(key)
        if image is None:
            continue
        if image.path is not None and Path(image.path).is_file():
            return Path(image.path)
        folder = Path(export.path) if Path(export.path).is_dir() else Path(export.path).parent
        for candidate in (image.file_name, key):
            found = resolve_inside(folder, candidate)
            if found is not None and found.is_file():
                return found
    return None


def picture(batch, key: str, *, max_side: int = 640, max_pixels: int | None = None,
            codes: dict | None = None, zoom: bool = True) -> dict:
    """The overlay picture of one image of a batch, as a dict for the gallery.

    With ``zoom``, an image whose objects cover only a small part of it is drawn around them, enlarged
    (:func:`qa.overlay.focus_window`).

    Returns
    -------
    dict
        ``uri`` (a WebP data URI), ``width``, ``height`` (of the picture), ``bytes``, ``background``
        (True when the image file was drawn, else why not), ``zoom`` (the window drawn, as text; empty
        for the whole image) and ``timing`` (seconds spent decoding the masks, and drawing and encoding).
    """
    import time

    from qa.model import Limits
    from qa.overlay import (annotator_crops, data_uri, encode_image, focus_window, load_background,
                            render_overlay)

    image = batch.images[key]
    h, w = int(image.height), int(image.width)
    codes = codes if codes is not None else {c: k + 1 for k, c in enumerate(sorted(batch.categories))}
    by_annotator = {a: [] for a in batch.annotators}
    for obj in batch.objects(image=key):
        if obj.annotator in by_annotator:
            by_annotator[obj.annotator].append(obj)
    t0 = time.perf_counter()
    layers = []
    for name in batch.annotators:
        objects = [o for o in by_annotator[name] if not o.iscrowd]
        id_map = None
        export = batch.exports[name]
        if any(o.kind == "segment" for o in objects) and key in export.id_maps:
            from qa.formats.coco_panoptic import read_id_map

            try:
                id_map = read_id_map(Path(export.id_maps[key]), Limits(max_pixels=max_pixels) if max_pixels
                                     else Limits())
            except Exception:  # an unreadable PNG is already a finding of the run: draw the rest
                id_map = None
        crops = annotator_crops(objects, h, w, id_map=id_map)
        layers.append([(crop, offset, codes.get(o.category, len(codes) + 1)) for crop, offset, o in crops])
    t1 = time.perf_counter()
    window = focus_window([(x0, y0, x0 + c.shape[1], y0 + c.shape[0]) for layer in layers
                           for c, (x0, y0), _ in layer], h, w) if zoom else None
    background, why = None, "no image file beside the export"
    path = _image_file(batch, key)
    if path is not None:
        background, why = load_background(path, h, w, max_side=max_side, max_pixels=max_pixels, window=window)
    rgb = render_overlay(h, w, layers, background=background, max_side=max_side, window=window)
    payload = encode_image(rgb, lossless=background is None)
    t2 = time.perf_counter()
    zoomed = "" if window is None else (f"zoomed in on x {window[0]}–{window[2]}, y {window[1]}–{window[3]} "
                                        f"of {w}x{h}")
    return {"uri": data_uri(payload), "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
            "bytes": len(payload), "background": True if background is not None else why, "zoom": zoomed,
            "timing": {"decode": t1 - t0, "draw": t2 - t1}}


def gallery(batch, ranked, *, pictures: int = DEFAULT_PICTURES, max_side: int = 640,
            max_pixels: int | None = None, image_pairs=None, problems=None) -> list[dict]:
    """Overlay pictures of the ``pictures`` worst images of ``ranked`` (from :func:`rank_images`).

    Images with NaN agreement (no pair compared) get no picture. Each entry has the picture
    (:func:`picture`), ``image``, ``rank``, ``agreement``, ``worst_pair``, a ``pairs`` list (one line of
    figures per annotator pair) and a ``problems`` list (unmatched or relabelled objects with where
    they are in the exports).
    """
    codes = {c: k + 1 for k, c in enumerate(sorted(batch.categories))}
    out = []
    chosen = ranked[ranked["agreement"].notna()].head(max(int(pictures), 0))
    pair_lines = _pair_lines(image_pairs, set(chosen["image"]))
    problem_lines = _problem_lines(problems, set(chosen["image"]))
    for rank, row in enumerate(chosen.itertuples(index=False), start=1):
        if row.image not in batch.images:
            continue
        entry = picture(batch, row.image, max_side=max_side, max_pixels=max_pixels, codes=codes)
        entry.update(image=row.image, rank=rank, agreement=_fmt(row.agreement), worst_pair=row.worst_pair,
                     pairs=pair_lines.get(row.image, []), problems=problem_lines.get(row.image, ([], 0))[0],
                     more_problems=problem_lines.get(row.image, ([], 0))[1])
        out.append(entry)
    return out


def _pair_lines(image_pairs, images: set) -> dict[str, list[str]]:
    if image_pairs is None or not len(image_pairs) or not images:
        return {}
    part = image_pairs[image_pairs["image"].astype(str).isin(images)]
    out: dict[str, list[str]] = {}
    for r in part.to_dict("records"):
        figures = ", ".join(f"{label(m)} {_fmt(r.get(m))}" for m in ("mask_iou_mean", "image_iou_mean") if m in r)
        text = (f"{r['annotator_a']} vs {r['annotator_b']}: {figures}, {_int(r.get('matched'))} matched, "
                f"{_int(r.get('missing'))} missing, {_int(r.get('extra'))} extra")
        if _int(r.get("label_disagreements")):
            text += f", {_int(r.get('label_disagreements'))} relabelled"
        out.setdefault(str(r["image"]), []).append(text)
    return out


def _where(file, section, index, source_id) -> str:
    parts = [str(file) if _present(file) else ""]
    if _present(index):
        parts.append(f"{section or ''}[{int(index)}]")
    if _present(source_id):
        parts.append(f"id={source_id}")
    return " ".join(p for p in parts if p)


def _present(value) -> bool:
    """Whether a table value is there (not None, NaN or NA)."""
    import pandas as pd

    try:
        return not bool(pd.isna(value))
    except (TypeError, ValueError):
        return True


def _problem_lines(problems, images: set) -> dict[str, tuple[list[str], int]]:
    """``{image: ([lines], how many more)}`` for the unmatched and relabelled objects of ``images``."""
    if problems is None or not len(problems) or not images:
        return {}
    part = problems[problems["image"].astype(str).isin(images)]
    status = part["status"].astype(str)
    relabel = part["label_disagreement"].fillna(False).astype(bool) if "label_disagreement" in part else False
    part = part[(status.isin(["missing", "extra"])) | relabel]
    out: dict[str, tuple[list[str], int]] = {}
    for image, group in part.groupby(part["image"].astype(str), sort=False):
        lines = []
        for r in group.head(PROBLEMS_PER_PICTURE).to_dict("records"):
            a, b = r["annotator_a"], r["annotator_b"]
            if r["status"] == "missing":
                lines.append(f"{r['category_a']} of {a} has no match in {b} "
                             f"(best IoU {_fmt(r.get('best_iou'), 2)}; {_where(r.get('file_a'), r.get('section_a'), r.get('source_index_a'), r.get('source_id_a'))})")
            elif r["status"] == "extra":
                lines.append(f"{r['category_b']} of {b} has no match in {a} "
                             f"(best IoU {_fmt(r.get('best_iou'), 2)}; {_where(r.get('file_b'), r.get('section_b'), r.get('source_index_b'), r.get('source_id_b'))})")
            else:
                lines.append(f"{a} says {r['category_a']}, {b} says {r['category_b']} "
                             f"(IoU {_fmt(r.get('iou'), 2)}; {_where(r.get('file_a'), r.get('section_a'), r.get('source_index_a'), r.get('source_id_a'))})")
        out[image] = (lines, max(len(group) - PROBLEMS_PER_PICTURE, 0))
    return out


# --- from a run in memory, from the store ---------------------------------------------------------------

def _findings_frame(findings):
    """The run's findings as the report's frame, made a column at a time in one read of ``findings`` (a
    run's violations are read from where they are kept; no dict per finding).

    Every finding has its ``code``, ``severity``, ``annotator`` and ``image`` (what the report counts);
    the rest (message, where, value, limit) is filled for the first :data:`EXAMPLES_PER_RULE` findings of
    each rule only, the ones the report shows, and None (NaN) for the others: the whole of it took 300 MB
    for the 546,320 violations of a 20,000-image run."""
    import pandas as pd

    names = ["code", "severity", "message", "annotator", "image", "file", "source_section", "source_index",
             "source_id", "value", "limit_value"]
    counted = ("code", "severity", "annotator", "image")
    columns: dict = {c: [] for c in names}
    shown: dict = {}  # findings kept whole so far, per rule
    for f in findings:
        columns["code"].append(f.code)
        columns["severity"].append(f.severity)
        columns["annotator"].append(f.annotator)
        columns["image"].append(f.image)
        if shown.get(f.code, 0) < EXAMPLES_PER_RULE:
            shown[f.code] = shown.get(f.code, 0) + 1
            src = f.source
            values = (f.message, src.file if src else None, src.section if src else None,
                      src.index if src else None, None if src is None or src.id is None else str(src.id), f.value,
                      f.limit)
        else:
            values = (None,) * 7
        for column, value in zip((c for c in names if c not in counted), values):
            columns[column].append(value)
    if not columns["code"]:
        return pd.DataFrame([], columns=names)
    return pd.DataFrame(columns, columns=names)


def from_run(run, *, pictures: int = DEFAULT_PICTURES, max_side: int = 640) -> ReportInput:
    """The report's data from a finished :class:`qa.pipeline.Run` (nothing is read back from disk).

    Parameters
    ----------
    run : qa.pipeline.Run
    pictures : int, default 100
        How many of the worst images get an overlay picture.
    max_side : int, pixels, default 640
        The longest side of a picture.
    """
    import pandas as pd

    from qa.gate import run_findings, run_scores
    from qa.store import _ALIASES as _STORED_NAMES
    from qa.store import boundary_summary

    batch = run.batch
    comparison = run.comparison
    image_pairs = getattr(comparison, "image_pairs", None)
    boundary = getattr(run, "boundary_disagreement", None)
    if boundary is None and getattr(comparison, "object_pairs", None) is not None:
        boundary = boundary_summary(comparison.object_pairs)
    scores = run_scores(run)
    ranked = rank_images(image_pairs, batch.images)
    pictured = list(ranked[ranked["agreement"].notna()].head(max(int(pictures), 0))["image"].astype(str))
    columns = [*_PROBLEM_COLUMNS, "object_index_a", "object_index_b"]
    if hasattr(comparison, "object_columns"):  # only the columns the report reads
        # and, when the category table comes from the scores, only the pictured images' rows (part by part
        # when the table is on disk): only their problems are shown
        object_pairs = comparison.object_columns(columns, images=set(pictured) if _pivot(scores, "category")
                                                 else None)
    else:
        object_pairs = getattr(comparison, "object_pairs", None)
    if boundary is not None:  # the stored column names (units in the name), as the store writes them
        boundary = boundary.rename(columns=_STORED_NAMES["boundary_disagreement"])
    findings = _findings_frame(run_findings(run))
    per_image: dict[str, int] = {}
    per_category: dict[str, int] = {}
    for export in batch.exports.values():
        for o in export.objects:
            per_image[o.image] = per_image.get(o.image, 0) + 1
            per_category[o.category] = per_category.get(o.category, 0) + 1
    n_findings = findings["annotator"].value_counts().to_dict() if len(findings) else {}
    annotator_table = pd.DataFrame([{
        "annotator": n, "format": batch.exports[n].format, "path": str(batch.exports[n].path),
        "n_images": len(batch.exports[n].images), "n_objects": len(batch.exports[n].objects),
        "n_findings": int(n_findings.get(n, 0))} for n in batch.annotators])
    image_table = pd.DataFrame([{
        "image": k, "file_name": img.file_name, "width": img.width, "height": img.height,
        "n_annotators": len(batch.coverage.get(k, ())), "n_objects": per_image.get(k, 0)}
        for k, img in batch.images.items()])
    category_table = pd.DataFrame([{"category": n, "isthing": c.isthing, "n_objects": per_category.get(n, 0)}
                                   for n, c in batch.categories.items()])
    verdict = run.verdict.to_dict() if run.verdict is not None else None
    data = ReportInput(
        title=_title(batch.name, run.run_id), annotators=list(batch.annotators),
        meta={"run_id": run.run_id, "name": batch.name, "description": batch.description,
              "started": _time(run.started_at), "tool_version": run.summary.get("tool_version", ""),
              "images": len(batch.images), "objects": sum(per_image.values()), "stored": run.stored},
        verdict=verdict, scores=scores, findings=findings, image_pairs=image_pairs,
        object_pairs=_problems_from_memory(object_pairs, batch), boundary=boundary,
        annotator_table=annotator_table, image_table=image_table, category_table=category_table,
        review_queue=getattr(getattr(run, "analytics", None), "review_table", None),  # len and head only
        inputs=list(run.inputs or []), settings=dict(run.settings or {}),
        report_settings={"pictures": pictures, "max_side": max_side, "source": "the run in memory"})
    against = getattr(run, "reference", None)
    if getattr(batch, "index", None) is not None:  # streamed: the pictured images' objects read again whole
        from qa.engine.chunks import with_geometry

        keys = list(pictured)
        if against is not None and against.objects is not None and len(against.objects):
            order = _reference_order(against.objects)[:min(pictures, REFERENCE_PICTURES)]
            keys += [str(against.objects["image"].iloc[int(k)]) for k in order]
        batch = with_geometry(batch, keys)
    data.gallery = gallery(batch, ranked, pictures=pictures, max_side=max_side,
                           max_pixels=(run.settings or {}).get("max_pixels"), image_pairs=image_pairs,
                           problems=data.object_pairs)
    data.pictures_note = _pictures_note(data.gallery, ranked, pictures)
    if against is not None:
        data.reference_pictures = reference_pictures(batch, against.objects, exports=against.exports,
                                                     pictures=min(pictures, REFERENCE_PICTURES),
                                                     max_pixels=(run.settings or {}).get("max_pixels"))
    return data


def _sections(batch, annotators, indices) -> list:
    """Each object's export section (None where the annotator or index is missing or unknown), each
    annotator's objects looked up at once (:func:`qa.model.objects_at`)."""
    import numpy as np
    import pandas as pd

    from qa.model import objects_at

    names = np.asarray(annotators, dtype=object)
    numbers = pd.to_numeric(pd.Series(indices), errors="coerce").to_numpy(dtype=np.float64)
    sections = [None] * len(names)
    for name in dict.fromkeys(n for n in names if n is not None):
        export = batch.exports.get(name)
        if export is None:
            continue
        at = np.flatnonzero((names == name) & np.isfinite(numbers))
        at = at[(numbers[at] >= 0) & (numbers[at] < len(export.objects)) & (numbers[at] == np.floor(numbers[at]))]
        for k, obj in zip(at, objects_at(export.objects, numbers[at].astype(np.int64))):
            sections[k] = obj.source.section
    return sections


_PROBLEM_COLUMNS = ("image", "annotator_a", "annotator_b", "status", "category_a", "category_b", "iou", "best_iou",
                    "label_disagreement", "file_a", "source_index_a", "source_id_a", "file_b", "source_index_b",
                    "source_id_b", "boundary_f_2px")


def _problems_from_memory(object_pairs, batch):
    """The engine's object_pairs with the columns the report reads, and each object's export section."""
    if object_pairs is None or not len(object_pairs):
        return None
    keep = [c for c in _PROBLEM_COLUMNS if c in object_pairs]
    df = object_pairs[keep].copy()
    for c in ("image", "annotator_a", "annotator_b", "status", "category_a", "category_b"):
        if c in df:
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    for side in ("a", "b"):
        column = f"object_index_{side}"
        if column not in object_pairs:
            continue
        df[f"section_{side}"] = _sections(batch, df[f"annotator_{side}"], object_pairs[column])
    return df


def from_store(store, ref, *, pictures: int = DEFAULT_PICTURES, max_side: int = 640) -> ReportInput:
    """The report's data from a stored run, read through the store's tables.

    Overlay pictures need the objects' outlines, which the store does not keep: the exports are read
    again from the run's input paths when they still exist and match the stored fingerprints;
    otherwise the report says why the pictures are unavailable.

    Parameters
    ----------
    store : qa.store.Store
        An open store.
    ref : str
        The run (id, prefix, seq, ``latest``).
    pictures, max_side : int
        As for :func:`from_run`.

    Raises
    ------
    StoreError
        No such run.
    """
    info = store.run(ref)
    run_id = info["run_id"]
    annotator_table = store.table("annotators", run_id)
    annotators = list(annotator_table["annotator"])
    image_pairs = _expand_metrics(store.table("image_pair_scores", run_id))
    boundary = _expand_metrics(store.table("boundary_disagreement", run_id))
    findings = store.findings(run_id)
    image_table = store.table("images", run_id)
    problems = store.sql("""
        SELECT m.image, m.annotator_a, m.annotator_b, m.status, m.category_a, m.category_b, m.iou, m.best_iou,
               m.label_disagreement, m.boundary_f_2px,
               oa.file AS file_a, oa.source_section AS section_a, oa.source_index AS source_index_a,
               oa.source_id AS source_id_a,
               ob.file AS file_b, ob.source_section AS section_b, ob.source_index AS source_index_b,
               ob.source_id AS source_id_b
        FROM object_matches m
        LEFT JOIN objects oa ON oa.run_id = m.run_id AND oa.annotator = m.annotator_a
                             AND oa.object_index = m.object_index_a
        LEFT JOIN objects ob ON ob.run_id = m.run_id AND ob.annotator = m.annotator_b
                             AND ob.object_index = m.object_index_b
        WHERE m.run_id = ?""", [run_id])
    settings = info.get("settings") or {}
    data = ReportInput(
        title=_title(info.get("name"), run_id), annotators=annotators,
        meta={"run_id": run_id, "name": info.get("name"), "description": info.get("description"),
              "started": _time(info.get("started_at")), "tool_version": info.get("tool_version", ""),
              "images": info.get("n_images"), "objects": info.get("n_objects"), "stored": str(store.path),
              "seq": info.get("seq")},
        verdict=info.get("verdict_json"), scores=store.scores(run_id), findings=findings,
        image_pairs=image_pairs, object_pairs=problems if len(problems) else None,
        boundary=boundary if len(boundary) else None, annotator_table=annotator_table,
        image_table=image_table, category_table=store.table("categories", run_id),
        review_queue=_stored_review_queue(store, run_id),
        inputs=list(info.get("inputs") or []), settings=settings,
        report_settings={"pictures": pictures, "max_side": max_side, "source": f"the store {store.path}"})
    ranked = rank_images(image_pairs if len(image_pairs) else None, list(image_table["image"]))
    batch, why = None, ""
    if pictures > 0 and ranked["agreement"].notna().any():
        batch, why = reload_batch(info, base=Path(store.path).parent)
    if batch is not None:
        data.gallery = gallery(batch, ranked, pictures=pictures, max_side=max_side,
                               max_pixels=settings.get("max_pixels"), image_pairs=image_pairs,
                               problems=data.object_pairs)
        data.pictures_note = _pictures_note(data.gallery, ranked, pictures)
    else:
        data.pictures_note = why
    reference = settings.get("reference")
    if reference and pictures > 0:
        if reference not in annotators:
            data.reference_note = ("The consensus of the others is built in the run and not stored: its pictures "
                                   "are in the run's own report.")
        elif batch is None:
            data.reference_note = why
        else:
            import types

            from qa.analytics.reference import oriented_rows

            stored = store.table("object_matches", run_id)
            rows = oriented_rows(types.SimpleNamespace(object_pairs=stored),
                                 {a: reference for a in batch.annotators if a != reference})
            data.reference_pictures = reference_pictures(batch, rows, pictures=min(pictures, REFERENCE_PICTURES),
                                                         max_pixels=settings.get("max_pixels"))
    return data


def _stored_review_queue(store, run_id):
    """The run's ``review_queue`` rows, or None (a store made before schema 2 has no such table)."""
    from qa.errors import StoreError

    try:
        queue = store.table("review_queue", run_id)
    except StoreError:
        return None
    return queue.drop(columns=["run_id"]).sort_values("rank").reset_index(drop=True) if len(queue) else None


def _expand_metrics(df):
    """A stored table with its ``metrics`` JSON column spread into columns (and ``run_id`` dropped)."""
    import pandas as pd

    if df is None:
        return None
    df = df.drop(columns=[c for c in ("run_id",) if c in df])
    if "metrics" not in df or not len(df):
        return df.drop(columns=[c for c in ("metrics",) if c in df])
    extra = pd.DataFrame([json.loads(m) if isinstance(m, str) else (m or {}) for m in df["metrics"]],
                         index=df.index)
    extra = extra[[c for c in extra.columns if c not in df.columns]].apply(pd.to_numeric, errors="coerce")
    return pd.concat([df.drop(columns=["metrics"]), extra], axis=1)


def _locate(path, base) -> Path:
    """A stored path as given, or, when relative and not found from here, relative to ``base``."""
    path = Path(path)
    if path.exists() or path.is_absolute() or base is None or not (Path(base) / path).exists():
        return path
    return Path(base) / path


def reload_batch(info: dict, *, base=None):
    """The stored run's batch, read again from its inputs: ``(batch, "")``, or ``(None, why not)``.

    Each input is loaded with its stored format (and its manifest options, when the manifest still
    exists), the exports are aligned with the run's aliases and categories, and every annotator's
    fingerprint must equal the stored one. Relative input paths are looked up from the working folder,
    then from ``base`` (the store's folder: ``qa run`` keeps paths as it was given them).
    """
    from qa.align import align
    from qa.errors import QAError
    from qa.formats import load
    from qa.model import Limits
    from qa.store import input_fingerprints

    settings = info.get("settings") or {}
    inputs = info.get("inputs") or []
    if not inputs:
        return None, "Pictures unavailable: the stored run lists no inputs."
    inputs = [dict(i, path=str(_locate(i["path"], base))) for i in inputs]
    missing = [i["path"] for i in inputs if not Path(i["path"]).exists()]
    if missing:
        return None, (f"Pictures unavailable: the run's input {missing[0]} no longer exists (the store keeps "
                      "figures, not outlines; rerun 'qa run' to draw them).")
    options_by_path: dict[str, dict] = {}
    aliases = dict(settings.get("aliases") or {})
    categories = settings.get("categories")
    manifest = settings.get("manifest")
    manifest = _locate(manifest, base) if manifest else None
    if manifest and Path(manifest).is_file():
        try:
            from qa.manifest import read_manifest

            man = read_manifest(manifest)
            for spec in man.exports:
                options_by_path[str(Path(spec.path).resolve())] = dict(spec.options)
            aliases = {**man.aliases, **aliases}
            categories = categories if categories is not None else man.categories
        except QAError:
            pass
    limits = Limits(max_pixels=int(settings["max_pixels"])) if settings.get("max_pixels") else Limits()
    exports = []
    try:
        for item in inputs:
            loaded = load(item["path"], None, format=item.get("format"), limits=limits,
                          options=options_by_path.get(str(Path(item["path"]).resolve())))
            name = item["annotator"]
            if len(loaded) == 1:
                chosen = loaded[0]
            else:
                chosen = next((e for e in loaded if name == e.annotator or name.endswith("/" + e.annotator)), None)
                if chosen is None:
                    return None, f"Pictures unavailable: annotator {name} is no longer in {item['path']}."
            chosen.annotator = name
            for obj in chosen.objects:
                obj.annotator = name
            exports.append(chosen)
        names = [e.annotator for e in exports]
        reference = settings.get("reference") if settings.get("reference") in names else None
        batch = align(exports, aliases=aliases, categories=categories, reference=reference,
                      rescale=[n for n in settings.get("rescaled") or () if n in names])
    except QAError as exc:
        return None, f"Pictures unavailable: the inputs cannot be read again ({exc})."
    stored = {i["annotator"]: i.get("sha256") for i in inputs}
    changed = [i["annotator"] for i in input_fingerprints(batch) if i["sha256"] != stored.get(i["annotator"])]
    if changed:
        return None, (f"Pictures unavailable: the export of {', '.join(changed)} changed since the run "
                      "(its fingerprint differs), so its outlines would not match the figures.")
    return batch, ""


def _pictures_note(gallery_items, ranked, pictures: int) -> str:
    compared = int(ranked["agreement"].notna().sum())
    if compared == 0:
        return "No image was labelled by two or more annotators, so there is nothing to draw."
    if pictures <= 0:
        return "Pictures were switched off for this report."
    note = f"Pictures of the {len(gallery_items)} worst of {compared} compared images"
    note += "." if len(gallery_items) >= compared else f" (the report draws at most {pictures})."
    without = sum(1 for g in gallery_items if g["background"] is not True)
    if without:
        note += (f" {without} picture{'s' * (without != 1)} without the image itself: no image file beside "
                 "the export, or one that does not match the declared size.")
    return note


def _title(name, run_id) -> str:
    return f"annotation QA: {name}" if name else f"annotation QA run {run_id}"


def _time(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


# --- display helpers ----------------------------------------------------------------------------------

def _isnan(value) -> bool:
    try:
        return value is None or math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) or hasattr(value, "dtype"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return str(value)
        if math.isnan(number):
            return "–"
        if digits == 0:
            return f"{number:,.0f}"
        return f"{number:.{digits}f}"
    return str(value)


def _int(value) -> int:
    return 0 if _isnan(value) else int(value)


def _cell(value, digits: int = 3, *, style: str | None = None, cls: str | None = None,
          title: str | None = None, href: str | None = None) -> dict:
    """A table cell: its text, the value it sorts by (numbers only), and its look."""
    sort = None
    if isinstance(value, (int, float)) and not isinstance(value, bool) or hasattr(value, "dtype"):
        try:
            number = float(value)
            sort = "" if math.isnan(number) else repr(number)
        except (TypeError, ValueError):
            sort = None
    return {"text": _fmt(value, digits), "sort": sort, "style": style, "cls": cls, "title": title, "href": href}


def _metric_cell(metric: str, value, **kw) -> dict:
    """A figure's cell, with the decimals the metric registry gives it (counts as integers, pixel figures
    with 2, the rest with 3); a column no metric names (a setting such as ``tolerance_px``) keeps 3, or
    none for a length in pixels."""
    from qa import metric_registry

    if metric_registry.known(metric):
        digits = metric_registry.digits(metric)
    else:
        digits = 0 if metric.endswith("_px") else 3
    return _cell(value, digits, **kw)


def _table(id_, columns, rows, *, empty="Nothing to show.", filter=None) -> dict:
    """A table for the template: a column is numeric (right-aligned) when its first row's cell holds a
    number; the filter box shows above tables of more than 8 rows unless ``filter`` says otherwise."""
    align = []
    for i in range(len(columns)):
        first = rows[0]["cells"][i] if rows and i < len(rows[0]["cells"]) else None
        align.append("n" if first is not None and first.get("sort") is not None else "t")
    for row in rows:
        for i, c in enumerate(row["cells"]):
            c["align"] = align[i] if i < len(align) else "t"
    return {"id": id_, "columns": columns, "align": align, "rows": rows, "empty": empty,
            "filter": (len(rows) > 8) if filter is None else filter, "tall": len(rows) > 25}


def scale(metric: str) -> tuple[float, float]:
    """The colour range ``(red at or below, green at)`` of an agreement figure, from the metric registry
    ((0.5, 1) for a figure without a heat scale)."""
    from qa import metric_registry

    found = metric_registry.scale(metric)
    return (found[1], found[2]) if found and found[0] == "heat" else (0.5, 1.0)


def heat_for(metric: str, value) -> str:
    """:func:`heat` on the metric's own colour range."""
    lo, hi = scale(metric)
    return heat(value, lo, hi)


def style_for(metric: str, value) -> str | None:
    """A cell's background from the metric registry's colour scale: heat (mirrored where lower is better),
    diverging for signed offsets, None for a figure without a scale.

    Examples
    --------
    >>> style_for("mask_iou_mean", 1.0), style_for("missing", 3), style_for("disagree_2px_share", 0.0)
    ('background:rgb(46,160,67)', None, 'background:rgb(46,160,67)')
    """
    from qa import metric_registry

    found = metric_registry.scale(metric)
    if not found:
        return None
    if found[0] == "diverging":
        return diverging(value, found[1])
    lo, hi = found[1], found[2]
    if metric_registry.direction(metric) == "lower" and not _isnan(value):
        value = lo + hi - float(value)
    return heat(value, lo, hi)


def heat(value, lo: float = 0.5, hi: float = 1.0) -> str:
    """Background for an agreement value: red at ``lo`` or below, yellow halfway, green at ``hi``.

    Examples
    --------
    >>> heat(1.0), heat(0.2), heat(float("nan"))
    ('background:rgb(46,160,67)', 'background:rgb(198,40,40)', 'background:#eee')
    """
    if _isnan(value):
        return "background:#eee"
    t = min(1.0, max(0.0, (float(value) - lo) / (hi - lo) if hi > lo else 1.0))
    if t < 0.5:
        a, b, u = (198, 40, 40), (250, 220, 90), t / 0.5
    else:
        a, b, u = (250, 220, 90), (46, 160, 67), (t - 0.5) / 0.5
    r, g, bl = (round(x + (y - x) * u) for x, y in zip(a, b))
    return f"background:rgb({r},{g},{bl})"


def diverging(value, span: float = 2.0) -> str:
    """Background for a signed offset in pixels: blue inside (negative), white 0, red outside (positive).

    Examples
    --------
    >>> diverging(0.0), diverging(5.0), diverging(-5.0)
    ('background:rgb(255,255,255)', 'background:rgb(214,96,77)', 'background:rgb(67,147,195)')
    """
    if _isnan(value):
        return "background:#eee"
    t = max(-1.0, min(1.0, float(value) / span))
    end = (214, 96, 77) if t > 0 else (67, 147, 195)
    r, g, b = (round(255 + (e - 255) * abs(t)) for e in end)
    return f"background:rgb({r},{g},{b})"


def _pivot(scores, scope: str) -> dict[str, dict[str, tuple[float, int]]]:
    """``{key: {metric: (value, n)}}`` of one scope of the scores table."""
    if scores is None or not len(scores):
        return {}
    part = scores[scores["scope"].astype(str) == scope]
    out: dict[str, dict[str, tuple[float, int]]] = {}
    for key, metric, value, n in zip(part["key"], part["metric"], part["value"], part["n"]):
        out.setdefault("" if key is None else str(key), {})[str(metric)] = (
            float("nan") if value is None else float(value), 0 if _isnan(n) else int(n))
    return out


def _ordered_metrics(metrics, preferred=("pq", "sq", "rq", "mask_iou_mean", "image_iou_mean", "boundary_f_2px_mean",
                                          "boundary_iou_mean", "signed_offset_px_mean", "alpha")) -> list[str]:
    metrics = set(metrics)
    first = [m for m in preferred if m in metrics]
    return first + sorted(metrics - set(first), key=lambda m: (is_count(m), m))


_KEY_ORDER = {"small": "0", "medium": "1", "large": "2", "false": "0", "true": "1"}


def _key_order(key: str) -> list[str]:
    """Sort keys by their parts, COCO size classes small to large and false before true."""
    return [_KEY_ORDER.get(part, part) for part in key.split("|")]


def _scope_table(id_, scores, scope, key_columns, *, empty, style=style_for):
    """One scope of the scores table as rows ``key parts..., metric...`` (keys split on ``|``)."""
    pivot = _pivot(scores, scope)
    metrics = _ordered_metrics({m for v in pivot.values() for m in v})
    rows = []
    for key in sorted(pivot, key=_key_order):
        parts = key.split("|") if len(key_columns) > 1 else [key]
        parts = (parts + [""] * len(key_columns))[:len(key_columns)]
        cells = [_cell(p) for p in parts]
        for m in metrics:
            value, n = pivot[key].get(m, (float("nan"), 0))
            cells.append(_metric_cell(m, value, title=f"{m}, n = {n}",
                                      style=style(m, value) if style else None))
        rows.append({"cells": cells})
    return _table(id_, list(key_columns) + [label(m) for m in metrics], rows, empty=empty)


# --- the template's context ---------------------------------------------------------------------------

def _rule_text(code: str) -> dict:
    from qa.rules import _registry

    try:
        found = _registry.get(code)
    except KeyError:
        return {"title": "", "why": "", "name": ""}
    return {"title": found.title, "why": found.why, "name": found.name}


@dataclass(frozen=True)
class Links:
    """Where the names in a section link to. The report links only inside itself (the default: no
    links but its own anchors); the service (:mod:`qa.serve.pages`) passes its pages' addresses.

    Each attribute is a function of a name returning an address, or None for no link.
    """

    annotator: Callable[[str], str | None] = lambda name: None
    category: Callable[[str], str | None] = lambda name: None
    image: Callable[[str], str | None] = lambda key: None
    rule: Callable[[str], str | None] = lambda code: f"#rule-{code}"


NO_LINKS = Links()
"""The report's links: none but its own anchors."""


def _annotator_cell(links: Links, name, **kw) -> dict:
    return _cell(name, href=links.annotator(str(name)) if _present(name) and name != "" else None, **kw)


def _category_cell(links: Links, name, **kw) -> dict:
    return _cell(name, href=links.category(str(name)) if _present(name) and name != "" else None, **kw)


def overview_section(data: ReportInput, links: Links = NO_LINKS) -> dict:
    """The overview: headline figures, the verdict and its checks, every batch figure."""
    scores = data.scores
    batch = _pivot(scores, "batch").get("", {})
    findings = data.findings if data.findings is not None and len(data.findings) else None
    figures = [{"label": "annotators", "value": str(len(data.annotators))},
               {"label": "images", "value": _fmt(data.meta.get("images"), 0)},
               {"label": "objects", "value": _fmt(data.meta.get("objects"), 0)}]
    for metric in _FIGURES:
        if metric in batch:
            value, n = batch[metric]
            figure = {"label": label(metric), "value": _metric_cell(metric, value)["text"],
                      "title": f"{metric} (batch), over {n}"}
            low, high = batch.get(f"{metric}_ci_low"), batch.get(f"{metric}_ci_high")
            if low is not None and high is not None and not (_isnan(low[0]) or _isnan(high[0])):
                figure["label"] += f" [{low[0]:.2f}, {high[0]:.2f}]"
                figure["title"] += "; a bootstrap interval over images"
            figures.append(figure)
    n_err = int((findings["severity"] == "error").sum()) if findings is not None else 0
    n_warn = int((findings["severity"] == "warning").sum()) if findings is not None else 0
    figures.append({"label": "errors / warnings", "value": f"{n_err} / {n_warn}",
                    "title": "findings of the loaders, the alignment and the rules"})
    verdict = data.verdict
    gate_table = None
    if verdict is not None:
        rows = []
        for r in verdict.get("results", []):
            rows.append({"cls": "" if r.get("passed") else "failed", "cells": [
                _cell(r.get("check") or r.get("metric")), _cell(r.get("scope")), _cell(r.get("key") or ""),
                _cell(r.get("observed")), _cell(r.get("baseline")),
                _cell("pass" if r.get("passed") else "FAIL", cls="ok" if r.get("passed") else "bad"),
                _cell(r.get("message") or "")]})
        rows.sort(key=lambda r: r["cls"] != "failed")
        gate_table = _table("gate-checks", ["check", "scope", "key", "observed", "baseline", "outcome", "why"],
                            rows, empty="The gate had no checks.")
    batch_table = _scope_table("batch-table", scores, "batch", ["scope"], empty="No batch figures.")
    for row in batch_table["rows"]:
        row["cells"][0] = _cell("batch")
    return {"verdict": verdict, "figures": figures, "gate_table": gate_table, "batch_table": batch_table}


def agreement_section(data: ReportInput, links: Links = NO_LINKS) -> dict:
    """Annotator agreement: the matrices, the per-pair and per-annotator tables."""
    from qa.overlay import annotator_colour, hex_colour

    scores = data.scores
    pairs = _pivot(scores, "annotator_pair")
    consensus = _pivot(scores, "annotator_consensus")
    per_annotator = _pivot(scores, "annotator")
    matrices = []
    if len(data.annotators) > 1 and pairs:
        available = {m for v in pairs.values() for m in v}
        boundary_f = sorted(m for m in available if m.startswith("boundary_f_") and m.endswith("px_mean"))
        wanted = [m for m in _MATRIX_METRICS if m in available and not (m == "boundary_f_2px_mean")]
        after = sum(m in wanted for m in ("mask_iou_mean", "image_iou_mean"))  # boundary F after the IoUs
        if "boundary_f_2px_mean" in available:
            wanted.insert(after, "boundary_f_2px_mean")
        elif boundary_f:
            wanted.insert(after, boundary_f[0])
        for metric in wanted:
            matrix_rows = []
            has_consensus = any(metric in consensus.get(a, {}) for a in data.annotators)
            for a in data.annotators:
                cells = []
                for b in data.annotators:
                    if a == b:
                        cells.append({"text": "", "style": "background:#f4f4f4", "title": a, "cls": "diag"})
                        continue
                    value, n = pairs.get("|".join(sorted((a, b))), {}).get(metric, (float("nan"), 0))
                    cells.append({"text": _fmt(value), "style": heat_for(metric, value),
                                  "title": f"{a} vs {b}: {metric} = {_fmt(value, 4)} over {n}"})
                if has_consensus:
                    value, n = consensus.get(a, {}).get(metric, (float("nan"), 0))
                    cells.append({"text": _fmt(value), "style": heat_for(metric, value), "cls": "consensus",
                                  "title": f"{a} vs the consensus: {metric} = {_fmt(value, 4)} over {n}"})
                matrix_rows.append({"name": a, "colour": hex_colour(annotator_colour(data.annotators.index(a))),
                                    "href": links.annotator(a), "cells": cells})
            lo, hi = scale(metric)
            matrices.append({"id": f"matrix-{metric}", "metric": metric, "label": label(metric),
                             "scale": f"red ≤ {lo:g}, green {hi:g}",
                             "columns": list(data.annotators) + (["consensus"] if has_consensus else []),
                             "rows": matrix_rows})
    pair_metrics = _ordered_metrics({m for v in pairs.values() for m in v})
    pair_table = _table(
        "pair-table", ["annotator a", "annotator b"] + [label(m) for m in pair_metrics],
        [{"cells": [_annotator_cell(links, k.split("|")[0]), _annotator_cell(links, k.split("|")[-1])]
          + [_metric_cell(m, v.get(m, (float("nan"), 0))[0], title=f"{m}, n = {v.get(m, (0, 0))[1]}",
                          style=style_for(m, v[m][0]) if m in v else None)
             for m in pair_metrics]} for k, v in sorted(pairs.items())],
        empty="No annotator pairs were compared (the run has one annotator).")
    annotator_rows = []
    extra_metrics = _pick({m for v in per_annotator.values() for m in v}, _ANNOTATOR_COLUMNS)
    consensus_metrics = _pick({m for v in consensus.values() for m in v}, _CONSENSUS_COLUMNS)
    at = data.annotator_table
    base = {r["annotator"]: r for r in at.to_dict("records")} if at is not None and len(at) else {}
    for i, a in enumerate(data.annotators):
        r = base.get(a, {})
        cells = [_annotator_cell(links, a, style=f"border-left: 6px solid {hex_colour(annotator_colour(i))}"),
                 _cell(r.get("format", "")), _cell(r.get("n_images"), 0), _cell(r.get("n_objects"), 0),
                 _cell(r.get("n_findings"), 0)]
        cells += [_metric_cell(m, per_annotator.get(a, {}).get(m, (float("nan"), 0))[0]) for m in extra_metrics]
        cells += [_metric_cell(m, consensus.get(a, {}).get(m, (float("nan"), 0))[0]) for m in consensus_metrics]
        annotator_rows.append({"cells": cells})
    annotator_table = _table(
        "annotator-table", ["annotator", "format", "images", "objects", "findings"]
        + [label(m) for m in extra_metrics] + [f"{label(m)} vs consensus" for m in consensus_metrics],
        annotator_rows)
    annotator_note = "" if per_annotator or consensus else (
        "No per-annotator figures in this run (scores of scope annotator or annotator_consensus): the table "
        "shows counts only.")
    annotator_all = [t for t in (
        _scope_table("annotator-all", scores, "annotator", ["annotator"], empty=""),
        _scope_table("consensus-all", scores, "annotator_consensus", ["annotator vs consensus"], empty=""))
        if t["rows"]]
    return {"matrices": matrices, "pair_table": pair_table, "annotator_table": annotator_table,
            "annotator_note": annotator_note, "annotator_all": annotator_all}


def categories_section(data: ReportInput, links: Links = NO_LINKS) -> dict:
    """Per category: the ``category`` scores, or counts from the object matches when there are none."""
    scores = data.scores
    category_scores = _pivot(scores, "category")
    if category_scores:
        category_table = _scope_table("category-table", scores, "category", ["category"], empty="")
        counts = {}
        if data.category_table is not None and len(data.category_table):
            counts = dict(zip(data.category_table["category"].astype(str), data.category_table["n_objects"]))
        if counts:
            category_table["columns"].insert(1, "objects")
            for row in category_table["rows"]:
                row["cells"].insert(1, _cell(counts.get(row["cells"][0]["text"]), 0))
        category_note = ""
    else:
        category_table = _category_fallback(data)
        category_note = ("This run has no per-category scores (scope category). The table below is counted "
                         "from the object matches: matched pairs with the same label, their mean IoU, and "
                         "objects left unmatched or labelled differently.")
    for row in category_table["rows"]:
        first = row["cells"][0]
        first["href"] = links.category(first["text"])
    return {"category_table": category_table, "category_note": category_note}


def boundaries_section(data: ReportInput, links: Links = NO_LINKS) -> dict:
    """Boundary disagreement: offsets per annotator and category, category-pair boundaries, the
    boundary_disagreement table."""
    from qa.overlay import annotator_colour, hex_colour

    scores = data.scores
    offsets = _pivot(scores, "annotator_category")
    offset_matrix = None
    if offsets:
        cats = sorted({k.split("|", 1)[1] for k in offsets if "|" in k})
        metric = "signed_offset_px_mean" if any("signed_offset_px_mean" in v for v in offsets.values()) else \
            _ordered_metrics({m for v in offsets.values() for m in v})[0]
        rows = []
        for i, a in enumerate(data.annotators):
            cells = [_annotator_cell(links, a, style=f"border-left: 6px solid {hex_colour(annotator_colour(i))}")]
            for c in cats:
                value, n = offsets.get(f"{a}|{c}", {}).get(metric, (float("nan"), 0))
                cells.append(_cell(value, 2, style=style_for(metric, value),
                                   title=f"{a}, {c}: {metric} = {_fmt(value, 3)} over {n}"))
            rows.append({"cells": cells})
        offset_matrix = _table("offset-table", ["annotator"] + cats, rows, filter=False)
        offset_matrix["metric"] = metric
    offset_long = _scope_table("offset-long-table", scores, "annotator_category", ["annotator", "category"],
                               empty="")
    category_pairs = _category_pair_table(scores, links)
    objects_rows, interface_rows = _split_boundary(data.boundary)
    return {"offset_matrix": offset_matrix, "offset_long": offset_long, "category_pair_table": category_pairs,
            "boundary_table": _boundary_table(objects_rows, links),
            "interface_table": _interface_table(interface_rows, links),
            "annotator_category_pairs": _scope_table(
                "annotator-category-pair-table", scores, "annotator_category_pair",
                ["annotator", "category a", "category b"], empty="")}


_SHOWN_SCOPES = {"batch", "annotator_pair", "annotator", "annotator_consensus", "category", "annotator_category",
                 "category_pair", "annotator_category_pair", "image", "image_pair"}
"""Scopes the sections above show; the others go to "Other figures"."""


def other_section(data: ReportInput, links: Links = NO_LINKS) -> dict:
    """Every scope of the scores table no other section shows (by object size, occlusion, ...)."""
    scores = data.scores
    other = []
    if scores is not None and len(scores):
        for scope in sorted(set(scores["scope"].astype(str)) - _SHOWN_SCOPES):
            parts = scope.split("_")
            other.append({"scope": scope, "table": _scope_table(
                f"scope-{scope}", scores, scope, parts, empty="")})
    return {"other_scopes": other}


def violations_section(data: ReportInput, links: Links = NO_LINKS) -> dict:
    """Rule violations: one row per rule, and examples under each with the rule's explanation."""
    findings = data.findings if data.findings is not None and len(data.findings) else None
    rule_rows, groups = [], []
    if findings is not None:
        for code, part in findings.groupby("code", sort=True):
            text = _rule_text(code)
            severity = str(part["severity"].iloc[0])
            per = part["annotator"].fillna("(batch)").value_counts()
            rule_rows.append({"cells": [
                _cell(code, href=links.rule(code)), _cell(text["title"]),
                _cell(severity, cls=f"sev-{severity}"), _cell(len(part), 0),
                _cell(", ".join(f"{a}: {n}" for a, n in per.items()))]})
            examples = []
            for f in part.head(EXAMPLES_PER_RULE).to_dict("records"):
                examples.append({"cells": [
                    _annotator_cell(links, f.get("annotator") or ""),
                    _cell(f.get("image") or "", href=links.image(f["image"]) if f.get("image") else None),
                    _cell(_where(f.get("file"), f.get("source_section"), f.get("source_index"), f.get("source_id"))),
                    _cell(f.get("message") or ""), _cell(f.get("value")), _cell(f.get("limit_value"))]})
            groups.append({"code": code, "title": text["title"], "name": text["name"], "why": text["why"],
                           "severity": severity, "count": len(part), "shown": len(examples),
                           "table": _table(f"rule-{code}-table", ["annotator", "image", "where", "message",
                                                                  "value", "limit"],
                                           examples)})
    order = {"error": 0, "warning": 1, "info": 2}
    groups.sort(key=lambda g: (order.get(g["severity"], 3), -g["count"], g["code"]))
    rule_table = _table("rule-table", ["rule", "title", "severity", "count", "by annotator"], rule_rows,
                        empty="No rule violations or format findings in this run.")
    return {"rule_table": rule_table, "violation_groups": groups}


def review_section(data: ReportInput, links: Links = NO_LINKS) -> dict:
    """The review queue: images and objects to look at first, worst first."""
    return {"review_table": _review_table(data, links),
            "review_total": 0 if data.review_queue is None else len(data.review_queue)}


def worst_section(data: ReportInput, links: Links = NO_LINKS) -> dict:
    """The worst images: the overlay pictures (:func:`gallery`) and their legend."""
    from qa.overlay import DISAGREEMENT_COLOUR, annotator_colour, hex_colour

    legend = [{"name": a, "colour": hex_colour(annotator_colour(i))} for i, a in enumerate(data.annotators)]
    return {"legend": legend, "disagreement_colour": hex_colour(DISAGREEMENT_COLOUR), "gallery": data.gallery,
            "pictures_note": data.pictures_note}


def images_section(data: ReportInput, links: Links = NO_LINKS) -> dict:
    """Per image: the images worst first, and their annotator pairs (the :data:`IMAGE_ROWS` worst)."""
    image_rows = _image_rows(data, links)
    image_table = _table("image-table", image_rows["columns"], image_rows["rows"],
                         empty="No images.")
    ip = data.image_pairs
    image_note = ""
    if image_rows["images"] > len(image_rows["rows"]):
        image_note = (f"The {len(image_rows['rows']):,} worst of {image_rows['images']:,} images are listed, with "
                      "their annotator pairs. Every image's figures are in the store (tables images and "
                      "image_pair_scores) and in the Parquet tables of qa run --out.")
        if ip is not None:
            ip = ip[ip["image"].astype(str).isin(image_rows["listed"]).to_numpy()]
    pair_rows, ip_columns = [], []
    if ip is not None and len(ip):
        ip_columns = [c for c in ("mask_iou_mean", "boundary_f_2px_mean", "boundary_iou_mean", "pq", "matched",
                                  "missing", "extra", "label_disagreements") if c in ip.columns]
        for r in ip[["image", "annotator_a", "annotator_b"] + ip_columns].itertuples(index=False):
            pair_rows.append({"cells": [_cell(r[0], href=links.image(str(r[0]))), _annotator_cell(links, r[1]),
                                        _annotator_cell(links, r[2])]
                              + [_metric_cell(c, v) for c, v in zip(ip_columns, r[3:])]})
    image_pair_table = _table("image-pair-table", ["image", "annotator a", "annotator b"]
                              + [label(c) for c in ip_columns], pair_rows,
                              empty="No image pairs were compared.")
    return {"image_table": image_table, "image_pair_table": image_pair_table, "image_note": image_note}


def settings_section(data: ReportInput, links: Links = NO_LINKS) -> dict:
    """The inputs (fingerprints) and every setting of the run."""
    input_table = _table("input-table", ["annotator", "format", "path", "sha256", "bytes"],
                         [{"cells": [_annotator_cell(links, i.get("annotator")), _cell(i.get("format")),
                                     _cell(i.get("path")),
                                     _cell((i.get("sha256") or "")[:16], title=i.get("sha256")),
                                     _cell(i.get("bytes"), 0)]} for i in data.inputs], filter=False,
                         empty="No inputs recorded.")
    settings_rows = [{"cells": [_cell(k), _cell(v if isinstance(v, str) else json.dumps(v, default=str))]}
                     for k, v in sorted(data.settings.items()) if v is not None]
    settings_rows += [{"cells": [_cell(f"report.{k}"), _cell(str(v))]} for k, v in data.report_settings.items()]
    settings_table = _table("settings-table", ["setting", "value"], settings_rows, filter=False)
    return {"input_table": input_table, "settings_table": settings_table}


REFERENCE_PICTURES = 12
"""Worst objects against the reference the report draws (at most)."""

_REFERENCE_COLUMNS = ("images", "f1", "precision", "recall", "label_accuracy", "mask_iou_mean", "image_iou_mean",
                      "boundary_f_2px_mean", "boundary_iou_mean", "nsd_2px_mean", "signed_offset_px_mean", "pq")


def _reference_order(rows):
    """Rows of :attr:`qa.analytics.reference.ReferenceScores.objects` in picture order: the matched pairs of
    lowest IoU first (both outlines to compare), then the unmatched objects, largest first."""
    import numpy as np

    status = rows["status"].astype(str).to_numpy()
    iou = rows["iou"].to_numpy(dtype=np.float64)
    area = np.fmax(rows["area"].to_numpy(dtype=np.float64, na_value=np.nan),
                   rows["reference_area"].to_numpy(dtype=np.float64, na_value=np.nan))
    return np.lexsort((-np.nan_to_num(area), np.where(status == "matched", np.nan_to_num(iou), 2.0)))


def reference_pictures(batch, rows, *, exports: dict | None = None, pictures: int = REFERENCE_PICTURES,
                       max_side: int = 320, max_pixels: int | None = None) -> list[dict]:
    """The worst objects against the reference, one picture each: the annotator's outline solid, the
    reference's dashed, zoomed in on the two.

    Parameters
    ----------
    batch : Batch
    rows : pandas.DataFrame
        :attr:`qa.analytics.reference.ReferenceScores.objects` (``status``, ``iou``, ``annotator``,
        ``object_index``, ``reference``, ``reference_index``, areas).
    exports : dict, optional
        Exports not in the batch that a reference names (each annotator's consensus of the others).

    Returns
    -------
    list of dict
        ``uri``, ``width``, ``height``, ``image``, ``annotator``, ``reference``, ``status``, ``caption``.
    """
    import numpy as np
    import pandas as pd

    from qa.overlay import (annotator_colour, annotator_crops, data_uri, encode_image, focus_window,
                            hex_colour, load_background, render_overlay)

    if rows is None or not len(rows) or pictures <= 0:
        return []
    exports = {**batch.exports, **(exports or {})}
    status = rows["status"].astype(str).to_numpy()
    iou = rows["iou"].to_numpy(dtype=np.float64)
    order = _reference_order(rows)
    out = []
    for k in order[:pictures]:
        row = rows.iloc[int(k)]
        image = batch.images.get(str(row["image"]))
        if image is None:
            continue
        h, w = int(image.height), int(image.width)
        layers = []
        for name, index in ((row["annotator"], row["object_index"]), (row["reference"], row["reference_index"])):
            export = exports.get(str(name))
            if export is None or index is None or bool(pd.isna(index)):
                layers.append([])
                continue
            obj = export.objects[int(index)]
            if obj.kind == "segment":
                layers.append([])
                continue
            layers.append([(c, o, 1) for c, o, _ in annotator_crops([obj], h, w)])
        if not any(layers):
            continue
        window = focus_window([(x0, y0, x0 + c.shape[1], y0 + c.shape[0]) for layer in layers
                               for c, (x0, y0), _ in layer], h, w, max_share=1.0)
        background = None
        path = _image_file(batch, str(row["image"]))
        if path is not None:
            background, _ = load_background(path, h, w, max_side=max_side, max_pixels=max_pixels, window=window)
        rgb = render_overlay(h, w, layers, background=background, max_side=max_side, window=window, dashed=(1,))
        what = {"matched": f"matched, IoU {iou[k]:.2f}", "missed": "missed: only the reference drew it",
                "extra": "extra: the reference has no such object"}.get(status[k], status[k])
        out.append({"uri": data_uri(encode_image(rgb, lossless=background is None)), "width": int(rgb.shape[1]),
                    "height": int(rgb.shape[0]), "image": str(row["image"]), "annotator": str(row["annotator"]),
                    "reference": str(row["reference"]), "status": status[k], "caption": what,
                    "colours": [hex_colour(annotator_colour(0)), hex_colour(annotator_colour(1))]})
    return out


def reference_section(data: ReportInput, links: Links = NO_LINKS) -> dict:
    """The "Against the reference" section: one row per annotator (F1, IoU, boundary F, PQ, their
    intervals, images scored) from the scores table, and the worst objects' pictures; ``reference`` is None
    when the run had no reference (the section is left out)."""
    reference = (data.settings or {}).get("reference")
    if not reference:
        return {"reference": None}
    per = _pivot(data.scores, "annotator")
    scored = {k: v for k, v in per.items() if "f1" in v}
    available = {m for v in scored.values() for m in v}
    metrics = [m for m in _REFERENCE_COLUMNS if m in available]
    rows = []
    for name in sorted(scored):
        figures = scored[name]
        cells = [_cell(name)]
        for metric in metrics:
            value = figures[metric][0]
            cell = _metric_cell(metric, value)
            low, high = figures.get(f"{metric}_ci_low"), figures.get(f"{metric}_ci_high")
            if low is not None and high is not None and not (_isnan(low[0]) or _isnan(high[0])):
                cell["title"] = f"95% bootstrap interval over images: {low[0]:.3f} to {high[0]:.3f}"
            cells.append(cell)
        low, high = figures.get("f1_ci_low"), figures.get("f1_ci_high")
        cells.append(_cell("-" if low is None or high is None or _isnan(low[0]) else f"{low[0]:.3f} – {high[0]:.3f}"))
        rows.append({"cells": cells})
    table = _table("reference-table", ["annotator", *[label(m) for m in metrics], "F1 interval (95%)"], rows,
                   empty="No annotator was scored against the reference (no image in common with it).")
    return {"reference": {"reference": reference, "table": table, "pictures": data.reference_pictures,
                          "note": data.reference_note}}


SECTIONS = (("overview", "Overview", overview_section), ("reference", "Against the reference", reference_section),
            ("agreement", "Agreement", agreement_section),
            ("categories", "Categories", categories_section), ("boundaries", "Boundaries", boundaries_section),
            ("other", "Other figures", other_section), ("violations", "Violations", violations_section),
            ("review", "Review queue", review_section), ("worst", "Worst images", worst_section),
            ("images", "Per image", images_section), ("settings", "Settings and inputs", settings_section))
"""Every section of the report in page order: its anchor, its title in the navigation, and its builder
(a pure function of the run's tables). Its markup is ``reports/templates/sections/<anchor>.html.j2``;
the report and the service's run page render the same builders through the same markup."""


def section_context(data: ReportInput, ids=None, *, links: Links = NO_LINKS) -> dict:
    """The context of some sections (``ids``, default all) merged into one dict, with ``sections``:
    the navigation, one entry per section that has something to show ("Other figures" only when the
    run has other scopes, "Against the reference" only when it had a reference)."""
    wanted = [s for s in SECTIONS if ids is None or s[0] in ids]
    context: dict = {}
    for _, _, builder in wanted:
        context.update(builder(data, links))
    context["sections"] = [{"id": i, "title": t} for i, t, _ in wanted
                           if (i != "other" or context.get("other_scopes")) and (i != "reference"
                                                                                 or context.get("reference"))]
    return context


def build_context(data: ReportInput, *, links: Links = NO_LINKS) -> dict:
    """The template's context: every table as rows of display cells, every text still unescaped.

    It is :func:`section_context` of every section (one builder per section), with the report's
    title, annotators and run details.
    """
    context = section_context(data, links=links)
    return {
        "title": data.title, "annotators": data.annotators,
        "meta": {"run_id": "", "seq": None, "name": None, "description": None, "started": "", "tool_version": "",
                 "stored": None, **data.meta},
        **context,
    }


_ANNOTATOR_COLUMNS = ("mask_iou_mean", "boundary_f_2px_mean", "signed_offset_px_mean", "missing_share",
                      "extra_share", "label_disagreements", "occluded_kappa")
_CONSENSUS_COLUMNS = ("mask_iou_mean", "boundary_f_2px_mean", "sensitivity_mean", "specificity_mean",
                      "missing_share")


def _pick(available: set, preferred) -> list[str]:
    """The preferred metrics that are there, in order; every metric when none of them is."""
    chosen = [m for m in preferred if m in available]
    return chosen if chosen or not available else _ordered_metrics(available)


def _category_pair_table(scores, links: Links = NO_LINKS) -> dict:
    """The ``category_pair`` scores, the most disputed boundary first.

    "disputed px" is the boundary's length times the share of it farther apart than the tolerance (the
    smallest ``disagree_<t>_share`` at or above 2 px): how much of the boundary the annotators place
    differently, so a long boundary with a small share and a short one with a large share compare.
    """
    pivot = _pivot(scores, "category_pair")
    empty = ("No category-pair boundary figures in this run (scores of scope category_pair; they come from "
             "panoptic or semantic labels, where two categories share an outline).")
    if not pivot:
        return _table("category-pair-table", [], [], empty=empty)
    metrics = {m for v in pivot.values() for m in v}
    shares = sorted((float(m[len("disagree_"):-len("px_share")]), m) for m in metrics
                    if m.startswith("disagree_") and m.endswith("px_share"))
    share = next((m for t, m in shares if t >= 2), shares[-1][1] if shares else None)
    order = (["boundary_px"] if "boundary_px" in metrics else []) + [m for _, m in shares] + sorted(
        m for m in metrics if m.startswith("boundary_f_")) + sorted(
        m for m in metrics if m not in ("boundary_px",) and not m.startswith(("disagree_", "boundary_f_")))
    rows = []
    for key, figures in pivot.items():
        a, _, b = key.partition("|")
        length = figures.get("boundary_px", (float("nan"), 0))[0]
        disputed = length * figures[share][0] if share in figures else float("nan")
        cells = [_category_cell(links, a), _category_cell(links, b), _cell(disputed, 0)]
        for m in order:
            value = figures.get(m, (float("nan"), 0))[0]
            style = style_for(m, value)
            cells.append(_metric_cell(m, value, style=style, title=f"{m}, n = {figures.get(m, (0, 0))[1]}"))
        rows.append((-disputed if not _isnan(disputed) else math.inf, key, {"cells": cells}))
    rows.sort(key=lambda r: (r[0], r[1]))
    label_share = f"disputed px ({share[len('disagree_'):-len('_share')]})" if share else "disputed px"
    return _table("category-pair-table", ["category a", "category b", label_share] + [label(m) for m in order],
                  [r[2] for r in rows], empty=empty)


def _split_boundary(boundary):
    """The boundary_disagreement rows of matched objects, and those of category-pair interfaces."""
    if boundary is None or not len(boundary):
        return None, None
    if "kind" not in boundary:
        return boundary, None
    kind = boundary["kind"].astype(str)
    objects, interface = boundary[kind != "interface"], boundary[kind == "interface"]
    return (objects if len(objects) else None), (interface if len(interface) else None)


def _interface_table(rows, links: Links = NO_LINKS) -> dict:
    """Category-pair boundaries per annotator pair (boundary_disagreement rows of kind 'interface')."""
    if rows is None or not len(rows):
        return _table("interface-table", [], [], empty="")
    wanted = [c for c in ("boundary_px", "beyond_tolerance_share", "tolerance_px", "signed_offset_px_mean",
                          "boundary_f_1px_mean", "boundary_f_2px_mean", "boundary_f_4px_mean")
              if c in rows.columns and rows[c].notna().any()]
    out = []
    for r in rows.to_dict("records"):
        cells = [_annotator_cell(links, r["annotator_a"]), _annotator_cell(links, r["annotator_b"]),
                 _category_cell(links, r["category_a"]), _category_cell(links, r["category_b"])]
        for c in wanted:
            style = style_for(c, r.get(c))
            cells.append(_metric_cell(c, r.get(c), style=style))
        if "gains" in rows.columns:
            cells.append(_cell(r.get("gains") if _present(r.get("gains")) else ""))
        out.append({"cells": cells})
    columns = ["annotator a", "annotator b", "category a", "category b"] + [label(c) for c in wanted] \
        + (["gains in a"] if "gains" in rows.columns else [])
    return _table("interface-table", columns, out)


def _review_table(data: ReportInput, links: Links = NO_LINKS) -> dict:
    """The first :data:`REVIEW_ROWS` rows of the review queue, with where each object is."""
    queue = data.review_queue
    if queue is None or not len(queue):
        return _table("review-table", [], [], empty=(
            "No review queue in this run (the analytics stage makes one when two or more annotators are "
            "compared)." if queue is None else "Nothing to review: no image or object scored 0.25 or worse."))
    pictured = {g["image"]: g["rank"] for g in data.gallery}
    rows = []
    for r in queue.head(REVIEW_ROWS).to_dict("records"):
        image = r.get("image") if _present(r.get("image")) else ""
        pic = pictured.get(image)
        rows.append({"cells": [
            _cell(r.get("rank"), 0), _cell(r.get("kind")), _cell(r.get("reason")),
            _cell(r.get("score"), 2, style=heat(1 - float(r["score"]), 0.0, 1.0) if _present(r.get("score")) else None),
            _cell(image, href=f"#pic-{pic}" if pic else (links.image(image) if image else None)),
            # an image's row names its worst pair ('a|b'), an object's row its annotator
            (_cell if r.get("kind") == "image" else partial(_annotator_cell, links))(
                r.get("annotator") if _present(r.get("annotator")) else ""),
            _category_cell(links, r.get("category") if _present(r.get("category")) else ""),
            _cell(r.get("detail") or ""),
            _cell(_where(r.get("file"), None, r.get("source_index"), r.get("source_id")))]})
    return _table("review-table", ["rank", "kind", "reason", "score", "image", "annotator", "category", "detail",
                                   "where"], rows)


def _category_fallback(data: ReportInput) -> dict:
    """Per category, counted from the object matches (when the run has no ``category`` scores)."""
    counts = {}
    if data.category_table is not None and len(data.category_table):
        counts = dict(zip(data.category_table["category"].astype(str), data.category_table["n_objects"]))
    op = data.object_pairs
    stats: dict[str, dict] = {c: {"matched": 0, "iou": [], "unmatched": 0, "relabelled": 0, "bf": []}
                              for c in counts}
    if op is not None and len(op):
        status = op["status"].astype(str)
        same = (status == "matched") & (op["category_a"].astype(str) == op["category_b"].astype(str))
        for c, part in op[same].groupby(op.loc[same, "category_a"].astype(str)):
            s = stats.setdefault(c, {"matched": 0, "iou": [], "unmatched": 0, "relabelled": 0, "bf": []})
            s["matched"] = len(part)
            s["iou"] = part["iou"].dropna().tolist()
            if "boundary_f_2px" in part:
                s["bf"] = part["boundary_f_2px"].dropna().tolist()
        for side, st in (("category_a", "missing"), ("category_b", "extra")):
            sel = status == st
            for c, n in op.loc[sel, side].astype(str).value_counts().items():
                stats.setdefault(c, {"matched": 0, "iou": [], "unmatched": 0, "relabelled": 0, "bf": []})
                stats[c]["unmatched"] += int(n)
        relabel = (status == "matched") & ~same
        for side in ("category_a", "category_b"):
            for c, n in op.loc[relabel, side].astype(str).value_counts().items():
                stats.setdefault(c, {"matched": 0, "iou": [], "unmatched": 0, "relabelled": 0, "bf": []})
                stats[c]["relabelled"] += int(n)
    rows = []
    has_bf = any(s["bf"] for s in stats.values())
    for c in sorted(stats):
        s = stats[c]
        iou = sum(s["iou"]) / len(s["iou"]) if s["iou"] else float("nan")
        cells = [_cell(c), _cell(counts.get(c), 0), _cell(s["matched"], 0), _cell(iou, style=heat(iou))]
        if has_bf:
            bf = sum(s["bf"]) / len(s["bf"]) if s["bf"] else float("nan")
            cells.append(_cell(bf, style=heat(bf)))
        cells += [_cell(s["unmatched"], 0), _cell(s["relabelled"], 0)]
        rows.append({"cells": cells})
    columns = ["category", "objects", "matched pairs", label("mask_iou_mean")] + (
        [label("boundary_f_2px_mean")] if has_bf else []) \
        + ["unmatched objects", "relabelled objects"]
    return _table("category-table", columns, rows, empty="No categories in this run.")


def _boundary_table(boundary, links: Links = NO_LINKS) -> dict:
    """The boundary_disagreement table: one row per annotator pair and category pair."""
    if boundary is None or not len(boundary):
        return _table("boundary-table", [], [], empty="No boundary figures in this run (the boundary metrics "
                                                      "need matched object pairs).")
    wanted = [c for c in ("signed_offset_px_mean", "boundary_iou_mean", "boundary_f_1px_mean",
                          "boundary_f_2px_mean", "boundary_f_4px_mean", "assd_px_mean", "hd95_px_mean",
                          "mask_iou_mean") if c in boundary.columns]
    rows = []
    for r in boundary.to_dict("records"):
        cells = [_annotator_cell(links, r["annotator_a"]), _annotator_cell(links, r["annotator_b"]),
                 _category_cell(links, r["category_a"]), _category_cell(links, r["category_b"]),
                 _cell(r.get("n_pairs"), 0)]
        for c in wanted:
            value = r.get(c)
            style = style_for(c, value)
            cells.append(_metric_cell(c, value, style=style))
        rows.append({"cells": cells})
    return _table("boundary-table", ["annotator a", "annotator b", "category a", "category b", "pairs"]
                  + [label(c) for c in wanted], rows)


IMAGE_ROWS = 1_000
"""Images the report lists in its per-image tables, worst first: a page of every image of a 20,000-image
batch was 52 MB of HTML, and making it 456 MB of the ``qa run`` command's peak; every image's figures
are in the store and in ``qa run --out``'s Parquet tables."""


def _image_rows(data: ReportInput, links: Links = NO_LINKS) -> dict:
    """One row per image, the :data:`IMAGE_ROWS` worst: agreement, worst pair, counts, findings, a link
    to its picture; ``images`` is how many the run has."""
    ranked = rank_images(data.image_pairs, [] if data.image_table is None else data.image_table["image"])
    images = len(ranked)
    ranked = ranked.head(IMAGE_ROWS)
    image_scores = _pivot(data.scores, "image")
    extra_metrics = _ordered_metrics({m for v in image_scores.values() for m in v})
    n_findings = {}
    if data.findings is not None and len(data.findings):
        n_findings = data.findings["image"].dropna().astype(str).value_counts().to_dict()
    info = {}
    if data.image_table is not None and len(data.image_table):
        info = {str(r["image"]): r for r in data.image_table.to_dict("records")}
    pictured = {g["image"]: g["rank"] for g in data.gallery}
    rows = []
    for rank, r in enumerate(ranked.to_dict("records"), start=1):
        image = r["image"]
        i = info.get(image, {})
        pic = pictured.get(image)
        cells = [_cell(image, href=f"#pic-{pic}" if pic else links.image(image)),
                 _cell(r.get("worst_pair") or ""),
                 _cell(r.get("agreement"), style=heat(r.get("agreement"))),
                 _cell(r.get("worst_agreement"), style=heat(r.get("worst_agreement"))),
                 _cell(r.get("mask_iou_mean")), _cell(r.get("matched"), 0), _cell(r.get("missing"), 0),
                 _cell(r.get("extra"), 0), _cell(r.get("label_disagreements"), 0),
                 _cell(i.get("n_annotators"), 0), _cell(i.get("n_objects"), 0),
                 _cell(n_findings.get(image, 0), 0)]
        cells += [_metric_cell(m, image_scores.get(image, {}).get(m, (float("nan"), 0))[0]) for m in extra_metrics]
        rows.append({"cells": cells})
    columns = ["image", "worst pair", "agreement", "worst pair agreement", label("mask_iou_mean"), "matched", "missing",
               "extra", "relabelled", "annotators", "objects", "findings"] + [label(m) for m in extra_metrics]
    return {"columns": columns, "rows": rows, "images": images, "listed": set(ranked["image"].astype(str))}


def render_html(data: ReportInput) -> str:
    """The report as one HTML string. Every value from the data is escaped."""
    import jinja2
    from markupsafe import Markup

    folder = templates_dir()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), autoescape=True,
                             trim_blocks=False)
    template = env.get_template(TEMPLATE)
    context = build_context(data)
    # Our own CSS and JavaScript are trusted; a "</" sequence would still end the element early.
    css = (folder / "report.css").read_text(encoding="utf-8").replace("</", "<\\/")
    js = (folder / "report.js").read_text(encoding="utf-8").replace("</", "<\\/")
    return template.render(css=Markup(css), js=Markup(js), **context)


def write_report(data: ReportInput, path) -> Path:
    """Render the report and write it to ``path`` (UTF-8, folders created); return the path.

    Raises
    ------
    ConfigError
        The file cannot be written (the message names it).
    """
    from qa.errors import ConfigError

    path = Path(path)
    html = render_html(data)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the report: {exc.strerror or exc}", path=path) from None
    return path
