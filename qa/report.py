"""Render one self-contained HTML report per run (jinja2, autoescape on).

The report is built from plain tables — the same ones the store keeps — so ``qa run`` (from memory) and
``qa report RUN`` (from the store) draw the same page. Images are data URIs, CSS and JavaScript are
inline, and a Content-Security-Policy forbids any network request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa._resources import templates_dir

TEMPLATE = "report.html.j2"


@dataclass
class ReportInput:
    """Everything a report shows; every table is optional.

    ``scores`` follows the long Scores table (scope, key, metric, value, n); ``findings`` has the
    columns of the store's findings table; ``image_pairs`` one row per image and annotator pair;
    ``gallery`` the worst images as dicts with ``image``, ``reason``, ``uri``, ``width``, ``height``.
    """

    title: str
    annotators: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    verdict: dict | None = None
    scores: Any = None
    findings: Any = None
    image_pairs: Any = None
    gallery: list[dict] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    rule_docs: dict[str, dict] = field(default_factory=dict)
    matrix_metric: str = "mask_iou_mean"


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if value.is_integer() and abs(value) < 1e9 and digits == 0:
            return str(int(value))
        return f"{value:.{digits}f}"
    return str(value)


def _cell(value, digits: int = 3, *, style: str | None = None, cls: str | None = None) -> dict:
    sort = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        sort = "" if (isinstance(value, float) and math.isnan(value)) else repr(float(value))
    return {"text": _fmt(value, digits), "sort": sort, "style": style, "cls": cls}


def _table(id_, title, columns, rows, *, text_columns=1, empty=None, filter=True, cls=None) -> dict:
    return {"id": id_, "title": title, "columns": columns, "rows": rows, "text_columns": text_columns,
            "empty": empty, "filter": filter and len(rows) > 8, "cls": cls}


def heat(value: float, lo: float = 0.0, hi: float = 1.0) -> str:
    """Background colour for an agreement value: red (low) through yellow to green (high)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "background:#eee"
    t = min(1.0, max(0.0, (value - lo) / (hi - lo) if hi > lo else 1.0))
    # two linear segments: (198,40,40) -> (250,220,90) -> (46,160,67)
    if t < 0.5:
        a, b, u = (198, 40, 40), (250, 220, 90), t / 0.5
    else:
        a, b, u = (250, 220, 90), (46, 160, 67), (t - 0.5) / 0.5
    r, g, bl = (round(x + (y - x) * u) for x, y in zip(a, b))
    return f"background:rgb({r},{g},{bl})"


def _rows_of(df, scope):
    if df is None or len(df) == 0:
        return None
    part = df[df["scope"] == scope]
    return part if len(part) else None


def _pivot(df, scope):
    part = _rows_of(df, scope)
    if part is None:
        return {}
    out: dict[str, dict[str, tuple[float, int]]] = {}
    for key, metric, value, n in zip(part["key"], part["metric"], part["value"], part["n"]):
        out.setdefault(str(key), {})[str(metric)] = (float(value), int(n))
    return out


_PAIR_METRICS = [("pq", "PQ"), ("mask_iou_mean", "mean IoU"), ("boundary_f_2px_mean", "boundary F 2px"),
                 ("boundary_iou_mean", "boundary IoU"), ("matched", "matched"), ("missing", "missing"),
                 ("extra", "extra"), ("label_disagreements", "label disagreements")]


def build_context(data: ReportInput) -> dict:
    """The template's context: every table as rows of display cells, every text still unescaped."""
    scores = data.scores
    pairs = _pivot(scores, "annotator_pair")
    batch = _pivot(scores, "batch").get("", {})

    figures = []
    for metric, label, digits in [("pq", "PQ", 3), ("mask_iou_mean", "mean IoU", 3),
                                  ("boundary_f_2px_mean", "boundary F @2px", 3), ("alpha", "Krippendorff's α", 3),
                                  ("missing_share", "missing share", 3)]:
        if metric in batch:
            figures.append({"label": label, "value": _fmt(batch[metric][0], digits)})
    figures.append({"label": "images", "value": str(data.meta.get("images", "–"))})
    findings = data.findings
    n_err = int((findings["severity"] == "error").sum()) if findings is not None and len(findings) else 0
    n_warn = int((findings["severity"] == "warning").sum()) if findings is not None and len(findings) else 0
    figures.append({"label": "errors / warnings", "value": f"{n_err} / {n_warn}"})

    gate_table = None
    if data.verdict is not None:
        rows = []
        for r in data.verdict.get("results", []):
            bound = r.get("bound")
            bound_text = " ".join(f"{k} {v}" for k, v in bound.items()) if isinstance(bound, dict) else _fmt(bound)
            rows.append({"cls": "" if r.get("passed") else "failed", "cells": [
                _cell(r.get("metric")), _cell(r.get("scope")), _cell(r.get("key") or ""),
                _cell(r.get("observed")), _cell(bound_text), _cell("pass" if r.get("passed") else "FAIL")]})
        gate_table = _table("gate-checks", "gate checks", ["metric", "scope", "key", "observed", "bound", "outcome"],
                            rows, text_columns=3)

    # Agreement matrix: one metric, annotator x annotator, diagonal 1.
    metric = data.matrix_metric
    matrix_rows = []
    if len(data.annotators) > 1 and pairs:
        for a in data.annotators:
            cells = []
            for b in data.annotators:
                if a == b:
                    cells.append({"text": "—", "style": "background:#f0f0f0", "title": a})
                    continue
                value, n = pairs.get("|".join(sorted((a, b))), {}).get(metric, (float("nan"), 0))
                cells.append({"text": _fmt(value), "style": heat(value), "title": f"{a} vs {b}: {metric} over {n}"})
            matrix_rows.append({"name": a, "cells": cells})
    matrix = {"annotators": data.annotators, "rows": matrix_rows,
              "why": f"{metric.replace('_', ' ')} between each pair of annotators (matched objects). "
                     "Green is high agreement, red low."}
    pair_rows = []
    for key, m in sorted(pairs.items()):
        pair_rows.append({"cells": [_cell(key.replace("|", " vs "))]
                          + [_cell(m[k][0], 0 if k in ("matched", "missing", "extra", "label_disagreements") else 3)
                             if k in m else _cell(None) for k, _ in _PAIR_METRICS]})
    pair_table = _table("pairs", "annotator pairs", ["pair"] + [label for _, label in _PAIR_METRICS], pair_rows)

    cats = _pivot(scores, "category")
    cat_metrics = sorted({m for v in cats.values() for m in v})
    category_table = _table(
        "category-table", "categories", ["category"] + cat_metrics,
        [{"cells": [_cell(k)] + [_cell(v[m][0]) if m in v else _cell(None) for m in cat_metrics]}
         for k, v in sorted(cats.items())],
        empty="No per-category figures in this run.")

    offsets = _pivot(scores, "annotator_category")
    offset_metrics = sorted({m for v in offsets.values() for m in v})
    offset_table = _table(
        "offset-table", "offsets", ["annotator | category"] + offset_metrics,
        [{"cells": [_cell(k.replace("|", " | "))] + [_cell(v[m][0], 2) if m in v else _cell(None) for m in offset_metrics]}
         for k, v in sorted(offsets.items())],
        empty="No boundary offsets in this run.")
    cpairs = _pivot(scores, "category_pair")
    cpair_metrics = sorted({m for v in cpairs.values() for m in v})
    category_pair_table = _table(
        "category-pair-table", "category pairs", ["category pair"] + cpair_metrics,
        [{"cells": [_cell(k.replace("|", " | "))] + [_cell(v[m][0], 2) if m in v else _cell(None) for m in cpair_metrics]}
         for k, v in sorted(cpairs.items())],
        empty="No category-pair boundaries in this run (they need panoptic or semantic labels).")

    rule_rows, groups = [], []
    if findings is not None and len(findings):
        by_code = findings.groupby("code", sort=True)
        for code, part in by_code:
            doc = data.rule_docs.get(code, {})
            sev = part["severity"].iloc[0]
            per_annotator = part["annotator"].fillna("").value_counts()
            rule_rows.append({"cells": [_cell(code), _cell(doc.get("title", "")), _cell(sev, cls=f"sev-{sev}"),
                                        _cell(int(len(part)), 0),
                                        _cell(", ".join(f"{a or 'batch'}: {n}" for a, n in per_annotator.items()))]})
            example_rows = []
            for _, f in part.head(50).iterrows():
                place = f.get("file") or ""
                if f.get("where"):
                    place = f"{place}:{f['where']}"
                example_rows.append({"cells": [_cell(f.get("annotator") or ""), _cell(f.get("image") or ""),
                                               _cell(place), _cell(f.get("message") or "")]})
            groups.append({"code": code, "title": doc.get("title", ""), "why": doc.get("why", ""),
                           "count": len(part),
                           "table": _table(f"rule-{code}", code, ["annotator", "image", "where", "message"],
                                           example_rows, text_columns=4)})
    rule_table = _table("rule-table", "rules", ["rule", "title", "severity", "count", "by annotator"], rule_rows,
                        text_columns=3, empty="No rule violations or format findings.")

    image_rows = []
    ip = data.image_pairs
    if ip is not None and len(ip):
        cols = [c for c in ("mask_iou_mean", "boundary_f_2px_mean", "pq", "matched", "missing", "extra",
                            "label_disagreements") if c in ip.columns]
        for _, r in ip.iterrows():
            image_rows.append({"cells": [_cell(r["image"]), _cell(f"{r['annotator_a']} vs {r['annotator_b']}")]
                               + [_cell(r[c], 0 if c in ("matched", "missing", "extra", "label_disagreements") else 3)
                                  for c in cols]})
        image_cols = ["image", "pair"] + cols
    else:
        image_cols = ["image", "pair"]
    image_table = _table("image-table", "images", image_cols, image_rows, text_columns=2,
                         empty="No image pairs were compared.")

    input_table = _table("input-table", "inputs", ["annotator", "format", "path", "fingerprint"],
                         [{"cells": [_cell(i.get("annotator")), _cell(i.get("format")), _cell(i.get("path")),
                                     _cell((i.get("fingerprint") or "")[:16])]} for i in data.inputs],
                         text_columns=4, filter=False)
    settings_table = _table("settings-table", "settings", ["setting", "value"],
                            [{"cells": [_cell(k), _cell(str(v))]} for k, v in sorted(data.settings.items())],
                            text_columns=2, filter=False)
    from qa.overlay import DISAGREEMENT_COLOUR, annotator_colour, hex_colour

    sections = [("overview", "Overview"), ("matrix", "Agreement"), ("categories", "Categories"),
                ("boundaries", "Boundaries"), ("violations", "Violations"), ("worst", "Worst images"),
                ("images", "Per image"), ("settings", "Settings")]
    return {
        "title": data.title,
        "meta": {"run_id": None, "started": None, "tool_version": "", "images": "–", "objects": "–",
                 **data.meta, "annotators": data.annotators},
        "verdict": data.verdict,
        "figures": figures,
        "gate_table": gate_table,
        "matrix": matrix,
        "pair_table": pair_table if pair_rows else None,
        "category_table": category_table,
        "offset_table": offset_table,
        "category_pair_table": category_pair_table,
        "rule_table": rule_table,
        "violation_groups": groups,
        "legend": [{"name": a, "colour": hex_colour(annotator_colour(i))} for i, a in enumerate(data.annotators)],
        "disagreement_colour": hex_colour(DISAGREEMENT_COLOUR),
        "gallery": data.gallery,
        "image_table": image_table,
        "input_table": input_table,
        "settings_table": settings_table,
        "sections": [{"id": i, "title": t} for i, t in sections],
    }


def render_html(data: ReportInput) -> str:
    """The report as one HTML string. Every value from the data is escaped."""
    import jinja2
    from markupsafe import Markup

    folder = templates_dir()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), autoescape=True,
                             trim_blocks=False, lstrip_blocks=False)
    template = env.get_template(TEMPLATE)
    context = build_context(data)
    # Our own CSS and JavaScript files are trusted; a "</" sequence would still end the element early.
    css = (folder / "report.css").read_text(encoding="utf-8").replace("</", "<\\/")
    js = (folder / "report.js").read_text(encoding="utf-8").replace("</", "<\\/")
    return template.render(css=Markup(css), js=Markup(js), **context)


def write_report(data: ReportInput, path) -> Path:
    """Render the report and write it to ``path`` (UTF-8); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(data), encoding="utf-8")
    return path
