"""The scenarios of issue 6 and the two baselines, each measured the same way.

Every scenario starts its own receiver and service, drives them with the load
generator process, waits until the receiver has seen every acknowledged event
(or stops making progress), and returns a flat dict of figures.
"""

from __future__ import annotations

import resource
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from bench.loadgen import LoadConfig, read_acks
from bench.procs import (
    RssSampler,
    cpu_between,
    cpu_snapshot,
    pids_named,
    python_command,
    start_process,
)
from bench.receiver import Receiver
from bench.report import DeliveryFigures, delivery_figures

STALL_SECONDS = 30.0  # no new arrival for this long: the service has stopped delivering
POLL_SECONDS = 0.25
# After the load ends, wait at most this long for the rest: a service slower than its
# ingest keeps a backlog, and its rate is what the receiver saw until then.
DRAIN_LIMIT_SECONDS = 60.0
LOADGEN_GRACE_SECONDS = 600.0


@dataclass(frozen=True)
class Scenario:
    """One workload: how it is ingested, by what, and to how many webhooks."""

    name: str
    description: str
    kind: str  # sqlite, postgres, backlog, raw, celery, nats, rabbitmq
    mode: str = "batch"  # the load generator's mode
    batch_size: int = 100
    concurrency: int = 4
    fanout: int = 1
    rate: float = 0.0
    status_ratio: float = 0.4
    workers: int | None = None  # ORDERHOOKS_WORKERS of serve; None: its default (the CPUs)
    traced: bool = False  # OTEL_EXPORTER_OTLP_ENDPOINT set: every span exported
    # When set, `rate` is this share of the raw ceiling measured earlier in the same run.
    share_of_raw: float = 0.0


# The steady rate when the run has no raw ceiling to take a share of (about 0.1× of it on
# the faster machine of docs/benchmarks.md).
FALLBACK_STEADY_RATE = 1000.0


def paced_by_raw(scenario: Scenario, raw: dict[str, Any] | None) -> Scenario:
    """The scenario with its open-loop rate set from the same run's raw ceiling."""
    if not scenario.share_of_raw:
        return scenario
    ceiling = None if raw is None else raw.get("deliveries_per_s")
    rate = scenario.share_of_raw * ceiling if ceiling else FALLBACK_STEADY_RATE
    return replace(scenario, rate=rate)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("raw", "baseline: same bodies straight to the receiver", "raw", "raw", 1, 64),
        Scenario(
            "celery", "baseline: Flask + Celery/Redis, batch ingest", "celery", "batch", 100, 4
        ),
        Scenario(
            "single", "SQLite, one order or status update per request", "sqlite", "orders", 1, 64
        ),
        Scenario(
            "traced",
            "`single` with tracing on, spans exported to a local OTLP/HTTP collector",
            "sqlite",
            "orders",
            1,
            64,
            traced=True,
        ),
        Scenario("batch100", "SQLite, POST /v1/events batches of 100", "sqlite", "batch", 100, 4),
        Scenario(
            "single-1p",
            "`single` with serve in one process (ORDERHOOKS_WORKERS=1)",
            "sqlite",
            "orders",
            1,
            64,
            workers=1,
        ),
        Scenario(
            "batch100-1p",
            "`batch100` with serve in one process (ORDERHOOKS_WORKERS=1)",
            "sqlite",
            "batch",
            100,
            4,
            workers=1,
        ),
        Scenario("fanout5", "SQLite, batches of 100, 5 webhooks", "sqlite", "batch", 100, 4, 5),
        Scenario("nats", "SQLite, consuming NATS JetStream, one item per message", "nats"),
        Scenario("rabbitmq", "SQLite, consuming RabbitMQ, one item per message", "rabbitmq"),
        Scenario(
            "steady500",
            "SQLite, a steady 500 new orders/s",
            "sqlite",
            "orders",
            1,
            64,
            rate=500.0,
            status_ratio=0.0,
        ),
        Scenario(
            "steady10",
            "SQLite, new orders at a steady 0.1× the raw ceiling of this run",
            "sqlite",
            "orders",
            1,
            64,
            status_ratio=0.0,
            share_of_raw=0.1,
        ),
        Scenario(
            "backlog", "SQLite, backlog built with the receiver down, then drained", "backlog"
        ),
        Scenario(
            "postgres", "PostgreSQL, 1 api + 2 workers, batches of 100", "postgres", "batch", 100, 8
        ),
    )
}


@dataclass(frozen=True)
class RunContext:
    """Settings shared by the scenarios of one run."""

    workdir: Path
    duration: float
    backlog_size: int
    receiver_kind: str
    profile: bool
    run_id: str
    stall_seconds: float = STALL_SECONDS
    drain_limit_seconds: float = DRAIN_LIMIT_SECONDS

    def scenario_dir(self, name: str) -> Path:
        """A fresh working folder for one scenario."""
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class LoadRun:
    """A load generator process started in the background."""

    process: subprocess.Popen[bytes]
    config: LoadConfig
    rusage_before: float

    def wait(self, timeout: float) -> dict[str, Any]:
        """Wait for the load to end; its summary, with the generator's own CPU seconds."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError("the load generator did not finish in time") from None
        if self.process.returncode != 0:
            raise RuntimeError(f"the load generator failed ({self.process.returncode})")
        summary: dict[str, Any] = orjson.loads(Path(self.config.summary_path).read_bytes())
        # The generator is our only child reaped here, so the children's rusage delta is its CPU.
        summary["cpu_seconds"] = _children_cpu() - self.rusage_before
        return summary


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def start_load(ctx: RunContext, folder: Path, tag: str, **fields: Any) -> LoadRun:
    """Start the load generator process with a config of `fields`."""
    config = LoadConfig(
        acks_path=str(folder / f"acks-{tag}.txt"),
        summary_path=str(folder / f"loadgen-{tag}.json"),
        run_id=f"{ctx.run_id}{tag}",
        **fields,
    )
    config_path = folder / f"loadgen-{tag}.config.json"
    config_path.write_bytes(orjson.dumps(asdict(config)))
    before = _children_cpu()
    process = start_process(
        python_command("-m", "bench.loadgen", str(config_path)), folder / f"loadgen-{tag}.log"
    )
    return LoadRun(process, config, before)


def load_fields(scenario: Scenario, ctx: RunContext, target: str, api_key: str) -> dict[str, Any]:
    """The load generator settings of a scenario."""
    return {
        "target": target,
        "api_key": api_key,
        "mode": scenario.mode,
        "batch_size": scenario.batch_size,
        "concurrency": scenario.concurrency,
        "rate": scenario.rate,
        "status_ratio": scenario.status_ratio,
        "duration": ctx.duration,
    }


def wait_for_arrivals(
    receiver: Receiver, expected: int, stall_seconds: float, limit_seconds: float | None = None
) -> int:
    """Poll the arrival log until `expected` lines, no progress for `stall_seconds`, or
    `limit_seconds` (a cap that keeps a run short when ingest outpaces delivery)."""
    count = receiver.log.count()
    last_progress = started = time.monotonic()
    while count < expected:
        time.sleep(POLL_SECONDS)
        now_count = receiver.log.count()
        now = time.monotonic()
        if now_count != count:
            count, last_progress = now_count, now
        elif now - last_progress > stall_seconds:
            break
        if limit_seconds is not None and now - started > limit_seconds:
            break
    return count


@dataclass
class Window:
    """CPU and memory of the service processes over a measurement window."""

    pids: list[int]
    shared_pids: list[int]  # a shared server (PostgreSQL, Redis) reported apart

    def __post_init__(self) -> None:
        self.sampler = RssSampler(self.pids).start()
        self.cpu_before = cpu_snapshot(self.pids)
        self.shared_before = cpu_snapshot(self.shared_pids)
        self.cpu_seconds = 0.0
        self.cpu_by_process: dict[str, float] = {}
        self.shared_cpu_seconds = 0.0

    def close(self) -> None:
        """End the window."""
        after = cpu_snapshot(self.pids)
        self.cpu_seconds = cpu_between(self.cpu_before, after)
        # Per process: which of serve's processes is the bottleneck (a root, or a child).
        self.cpu_by_process = {
            f"{'root' if pid in self.pids else 'child'} {pid}": round(
                max(0.0, spent - self.cpu_before.get(pid, 0.0)), 2
            )
            for pid, spent in after.items()
        }
        self.shared_cpu_seconds = cpu_between(self.shared_before, cpu_snapshot(self.shared_pids))
        self.sampler.stop()

    def figures(self, deliveries: int) -> dict[str, Any]:
        """CPU per 1,000 deliveries and peak RSS (of the largest process)."""
        per_1k = 1000 * self.cpu_seconds / deliveries if deliveries else None
        shared = (
            1000 * self.shared_cpu_seconds / deliveries if deliveries and self.shared_pids else None
        )
        peaks = self.sampler.peak_by_process
        return {
            "cpu_seconds": self.cpu_seconds,
            "cpu_seconds_by_process": self.cpu_by_process,
            "cpu_s_per_1k": per_1k,
            "shared_server_cpu_s_per_1k": shared,
            "peak_rss_mb": max(peaks.values(), default=None),
            "peak_rss_mb_by_process": {str(pid): mib for pid, mib in peaks.items()},
            "peak_rss_mb_by_tree": {
                str(pid): mib for pid, mib in self.sampler.peak_by_root.items()
            },
            "peak_rss_mb_total": max((mib for _, mib in self.sampler.timeline), default=None),
        }


def measure(
    ctx: RunContext,
    scenario: Scenario,
    folder: Path,
    receiver: Receiver,
    window: Window,
    fields: dict[str, Any],
) -> dict[str, Any]:
    """Drive one load through a running service and compute every figure."""
    load = start_load(ctx, folder, "main", **fields)
    summary = load.wait(ctx.duration + LOADGEN_GRACE_SECONDS)
    expected = summary["events"] * scenario.fanout
    wait_for_arrivals(receiver, expected, ctx.stall_seconds, ctx.drain_limit_seconds)
    window.close()
    receiver.stop()
    figures = delivery_figures(read_acks(Path(load.config.acks_path)), receiver.log.read())
    return summarise(scenario, summary, figures, window, expected)


def summarise(
    scenario: Scenario,
    summary: dict[str, Any],
    figures: DeliveryFigures,
    window: Window,
    expected: int,
) -> dict[str, Any]:
    """One scenario's flat result."""
    result: dict[str, Any] = {
        "description": scenario.description,
        "scenario": asdict(scenario),
        "ingest_events_per_s": summary["events_per_second"] if scenario.kind != "raw" else None,
        "events_acknowledged": summary["events"],
        "ingest_errors": summary["errors"],
        "ingest_error_samples": summary["error_samples"],
        "ingest_request_ms_p50": summary["request_ms_p50"],
        "ingest_request_ms_p99": summary["request_ms_p99"],
        "load_seconds": summary["elapsed_seconds"],
        "loadgen_cpu_seconds": summary["cpu_seconds"],
        **figures.counts(expected, summary["started_at"]),
        "latency_ms_p50": figures.latency_ms_p50,
        "latency_ms_p95": figures.latency_ms_p95,
        "latency_ms_p99": figures.latency_ms_p99,
        "latency_samples": figures.latency_samples,
    }
    result.update(window.figures(figures.deliveries))
    return result


def with_duration(ctx: RunContext, duration: float) -> RunContext:
    """The same context with another load duration."""
    return replace(ctx, duration=duration)


def shared_server_pids(name: str) -> list[int]:
    """Pids of a shared server (postgres, redis-server) for the CPU it spends for us."""
    return pids_named(name)
