"""The values the store takes and gives: ingest items and results, filters, pages and
the read models of the API (order, delivery and webhook views, statistics, gauges).

The store itself is `orderhooks.store.Store`, one class over either engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from orderhooks.domain.model import (
    AnyEventType,
    Attempt,
    Delivery,
    DeliveryState,
    Event,
    OrderState,
    Scope,
    WebhookState,
)

# ---------------------------------------------------------------- ingest


@dataclass(frozen=True, slots=True)
class NewOrderItem:
    """A validated order document (unknown fields kept) and its repeat key `body_hash`
    (`orderhooks.service.ingest.document_hash`). `raw_hash`, the SHA-256 of the bytes of
    a `POST /v1/orders` body, repeats too an order stored under it (as earlier versions
    stored every order posted there)."""

    document: Mapping[str, Any]
    body_hash: str
    raw_hash: str | None = None


@dataclass(frozen=True, slots=True)
class StatusItem:
    """A validated status update body for `order_id`."""

    order_id: str
    update: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CourierItem:
    """A validated courier update body for `order_id`."""

    order_id: str
    update: Mapping[str, Any]


IngestItem = NewOrderItem | StatusItem | CourierItem


@dataclass(frozen=True, slots=True)
class MessageKey:
    """The broker message an ingest item came from: its source and the SHA-256 (hex) of
    the message body. Every item of one message carries the message's key."""

    source_id: str
    digest: str


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one ingest item created. `repeat` is true for an idempotent repeat;
    `duplicate` for an item of a broker message ingested before (nothing was planned)."""

    order_id: str
    event_ids: tuple[str, ...]
    repeat: bool
    created: bool = False  # a new order (not a newer version of a known one)
    duplicate: bool = False


# ---------------------------------------------------------------- queries

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list; `next_cursor` is None on the last page."""

    items: Sequence[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeWindowFilter:
    """What the filters of the event and delivery lists share: the caller's scope and a
    creation time range, `since` included, `until` excluded (None: unbounded)."""

    scope: Scope = field(default_factory=Scope)
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFilter(TimeWindowFilter):
    """Filters of `GET /v1/events`."""

    order_id: str | None = None
    type: AnyEventType | None = None
    account: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryFilter(TimeWindowFilter):
    """Filters of `GET /v1/deliveries`."""

    webhook_id: str | None = None
    state: DeliveryState | None = None
    order_id: str | None = None
    event_type: AnyEventType | None = None


@dataclass(frozen=True, slots=True)
class WebhookFilter:
    """Filters of `GET /v1/webhooks`."""

    scope: Scope = field(default_factory=Scope)
    account: str | None = None
    state: WebhookState | None = None


@dataclass(frozen=True, slots=True)
class OrderView:
    """`GET /v1/orders/{id}`: the order and the events it produced, oldest first."""

    order: OrderState
    status_history: Sequence[Mapping[str, Any]]
    events: Sequence[Event]


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """One delivery with its event and attempts (oldest first); `batch`: the events of
    the batch it was last sent in, in body order (empty when it went alone, or when not
    asked for: `get_delivery(with_batch=True)`)."""

    delivery: Delivery
    event: Event
    attempts: Sequence[Attempt]
    batch: Sequence[Event] = ()


@dataclass(frozen=True, slots=True)
class WebhookStats:
    """`GET /v1/webhooks/{id}/stats`."""

    counts: Mapping[DeliveryState, int]
    success_rate: float | None
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_p99: float | None
    last_success_at: datetime | None
    last_failure_at: datetime | None


@dataclass(frozen=True, slots=True)
class QueueGauge:
    """Queue depth and oldest pending age for one webhook (for /metrics)."""

    webhook_id: str
    pending: int
    oldest_pending_at: datetime | None


@dataclass(frozen=True, slots=True)
class PendingSummary:
    """How many deliveries wait, and since when the oldest (None when none waits)."""

    pending: int
    oldest_pending_at: datetime | None


@dataclass(frozen=True, slots=True)
class OutcomeBucket:
    """Attempts that started in [start, start + bucket): how they ended, how long they took.

    `succeeded` counts attempts answered 2xx; `failed` every other attempt (an error or
    another status). Latency percentiles are nearest-rank over `duration_ms` of all
    the bucket's attempts, None when it has none.
    """

    start: datetime
    succeeded: int
    failed: int
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_p99: float | None


__all__ = [
    "CourierItem",
    "DeliveryFilter",
    "DeliveryView",
    "EventFilter",
    "IngestItem",
    "IngestResult",
    "MessageKey",
    "NewOrderItem",
    "OrderView",
    "OutcomeBucket",
    "Page",
    "QueueGauge",
    "StatusItem",
    "TimeWindowFilter",
    "WebhookFilter",
    "WebhookStats",
]
