"""Prometheus metrics of one process, in a registry of its own (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

ATTEMPT_LATENCY_BUCKETS_SECONDS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


class Metrics:
    """The counters, histogram and gauges orderhooks exports."""

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
        self.attempt_latency = Histogram(
            "orderhooks_attempt_duration_seconds",
            "Duration of delivery attempts.",
            buckets=ATTEMPT_LATENCY_BUCKETS_SECONDS,
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
            "Broker source messages by outcome (ingested, dead_lettered, skipped, retried).",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.source_lag = Gauge(
            "orderhooks_source_lag",
            "Messages waiting at the broker per source, where the broker reports it.",
            ["source"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
