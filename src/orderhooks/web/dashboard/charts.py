"""Charts as server-side SVG: stacked bars of outcomes and lines of latency percentiles.

No JavaScript and no network: the markup is the chart. Every chart carries a title and
a description for screen readers, a tooltip on each bar or point, and an HTML legend;
colours come from CSS classes (with presentation attributes as a fallback).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

CHART_WIDTH = 600
CHART_HEIGHT = 220
MARGIN_LEFT = 64
MARGIN_RIGHT = 12
MARGIN_TOP = 12
MARGIN_BOTTOM = 30
MAX_X_LABELS = 6
TARGET_GRID_LINES = 4
BAR_FILL_RATIO = 0.8
POINT_RADIUS = 2.5


@dataclass(frozen=True, slots=True)
class Series:
    """One named row of values, one per label; None where there is no value."""

    name: str
    css_class: str
    colour: str
    values: Sequence[float | None]


@dataclass(frozen=True, slots=True)
class _Plot:
    """The plot area and the y scale shared by every series of one chart."""

    top_value: float
    step: float

    @property
    def left(self) -> float:
        return MARGIN_LEFT

    @property
    def width(self) -> float:
        return CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT

    @property
    def height(self) -> float:
        return CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    @property
    def bottom(self) -> float:
        return MARGIN_TOP + self.height

    def y(self, value: float) -> float:
        return self.bottom - (value / self.top_value) * self.height


def nice_step(largest: float, integer: bool) -> float:
    """A round grid step (1, 2 or 5 times a power of ten) giving about four grid lines."""
    if largest <= 0:
        return 1.0
    raw = largest / TARGET_GRID_LINES
    magnitude = 10 ** math.floor(math.log10(raw))
    step = float(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))
    return max(step, 1.0) if integer else step


def format_value(value: float, unit: str) -> str:
    """A value as people read it: `1,234`, `85 ms`, `1.5 s`."""
    if unit == "ms":
        if value >= 1000:
            return f"{value / 1000:.3g} s"
        return f"{value:.3g} ms" if value < 10 else f"{value:,.0f} ms"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def _plot_for(largest: float, integer: bool) -> _Plot:
    step = nice_step(largest, integer)
    top = step * max(1, math.ceil(largest / step)) if largest > 0 else step * TARGET_GRID_LINES
    return _Plot(top_value=top, step=step)


def _text(x: float, y: float, content: str, anchor: str, css_class: str) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{css_class}" '
        f'font-size="12" fill="#555">{escape(content)}</text>'
    )


def _axes(plot: _Plot, labels: Sequence[str], unit: str) -> list[str]:
    parts = ['<g class="chart-grid">']
    value = 0.0
    while value <= plot.top_value + plot.step / 1000:
        y = plot.y(value)
        parts.append(
            f'<line x1="{plot.left}" x2="{plot.left + plot.width}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#ddd" stroke-width="1"/>'
        )
        parts.append(_text(plot.left - 6, y + 4, format_value(value, unit), "end", "chart-tick"))
        value += plot.step
    parts.append("</g>")
    if labels:
        every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
        band = plot.width / len(labels)
        parts.append('<g class="chart-x">')
        for index in range(0, len(labels), every):
            x = plot.left + band * (index + 0.5)
            parts.append(_text(x, plot.bottom + 18, labels[index], "middle", "chart-tick"))
        parts.append("</g>")
    return parts


def _frame(chart_id: str, title: str, description: str, body: list[str]) -> str:
    ident = escape(chart_id)
    return (
        f'<svg class="chart" id="{ident}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" '
        f'role="img" aria-labelledby="{ident}-title {ident}-desc" '
        'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{ident}-title">{escape(title)}</title>'
        f'<desc id="{ident}-desc">{escape(description)}</desc>' + "".join(body) + "</svg>"
    )


def _legend(series: Sequence[Series]) -> str:
    items = "".join(
        f'<li><span class="swatch {escape(s.css_class)}" aria-hidden="true"></span>'
        f"{escape(s.name)}</li>"
        for s in series
    )
    return f'<ul class="chart-legend">{items}</ul>'


def _empty_note(plot: _Plot, message: str) -> str:
    x, y = plot.left + plot.width / 2, MARGIN_TOP + plot.height / 2
    return _text(x, y, message, "middle", "chart-empty")


def _figure(title: str, svg: str, series: Sequence[Series]) -> Markup:
    # Everything interpolated here went through html.escape, so the result is safe.
    caption = f'<figcaption class="chart-title">{escape(title)}</figcaption>'
    return Markup(f'<figure class="chart-figure">{caption}{svg}{_legend(series)}</figure>')  # noqa: S704


@dataclass(frozen=True, slots=True)
class ChartSpec:
    """What one chart shows, whichever marks draw it: the id and the text screen readers
    get, one label per slot, the series over those slots and the note when all is empty."""

    chart_id: str
    title: str
    description: str
    labels: Sequence[str]
    series: Sequence[Series]
    unit: str = ""
    empty_message: str = "Nothing in this period"


def stacked_bar_chart(spec: ChartSpec) -> Markup:
    """Bars per label, the series stacked bottom-up in the order given."""
    totals = [sum(s.values[i] or 0 for s in spec.series) for i in range(len(spec.labels))]
    largest = max(totals, default=0.0)
    plot, body, band = _chart_start(spec, largest, integer=True)
    bar_width = band * BAR_FILL_RATIO
    for index, label in enumerate(spec.labels):
        if not totals[index]:
            continue
        x = plot.left + band * index + (band - bar_width) / 2
        base = 0.0
        tip = escape(f"{label}: " + ", ".join(_tip_part(s, index, spec.unit) for s in spec.series))
        body.append(f"<g><title>{tip}</title>")
        for s in spec.series:
            value = s.values[index] or 0
            if value:
                y_top, y_base = plot.y(base + value), plot.y(base)
                body.append(
                    f'<rect class="{escape(s.css_class)}" x="{x:.1f}" y="{y_top:.1f}" '
                    f'width="{bar_width:.1f}" height="{y_base - y_top:.1f}" '
                    f'fill="{escape(s.colour)}"/>'
                )
                base += value
        body.append("</g>")
    return _chart_end(spec, plot, body, empty=largest == 0)


def _tip_part(series: Series, index: int, unit: str) -> str:
    value = series.values[index]
    shown = "none" if value is None else format_value(value, unit)
    return f"{series.name} {shown}"


def line_chart(spec: ChartSpec) -> Markup:
    """One line per series; gaps where a value is None, a dot on every value."""
    present = [v for s in spec.series for v in s.values if v is not None]
    plot, body, band = _chart_start(spec, max(present, default=0.0), integer=False)
    # Drawn last to first, so that the first series (the median) is on top where they meet.
    for s in reversed(spec.series):
        body.append(f'<g class="{escape(s.css_class)}">')
        for segment in _segments(s.values):
            points = " ".join(
                f"{plot.left + band * (i + 0.5):.1f},{plot.y(v):.1f}" for i, v in segment
            )
            if len(segment) > 1:
                body.append(
                    f'<polyline points="{points}" fill="none" stroke="{escape(s.colour)}" '
                    'stroke-width="2"/>'
                )
        for i, v in enumerate(s.values):
            if v is not None:
                tip = escape(f"{spec.labels[i]}: {s.name} {format_value(v, spec.unit)}")
                body.append(
                    f'<circle cx="{plot.left + band * (i + 0.5):.1f}" cy="{plot.y(v):.1f}" '
                    f'r="{POINT_RADIUS}" fill="{escape(s.colour)}"><title>{tip}</title></circle>'
                )
        body.append("</g>")
    return _chart_end(spec, plot, body, empty=not present)


def _chart_start(
    spec: ChartSpec, largest: float, *, integer: bool
) -> tuple[_Plot, list[str], float]:
    """The plot scaled to `largest`, its axes as the first marks, and one label's band width."""
    plot = _plot_for(largest, integer)
    return plot, _axes(plot, spec.labels, spec.unit), plot.width / max(1, len(spec.labels))


def _chart_end(spec: ChartSpec, plot: _Plot, body: list[str], *, empty: bool) -> Markup:
    """The figure around the marks, with the empty note when there was nothing to draw."""
    if empty:
        body.append(_empty_note(plot, spec.empty_message))
    return _figure(
        spec.title, _frame(spec.chart_id, spec.title, spec.description, body), spec.series
    )


def _segments(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Runs of consecutive present values, with their indexes."""
    runs: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for index, value in enumerate(values):
        if value is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((index, value))
    if current:
        runs.append(current)
    return runs
