"""Prometheus metrics of one process, in a registry of its own (served at /metrics).

Every metric is listed, with its meaning, in docs/operations.md; the alert rules in
deploy/prometheus/alerts.yml and the dashboard in deploy/grafana/orderhooks.json use
only these names (a test checks them against a running server).
"""

from __future__ import annotations

import time
from collections.abc import Collection

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from orderhooks.web.asgi_status import StatusNotingSend

ATTEMPT_LATENCY_BUCKETS_SECONDS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
# An ingest answers after an fsync: milliseconds normally, seconds when the disk stalls.
INGEST_LATENCY_BUCKETS_SECONDS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

# The ingest endpoints, by the route template that names them in the `endpoint` label.
INGEST_ORDER = "/v1/orders"
INGEST_STATUS = "/v1/orders/{orderId}/status"
INGEST_COURIER = "/v1/orders/{orderId}/courier"
INGEST_BATCH = "/v1/events"
_UPDATE_ROUTES = {"status": INGEST_STATUS, "courier": INGEST_COURIER}


class Metrics:
    """The counters, histograms and gauges orderhooks exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_ingested = Counter(
            "orderhooks_events_ingested",
            "Events created by ingest, by type.",
            ["type"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "orderhooks_delivery_attempts",
            "Delivery attempts by outcome (delivered, retry, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.webhook_attempts = Counter(
            "orderhooks_webhook_attempts",
            "Delivery attempts per webhook by outcome (delivered, retry, failed).",
            ["webhook_id", "outcome"],
            registry=self.registry,
        )
        # Its label values (webhook id, outcome) in use, so that a webhook's can be dropped.
        self._webhook_series: set[tuple[str, str]] = set()
        self.proxy_errors = Counter(
            "orderhooks_egress_proxy_errors",
            "Attempts that failed because the egress proxy could not be reached "
            "(proxy_error; not counted in orderhooks_webhook_attempts_total).",
            registry=self.registry,
        )
        self.attempt_latency = Histogram(
            "orderhooks_attempt_duration_seconds",
            "Duration of delivery attempts.",
            buckets=ATTEMPT_LATENCY_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self.ingest_latency = Histogram(
            "orderhooks_ingest_request_duration_seconds",
            "Duration of ingest requests, from arrival to the answer, by endpoint and "
            "status class (2xx, 4xx, 5xx).",
            ["endpoint", "status_class"],
            buckets=INGEST_LATENCY_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self.operational_events = Counter(
            "orderhooks_operational_events",
            "Operational events emitted (webhook.failing, webhook.recovered, "
            "webhook.disabled, delivery.failed), by type.",
            ["type"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "orderhooks_queue_pending",
            "Pending deliveries per webhook.",
            ["webhook_id"],
            registry=self.registry,
        )
        self.oldest_pending_age = Gauge(
            "orderhooks_queue_oldest_pending_age_seconds",
            "Age of the oldest pending delivery per webhook.",
            ["webhook_id"],
            registry=self.registry,
        )
        self.source_messages = Counter(
            "orderhooks_source_messages",
            "Broker source messages by outcome"
            " (ingested, duplicate, dead_lettered, skipped, retried).",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.source_lag = Gauge(
            "orderhooks_source_lag",
            "Messages waiting at the broker per source, where the broker reports it.",
            ["source"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "orderhooks_ready",
            "1 when the process was ready at the last scrape (the store answered and, "
            "on serve and worker, the delivery workers run), else 0.",
            registry=self.registry,
        )

    def count_webhook_attempt(self, webhook_id: str, outcome: str) -> None:
        """Count one attempt in its webhook's series (`orderhooks_webhook_attempts`)."""
        self.webhook_attempts.labels(webhook_id=webhook_id, outcome=outcome).inc()
        self._webhook_series.add((webhook_id, outcome))

    def counted_webhooks(self) -> frozenset[str]:
        """The webhooks that have attempt series in this process."""
        return frozenset(webhook_id for webhook_id, _ in self._webhook_series)

    def forget_webhooks_but(self, live: Collection[str]) -> None:
        """Drop the attempt series of the webhooks not in `live` (deleted since): a
        process that runs for months must not keep a series for every webhook it ever
        sent to."""
        for series in [s for s in self._webhook_series if s[0] not in live]:
            self.webhook_attempts.remove(*series)
            self._webhook_series.discard(series)

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)


def ingest_endpoint(method: str, path: str) -> str | None:
    """The route template of an ingest request, or None for any other request."""
    if method != "POST":
        return None
    if path in (INGEST_ORDER, INGEST_BATCH):
        return path
    parts = path.split("/")  # "", "v1", "orders", <orderId>, "status" | "courier"
    if len(parts) == 5 and parts[:3] == ["", "v1", "orders"] and parts[3]:
        return _UPDATE_ROUTES.get(parts[4])
    return None


class IngestLatencyMiddleware:
    """ASGI middleware timing every ingest request, whatever its answer.

    It wraps the routes from outside, so validation errors and rejected keys are timed
    too; an exception that escapes the app is counted as a 5xx.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; observe its duration when it is an ingest."""
        endpoint = None
        if scope["type"] == "http":
            endpoint = ingest_endpoint(scope["method"], scope["path"])
        if endpoint is None:
            await self._app(scope, receive, send)
            return
        noting_send = StatusNotingSend(send)
        started = time.perf_counter()
        try:
            await self._app(scope, receive, noting_send)
        finally:
            self._metrics.ingest_latency.labels(
                endpoint=endpoint, status_class=f"{noting_send.status // 100}xx"
            ).observe(time.perf_counter() - started)


__all__ = ["IngestLatencyMiddleware", "Metrics", "ingest_endpoint"]
