"""Recording outcomes: attempts, delivery states, queue heads, usage and webhook health,
all in the transaction of one batch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from orderhooks.delivery.claims import Outcome
from orderhooks.domain.health import WebhookHealth, after_attempt, counts_toward_health
from orderhooks.domain.model import DeliveryState, DisabledReason, Webhook
from orderhooks.store.shared.catalog import bump_version
from orderhooks.store.shared.codec import attempt_params, health_from_row, health_params
from orderhooks.store.shared.core import StoreCore
from orderhooks.store.shared.heads import Queue, refresh_heads
from orderhooks.store.shared.tx import Row, Tx
from orderhooks.store.shared.values import micros, month_of

FINISHED = frozenset({DeliveryState.DELIVERED, DeliveryState.FAILED})
UsageKey = tuple[str, str, str, bool]  # account, month, event type, replay


def finished_at(outcome: Outcome) -> datetime:
    """When the attempt's answer came: the delivery time of a delivered event."""
    return outcome.attempt.started_at + timedelta(milliseconds=outcome.attempt.duration_ms)


async def _record(
    tx: Tx,
    outcomes: Sequence[Outcome],
    now: datetime,
    webhooks: Mapping[str, Webhook],
    disable_after_seconds: int,
) -> bool:
    """Write the outcomes; returns whether some delivery finished (its queue may have a
    new head)."""
    if not outcomes:
        return False
    ids = sorted({o.delivery_id for o in outcomes})
    # Order locks first (the lock order every transaction follows), then the rows.
    await tx.fetch("lock_orders_of_deliveries", ids=tx.array(ids))
    rows = {row["id"]: row for row in await tx.fetch("deliveries_for_record", ids=tx.array(ids))}
    known = [o for o in outcomes if o.delivery_id in rows]
    await tx.executemany("insert_attempt", [attempt_params(o.attempt, o.webhook_id) for o in known])
    applied, finished = await _advance(tx, known, rows, now)
    await refresh_heads(tx, finished, webhooks)
    await _count_usage(tx, applied, rows)
    await _update_health(tx, known, now, webhooks, disable_after_seconds)
    return bool(finished)


async def _advance(
    tx: Tx, outcomes: Sequence[Outcome], rows: Mapping[str, Row], now: datetime
) -> tuple[list[Outcome], set[Queue]]:
    """Move each delivery still `delivering` to its outcome's state; returns the outcomes
    applied and the queues whose delivery finished. A delivery that left `delivering`
    meanwhile (cancelled by a delete, or already recorded) keeps its state: the attempt
    is recorded, the delivery is not resurrected."""
    state = {delivery_id: row["state"] for delivery_id, row in rows.items()}
    applied: list[Outcome] = []
    updates: list[dict[str, object]] = []
    finished: set[Queue] = set()
    for outcome in outcomes:
        row = rows[outcome.delivery_id]
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
        if done and not row["test"]:
            finished.add((row["webhook_id"], row["order_id"]))
    await tx.executemany("advance_delivery", updates)
    return applied, finished


async def _count_usage(tx: Tx, applied: Sequence[Outcome], rows: Mapping[str, Row]) -> None:
    """One unit per delivered (non-test) delivery, replays counted apart."""
    units: Counter[UsageKey] = Counter()
    for outcome in applied:
        row = rows[outcome.delivery_id]
        if outcome.next_state != DeliveryState.DELIVERED or row["test"]:
            continue
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


async def _update_health(
    tx: Tx,
    outcomes: Sequence[Outcome],
    now: datetime,
    webhooks: Mapping[str, Webhook],
    disable_after_seconds: int,
) -> None:
    """Fold each attempt into its webhook's health; disable webhooks that are gone or
    have been failing too long."""
    webhook_ids = sorted({o.webhook_id for o in outcomes if o.webhook_id in webhooks})
    if not webhook_ids:
        return
    rows = await tx.fetch("lock_runtime", webhook_ids=tx.array(webhook_ids))
    health: dict[str, WebhookHealth] = {row["webhook_id"]: health_from_row(row) for row in rows}
    disable: dict[str, DisabledReason] = {}
    batches: set[str] = set()
    for outcome in outcomes:
        if outcome.webhook_id not in health or not counts_toward_health(outcome.attempt.error):
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
        health[outcome.webhook_id], reason = after_attempt(
            health[outcome.webhook_id],
            succeeded,
            now,
            retry_at,
            disable_after_seconds,
        )
        reason = outcome.disable or reason
        if reason is not None and outcome.webhook_id not in disable:
            disable[outcome.webhook_id] = reason
    await tx.executemany(
        "update_health", [health_params(wid, h) for wid, h in sorted(health.items())]
    )
    changed = 0
    for webhook_id, reason in sorted(disable.items()):
        changed += await tx.execute(
            "disable_webhook", id=webhook_id, disabled_reason=str(reason), disabled_at=micros(now)
        )
    if changed:
        await bump_version(tx)


class RecordOperations(StoreCore):
    """The delivery queue's other side: what became of each attempt."""

    async def record(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        """Store attempts and their deliveries' next state in one transaction; update the
        webhooks' health and usage counters."""
        if not outcomes:
            return

        async def job(tx: Tx) -> bool:
            live = await self._catalog.load(tx)
            return await _record(tx, outcomes, now, live, self._disable_after_seconds)

        # A lost outcome only means its delivery is sent again (at least once).
        if await self._write(job, durable=False):
            # The next event of a finished delivery's order may be claimable now.
            self._wake_workers()
