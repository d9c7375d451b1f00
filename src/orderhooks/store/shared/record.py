"""Recording outcomes: attempts, delivery states, queue heads, usage, webhook health and
the operational events these transitions cause (docs/events.md), all in the transaction
of one batch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orderhooks.delivery.claims import Outcome
from orderhooks.domain.health import (
    WebhookHealth,
    after_attempt,
    after_uncounted_failure,
    counts_toward_health,
)
from orderhooks.domain.model import (
    DeliveryState,
    DisabledReason,
    EventType,
    Webhook,
)
from orderhooks.domain.opevents import (
    OperationalEventType,
    delivery_failed_data,
    recovers,
    starts_failing,
    webhook_disabled_data,
    webhook_failing_data,
    webhook_recovered_data,
)
from orderhooks.store.shared.catalog import bump_version
from orderhooks.store.shared.codec import (
    attempt_params,
    delivery_from_row,
    health_from_row,
    health_params,
)
from orderhooks.store.shared.core import StoreCore
from orderhooks.store.shared.heads import Queue, refresh_heads, share_ordering
from orderhooks.store.shared.opevents import emit_operational_event, share_receivers
from orderhooks.store.shared.tx import Row, Tx
from orderhooks.store.shared.values import micros, month_of

ORDER_EVENT_TYPES = frozenset(t.value for t in EventType)

FINISHED = frozenset({DeliveryState.DELIVERED, DeliveryState.FAILED})
UsageKey = tuple[str, str, str, bool]  # account, month, event type, replay


@dataclass(slots=True)
class Emitter:
    """Writes the operational events of one transaction, in the order of the transitions,
    routing each among the live webhooks as this transaction left them (those it
    disabled receive nothing)."""

    tx: Tx
    new_id: Callable[[str], str]
    live: Mapping[str, Webhook]
    now: datetime
    disabled: set[str] = field(default_factory=set)
    emitted: list[OperationalEventType] = field(default_factory=list)

    @classmethod
    async def start(
        cls, tx: Tx, new_id: Callable[[str], str], live: Mapping[str, Webhook], now: datetime
    ) -> Emitter:
        """The emitter of a transaction that has locked no row yet: the webhooks its
        events may go to are share-locked now (`share_receivers`, the lock order)."""
        await share_receivers(tx, live.values())
        return cls(tx, new_id, live, now)

    async def emit(
        self, event_type: OperationalEventType, about: Webhook, data: Mapping[str, Any]
    ) -> None:
        candidates = [w for w in self.live.values() if w.id not in self.disabled]
        await emit_operational_event(
            self.tx, self.new_id, event_type, about, data, candidates, self.now
        )
        self.emitted.append(event_type)


def finished_at(outcome: Outcome) -> datetime:
    """When the attempt's answer came: the delivery time of a delivered event."""
    return outcome.attempt.started_at + timedelta(milliseconds=outcome.attempt.duration_ms)


async def write_outcomes(
    tx: Tx, outcomes: Sequence[Outcome], disable_after_seconds: int, emitter: Emitter
) -> bool:
    """Write the outcomes at the emitter's time, among its live webhooks; returns whether
    some delivery finished (its queue may have a new head)."""
    if not outcomes:
        return False
    now, webhooks = emitter.now, emitter.live
    ids = sorted({o.delivery_id for o in outcomes})
    # Order locks first (the lock order every transaction follows), then the rows.
    await tx.fetch("lock_orders_of_deliveries", ids=tx.array(ids))
    rows = {row["id"]: row for row in await tx.fetch("deliveries_for_record", ids=tx.array(ids))}
    known = [o for o in outcomes if o.delivery_id in rows]
    await tx.executemany(
        "insert_attempt", [attempt_params(o.attempt, o.webhook_id, o.batch_id) for o in known]
    )
    applied, finished, retried = await _advance(tx, known, rows, now)
    await refresh_heads(tx, finished | retried, webhooks)
    await _count_usage(tx, applied, rows)
    await _emit_failed_deliveries(applied, rows, emitter)
    await _update_health(tx, known, disable_after_seconds, emitter)
    return bool(finished)


async def _advance(
    tx: Tx, outcomes: Sequence[Outcome], rows: Mapping[str, Row], now: datetime
) -> tuple[list[Outcome], set[Queue], set[Queue]]:
    """Move each delivery still `delivering` to its outcome's state; returns the outcomes
    applied, the queues whose delivery finished and those whose delivery is back in
    `pending` for another attempt. A delivery that left `delivering` meanwhile
    (cancelled by a delete, or already recorded) keeps its state: the attempt is
    recorded, the delivery is not resurrected; a cancelled one counts the attempt in its
    `attempt_count`, as its attempts list shows it.

    A delivery back in `pending` refreshes its queue too: another delivery of its event
    may be in flight (an event and its replay both sent while the webhook's ordering
    was `none`, then turned to `per_order`), and that one is the head now, so the same
    event is not sent twice at once (docs/guarantees.md, "Per-order order")."""
    state = {delivery_id: row["state"] for delivery_id, row in rows.items()}
    applied: list[Outcome] = []
    updates: list[dict[str, object]] = []
    finished: set[Queue] = set()
    retried: set[Queue] = set()
    for outcome in outcomes:
        row = rows[outcome.delivery_id]
        if state[outcome.delivery_id] == DeliveryState.CANCELLED:
            if outcome.attempt.attempt > row["attempt_count"]:
                updates.append(_cancelled_update(row, outcome.attempt.attempt))
            continue
        if state[outcome.delivery_id] != DeliveryState.DELIVERING:
            continue
        state[outcome.delivery_id] = outcome.next_state
        applied.append(outcome)
        done = outcome.next_state in FINISHED
        delivered = outcome.next_state == DeliveryState.DELIVERED
        # A retry without a time would never fall due again: it is due at once instead.
        retry_at = outcome.next_attempt_at or now
        updates.append(
            {
                "id": outcome.delivery_id,
                "state": str(outcome.next_state),
                "next_attempt_at": None if done else micros(retry_at),
                "delivered_at": micros(finished_at(outcome)) if delivered else None,
                "attempt_count": max(row["attempt_count"], outcome.attempt.attempt),
                "schedule_position": outcome.schedule_position,
            }
        )
        if not row["test"] and row["order_id"] is not None:
            (finished if done else retried).add((row["webhook_id"], row["order_id"]))
    await tx.executemany("advance_delivery", updates)
    return applied, finished, retried


def _cancelled_update(row: Row, attempt: int) -> dict[str, object]:
    """The `advance_delivery` parameters that leave a cancelled delivery as it is, but for
    the attempt that was in flight when its webhook was deleted."""
    return {
        "id": row["id"],
        "state": str(DeliveryState.CANCELLED),
        "next_attempt_at": None,
        "delivered_at": None,
        "attempt_count": attempt,
        "schedule_position": row["schedule_position"],
    }


async def _count_usage(tx: Tx, applied: Sequence[Outcome], rows: Mapping[str, Row]) -> None:
    """One unit per delivered (non-test) delivery, replays counted apart."""
    units: Counter[UsageKey] = Counter()
    for outcome in applied:
        row = rows[outcome.delivery_id]
        if outcome.next_state != DeliveryState.DELIVERED or row["test"]:
            continue
        if row["event_type"] not in ORDER_EVENT_TYPES:
            continue  # operational events are never billed
        month = month_of(finished_at(outcome))
        units[(row["account"], month, row["event_type"], bool(row["replay"]))] += 1
    params = [
        {
            "account": account,
            "month": month,
            "event_type": event_type,
            "delivered": 0 if replay else n,
            "replayed": n if replay else 0,
        }
        for (account, month, event_type, replay), n in sorted(units.items())
    ]
    await tx.executemany("add_usage", params)


async def _emit_failed_deliveries(
    applied: Sequence[Outcome], rows: Mapping[str, Row], emitter: Emitter
) -> None:
    """`delivery.failed` for each order event's delivery that failed after its last
    attempt. Not for test deliveries, nor for an operational event's own delivery: a
    failing receiver of operational events must not set off an endless exchange of them."""
    for outcome in applied:
        row = rows[outcome.delivery_id]
        if outcome.next_state != DeliveryState.FAILED or row["test"]:
            continue
        about = emitter.live.get(row["webhook_id"])
        if about is None or row["event_type"] not in ORDER_EVENT_TYPES:
            continue
        data = delivery_failed_data(delivery_from_row(row), outcome.attempt)
        await emitter.emit(OperationalEventType.DELIVERY_FAILED, about, data)


async def _update_health(
    tx: Tx, outcomes: Sequence[Outcome], disable_after_seconds: int, emitter: Emitter
) -> None:
    """Fold each attempt into its webhook's health (a `proxy_error` only as the last
    failure); disable webhooks that are gone or have been failing too long. Each
    transition emits its operational event: `webhook.failing` when probing starts,
    `webhook.recovered` when a success ends it, `webhook.disabled` when this transaction
    disables the webhook."""
    now, webhooks = emitter.now, emitter.live
    webhook_ids = sorted({o.webhook_id for o in outcomes if o.webhook_id in webhooks})
    if not webhook_ids:
        return
    rows = await tx.fetch("lock_runtime", webhook_ids=tx.array(webhook_ids))
    health: dict[str, WebhookHealth] = {row["webhook_id"]: health_from_row(row) for row in rows}
    disable: dict[str, DisabledReason] = {}
    batches: set[str] = set()
    for outcome in outcomes:
        if outcome.webhook_id not in health:
            continue
        if not counts_toward_health(outcome.attempt.error):
            health[outcome.webhook_id] = after_uncounted_failure(health[outcome.webhook_id], now)
            continue
        # A batch is one request: its outcomes are one attempt for the webhook's health.
        if outcome.batch_id is not None:
            if outcome.batch_id in batches:
                continue
            batches.add(outcome.batch_id)
        succeeded = outcome.next_state == DeliveryState.DELIVERED
        # After a final failure the next probe is the backlog's next due delivery, on its
        # own schedule, with no extra cool-down (docs/guarantees.md): probing may resume now.
        retry_at = outcome.next_attempt_at or now
        before = health[outcome.webhook_id]
        after, reason = after_attempt(before, succeeded, now, retry_at, disable_after_seconds)
        health[outcome.webhook_id] = after
        about = webhooks[outcome.webhook_id]
        if starts_failing(before, after):
            data = webhook_failing_data(about, after, outcome.attempt)
            await emitter.emit(OperationalEventType.WEBHOOK_FAILING, about, data)
        elif recovers(before, after):
            data = webhook_recovered_data(about, before)
            await emitter.emit(OperationalEventType.WEBHOOK_RECOVERED, about, data)
        reason = outcome.disable or reason
        if reason is not None and outcome.webhook_id not in disable:
            disable[outcome.webhook_id] = reason
    await tx.executemany(
        "update_health", [health_params(wid, h) for wid, h in sorted(health.items())]
    )
    changed = 0
    for webhook_id, reason in sorted(disable.items()):
        disabled = await tx.execute(
            "disable_webhook", id=webhook_id, disabled_reason=str(reason), disabled_at=micros(now)
        )
        changed += disabled
        if disabled:
            about = webhooks[webhook_id]
            emitter.disabled.add(webhook_id)
            data = webhook_disabled_data(about, reason)
            await emitter.emit(OperationalEventType.WEBHOOK_DISABLED, about, data)
    if changed:
        await bump_version(tx)


class RecordOperations(StoreCore):
    """The delivery queue's other side: what became of each attempt."""

    async def record(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        """Store attempts and their deliveries' next state in one transaction; update the
        webhooks' health and usage counters."""
        if not outcomes:
            return

        async def job(tx: Tx) -> tuple[bool, list[OperationalEventType]]:
            await share_ordering(tx)  # the heads are refreshed by the ordering read now
            live = await self._catalog.load(tx)
            emitter = await Emitter.start(tx, self._new_id, live, now)
            done = await write_outcomes(tx, outcomes, self._disable_after_seconds, emitter)
            return done, emitter.emitted

        # A lost outcome only means its delivery is sent again (at least once); the
        # operational events of its transitions are lost with it, and emitted again
        # when the attempt's new outcome makes the same transition.
        finished, emitted = await self._write(job, durable=False)
        if finished:
            # The next event of a finished delivery's order may be claimable now.
            self._wake_workers()
        self._emitted(emitted)
