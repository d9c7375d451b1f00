"""Time series of attempt outcomes and latency for the charts.

The store aggregates (`Store.outcome_series`): buckets aligned to the Unix epoch,
nearest-rank percentiles; the dashboard fills the empty buckets and sums them up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from orderhooks.domain.model import Scope
from orderhooks.store import Store
from orderhooks.store.base import OutcomeBucket


@dataclass(frozen=True, slots=True)
class ChartRange:
    """A span of time the charts can show, and the width of one bar or point."""

    name: str
    label: str
    span_seconds: int
    bucket_seconds: int
    tick_format: str


CHART_RANGES: dict[str, ChartRange] = {
    r.name: r
    for r in (
        ChartRange("1h", "last hour, per minute", 3600, 60, "%H:%M"),
        ChartRange("24h", "last 24 hours, per hour", 86_400, 3600, "%H:%M"),
        ChartRange("7d", "last 7 days, per 6 hours", 7 * 86_400, 6 * 3600, "%b %d %H:%M"),
    )
}
DEFAULT_RANGE = "1h"


@dataclass(frozen=True, slots=True)
class SeriesSummary:
    """Totals over a whole series."""

    succeeded: int
    failed: int

    @property
    def attempts(self) -> int:
        """Every attempt of the series."""
        return self.succeeded + self.failed

    @property
    def success_rate(self) -> float | None:
        """Share of attempts answered 2xx; None without attempts."""
        return self.succeeded / self.attempts if self.attempts else None


def chart_range(name: str | None) -> ChartRange:
    """The range called `name`, or the default one."""
    return CHART_RANGES.get(name or "", CHART_RANGES[DEFAULT_RANGE])


def window(chart: ChartRange, now: datetime) -> tuple[datetime, datetime]:
    """[since, until) of a range ending with the bucket that holds `now`."""
    step = chart.bucket_seconds
    end = (math.floor(now.timestamp() / step) + 1) * step
    until = datetime.fromtimestamp(end, tz=UTC)
    return until - timedelta(seconds=chart.span_seconds), until


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of values sorted ascending; None when there are none."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[rank - 1])


def _bucket_start(moment: datetime, bucket_seconds: int) -> datetime:
    start = math.floor(moment.timestamp() / bucket_seconds) * bucket_seconds
    return datetime.fromtimestamp(start, tz=UTC)


def fill_gaps(
    buckets: Sequence[OutcomeBucket], since: datetime, until: datetime, bucket_seconds: int
) -> list[OutcomeBucket]:
    """Every bucket of [since, until), empty ones included, so time runs evenly on the axis."""
    by_start = {_bucket_start(b.start, bucket_seconds): b for b in buckets}
    filled = []
    moment = _bucket_start(since, bucket_seconds)
    step = timedelta(seconds=bucket_seconds)
    while moment < until:
        filled.append(by_start.get(moment) or OutcomeBucket(moment, 0, 0, None, None, None))
        moment += step
    return filled


def summarize(buckets: Iterable[OutcomeBucket]) -> SeriesSummary:
    """Totals of a series."""
    succeeded = failed = 0
    for bucket in buckets:
        succeeded += bucket.succeeded
        failed += bucket.failed
    return SeriesSummary(succeeded=succeeded, failed=failed)


async def load_series(
    store: Store,
    scope: Scope,
    webhook_id: str | None,
    chart: ChartRange,
    now: datetime,
) -> list[OutcomeBucket]:
    """Every bucket of the range, gaps filled, from the store's aggregate."""
    since, until = window(chart, now)
    buckets = await store.outcome_series(scope, webhook_id, since, until, chart.bucket_seconds)
    return fill_gaps(buckets, since, until, chart.bucket_seconds)
