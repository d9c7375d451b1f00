"""Writing an ingest: load the orders, let the pure planners decide, write the plans."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orderhooks.domain import ingest as planner
from orderhooks.domain.ids import IdFactory
from orderhooks.domain.model import Ordering, OrderState, Webhook
from orderhooks.exceptions import OrderAccountChanged, UnknownOrder
from orderhooks.store.base import (
    CourierItem,
    IngestItem,
    IngestResult,
    MessageKey,
    NewOrderItem,
    StatusItem,
)
from orderhooks.store.shared.catalog import deleted_among
from orderhooks.store.shared.codec import (
    event_params,
    new_delivery_params,
    order_from_row,
    order_params,
)
from orderhooks.store.shared.core import StoreCore, writing
from orderhooks.store.shared.heads import Queue, share_ordering
from orderhooks.store.shared.tx import Tx
from orderhooks.store.shared.values import micros, unstorable


def item_order_id(item: IngestItem) -> str:
    """The order an ingest item is about."""
    if isinstance(item, NewOrderItem):
        return str(item.document["_id"])
    return item.order_id


@dataclass
class _Writes:
    """What one ingest transaction writes, gathered so each table gets one batch.

    `known` are the orders stored before this ingest, `busy` the (webhook, order)
    queues holding a pending or delivering delivery, `ordering` each active webhook's."""

    known: set[str]
    busy: set[Queue]
    ordering: dict[str, Ordering]
    trace_parent: str | None = None
    inserted_orders: dict[str, OrderState] = field(default_factory=dict)
    updated_orders: dict[str, OrderState] = field(default_factory=dict)
    events: list[dict[str, object]] = field(default_factory=list)
    deliveries: list[dict[str, object]] = field(default_factory=list)

    def add(self, order_id: str, plan: planner.IngestPlan, now: datetime) -> None:
        """Gather a plan's order, events and deliveries; a new delivery is ready only
        when nothing waits before it in its queue (or its webhook keeps no order)."""
        target = self.updated_orders if order_id in self.known else self.inserted_orders
        target[order_id] = plan.order
        self.events.extend(event_params(event, self.trace_parent) for event in plan.events)
        for delivery in plan.deliveries:
            queue = (delivery.webhook_id, order_id)
            ready = self.ordering.get(delivery.webhook_id) == Ordering.NONE
            ready = ready or queue not in self.busy
            self.busy.add(queue)
            self.deliveries.append(
                new_delivery_params(
                    delivery.id,
                    delivery.webhook_id,
                    delivery.event,
                    replay=delivery.replay,
                    ready=ready,
                    now=now,
                )
            )


def _plan(
    item: IngestItem,
    index: int,
    current: OrderState | None,
    webhooks: Sequence[Webhook],
    now: datetime,
    new_id: IdFactory,
) -> planner.IngestPlan:
    if isinstance(item, NewOrderItem):
        if current is not None and item.document["account"] != current.account:
            raise OrderAccountChanged(current.order_id, current.account, index)
        return planner.plan_new_order(
            current, item.document, item.body_hash, webhooks, now, new_id, raw_hash=item.raw_hash
        )
    if current is None:
        raise UnknownOrder(item.order_id, index)
    if isinstance(item, StatusItem):
        return planner.plan_status_update(current, item.update, webhooks, now, new_id)
    assert isinstance(item, CourierItem)
    return planner.plan_courier_update(current, item.update, webhooks, now, new_id)


async def _new_messages(tx: Tx, keys: Sequence[MessageKey], now: datetime) -> set[MessageKey]:
    """Record the broker messages' keys; returns those not recorded before (on
    PostgreSQL, waiting for a concurrent transaction that recorded one to finish)."""
    digests: dict[str, set[str]] = {}
    for key in keys:
        digests.setdefault(key.source_id, set()).add(key.digest)
    new: set[MessageKey] = set()
    for source_id, source_digests in sorted(digests.items()):
        rows = await tx.fetch(
            "record_messages",
            source_id=source_id,
            digests=tx.array(sorted(source_digests)),
            consumed_at=micros(now),
        )
        new.update(MessageKey(source_id, row["digest"]) for row in rows)
    return new


async def _busy_queues(tx: Tx, order_ids: Sequence[str]) -> set[Queue]:
    """The (webhook, order) queues of these orders that already hold a pending or
    delivering delivery: a new delivery there waits behind it."""
    if not order_ids:
        return set()
    rows = await tx.fetch("busy_queues", order_ids=tx.array(order_ids))
    return {(row["webhook_id"], row["order_id"]) for row in rows}


class IngestOperations(StoreCore):
    """Taking order events in."""

    @writing(wake=True)
    async def ingest(
        self,
        tx: Tx,
        items: Sequence[IngestItem],
        now: datetime,
        *,
        trace_parent: str | None = None,
        message_keys: Sequence[MessageKey] | None = None,
    ) -> list[IngestResult]:
        """Apply the items in order in one transaction, durable before it returns.

        Events and deliveries are planned by `orderhooks.domain.ingest`. All or nothing:
        raises UnknownOrder (with the item index) and stores nothing when an update names
        an order that neither the store nor an earlier item knows, and OrderAccountChanged
        when a newer version of a known order names another account. Wakes the delivery
        workers after commit. `trace_parent` (the ingest span's W3C traceparent) is
        stored with every event, for the delivery attempts' span links.

        `message_keys` (broker sources: one per item, the key of the message it came
        from) are recorded in the same transaction; the items of a message recorded
        before are skipped and create nothing (`IngestResult.duplicate`), whatever the
        repeat rules say, so a redelivered courier update is not applied twice.
        """
        # The new deliveries are marked ready by their webhooks' ordering, read now.
        await share_ordering(tx)
        active = await self._catalog.active(tx)
        order_ids = [item_order_id(item) for item in items]
        keys: list[MessageKey | None] = [None] * len(items)
        if message_keys is not None:
            keys = list(message_keys)
        if len(keys) != len(items):
            raise ValueError("one message key per item")
        new = await _new_messages(tx, [key for key in keys if key is not None], now)
        lookup = sorted({order_id for order_id in order_ids if not unstorable(order_id)})
        # Locks the known orders' rows (PostgreSQL) so concurrent ingests of one order queue.
        rows = await tx.fetch("orders_for_ingest", order_ids=tx.array(lookup))
        states: dict[str, OrderState] = {row["order_id"]: order_from_row(row) for row in rows}
        writes = _Writes(
            known=set(states),
            busy=await _busy_queues(tx, sorted(states)),
            ordering={w.id: w.ordering for w in active},
            trace_parent=trace_parent,
        )
        results: list[IngestResult] = []
        for index, (item, order_id, key) in enumerate(zip(items, order_ids, keys, strict=True)):
            if key is not None and key not in new:
                results.append(IngestResult(order_id, (), repeat=True, duplicate=True))
                continue
            plan = _plan(item, index, states.get(order_id), active, now, self._new_id)
            event_ids = tuple(event.id for event in plan.events)
            results.append(IngestResult(order_id, event_ids, plan.repeat, plan.created))
            if not plan.repeat:
                states[order_id] = plan.order
                writes.add(order_id, plan, now)
        await _write(tx, writes)
        return results


async def _write(tx: Tx, writes: _Writes) -> None:
    # A plain insert for new orders: on PostgreSQL a concurrent ingest of the same new
    # order then fails on the primary key and is retried, instead of overwriting.
    await tx.executemany("insert_order", [order_params(o) for o in writes.inserted_orders.values()])
    await tx.executemany("update_order", [order_params(o) for o in writes.updated_orders.values()])
    await tx.executemany("insert_event", writes.events)
    # A webhook deleted since the catalog was read gets none (its delete cancelled the rest).
    gone = await deleted_among(tx, {str(d["webhook_id"]) for d in writes.deliveries})
    await tx.executemany(
        "insert_delivery", [d for d in writes.deliveries if d["webhook_id"] not in gone]
    )
