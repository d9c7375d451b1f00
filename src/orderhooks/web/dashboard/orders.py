"""Order pages: find an order, and follow one through its statuses, courier and deliveries."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from orderhooks.domain.model import Delivery, Event, EventType, Scope, Webhook
from orderhooks.exceptions import NotFound
from orderhooks.store import Store
from orderhooks.store.base import DeliveryFilter
from orderhooks.web.dashboard.auth import Viewer
from orderhooks.web.dashboard.context import UI_PREFIX, Dashboard, redirect
from orderhooks.web.dashboard.params import text_param
from orderhooks.web.dashboard.timeline import (
    courier_label,
    courier_progress,
    milestone_spans,
    milestones,
    status_label,
    status_timeline,
)

RECENT_DELIVERIES_SCANNED = 200
RECENT_ORDERS_SHOWN = 20
ORDER_DELIVERIES_SHOWN = 500


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event of the order and the deliveries it made."""

    event: Event
    status_text: str
    deliveries: Sequence[Delivery]


async def search_page(dash: Dashboard, request: Request, viewer: Viewer) -> Response:
    """GET /ui/orders: look an order up by id, or pick one with recent deliveries."""
    wanted = text_param(request, "order_id")
    if wanted:
        return redirect(f"{UI_PREFIX}/orders/{quote(wanted, safe='')}")
    recent = await dash.store.list_deliveries(
        DeliveryFilter(scope=viewer.scope), RECENT_DELIVERIES_SCANNED, None
    )
    seen: dict[str, Delivery] = {}
    for delivery in recent.items:
        if not delivery.test and delivery.order_id is not None and delivery.order_id not in seen:
            seen[delivery.order_id] = delivery
    return dash.render(
        "orders.html",
        viewer=viewer,
        title="Orders",
        nav="orders",
        recent=list(seen.values())[:RECENT_ORDERS_SHOWN],
    )


def _status_text(event: Event) -> str:
    if event.type == EventType.COURIER_UPDATE:
        return courier_label(event.status)
    return status_label(event.status)


async def _visible_webhooks(store: Store, scope: Scope, ids: set[str]) -> dict[str, Webhook]:
    async def one(webhook_id: str) -> Webhook | None:
        try:
            return await store.get_webhook(webhook_id, scope)
        except NotFound:
            return None

    found = await asyncio.gather(*(one(i) for i in sorted(ids)))
    return {hook.id: hook for hook in found if hook is not None}


async def detail_page(dash: Dashboard, request: Request, viewer: Viewer) -> Response:
    """GET /ui/orders/{id}: timeline, milestones, courier progress, who got which event."""
    view = await dash.store.get_order(request.path_params["order_id"], viewer.scope)
    found = await dash.store.list_deliveries(
        DeliveryFilter(scope=viewer.scope, order_id=view.order.order_id),
        ORDER_DELIVERIES_SHOWN,
        None,
    )
    by_event: dict[str, list[Delivery]] = {}
    for delivery in found.items:
        by_event.setdefault(delivery.event_id, []).append(delivery)
    rows = [
        EventRow(event, _status_text(event), sorted(by_event.get(event.id, []), key=_by_id))
        for event in sorted(view.events, key=lambda e: e.sequence or 0)
    ]
    steps = status_timeline(view.status_history)
    courier = courier_progress(view.events)
    reached = milestones(steps, courier)
    webhooks = await _visible_webhooks(
        dash.store, viewer.scope, {d.webhook_id for d in found.items}
    )
    return dash.render(
        "order.html",
        viewer=viewer,
        title=f"Order {view.order.order_id}",
        nav="orders",
        order=view.order,
        steps=steps,
        courier_steps=courier,
        current_courier=view.order.courier,
        reached=reached,
        spans=milestone_spans(reached),
        rows=rows,
        webhooks=webhooks,
        more_deliveries=found.next_cursor is not None,
    )


def _by_id(delivery: Delivery) -> str:
    return delivery.id
