"""Operational events (docs/events.md) as the store writes them: each one in the
transaction of the transition that causes it, with its deliveries, so that a crash can
neither lose nor double one. What they say and who receives them is decided by the pure
`domain/opevents.py`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from orderhooks.domain.model import Webhook
from orderhooks.domain.opevents import (
    OperationalEvent,
    OperationalEventType,
    may_receive_operational_events,
    operational_event,
    route_operational_event,
)
from orderhooks.store.shared.catalog import deleted_among, share_webhooks
from orderhooks.store.shared.tx import Tx
from orderhooks.store.shared.values import dumps, micros


def _event_params(event: OperationalEvent) -> dict[str, object]:
    """`insert_event` of an operational event: no order, location, channel or sequence
    (the order of `delivery.failed` stays in its data)."""
    return {
        "id": event.id,
        "type": event.type.value,
        "order_id": None,
        "account": event.account,
        "location": None,
        "channel_link": None,
        "channel": None,
        "sequence": None,
        "created_at": micros(event.created_at),
        "data": dumps(event.data),
        "status": None,
        "test": event.test,
        "trace_parent": None,  # caused by an outcome or an operator, not by a request
    }


def _delivery_params(
    delivery_id: str, receiver: Webhook, event: OperationalEvent, now: datetime
) -> dict[str, object]:
    """`insert_delivery` of an operational event: due now, outside every per-order queue
    (no order, always ready), never a replay."""
    created = micros(now)
    return {
        "id": delivery_id,
        "webhook_id": receiver.id,
        "event_id": event.id,
        "event_type": event.type.value,
        "order_id": None,
        "account": event.account,
        "sequence": None,
        "replay": False,
        "test": event.test,
        "ready": True,
        "created_at": created,
        "next_attempt_at": created,
    }


async def share_receivers(tx: Tx, webhooks: Iterable[Webhook]) -> None:
    """Take the share locks of every webhook among `webhooks` that an operational event
    may go to, before any webhook, delivery or runtime row is locked (the lock order atop
    postgres/queries.sql). `emit_operational_event` then finds its receivers' locks held:
    taken only there, after such rows, a transaction waited for a delete of a receiver
    that itself waited for those rows (the version row a disable bumped, the deliveries an
    outcome wrote), and PostgreSQL broke the deadlock after `deadlock_timeout`."""
    await share_webhooks(tx, [w.id for w in webhooks if may_receive_operational_events(w)])


async def emit_operational_event(
    tx: Tx,
    new_id: Callable[[str], str],
    event_type: OperationalEventType,
    about: Webhook,
    data: Mapping[str, Any],
    webhooks: Iterable[Webhook],
    now: datetime,
) -> OperationalEvent:
    """Store one operational event about webhook `about` and a pending delivery of it
    to every webhook the routing rule picks among `webhooks` (never `about` itself)."""
    event = operational_event(new_id("evt"), event_type, about, data, now)
    await tx.execute("insert_event", **_event_params(event))
    routed = route_operational_event(event_type, about, webhooks)
    gone = await deleted_among(tx, [r.id for r in routed])
    receivers = [r for r in routed if r.id not in gone]
    await tx.executemany(
        "insert_delivery", [_delivery_params(new_id("dlv"), r, event, now) for r in receivers]
    )
    return event
