"""Figures from the raw measurements, the table beside the baselines, and the issue 11 targets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from bench.loadgen import percentile
from bench.receiver import Arrival

BASELINES = ("raw", "celery")
RSS_TARGET_MB = 200.0
FLAT_MEMORY_GROWTH_MB = 32.0  # a drain "has flat memory" when RSS grows less than this
TARGET_DURATION_SECONDS = 60.0
STEADY_P99_TARGET_MS = 50.0


@dataclass(frozen=True)
class DeliveryFigures:
    """What the receiver saw, joined with the load generator's acknowledgements."""

    deliveries: int
    duplicates: int
    non_2xx: int
    first_arrival: float | None
    last_arrival: float | None
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_p99: float | None
    latency_samples: int

    def counts(self, expected: int, started: float) -> dict[str, Any]:
        """The result's delivery counts against `expected`; deliveries/s from `started`."""
        span = (self.last_arrival - started) if self.last_arrival else None
        return {
            "expected_deliveries": expected,
            "deliveries": self.deliveries,
            "undelivered": max(0, expected - self.deliveries),
            "duplicates": self.duplicates,
            "receiver_non_2xx": self.non_2xx,
            "deliveries_per_s": self.deliveries / span if span and span > 0 else None,
        }


def delivery_figures(acks: Mapping[str, float], arrivals: Iterable[Arrival]) -> DeliveryFigures:
    """Count distinct (webhook-id, path) deliveries and their ingest→received latency.

    Only the first arrival of a delivery counts (receivers deduplicate on
    `webhook-id`); latency is measured for events the load generator acknowledged.
    """
    seen: set[tuple[str, str]] = set()
    latencies: list[float] = []
    duplicates = non_2xx = 0
    first: float | None = None
    last: float | None = None
    for arrival in arrivals:
        if not 200 <= arrival.status < 300:
            non_2xx += 1
            continue
        key = (arrival.webhook_id, arrival.path)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        first = arrival.at if first is None else min(first, arrival.at)
        last = arrival.at if last is None else max(last, arrival.at)
        acked = acks.get(arrival.webhook_id)
        if acked is not None:
            # Arrival times have millisecond resolution (nginx $msec): clamp at zero.
            latencies.append(max(0.0, arrival.at - acked) * 1000)
    return DeliveryFigures(
        deliveries=len(seen),
        duplicates=duplicates,
        non_2xx=non_2xx,
        first_arrival=first,
        last_arrival=last,
        latency_ms_p50=percentile(latencies, 0.50),
        latency_ms_p95=percentile(latencies, 0.95),
        latency_ms_p99=percentile(latencies, 0.99),
        latency_samples=len(latencies),
    )


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


def add_ratios(results: dict[str, dict[str, Any]]) -> None:
    """Put each scenario's deliveries/s as a share of the raw ceiling and a multiple of Celery."""
    raw = results.get("raw", {}).get("deliveries_per_s")
    celery = results.get("celery", {}).get("deliveries_per_s")
    for result in results.values():
        result["of_raw_ceiling"] = _ratio(result.get("deliveries_per_s"), raw)
        result["x_celery"] = _ratio(result.get("deliveries_per_s"), celery)


def _fmt(value: Any, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return f"{value}{suffix}"


def render_table(results: Mapping[str, Mapping[str, Any]], console: Console) -> None:
    """Print every scenario beside the baselines."""
    table = Table(title="orderhooks benchmark (deliveries/s: end to end, as the receiver saw them)")
    for column in (
        "scenario",
        "ingest ev/s",
        "deliveries/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "CPU s/1k",
        "peak RSS MB",
        "of raw",
        "× Celery",
        "undelivered",
    ):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for name, r in results.items():
        if "error" in r:
            table.add_row(name, f"[red]failed: {str(r['error'])[:60]}[/red]")
            continue
        of_raw = r.get("of_raw_ceiling")
        table.add_row(
            name,
            _fmt(r.get("ingest_events_per_s")),
            _fmt(r.get("deliveries_per_s")),
            _fmt(r.get("latency_ms_p50"), 1),
            _fmt(r.get("latency_ms_p95"), 1),
            _fmt(r.get("latency_ms_p99"), 1),
            _fmt(r.get("cpu_s_per_1k"), 3),
            _fmt(r.get("peak_rss_mb"), 1),
            "-" if of_raw is None else f"{100 * of_raw:.0f} %",
            _fmt(r.get("x_celery"), 1, "×"),
            _fmt(r.get("undelivered")),
        )
    console.print(table)


def _target(name: str, measured: str, met: bool | None, note: str = "") -> dict[str, Any]:
    return {"target": name, "measured": measured, "met": met, "note": note}


def _get(results: Mapping[str, Mapping[str, Any]], scenario: str, key: str) -> Any:
    result = results.get(scenario)
    return None if result is None or "error" in result else result.get(key)


def evaluate_targets(
    results: Mapping[str, Mapping[str, Any]], duration: float
) -> list[dict[str, Any]]:
    """Each target of issue 11 (ratios to the baselines of the same run), met (True),
    missed (False) or not measured (None)."""
    short = (
        "" if duration >= TARGET_DURATION_SECONDS else f"run of {duration:.0f} s, target says 60 s"
    )
    out = []
    for scenario, floor in (("batch100", 0.5), ("single", 0.25), ("postgres", 0.3)):
        share = _get(results, scenario, "of_raw_ceiling")
        out.append(
            _target(
                f"{scenario}: ≥ {floor:g}× the raw ceiling end to end",
                _fmt(share, 2, "×"),
                None if share is None else share >= floor,
                short,
            )
        )
    http_batch = _get(results, "batch100", "ingest_events_per_s")
    for broker in ("nats", "rabbitmq"):
        consumed = _get(results, broker, "messages_per_s_consumed")
        out.append(
            _target(
                f"{broker}: a broker source ingests at least as fast as batch100",
                f"{_fmt(consumed, 0, '/s')} vs {_fmt(http_batch, 0, '/s')}",
                None if consumed is None or http_batch is None else consumed >= http_batch,
            )
        )
    best = _get(results, "batch100", "x_celery")
    out.append(
        _target(
            "batch100: ≥ 8× the Celery baseline",
            _fmt(best, 1, "×"),
            None if best is None else best >= 8.0,
        )
    )
    # The target's own load (0.1× raw) when it ran; the fixed 500/s otherwise.
    steady = "steady10" if "steady10" in results else "steady500"
    p99 = _get(results, steady, "latency_ms_p99")
    steady_share = _get(results, steady, "of_raw_ceiling")
    out.append(
        _target(
            "steady load: p99 ingest→received ≤ 50 ms",
            _fmt(p99, 1, " ms"),
            None if p99 is None else p99 <= STEADY_P99_TARGET_MS,
            "" if steady_share is None else f"at {steady_share:.2f}× the raw ceiling",
        )
    )
    peaks = {
        name: r["peak_rss_mb"]
        for name, r in results.items()
        if name not in BASELINES and "error" not in r and r.get("peak_rss_mb") is not None
    }
    worst = max(peaks.values(), default=None)
    out.append(
        _target(
            "peak RSS ≤ 200 MB per process in every scenario",
            _fmt(worst, 1, " MB"),
            None if worst is None else worst <= RSS_TARGET_MB,
        )
    )
    growth = _get(results, "backlog", "drain_rss_growth_mb")
    out.append(
        _target(
            "backlog drains with flat memory",
            _fmt(growth, 1, " MB growth"),
            None if growth is None else growth <= FLAT_MEMORY_GROWTH_MB,
            f"flat = grows less than {FLAT_MEMORY_GROWTH_MB:.0f} MB",
        )
    )
    share = _get(results, "backlog", "ingest_during_drain_share")
    out.append(
        _target(
            "backlog: ingest during the drain > half its normal rate",
            _fmt(None if share is None else 100 * share, 0, " %"),
            None if share is None else share > 0.5,
        )
    )
    return out


def render_targets(targets: list[dict[str, Any]], console: Console) -> None:
    """Print the targets, met or missed."""
    table = Table(title="issue 11 targets")
    for column in ("target", "measured", "verdict", "note"):
        table.add_column(column)
    verdicts = {True: "[green]met[/green]", False: "[red]missed[/red]", None: "not measured"}
    for t in targets:
        table.add_row(t["target"], t["measured"], verdicts[t["met"]], t["note"])
    console.print(table)


def write_results(path: Path, document: Mapping[str, Any]) -> None:
    """Write the run's results as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
