"""Running each kind of scenario: the baselines, orderhooks on SQLite and PostgreSQL, backlog."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import orjson
import redis

from bench import service
from bench.brokers import run_broker
from bench.celery_app import DEFAULT_BROKER
from bench.loadgen import read_acks
from bench.procs import free_port, python_command, start_process, stop_process, wait_http_ok
from bench.receiver import Receiver, start_receiver
from bench.report import FLAT_MEMORY_GROWTH_MB, delivery_figures
from bench.scenarios import (
    LOADGEN_GRACE_SECONDS,
    RunContext,
    Scenario,
    Window,
    load_fields,
    measure,
    shared_server_pids,
    start_load,
    summarise,
    wait_for_arrivals,
)
from orderhooks.testing.otlp import Collector

CELERY_SECRET = "whsec_" + "YmVuY2gtYmFzZWxpbmUtc2VjcmV0LWtleS0zMmJ5dGVz"  # 32 bytes, fixed
BACKLOG_RETRY_SCHEDULE = ",".join(["1"] * 200)  # probe every second while the receiver is down
BACKLOG_BUILD_CONCURRENCY = 4
DRAIN_INGEST_MAX_SECONDS = 30.0


def _webhook_paths(fanout: int) -> list[str]:
    return [f"/wh/{index}" for index in range(fanout)]


def run_raw(ctx: RunContext, scenario: Scenario) -> dict[str, Any]:
    """Baseline (a): the same bodies posted straight to the receiver, nothing in between."""
    folder = ctx.scenario_dir(scenario.name)
    receiver = start_receiver(folder / "receiver", free_port(), ctx.receiver_kind)
    try:
        window = Window([receiver.process.pid], [])
        fields = load_fields(scenario, ctx, receiver.url(), "")
        fields["raw_urls"] = [receiver.url(path) for path in _webhook_paths(scenario.fanout)]
        result = measure(ctx, scenario, folder, receiver, window, fields)
        result["note"] = "CPU and RSS are the receiver's"
        return result
    finally:
        receiver.stop()


def run_celery(ctx: RunContext, scenario: Scenario) -> dict[str, Any]:
    """Baseline (b): Flask enqueueing one Celery task per subscriber; prefork workers post."""
    folder = ctx.scenario_dir(scenario.name)
    broker = redis.Redis.from_url(DEFAULT_BROKER)
    broker.flushdb()  # only the harness's own database number
    receiver = start_receiver(folder / "receiver", free_port(), ctx.receiver_kind)
    subscribers = [
        {"url": receiver.url(p), "secret": CELERY_SECRET} for p in _webhook_paths(scenario.fanout)
    ]
    env = {
        "BENCH_CELERY_BROKER": DEFAULT_BROKER,
        "BENCH_CELERY_SUBSCRIBERS": orjson.dumps(subscribers).decode(),
    }
    port = free_port()
    worker_command = python_command(
        "-m",
        "celery",
        "-A",
        "bench.celery_app",
        "worker",
        "--pool=prefork",
        "--concurrency=2",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    )
    worker = start_process(worker_command, folder / "celery-worker.log", env)
    web = start_process(
        python_command("-m", "bench.celery_web", str(port)), folder / "web.log", env
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", web, 30.0)
        time.sleep(2.0)  # the worker connects to Redis; tasks queue meanwhile anyway
        window = Window([web.pid, worker.pid], shared_server_pids("redis-server"))
        fields = load_fields(scenario, ctx, f"http://127.0.0.1:{port}", "")
        result = measure(ctx, scenario, folder, receiver, window, fields)
        result["note"] = "CPU and RSS: Flask app + Celery worker (with its prefork children)"
        return result
    finally:
        stop_process(web)
        stop_process(worker)
        receiver.stop()
        broker.flushdb()


def run_sqlite(ctx: RunContext, scenario: Scenario) -> dict[str, Any]:
    """orderhooks serve on SQLite, with `fanout` webhooks on one receiver (and, when the
    scenario is traced, a collector taking its spans in this process's thread)."""
    folder = ctx.scenario_dir(scenario.name)
    receiver = start_receiver(folder / "receiver", free_port(), ctx.receiver_kind)
    collector = Collector(keep=False).start() if scenario.traced else None
    extra = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url} if collector is not None else {}
    if scenario.workers is not None:
        extra["ORDERHOOKS_WORKERS"] = str(scenario.workers)
    orderhooks = service.start_serve(folder, extra, profile=ctx.profile)
    try:
        for path in _webhook_paths(scenario.fanout):
            orderhooks.create_webhook(receiver.url(path))
        window = Window(orderhooks.pids, [])
        fields = load_fields(scenario, ctx, orderhooks.base_url, orderhooks.admin_key)
        result = measure(ctx, scenario, folder, receiver, window, fields)
        if collector is not None:
            orderhooks.stop()  # its last spans are exported at shutdown
            result["spans_exported"] = collector.count
        return result
    finally:
        orderhooks.stop()
        receiver.stop()
        if collector is not None:
            collector.stop()


def run_postgres(ctx: RunContext, scenario: Scenario) -> dict[str, Any]:
    """1 orderhooks api + 2 workers on a fresh PostgreSQL database."""
    folder = ctx.scenario_dir(scenario.name)
    database_url = service.create_database()
    receiver: Receiver | None = None
    orderhooks: service.Orderhooks | None = None
    try:
        receiver = start_receiver(folder / "receiver", free_port(), ctx.receiver_kind)
        orderhooks = service.start_cluster(folder, database_url, workers=2, profile=ctx.profile)
        for path in _webhook_paths(scenario.fanout):
            orderhooks.create_webhook(receiver.url(path))
        window = Window(orderhooks.pids, service.server_pids())
        fields = load_fields(scenario, ctx, orderhooks.base_url, orderhooks.admin_key)
        result = measure(ctx, scenario, folder, receiver, window, fields)
        result["note"] = "CPU: api + 2 workers; PostgreSQL's own CPU is shared_server_cpu_s_per_1k"
        return result
    finally:
        if orderhooks is not None:
            orderhooks.stop()
        if receiver is not None:
            receiver.stop()
        with contextlib.suppress(Exception):
            service.drop_database(database_url)


def run_backlog(ctx: RunContext, scenario: Scenario) -> dict[str, Any]:
    """Build `backlog_size` pending deliveries with the receiver down, then drain them.

    The receiver's port is chosen but nothing listens on it while the backlog is
    built, so attempts fail and the webhook is probed (every second, by a short retry
    schedule). The receiver then starts; while the backlog drains, a second load
    measures ingest. Memory is sampled through the drain.
    """
    folder = ctx.scenario_dir(scenario.name)
    port = free_port()
    extra = {"ORDERHOOKS_RETRY_SCHEDULE": BACKLOG_RETRY_SCHEDULE}
    orderhooks = service.start_serve(folder, extra, profile=ctx.profile)
    receiver: Receiver | None = None
    try:
        orderhooks.create_webhook(f"http://127.0.0.1:{port}/wh/0")
        build_window = Window(orderhooks.pids, [])
        fields = load_fields(scenario, ctx, orderhooks.base_url, orderhooks.admin_key)
        build_fields = {
            **fields,
            "duration": 0.0,
            "max_events": ctx.backlog_size,
            "concurrency": BACKLOG_BUILD_CONCURRENCY,
        }
        build = start_load(ctx, folder, "build", **build_fields).wait(LOADGEN_GRACE_SECONDS * 10)
        build_window.close()
        receiver = start_receiver(folder / "receiver", port, ctx.receiver_kind)
        drain_started = time.time()
        window = Window(orderhooks.pids, [])
        ingest_seconds = min(DRAIN_INGEST_MAX_SECONDS, max(2.0, ctx.duration / 2))
        time.sleep(1.0)  # let the drain get going before measuring ingest beside it
        during = start_load(ctx, folder, "drain", **{**fields, "duration": ingest_seconds})
        during_summary = during.wait(ingest_seconds + LOADGEN_GRACE_SECONDS)
        expected = build["events"] + during_summary["events"]
        wait_for_arrivals(receiver, expected, ctx.stall_seconds)
        window.close()
        receiver.stop()
        return _backlog_result(
            scenario,
            folder,
            receiver,
            window,
            build,
            during_summary,
            drain_started,
            expected,
            build_window,
        )
    finally:
        orderhooks.stop()
        if receiver is not None:
            receiver.stop()


def _backlog_result(
    scenario: Scenario,
    folder: Path,
    receiver: Receiver,
    window: Window,
    build: dict[str, Any],
    during: dict[str, Any],
    drain_started: float,
    expected: int,
    build_window: Window,
) -> dict[str, Any]:
    arrivals = receiver.log.read()
    # Latency is meaningful only for the events ingested during the drain.
    figures = delivery_figures(read_acks(folder / "acks-drain.txt"), arrivals)
    everything = delivery_figures({}, arrivals)
    # Ingest figures are those of the load beside the drain; the span starts at the drain.
    drain_load = {**during, "started_at": drain_started}
    result = summarise(scenario, drain_load, everything, window, expected)
    rss = window.sampler.window(drain_started, everything.last_arrival or time.time())
    baseline = _early_median(rss)
    result.update(
        {
            "backlog_events": build["events"],
            "events_acknowledged": build["events"] + during["events"],
            "build_seconds": build["elapsed_seconds"],
            "build_ingest_events_per_s": build["events_per_second"],
            "build_peak_rss_mb": build_window.figures(1)["peak_rss_mb"],
            "ingest_during_drain_events_per_s": during["events_per_second"],
            "ingest_during_drain_share": during["events_per_second"] / build["events_per_second"]
            if build["events_per_second"]
            else None,
            "latency_ms_p50": figures.latency_ms_p50,
            "latency_ms_p95": figures.latency_ms_p95,
            "latency_ms_p99": figures.latency_ms_p99,
            "latency_samples": figures.latency_samples,
            "drain_rss_start_mb": baseline,
            "drain_rss_peak_mb": max(rss, default=None),
            "drain_rss_end_mb": rss[-1] if rss else None,
            "drain_rss_growth_mb": (max(rss) - baseline) if rss and baseline is not None else None,
            "flat_memory_threshold_mb": FLAT_MEMORY_GROWTH_MB,
            "note": "deliveries/s is the drain rate; latency: events ingested during the drain",
        }
    )
    return result


def _early_median(samples: list[float]) -> float | None:
    """The median of the first tenth of the samples: memory as the drain began."""
    head = sorted(samples[: max(1, len(samples) // 10)])
    return head[len(head) // 2] if samples else None


DRIVERS = {
    "raw": run_raw,
    "celery": run_celery,
    "sqlite": run_sqlite,
    "postgres": run_postgres,
    "backlog": run_backlog,
    "nats": run_broker,
    "rabbitmq": run_broker,
}


def run_scenario(ctx: RunContext, scenario: Scenario) -> dict[str, Any]:
    """Run one scenario with the driver of its kind."""
    return DRIVERS[scenario.kind](ctx, scenario)
