"""Planning an ingest: given the stored order and a validated body, what changes.

Pure: the store loads the current state and the active webhooks, calls a planner, and
writes the plan in one transaction.

Sequences: `OrderState.next_sequence` is the sequence the order's next event gets (1 for
a new order's `order.new`). A status change that fires `newOrderTrigger`s creates one
shared `order.new` numbered just before the `order.status_update` it comes with, so a
receiver of both sees the full order first (docs/events.md, the envelope).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orderhooks.domain.envelope import format_timestamp
from orderhooks.domain.ids import IdFactory
from orderhooks.domain.model import Event, EventType, NewDelivery, OrderState, Webhook
from orderhooks.domain.routing import route_event, triggered_webhooks
from orderhooks.domain.statuses import is_normal_flow

NO_FLOW_STATUS = -1  # `max_flow_status` of an order that never had a normal-flow status
DEFAULT_HISTORY_SOURCE = 0  # `statusHistory[].source` when the update names none


@dataclass(frozen=True, slots=True)
class IngestPlan:
    """The new order state, the events created (in sequence order) and their deliveries.

    `repeat` is true when nothing changes (an idempotent repeat); then `events` and
    `deliveries` are empty and `order` is the current state.
    """

    order: OrderState
    events: Sequence[Event]
    deliveries: Sequence[NewDelivery]
    repeat: bool
    created: bool


def _max_flow(previous: int, status: int) -> int:
    return max(previous, status) if is_normal_flow(status) else previous


def _given(value: Any, default: Any) -> Any:
    # Optional body fields may be null; null means "not given".
    return default if value is None else value


def _given_time(value: Any, now: datetime) -> Any:
    """`value`, or `now` formatted when it is not given (formatted only then)."""
    return format_timestamp(now) if value is None else value


def _event(
    order: OrderState,
    event_type: EventType,
    sequence: int,
    data: Mapping[str, Any],
    status: int | None,
    now: datetime,
    event_id: str,
) -> Event:
    return Event(
        id=event_id,
        type=event_type,
        order_id=order.order_id,
        account=order.account,
        location=order.location,
        channel_link=order.channel_link,
        channel=order.channel,
        sequence=sequence,
        created_at=now,
        data=data,
        status=status,
    )


def _deliver(event: Event, webhooks: Sequence[Webhook], new_id: IdFactory) -> list[NewDelivery]:
    return [NewDelivery(id=new_id("dlv"), webhook_id=w.id, event=event) for w in webhooks]


def _state_from_document(
    document: Mapping[str, Any], body_hash: str, base: OrderState | None, now: datetime
) -> OrderState:
    """The order state carrying `document`; counters and courier kept from `base`, or, for a
    new order, as its `order.new` (sequence 1) leaves them."""
    courier = document.get("courier")
    if not isinstance(courier, Mapping):
        courier = base.courier if base is not None else None
    status = document["status"]
    return OrderState(
        order_id=document["_id"],
        account=document["account"],
        location=document["location"],
        channel_link=document["channelLink"],
        channel=document["channel"],
        status=status,
        document=document,
        body_hash=body_hash,
        courier=courier,
        next_sequence=base.next_sequence if base is not None else 2,
        max_flow_status=base.max_flow_status
        if base is not None
        else _max_flow(NO_FLOW_STATUS, status),
        created_at=base.created_at if base is not None else now,
        updated_at=now,
    )


def _plan_status_change(
    before: OrderState,
    order: OrderState,
    status: int,
    document: Mapping[str, Any],
    data: Mapping[str, Any],
    webhooks: Sequence[Webhook],
    now: datetime,
    new_id: IdFactory,
) -> IngestPlan:
    """The events of a status change from `before` to `status` with `document`: a
    triggered `order.new` when some trigger fires, then the `order.status_update`. The
    plan's order is `order` (`before` itself for an update, the new version's state for a
    newer document) with that status, document and the new counters, made in one
    `dataclasses.replace` (several µs each; ingest runs this for every update)."""
    sequence = before.next_sequence
    events: list[Event] = []
    deliveries: list[NewDelivery] = []
    # Routing needs only the event's type, scope and status, so probe before making an id.
    probe = _event(order, EventType.NEW, sequence, document, status, now, "")
    fired = triggered_webhooks(probe, before.max_flow_status, webhooks)
    if fired:
        triggered = dataclasses.replace(probe, id=new_id("evt"))
        events.append(triggered)
        deliveries.extend(_deliver(triggered, fired, new_id))
        sequence += 1
    update = _event(order, EventType.STATUS_UPDATE, sequence, data, status, now, new_id("evt"))
    events.append(update)
    deliveries.extend(_deliver(update, route_event(update, webhooks), new_id))
    changed = dataclasses.replace(
        order,
        status=status,
        document=document,
        next_sequence=sequence + 1,
        max_flow_status=_max_flow(before.max_flow_status, status),
        updated_at=now,
    )
    return IngestPlan(
        order=changed, events=events, deliveries=deliveries, repeat=False, created=False
    )


def _last_history_entry(document: Mapping[str, Any]) -> Mapping[str, Any] | None:
    history = document.get("statusHistory")
    if isinstance(history, list) and history and isinstance(history[-1], Mapping):
        return history[-1]
    return None


def _version_status_data(before: OrderState, after: OrderState, now: datetime) -> dict[str, Any]:
    """The status update data of a newer order version whose status changed; its time is
    the new document's own history entry for that status when there is one."""
    document = after.document
    last = _last_history_entry(document)
    time_stamp = last.get("timeStamp") if last and last.get("status") == after.status else None
    return {
        "orderId": after.order_id,
        "channelOrderId": _given(document.get("channelOrderId"), ""),
        "location": after.location,
        "account": after.account,
        "status": after.status,
        "timeStamp": _given_time(time_stamp, now),
        "reason": "",
        "isIgnoredPOSStatus": False,
        "previousStatus": before.status,
    }


def plan_new_order(
    current: OrderState | None,
    document: Mapping[str, Any],
    body_hash: str,
    webhooks: Sequence[Webhook],
    now: datetime,
    new_id: IdFactory,
    *,
    raw_hash: str | None = None,
) -> IngestPlan:
    """A new order (`order.new`), or a newer version of a known one.

    The document last posted again (the stored `body_hash` is `body_hash`, or `raw_hash`
    for an order stored under the hash of its body's bytes) is a repeat. A newer version
    replaces the document; when its status differs it creates an `order.status_update`
    (and triggered `order.new` events) like a status update would.
    """
    if current is not None and current.body_hash in (body_hash, raw_hash):
        return IngestPlan(order=current, events=(), deliveries=(), repeat=True, created=False)
    state = _state_from_document(document, body_hash, current, now)
    if current is not None:
        if state.status == current.status:
            return IngestPlan(order=state, events=(), deliveries=(), repeat=False, created=False)
        data = _version_status_data(current, state, now)
        return _plan_status_change(
            current, state, state.status, state.document, data, webhooks, now, new_id
        )
    event = _event(state, EventType.NEW, 1, document, state.status, now, new_id("evt"))
    deliveries = _deliver(event, route_event(event, webhooks), new_id)
    return IngestPlan(
        order=state, events=[event], deliveries=deliveries, repeat=False, created=True
    )


def is_repeat_status(current: OrderState, update: Mapping[str, Any]) -> bool:
    """Whether a status update repeats a history entry exactly (same status and timeStamp);
    an update without a timeStamp is never a repeat.

    Any entry, not only the last: a broker redelivers every message of a round that was
    committed but not yet acknowledged, so an order's earlier update can come back after
    its later ones (docs/guarantees.md).
    """
    time_stamp = update.get("timeStamp")
    history = current.document.get("statusHistory")
    if time_stamp is None or not isinstance(history, list):
        return False
    return any(
        isinstance(entry, Mapping)
        and entry.get("status") == update["status"]
        and entry.get("timeStamp") == time_stamp
        for entry in history
    )


def status_update_data(
    current: OrderState, update: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """The `data` of an `order.status_update` (docs/events.md, status and courier updates): the
    body's fields, defaults, and what the stored order knows; the order's identity always comes from
    the store."""
    data: dict[str, Any] = {
        "orderId": current.order_id,
        "channelOrderId": _given(current.document.get("channelOrderId"), ""),
        "location": current.location,
        "account": current.account,
        "status": update["status"],
        "timeStamp": _given_time(update.get("timeStamp"), now),
        "reason": _given(update.get("reason"), ""),
        "isIgnoredPOSStatus": _given(update.get("isIgnoredPOSStatus"), False),
        "previousStatus": current.status,
    }
    for key, value in update.items():
        data.setdefault(key, value)
    return data


def _history_entry(update: Mapping[str, Any], time_stamp: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "timeStamp": time_stamp,
        "status": update["status"],
        "response": _given(update.get("response"), ""),
        "source": _given(update.get("source"), DEFAULT_HISTORY_SOURCE),
    }
    if update.get("reason") is not None:
        entry["reason"] = update["reason"]
    return entry


def plan_status_update(
    current: OrderState,
    update: Mapping[str, Any],
    webhooks: Sequence[Webhook],
    now: datetime,
    new_id: IdFactory,
) -> IngestPlan:
    """A status update: the document's `status` and `statusHistory` change, an
    `order.status_update` is created, preceded by a triggered `order.new` when an active
    webhook's trigger fires. Same status and timeStamp as a history entry: repeat."""
    if is_repeat_status(current, update):
        return IngestPlan(order=current, events=(), deliveries=(), repeat=True, created=False)
    data = status_update_data(current, update, now)
    history = current.document.get("statusHistory")
    document = {
        **current.document,
        "status": data["status"],
        "statusHistory": [
            *(history if isinstance(history, list) else ()),
            _history_entry(update, data["timeStamp"]),
        ],
    }
    return _plan_status_change(
        current, current, data["status"], document, data, webhooks, now, new_id
    )


def courier_status_of(update: Mapping[str, Any]) -> int | None:
    """The courier status an update carries: its `status`, else its `courier.status`."""
    status = update.get("status")
    courier = update.get("courier")
    if status is None and isinstance(courier, Mapping):
        status = courier.get("status")
    return status if isinstance(status, int) else None


def merged_courier(current: OrderState, update: Mapping[str, Any]) -> dict[str, Any]:
    """The order's courier after an update: the known courier, the body's `courier` over
    it, and `courier.status` set from the body's `status` when given."""
    courier: dict[str, Any] = dict(current.courier or {})
    body_courier = update.get("courier")
    if isinstance(body_courier, Mapping):
        courier.update(body_courier)
    if update.get("status") is not None:
        courier["status"] = update["status"]
    return courier


def courier_update_data(
    current: OrderState, update: Mapping[str, Any], courier: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """The `data` of an `order.courier_update` (docs/events.md, status and courier updates), every
    field present (null when unknown), filled from the body and the stored order."""
    document = current.document
    data: dict[str, Any] = {
        "orderId": current.order_id,
        "location": current.location,
        "account": current.account,
        "received": _given_time(update.get("received"), now),
        "status": courier_status_of(update),
        "courier": courier,
        "pickupTime": _given(update.get("pickupTime"), document.get("pickupTime")),
        "deliveryTime": _given(update.get("deliveryTime"), document.get("deliveryTime")),
        "trackingURL": update.get("trackingURL"),
        "coordinates": update.get("coordinates"),
        "updatedOrigin": update.get("updatedOrigin"),
    }
    for key, value in update.items():
        data.setdefault(key, value)
    return data


def plan_courier_update(
    current: OrderState,
    update: Mapping[str, Any],
    webhooks: Sequence[Webhook],
    now: datetime,
    new_id: IdFactory,
) -> IngestPlan:
    """A courier update: the document's `courier` changes, an `order.courier_update` is
    created."""
    courier = merged_courier(current, update)
    data = courier_update_data(current, update, courier, now)
    sequence = current.next_sequence
    event = _event(
        current, EventType.COURIER_UPDATE, sequence, data, data["status"], now, new_id("evt")
    )
    order = dataclasses.replace(
        current,
        # Copies: the event's data and the stored state must not share a mutable dict.
        document={**current.document, "courier": dict(courier)},
        courier=dict(courier),
        next_sequence=sequence + 1,
        updated_at=now,
    )
    deliveries = _deliver(event, route_event(event, webhooks), new_id)
    return IngestPlan(
        order=order, events=[event], deliveries=deliveries, repeat=False, created=False
    )
