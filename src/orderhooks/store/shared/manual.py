"""Manual control (docs/api.md): retry now, recover failed deliveries, replay, test."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from orderhooks.domain.model import (
    ALL_ACCOUNTS,
    Delivery,
    DeliveryState,
    Event,
    EventType,
    Ordering,
    Webhook,
)
from orderhooks.domain.routing import replay_selection, wants, wants_new_order
from orderhooks.exceptions import Conflict, NotFound
from orderhooks.store.shared.audit import Audit, audited
from orderhooks.store.shared.catalog import deleted_among, refuse_deleted
from orderhooks.store.shared.codec import (
    delivery_from_row,
    event_from_row,
    event_params,
    new_delivery_params,
)
from orderhooks.store.shared.core import StoreCore, writing
from orderhooks.store.shared.heads import Queue, lock_orders, refresh_heads, share_ordering
from orderhooks.store.shared.tx import Tx, lookup
from orderhooks.store.shared.values import micros, micros_or_none
from orderhooks.store.shared.webhooks import probe_now, stored_webhook

REPLAY_PAGE = 1000  # events read per statement while replaying


async def _chosen_before(
    tx: Tx, webhook: Webhook, since_us: int, events: Sequence[Event], chosen: set[str]
) -> None:
    """Add to `chosen` the orders of `events` whose `order.new` meant for a webhook with a
    trigger was created before the replay's range: a later one (made for another
    webhook's higher trigger) is not meant for it. Without a trigger, the arrival is
    meant, which `replay_selection` knows by its sequence."""
    if webhook.new_order_trigger is None:
        return
    orders = sorted(
        {
            e.order_id
            for e in events
            if e.type == EventType.NEW and e.order_id is not None and e.order_id not in chosen
        }
    )
    if not orders:
        return
    rows = await tx.fetch("order_news_before", order_ids=tx.array(orders), before=since_us)
    for earlier in map(event_from_row, rows):
        if (
            earlier.order_id is not None
            and wants(webhook, earlier)
            and wants_new_order(webhook, earlier)
        ):
            chosen.add(earlier.order_id)


class ManualOperations(StoreCore):
    """Retry now, recover, replay, test: what operators and partners ask for by hand."""

    @writing(wake=True)
    async def retry_delivery_now(
        self, tx: Tx, delivery_id: str, now: datetime, *, audit: Audit[Delivery] | None = None
    ) -> Delivery:
        """Make a pending delivery due now, or put a failed one back to pending with the
        whole schedule; Conflict for delivered, delivering or cancelled ones."""
        row = await lookup(tx, "delivery_by_id", id=delivery_id)
        if row is None:
            raise NotFound(f"delivery {delivery_id} not found")
        delivery = delivery_from_row(row)
        if delivery.state == DeliveryState.PENDING:
            await tx.execute("make_due", id=delivery_id, next_attempt_at=micros(now))
        elif delivery.state == DeliveryState.FAILED:
            await share_ordering(tx)
            webhooks = await self._catalog.load(tx)
            gone = await deleted_among(tx, [delivery.webhook_id])
            if delivery.webhook_id not in webhooks or gone:
                raise Conflict(f"the webhook of delivery {delivery_id} was deleted")
            # An operational event's delivery has no order, and no queue to keep.
            order_id = delivery.order_id
            if order_id is not None:
                await lock_orders(tx, [order_id])
            await tx.execute("requeue_delivery", id=delivery_id, next_attempt_at=micros(now))
            if not delivery.test and order_id is not None:
                await refresh_heads(tx, [(delivery.webhook_id, order_id)], webhooks)
        else:
            raise Conflict(f"delivery {delivery_id} is {delivery.state}")
        await probe_now(tx, delivery.webhook_id, now)
        fresh = await tx.fetchrow("delivery_by_id", id=delivery_id)
        if fresh is None:  # purged by the retention meanwhile
            raise NotFound(f"delivery {delivery_id} not found")
        return await audited(tx, delivery_from_row(fresh), audit)

    @writing(wake=True)
    async def recover_failed(
        self,
        tx: Tx,
        webhook_id: str,
        since: datetime,
        until: datetime | None,
        now: datetime,
        *,
        audit: Audit[int] | None = None,
    ) -> int:
        """Failed deliveries of the webhook created in [since, until) go back to pending,
        due now, with the whole schedule; returns how many."""
        await share_ordering(tx)
        webhooks = await self._catalog.load(tx)
        if webhook_id not in webhooks:
            raise NotFound(f"webhook {webhook_id} not found")
        await refuse_deleted(tx, webhook_id)
        window = {"webhook_id": webhook_id, "since": micros(since), "until": micros_or_none(until)}
        await tx.fetch("lock_orders_of_failed", **window)
        rows = await tx.fetch("recover_failed", **window, now=micros(now))
        queues = [
            (webhook_id, row["order_id"])
            for row in rows
            if not row["test"] and row["order_id"] is not None  # operational: no queue
        ]
        await refresh_heads(tx, queues, webhooks)
        if rows:
            await probe_now(tx, webhook_id, now)
        return await audited(tx, len(rows), audit)

    @writing(wake=True)
    async def replay_events(
        self,
        tx: Tx,
        webhook: Webhook,
        since: datetime,
        until: datetime | None,
        event_types: Sequence[EventType] | None,
        now: datetime,
        *,
        audit: Audit[int] | None = None,
    ) -> int:
        """New `replay` deliveries, due now, of every stored non-test event created in
        [since, until) that the webhook's routing accepts (its state is ignored: a replay
        is explicit); returns how many."""
        await share_ordering(tx)
        stored = await stored_webhook(tx, webhook.id, self.box)
        await refuse_deleted(tx, stored.id)
        accounts = None if ALL_ACCOUNTS in stored.accounts else tx.array(sorted(stored.accounts))
        types = None if not event_types else tx.array(sorted(str(t) for t in event_types))
        ready = stored.ordering == Ordering.NONE
        cursor = (micros(since), "")  # keyset on (created_at, id); every id sorts after ""
        queued = 0
        queues: set[Queue] = set()
        orders_with_new: set[str] = set()
        while rows := await tx.fetch(
            "replay_candidates",
            after_created_at=cursor[0],
            after_id=cursor[1],
            until=micros_or_none(until),
            accounts=accounts,
            types=types,
            limit=REPLAY_PAGE,
        ):
            cursor = (rows[-1]["created_at"], rows[-1]["id"])
            # Operational events are never replayed: they belong to no order.
            order_events = [e for e in map(event_from_row, rows) if e.sequence is not None]
            await _chosen_before(tx, stored, micros(since), order_events, orders_with_new)
            events = replay_selection(stored, order_events, orders_with_new)
            params = [
                new_delivery_params(
                    self._new_id("dlv"), stored.id, e, replay=True, ready=ready, now=now
                )
                for e in events
            ]
            await tx.executemany("insert_delivery", params)
            queued += len(events)
            queues.update((stored.id, e.order_id) for e in events if e.order_id is not None)
        if not ready and queues:
            await lock_orders(tx, [order_id for _, order_id in queues])
            await refresh_heads(tx, queues, {stored.id: stored})
        return await audited(tx, queued, audit)

    @writing(wake=True)
    async def create_test_delivery(
        self,
        tx: Tx,
        webhook: Webhook,
        event: Event,
        now: datetime,
        *,
        audit: Audit[str] | None = None,
    ) -> str:
        """Store a synthetic test event and its delivery to `webhook`, due now; returns the
        delivery id. Test deliveries stand outside the per-order queues and are never
        billed."""
        await stored_webhook(tx, webhook.id, self.box)
        await refuse_deleted(tx, webhook.id)
        test_event = dataclasses.replace(event, test=True)
        await tx.execute("insert_event", **event_params(test_event))
        delivery_id = self._new_id("dlv")
        params = new_delivery_params(
            delivery_id, webhook.id, test_event, replay=False, ready=True, now=now
        )
        await tx.execute("insert_delivery", **params)
        await probe_now(tx, webhook.id, now)
        return await audited(tx, delivery_id, audit)
