"""The store contract: everything orderhooks keeps, behind one interface.

Two engines implement it: `sqlite.SQLiteStore` (embedded default) and
`postgres.PostgresStore` (scale-out). One contract test suite runs against both.
The store owns transactions; the decisions inside them (which events an ingest
creates, who gets them, what a failed attempt means for a webhook) are pure domain
functions the store calls. No value is ever formatted into SQL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from orderhooks.domain.model import (
    Agreement,
    ApiKey,
    Attempt,
    AttemptError,
    AuditEntry,
    Delivery,
    DeliveryState,
    DisabledReason,
    Event,
    EventType,
    OrderState,
    UsageRow,
    Webhook,
    WebhookState,
)

# ---------------------------------------------------------------- ingest


@dataclass(frozen=True, slots=True)
class NewOrderItem:
    """A validated `POST /v1/orders` body (unknown fields kept) and the hash of its bytes."""

    document: Mapping[str, Any]
    body_hash: str


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
class IngestResult:
    """What one ingest item created. `repeat` is true for an idempotent repeat."""

    order_id: str
    event_ids: tuple[str, ...]
    repeat: bool
    created: bool = False  # a new order (not a newer version of a known one)


class UnknownOrder(Exception):
    """A status or courier update named an order the store does not know."""

    def __init__(self, order_id: str, index: int) -> None:
        super().__init__(order_id)
        self.order_id = order_id
        self.index = index


# ---------------------------------------------------------------- queries

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list; `next_cursor` is None on the last page."""

    items: Sequence[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Scope:
    """Which accounts the caller may see: None means all (admin)."""

    accounts: frozenset[str] | None = None

    def allows(self, account: str) -> bool:
        """Whether the caller may see objects of `account`."""
        return self.accounts is None or account in self.accounts

    def allows_all(self, accounts: Sequence[str]) -> bool:
        """Whether the caller may see an object installed on all of `accounts`."""
        if self.accounts is None:
            return True
        return bool(accounts) and all(a in self.accounts for a in accounts)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Filters of `GET /v1/events`."""

    scope: Scope = field(default_factory=Scope)
    order_id: str | None = None
    type: EventType | None = None
    account: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    """Filters of `GET /v1/deliveries`."""

    scope: Scope = field(default_factory=Scope)
    webhook_id: str | None = None
    state: DeliveryState | None = None
    order_id: str | None = None
    event_type: EventType | None = None
    since: datetime | None = None
    until: datetime | None = None


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
    """One delivery with its event and attempts (oldest first)."""

    delivery: Delivery
    event: Event
    attempts: Sequence[Attempt]


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


# ---------------------------------------------------------------- delivery queue


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery leased to this worker: send attempt number `attempt` now."""

    delivery: Delivery
    webhook: Webhook
    event: Event
    attempt: int
    lease_expires_at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """The recorded result of one attempt and what happens next to its delivery.

    `next_state` is DELIVERED, FAILED or PENDING (a retry at `next_attempt_at`).
    `disable` disables the webhook with that reason (410 gives GONE).
    """

    delivery_id: str
    webhook_id: str
    attempt: Attempt
    next_state: DeliveryState
    next_attempt_at: datetime | None
    schedule_position: int
    disable: DisabledReason | None = None


class Store(ABC):
    """Everything orderhooks keeps. All methods are coroutines and safe to call concurrently."""

    # -- lifecycle
    @abstractmethod
    async def open(self) -> None:
        """Connect (and, for SQLite, create the file). Does not migrate."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; pending writes are committed first."""

    @abstractmethod
    async def migrate(self) -> list[str]:
        """Apply the migrations not applied yet; idempotent; returns the names applied."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    # -- ingest
    @abstractmethod
    async def ingest(self, items: Sequence[IngestItem], now: datetime) -> list[IngestResult]:
        """Apply the items in order in one transaction, durable before it returns.

        Events and deliveries are planned by `orderhooks.domain.ingest`. All or nothing:
        raises UnknownOrder (with the item index) and stores nothing when an update names
        an unknown order. Wakes the delivery workers after commit.
        """

    # -- orders and events
    @abstractmethod
    async def get_order(self, order_id: str, scope: Scope) -> OrderView:
        """The order with its history and events; NotFound when absent or out of scope."""

    @abstractmethod
    async def get_event(self, event_id: str, scope: Scope) -> Event:
        """One event; NotFound when absent or out of scope."""

    @abstractmethod
    async def list_events(self, flt: EventFilter, limit: int, cursor: str | None) -> Page[Event]:
        """Events, oldest first, filtered."""

    # -- webhooks
    @abstractmethod
    async def create_webhook(self, webhook: Webhook) -> Webhook:
        """Store a new webhook; its state is set from the agreements of its accounts."""

    @abstractmethod
    async def get_webhook(self, webhook_id: str, scope: Scope) -> Webhook:
        """One webhook (not deleted); NotFound when absent or out of scope."""

    @abstractmethod
    async def list_webhooks(
        self, flt: WebhookFilter, limit: int, cursor: str | None
    ) -> Page[Webhook]:
        """Webhooks, oldest first."""

    @abstractmethod
    async def update_webhook(self, webhook: Webhook) -> Webhook:
        """Replace a webhook's configuration (state recomputed from agreements if active)."""

    @abstractmethod
    async def delete_webhook(self, webhook_id: str, now: datetime) -> None:
        """Delete a webhook; its pending and delivering deliveries become `cancelled`."""

    @abstractmethod
    async def set_webhook_state(
        self,
        webhook_id: str,
        state: WebhookState,
        reason: DisabledReason | None,
        now: datetime,
    ) -> Webhook:
        """Enable or disable. Enabling an account without agreement gives awaiting_agreement."""

    @abstractmethod
    async def count_webhooks(self, account: str) -> int:
        """Webhooks (not deleted) installed on `account`, for the per-account cap."""

    # -- agreements
    @abstractmethod
    async def put_agreement(self, agreement: Agreement, now: datetime) -> Agreement:
        """Record an agreement; the account's awaiting webhooks whose accounts all agreed
        become active."""

    @abstractmethod
    async def get_agreement(self, account: str) -> Agreement | None:
        """The account's agreement, if recorded."""

    # -- deliveries
    @abstractmethod
    async def list_deliveries(
        self, flt: DeliveryFilter, limit: int, cursor: str | None
    ) -> Page[Delivery]:
        """Deliveries, newest first."""

    @abstractmethod
    async def get_delivery(self, delivery_id: str, scope: Scope) -> DeliveryView:
        """One delivery with event and attempts; NotFound when absent or out of scope."""

    @abstractmethod
    async def retry_delivery_now(self, delivery_id: str, now: datetime) -> Delivery:
        """Make a pending or failed delivery due now (failed ones get the schedule again);
        Conflict for delivered, delivering or cancelled ones."""

    @abstractmethod
    async def recover_failed(
        self, webhook_id: str, since: datetime, until: datetime | None, now: datetime
    ) -> int:
        """Failed deliveries created in the range go back to pending, due now; returns count."""

    @abstractmethod
    async def replay_events(
        self,
        webhook: Webhook,
        since: datetime,
        until: datetime | None,
        event_types: Sequence[EventType] | None,
        now: datetime,
    ) -> int:
        """New `replay` deliveries for every stored (non-test) event in the range that the
        webhook's routing accepts; returns how many were queued."""

    @abstractmethod
    async def create_test_delivery(self, webhook: Webhook, event: Event, now: datetime) -> str:
        """Store a synthetic test event and its delivery to `webhook`; returns the delivery id."""

    @abstractmethod
    async def webhook_stats(self, webhook_id: str, now: datetime) -> WebhookStats:
        """Counts by state, success rate and latency percentiles of the webhook."""

    @abstractmethod
    async def queue_gauges(self) -> list[QueueGauge]:
        """Pending depth and oldest pending time per webhook (for /metrics)."""

    @abstractmethod
    async def outcome_series(
        self,
        scope: Scope,
        webhook_id: str | None,
        since: datetime,
        until: datetime,
        bucket_seconds: int,
    ) -> list[OutcomeBucket]:
        """Attempts started in [since, until) of one webhook's deliveries (None: of every
        delivery whose account `scope` allows), grouped in buckets of `bucket_seconds`
        aligned to the Unix epoch, oldest first; buckets without attempts are left out.
        For the dashboard's charts."""

    # -- the delivery queue
    @abstractmethod
    async def claim(self, now: datetime, limit: int, worker_id: str) -> list[Claim]:
        """Lease up to `limit` due deliveries, honouring per-order order, each webhook's
        maxConcurrency and rate limit across the cluster, and probing of failing webhooks.
        Deliveries whose lease expired count as due again."""

    @abstractmethod
    async def record(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        """Store attempts and their deliveries' next state in one transaction; update the
        webhooks' health and usage counters."""

    @abstractmethod
    async def next_due_at(self) -> datetime | None:
        """When the earliest pending delivery of an active webhook falls due, if any."""

    @abstractmethod
    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 - engines wait on their own channel (asyncio.Event, LISTEN) up to this bound
        """Return when new work may be claimable (an ingest, an enable, a retry), or after
        `timeout` seconds."""

    # -- usage
    @abstractmethod
    async def usage(self, accounts: Sequence[str] | None, months: Sequence[str]) -> list[UsageRow]:
        """Usage rows for the accounts (None: all) and months (`YYYY-MM`)."""

    # -- keys
    @abstractmethod
    async def create_key(self, key: ApiKey) -> ApiKey:
        """Store a key (only its hash)."""

    @abstractmethod
    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key (revoked ones included) whose hash this is."""

    @abstractmethod
    async def list_keys(self, limit: int, cursor: str | None) -> Page[ApiKey]:
        """Keys, oldest first (revoked ones included, marked)."""

    @abstractmethod
    async def revoke_key(self, key_id: str, now: datetime) -> None:
        """Revoke a key; NotFound when absent."""

    @abstractmethod
    async def count_keys(self) -> int:
        """How many keys exist (for the first-start admin key)."""

    # -- audit
    @abstractmethod
    async def add_audit(self, entry: AuditEntry) -> None:
        """Append to the audit trail."""

    @abstractmethod
    async def list_audit(self, limit: int, cursor: str | None) -> Page[AuditEntry]:
        """The audit trail, newest first."""

    # -- retention
    @abstractmethod
    async def purge(self, before: datetime, batch: int = 5000) -> int:
        """Delete finished deliveries, their attempts, and events older than `before` that
        no pending delivery needs; returns rows deleted."""


__all__ = [
    "AttemptError",
    "Claim",
    "CourierItem",
    "DeliveryFilter",
    "DeliveryView",
    "EventFilter",
    "IngestItem",
    "IngestResult",
    "NewOrderItem",
    "OrderView",
    "Outcome",
    "OutcomeBucket",
    "Page",
    "QueueGauge",
    "Scope",
    "StatusItem",
    "Store",
    "UnknownOrder",
    "WebhookFilter",
    "WebhookStats",
]
