"""Reads: single objects, filtered lists paged by keyset on `id`, statistics.

Ids sort by creation time, so a cursor is simply the last id returned. Ascending lists
start after "" and descending ones before "~", which sort before and after every id.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from orderhooks.domain.model import (
    Delivery,
    DeliveryState,
    Event,
    OperationalEventType,
    Scope,
    UsageRow,
    Webhook,
)
from orderhooks.exceptions import NotFound
from orderhooks.store.base import (
    DeliveryFilter,
    DeliveryView,
    EventFilter,
    OrderView,
    OutcomeBucket,
    Page,
    PendingSummary,
    QueueGauge,
    TimeWindowFilter,
    WebhookFilter,
    WebhookStats,
)
from orderhooks.store.shared.batching import body_order
from orderhooks.store.shared.codec import (
    attempt_from_row,
    delivery_from_row,
    event_from_row,
    order_from_row,
    usage_from_row,
    webhook_from_row,
)
from orderhooks.store.shared.core import StoreCore, reading
from orderhooks.store.shared.tx import Row, Tx, lookup
from orderhooks.store.shared.values import (
    loads,
    micros,
    micros_or_none,
    moment,
    moment_or_none,
    unstorable,
)

T = TypeVar("T")
FIRST_ASCENDING = ""  # sorts before every id
FIRST_DESCENDING = "~"  # sorts after every id (ASCII order; PostgreSQL ids use COLLATE "C")
LATENCY_SAMPLE = 1000  # last attempts whose requests the latency percentiles are taken from
MICROSECONDS_PER_SECOND = 1_000_000


async def fetch_page(
    tx: Tx, query: str, limit: int, convert: Callable[[Row], T], **params: object
) -> Page[T]:
    """A page of the named list query, which is given `limit + 1` as `limit`: the extra row
    only says there is more. Empty, without asking the engine, when a parameter is
    `unstorable` (no stored row can match it)."""
    if unstorable(*params.values()):
        return Page(items=[], next_cursor=None)
    rows = await tx.fetch(query, limit=limit + 1, **params)
    items = [convert(row) for row in rows[:limit]]
    more = len(rows) > limit
    return Page(items=items, next_cursor=rows[limit - 1]["id"] if more and limit else None)


def scope_param(tx: Tx, scope: Scope) -> object:
    """The scope's accounts as a list parameter, or None for all."""
    return None if scope.accounts is None else tx.array(sorted(scope.accounts))


async def visible(tx: Tx, event: Event, scope: Scope) -> bool:
    """Whether the caller may read `event`: an order event of one of its accounts; an
    operational event only when its accounts cover every account of the webhook the
    event is about (docs/events.md)."""
    if not scope.allows(event.account):
        return False
    if not isinstance(event.type, OperationalEventType) or scope.accounts is None:
        return True
    accounts = event.data.get("accounts")
    if not isinstance(accounts, list):
        # `delivery.failed` names its webhook by id only: its accounts are read (those of
        # a deleted webhook too).
        row = await lookup(tx, "accounts_of_webhook", id=str(event.data.get("webhookId")))
        accounts = [] if row is None else loads(row["accounts"])
    return scope.allows_all([str(a) for a in accounts])


async def _receiver_visible(tx: Tx, row: Row, scope: Scope) -> bool:
    """Whether the caller may see a delivery by the webhook that receives it: an
    operational event's delivery only when the caller's accounts cover every account of
    that webhook, as the delivery lists decide (docs/events.md); an order event's by its
    account alone."""
    if scope.accounts is None or row["sequence"] is not None:
        return True
    # Deleted webhooks too: their deliveries stay readable.
    found = await lookup(tx, "accounts_of_webhook", id=row["webhook_id"])
    return found is not None and scope.allows_all([str(a) for a in loads(found["accounts"])])


async def _batch_events(tx: Tx, batch_id: str) -> list[Event]:
    """The events of a batch's deliveries, in the order of the batch's body."""
    members = sorted(await tx.fetch("batch_deliveries", batch_id=batch_id), key=body_order)
    event_ids = tx.array(sorted({member["event_id"] for member in members}))
    events = {row["id"]: row for row in await tx.fetch("events_by_ids", ids=event_ids)}
    return [event_from_row(events[m["event_id"]]) for m in members if m["event_id"] in events]


def _window(tx: Tx, flt: TimeWindowFilter) -> dict[str, object]:
    """The parameters every filtered list shares: creation range and scope."""
    return {
        "since": micros_or_none(flt.since),
        "until": micros_or_none(flt.until),
        "scope": scope_param(tx, flt.scope),
    }


def request_durations(rows: Iterable[Row]) -> list[int]:
    """The durations of the requests among attempt rows: a batch request recorded an
    attempt on each of its deliveries (same batch id and start), and counts once."""
    seen: set[tuple[str, int]] = set()
    durations = []
    for row in rows:
        batch_id = row["batch_id"]
        if batch_id is not None:
            request = (batch_id, row["started_at"])
            if request in seen:
                continue
            seen.add(request)
        durations.append(int(row["duration_ms"]))
    return durations


def percentile(sorted_values: Sequence[int], fraction: float) -> float | None:
    """Nearest-rank percentile of ascending values; None when there are none."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[rank - 1])


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


class ReadOperations(StoreCore):
    """Orders, events, webhooks, deliveries, statistics and usage, as the API reads them."""

    @reading
    async def get_order(self, tx: Tx, order_id: str, scope: Scope) -> OrderView:
        """The order with its status history and events, oldest first."""
        row = await lookup(tx, "order_by_id", order_id=order_id)
        if row is None or not scope.allows(row["account"]):
            raise NotFound(f"order {order_id} not found")
        order = order_from_row(row)
        events = [event_from_row(r) for r in await tx.fetch("events_of_order", order_id=order_id)]
        history = order.document.get("statusHistory")
        return OrderView(
            order=order, status_history=history if isinstance(history, list) else [], events=events
        )

    @reading
    async def get_event(self, tx: Tx, event_id: str, scope: Scope) -> Event:
        """One event (test events included)."""
        row = await lookup(tx, "event_by_id", id=event_id)
        event = None if row is None else event_from_row(row)
        if event is None or not await visible(tx, event, scope):
            raise NotFound(f"event {event_id} not found")
        return event

    @reading
    async def list_events(
        self, tx: Tx, flt: EventFilter, limit: int, cursor: str | None
    ) -> Page[Event]:
        """Stored events, oldest first; test events are never listed (read them by id)."""
        query = "list_events_of_order" if flt.order_id is not None else "list_events"
        if flt.order_id is not None and flt.type == OperationalEventType.DELIVERY_FAILED:
            # Outside every order's queue, they name their order in their data only.
            query = "list_failed_delivery_events_of_order"
        return await fetch_page(
            tx,
            query,
            limit,
            event_from_row,
            after=cursor or FIRST_ASCENDING,
            order_id=flt.order_id,
            type=None if flt.type is None else str(flt.type),
            account=flt.account,
            **_window(tx, flt),
        )

    @reading
    async def get_webhook(self, tx: Tx, webhook_id: str, scope: Scope) -> Webhook:
        """A live webhook the caller may see (all its accounts in scope)."""
        row = await lookup(tx, "webhook_by_id", id=webhook_id)
        if row is None:
            raise NotFound(f"webhook {webhook_id} not found")
        webhook = webhook_from_row(row, self.box)
        if not scope.allows_all(webhook.accounts):
            raise NotFound(f"webhook {webhook_id} not found")
        return webhook

    @reading
    async def list_webhooks(
        self, tx: Tx, flt: WebhookFilter, limit: int, cursor: str | None
    ) -> Page[Webhook]:
        """Live webhooks, oldest first."""
        return await fetch_page(
            tx,
            "list_webhooks",
            limit,
            lambda row: webhook_from_row(row, self.box),
            after=cursor or FIRST_ASCENDING,
            account=flt.account,
            state=None if flt.state is None else str(flt.state),
            scope=scope_param(tx, flt.scope),
        )

    @reading
    async def webhooks_in_trouble(self, tx: Tx, scope: Scope, limit: int) -> list[Webhook]:
        """Up to `limit` live webhooks the caller may see that may be in trouble (disabled
        for failing or a gone endpoint, awaiting an agreement, or whose latest attempt
        failed): those disabled for cause first, then the active ones by their run of
        failures, then those awaiting, each group oldest first."""
        rows = await tx.fetch("webhooks_in_trouble", scope=scope_param(tx, scope), limit=limit)
        return [webhook_from_row(row, self.box) for row in rows]

    @reading
    async def list_deliveries(
        self, tx: Tx, flt: DeliveryFilter, limit: int, cursor: str | None
    ) -> Page[Delivery]:
        """Deliveries, newest first."""
        if flt.webhook_id is not None:
            query = "list_deliveries_of_webhook"
        elif flt.order_id is not None:
            query = "list_deliveries_of_order"
        else:
            query = "list_deliveries"
        return await fetch_page(
            tx,
            query,
            limit,
            delivery_from_row,
            before=cursor or FIRST_DESCENDING,
            webhook_id=flt.webhook_id,
            state=None if flt.state is None else str(flt.state),
            order_id=flt.order_id,
            event_type=None if flt.event_type is None else str(flt.event_type),
            **_window(tx, flt),
        )

    @reading
    async def get_delivery(
        self, tx: Tx, delivery_id: str, scope: Scope, *, with_batch: bool = False
    ) -> DeliveryView:
        """One delivery with its event and attempts, oldest first; `with_batch`: and the
        events of the batch it was last sent in (up to a batch's maximum, for the
        dashboard's body: the API's answer does not show them)."""
        row = await lookup(tx, "delivery_by_id", id=delivery_id)
        if row is None or not scope.allows(row["account"]):
            raise NotFound(f"delivery {delivery_id} not found")
        event_row = await tx.fetchrow("event_by_id", id=row["event_id"])
        assert event_row is not None  # deliveries reference their event
        event = event_from_row(event_row)
        if not await visible(tx, event, scope) or not await _receiver_visible(tx, row, scope):
            raise NotFound(f"delivery {delivery_id} not found")
        attempts = [
            attempt_from_row(r) for r in await tx.fetch("attempts_of", delivery_id=delivery_id)
        ]
        batch_id = row["batch_id"] if with_batch else None
        batch = [] if batch_id is None else await _batch_events(tx, batch_id)
        return DeliveryView(
            delivery=delivery_from_row(row), event=event, attempts=attempts, batch=batch
        )

    @reading
    async def any_failed(self, tx: Tx, accounts: Sequence[str] | None) -> bool:
        """Whether a delivery of one of these accounts (None: of any account) has failed
        (to any webhook, deleted ones included)."""
        if accounts is None:
            return await tx.fetchrow("any_failed_anywhere") is not None
        if not accounts:
            return False
        row = await tx.fetchrow("any_failed_of", accounts=tx.array(sorted(accounts)))
        return row is not None

    @reading
    async def pending_of(self, tx: Tx, accounts: Sequence[str]) -> PendingSummary:
        """The pending deliveries a partner of these accounts may list (to any of its
        webhooks, those it shares with other accounts included): how many, and the oldest."""
        if not accounts:
            return PendingSummary(0, None)
        row = await tx.fetchrow("pending_of_accounts", accounts=tx.array(sorted(accounts)))
        assert row is not None  # an aggregate answers one row
        return PendingSummary(int(row["pending"]), moment_or_none(row["oldest"]))

    @reading
    async def webhook_stats(self, tx: Tx, webhook_id: str, now: datetime) -> WebhookStats:
        """Counts by state, success rate, latency percentiles of the last attempts, and the
        last success and failure."""
        runtime = await lookup(tx, "runtime_of_live_webhook", webhook_id=webhook_id)
        if runtime is None:
            raise NotFound(f"webhook {webhook_id} not found")
        counts = {state: 0 for state in DeliveryState}
        for row in await tx.fetch("delivery_counts", webhook_id=webhook_id):
            counts[DeliveryState(row["state"])] = row["n"]
        done = counts[DeliveryState.DELIVERED] + counts[DeliveryState.FAILED]
        rows = await tx.fetch("recent_durations", webhook_id=webhook_id, limit=LATENCY_SAMPLE)
        durations = sorted(request_durations(rows))
        return WebhookStats(
            counts=counts,
            success_rate=counts[DeliveryState.DELIVERED] / done if done else None,
            latency_ms_p50=percentile(durations, 0.50),
            latency_ms_p95=percentile(durations, 0.95),
            latency_ms_p99=percentile(durations, 0.99),
            last_success_at=moment_or_none(runtime["last_success_at"]),
            last_failure_at=moment_or_none(runtime["last_failure_at"]),
        )

    @reading
    async def live_webhook_ids(self, tx: Tx) -> frozenset[str]:
        """The ids of the webhooks not deleted (the catalog: one version read when no
        webhook changed since it was loaded)."""
        return frozenset(await self._catalog.load(tx))

    @reading
    async def queue_gauges(self, tx: Tx) -> list[QueueGauge]:
        """Pending depth and oldest pending creation time per webhook."""
        return [
            QueueGauge(
                webhook_id=row["webhook_id"],
                pending=row["pending"],
                oldest_pending_at=moment_or_none(row["oldest"]),
            )
            for row in await tx.fetch("queue_gauges")
        ]

    @reading
    async def outcome_series(
        self,
        tx: Tx,
        scope: Scope,
        webhook_id: str | None,
        since: datetime,
        until: datetime,
        bucket_seconds: int,
    ) -> list[OutcomeBucket]:
        """Attempts started in [since, until), in epoch-aligned buckets, oldest first (empty
        buckets left out): of one webhook, or of every delivery the scope allows."""
        if unstorable(webhook_id):
            return []
        bucket_us = bucket_seconds * MICROSECONDS_PER_SECOND
        rows = await tx.fetch(
            "outcome_series",
            webhook_id=webhook_id,
            since=micros(since),
            until=micros(until),
            bucket_us=bucket_us,
            scope=scope_param(tx, scope),
        )
        return [
            OutcomeBucket(
                start=moment(row["bucket"] * bucket_us),
                succeeded=int(row["succeeded"]),
                failed=int(row["failed"]),
                latency_ms_p50=_float_or_none(row["p50"]),
                latency_ms_p95=_float_or_none(row["p95"]),
                latency_ms_p99=_float_or_none(row["p99"]),
            )
            for row in rows
        ]

    @reading
    async def usage(
        self, tx: Tx, accounts: Sequence[str] | None, months: Sequence[str]
    ) -> list[UsageRow]:
        """Usage rows of the accounts (None: all) and months, by account, month and event
        type in code point order: sorted here, since a PostgreSQL database's collation (a
        language's, on many installations) would order accounts by that language's rules."""
        param = None
        if accounts is not None:
            param = tx.array(sorted({a for a in accounts if not unstorable(a)}))
        wanted = sorted({m for m in months if not unstorable(m)})
        rows = await tx.fetch("usage_rows", accounts=param, months=tx.array(wanted))
        found = [usage_from_row(row) for row in rows]
        return sorted(found, key=lambda row: (row.account, row.month, row.event_type.value))
