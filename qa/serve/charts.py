"""Trend charts as inline SVG: one figure across runs, drawn on the server, no script, no network.

Every text in a chart (run names, categories, values) is escaped; the SVG is returned as
:class:`markupsafe.Markup` so a template inserts it as it is.
"""

from __future__ import annotations

import math

from markupsafe import Markup, escape

from qa import metric_registry

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
"""Line colours, one per series."""


def _finite(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _range(metric: str, values: list[float]) -> tuple[float, float]:
    """The y range: [0, 1] for shares and figures on a 0-1 heat scale, else the data's (with 0 for
    signed offsets), widened a little when flat."""
    scale = metric_registry.scale(metric)
    kind = metric_registry.kind(metric)
    if kind == "share" or (scale and scale[0] == "heat" and scale[2] <= 1.0 and min(values, default=0) >= 0
                           and max(values, default=0) <= 1):
        return 0.0, 1.0
    lo, hi = min(values, default=0.0), max(values, default=1.0)
    if metric_registry.direction(metric) == "zero" or kind == "count":
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if kind == "count" and lo >= 0:
        return 0.0, max(hi * 1.05, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def trend(metric: str, series: list[dict], *, width: int = 560, height: int = 180, title: str | None = None,
          chart_id: str | None = None) -> Markup:
    """A line chart of one figure across runs.

    Parameters
    ----------
    metric : str
        The figure (its label, unit and range come from the metric registry).
    series : list of dict
        ``{"name": str, "points": [(x_label, value, href or None), ...]}``, points in run order; a NaN
        or None value leaves a gap. Every series shares the x positions of the first one's labels.
    width, height : int, pixels
    title : str, optional
        The caption (default: the metric's label).

    Returns
    -------
    Markup
        ``<svg>`` with a ``<title>`` per point (run and value), axes, and a legend when there are
        several series.
    """
    label = title or metric_registry.label(metric)
    unit = metric_registry.unit(metric)
    labels: list[str] = []
    for s in series:
        for x, _, _ in s["points"]:
            if x not in labels:
                labels.append(x)
    values = [v for s in series for _, v, _ in s["points"] if _finite(v) is not None]
    lo, hi = _range(metric, [float(v) for v in values])
    left, right, top, bottom = 48, 12, 22, 30
    legend = 16 * len(series) if len(series) > 1 else 0
    plot_w, plot_h = width - left - right, height - top - bottom
    full_h = height + legend
    n = max(len(labels), 1)

    def x_at(i: int) -> float:
        return left + (plot_w * (i / (n - 1)) if n > 1 else plot_w / 2)

    def y_at(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="trend" role="img" width="{width}" '
             f'height="{full_h}" viewBox="0 0 {width} {full_h}" data-metric="{escape(metric)}"'
             + (f' id="{escape(chart_id)}"' if chart_id else "") + ">",
             f"<title>{escape(label)} across runs</title>",
             f'<text x="{left}" y="14" class="cap">{escape(label)}{escape(" (" + unit + ")") if unit == "px" else ""}'
             "</text>"]
    for frac in (0.0, 0.5, 1.0):
        v = lo + (hi - lo) * frac
        y = y_at(v)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
                     f"{escape(metric_registry.format_value(metric, v) if metric_registry.kind(metric) != 'count' else f'{v:.0f}')}</text>")
    if lo < 0 < hi:
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y_at(0):.1f}" y2="{y_at(0):.1f}" class="zero"/>')
    step = max(1, math.ceil(n / 8))
    for i, x in enumerate(labels):
        if i % step == 0 or i == n - 1:
            parts.append(f'<text x="{x_at(i):.1f}" y="{top + plot_h + 16}" class="tick" text-anchor="middle">'
                         f"{escape(x)}</text>")
    if not values:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" class="tick" text-anchor="middle">'
                     "no values in these runs</text>")
    for k, s in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        runs: list[list[tuple[float, float]]] = [[]]
        dots = []
        for x, v, href in s["points"]:
            fv = _finite(v)
            if fv is None:
                runs.append([])
                continue
            px, py = x_at(labels.index(x)), y_at(fv)
            runs[-1].append((px, py))
            dot = (f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"><title>{escape(s["name"])}, '
                   f'{escape(x)}: {escape(metric_registry.format_value(metric, fv))}</title></circle>')
            dots.append(f'<a href="{escape(href)}">{dot}</a>' if href else dot)
        for line in runs:
            if len(line) > 1:
                points = " ".join(f"{px:.1f},{py:.1f}" for px, py in line)
                parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        parts.extend(dots)
        if legend:
            y = height + 12 * (k + 1) + 4 * k
            parts.append(f'<rect x="{left}" y="{y - 8}" width="10" height="10" fill="{colour}"/>'
                         f'<text x="{left + 14}" y="{y + 1}" class="tick">{escape(s["name"])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
