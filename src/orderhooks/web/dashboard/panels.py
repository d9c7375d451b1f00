"""The two charts every activity panel shows: outcomes and latency over time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from orderhooks.store.base import OutcomeBucket
from orderhooks.web.dashboard.charts import ChartSpec, Series, line_chart, stacked_bar_chart
from orderhooks.web.dashboard.series import ChartRange, SeriesSummary, summarize

OK_COLOUR = "#2e7d32"
FAIL_COLOUR = "#c62828"
P50_COLOUR = "#1565c0"
P95_COLOUR = "#ef6c00"
P99_COLOUR = "#6a1b9a"


@dataclass(frozen=True, slots=True)
class ActivityPanel:
    """Charts and totals of one range, and the rows of their data table."""

    chart: ChartRange
    outcomes: Markup
    latency: Markup
    summary: SeriesSummary
    rows: Sequence[tuple[str, OutcomeBucket]]

    @property
    def per_minute(self) -> float:
        """Attempts answered 2xx per minute, averaged over the range."""
        return self.summary.succeeded / (self.chart.span_seconds / 60)


def activity_panel(
    buckets: Sequence[OutcomeBucket], chart: ChartRange, *, prefix: str
) -> ActivityPanel:
    """Outcome bars and latency lines for `buckets` (one per slot of the range)."""
    labels = [b.start.strftime(chart.tick_format) for b in buckets]
    summary = summarize(buckets)
    outcome_series = [
        Series("Delivered (2xx)", "series-ok", OK_COLOUR, [b.succeeded for b in buckets]),
        Series("Failed attempts", "series-fail", FAIL_COLOUR, [b.failed for b in buckets]),
    ]
    latency_series = [
        Series("p50", "series-p50", P50_COLOUR, [b.latency_ms_p50 for b in buckets]),
        Series("p95", "series-p95", P95_COLOUR, [b.latency_ms_p95 for b in buckets]),
        Series("p99", "series-p99", P99_COLOUR, [b.latency_ms_p99 for b in buckets]),
    ]
    outcomes = stacked_bar_chart(
        ChartSpec(
            chart_id=f"{prefix}-outcomes",
            title=f"Attempt outcomes, {chart.label}",
            description=(
                f"{summary.succeeded} attempts delivered and {summary.failed} failed "
                f"in the {chart.label.split(',')[0]}."
            ),
            labels=labels,
            series=outcome_series,
            empty_message="No attempts in this period",
        )
    )
    latency = line_chart(
        ChartSpec(
            chart_id=f"{prefix}-latency",
            title=f"Attempt latency percentiles, {chart.label}",
            description="Median (p50), p95 and p99 of attempt durations, in milliseconds.",
            labels=labels,
            series=latency_series,
            unit="ms",
            empty_message="No attempts in this period",
        )
    )
    rows = [(label, b) for label, b in zip(labels, buckets, strict=True) if b.succeeded or b.failed]
    return ActivityPanel(chart, outcomes, latency, summary, rows)
