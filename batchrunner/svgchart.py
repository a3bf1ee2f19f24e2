"""Two small inline-SVG charts for report.html: horizontal bars (counts by status or code) and columns
over time. Drawn from Python so the report needs no script, font or network to show them; every
label is escaped. Each bar carries ``data-label``/``data-value`` so a test can read what was drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = ("#4e79a7", "#e15759", "#f28e2b", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def hbars(items: Sequence[tuple[str, float, str]], *, title: str, width: int = 640) -> str:
    """One horizontal bar per (label, value, colour), largest value sets the scale."""
    bar_h, gap, label_w, value_w = 20, 6, 250, 90
    height = max(1, len(items)) * (bar_h + gap) + gap
    top = max((v for _, v, _ in items), default=0) or 1
    span = width - label_w - value_w
    parts = [f'<svg class="chart hbars" role="img" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(title)}</title>']
    for i, (label, value, colour) in enumerate(items):
        y = gap + i * (bar_h + gap)
        w = max(1.0, span * value / top) if value else 0.0
        short = label if len(label) <= 34 else label[:33] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar_h - 5}" text-anchor="end">{escape(short)}</text>'
            f'<rect class="bar" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{escape(colour)}" '
            f'data-label="{escape(label)}" data-value="{value:g}"><title>{escape(label)}: {_fmt(value)}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + bar_h - 5}">{_fmt(value)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def columns(points: Sequence[tuple[str, float]], *, title: str, colour: str = PALETTE[0],
            reference: float | None = None, reference_label: str = "", width: int = 720, height: int = 220) -> str:
    """One column per (x label, value) in order, with a y axis and an optional dashed reference line
    (e.g. the per-interval budget)."""
    left, bottom, top_pad, right = 56, 34, 12, 10
    plot_w, plot_h = width - left - right, height - bottom - top_pad
    peak = max([v for _, v in points] + [reference or 0]) or 1
    n = max(1, len(points))
    step = plot_w / n
    bar_w = max(1.0, step * 0.85)
    parts = [f'<svg class="chart columns" role="img" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
             f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - right}" y2="{top_pad + plot_h}" stroke="#888"/>',
             f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{top_pad + plot_h}" stroke="#888"/>']
    for frac in (0.5, 1.0):
        y = top_pad + plot_h * (1 - frac)
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{_fmt(peak * frac)}</text>'
                     f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
    for i, (label, value) in enumerate(points):
        h = plot_h * value / peak
        x = left + i * step + (step - bar_w) / 2
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{top_pad + plot_h - h:.1f}" width="{bar_w:.1f}" '
                     f'height="{h:.1f}" fill="{escape(colour)}" data-label="{escape(label)}" data-value="{value:g}">'
                     f'<title>{escape(label)}: {_fmt(value)}</title></rect>')
    if points:  # first and last x labels: enough to read the time axis
        parts.append(f'<text x="{left}" y="{height - 10}">{escape(points[0][0])}</text>'
                     f'<text x="{width - right}" y="{height - 10}" text-anchor="end">{escape(points[-1][0])}</text>')
    if reference:
        y = top_pad + plot_h * (1 - reference / peak)
        parts.append(f'<line class="reference" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
                     f'stroke="#e15759" stroke-dasharray="6 4" data-value="{reference:g}"/>'
                     f'<text x="{width - right}" y="{y - 4:.1f}" text-anchor="end" fill="#e15759">'
                     f'{escape(reference_label)} {_fmt(reference)}</text>')
    parts.append("</svg>")
    return "".join(parts)
