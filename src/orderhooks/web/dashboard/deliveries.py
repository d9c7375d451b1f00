"""Delivery pages: a filtered list, and one delivery with its exact payload and attempts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response

from orderhooks.domain.batches import encode_batch
from orderhooks.domain.envelope import encode_body, webhook_body, with_body_settings
from orderhooks.domain.model import (
    AnyEventType,
    Delivery,
    DeliveryState,
    EventType,
    OperationalEventType,
    PayloadFormat,
    PersonalData,
    Scope,
    Webhook,
)
from orderhooks.exceptions import NotFound
from orderhooks.store import Store
from orderhooks.store.base import DeliveryFilter
from orderhooks.web.dashboard.auth import Viewer
from orderhooks.web.dashboard.context import Dashboard
from orderhooks.web.dashboard.formatting import pretty_body
from orderhooks.web.dashboard.params import cursor_param, enum_param, notice, text_param

DELIVERIES_PER_PAGE = 50
RETRYABLE_STATES = frozenset({DeliveryState.PENDING, DeliveryState.FAILED})
# Every type a delivery can have: the order types and the operational ones.
DELIVERED_TYPES: list[AnyEventType] = [*EventType, *OperationalEventType]


def _event_type(request: Request) -> AnyEventType | None:
    """The `type` filter: an order or operational event type; None otherwise."""
    return enum_param(request, "type", EventType) or enum_param(
        request, "type", OperationalEventType
    )


async def list_page(dash: Dashboard, request: Request, viewer: Viewer) -> Response:
    """GET /ui/deliveries: newest first, filtered by webhook, state, type or order."""
    flt = DeliveryFilter(
        scope=viewer.scope,
        webhook_id=text_param(request, "webhook"),
        state=enum_param(request, "state", DeliveryState),
        order_id=text_param(request, "order"),
        event_type=_event_type(request),
    )
    cursor = cursor_param(request, "dlv")
    found = await dash.store.list_deliveries(flt, DELIVERIES_PER_PAGE, cursor)
    openable = await openable_webhooks(dash.store, viewer.scope, found.items)
    return dash.render(
        "deliveries.html",
        viewer=viewer,
        title="Deliveries",
        nav="deliveries",
        deliveries=found.items,
        flt=flt,
        states=list(DeliveryState),
        event_types=DELIVERED_TYPES,
        cursor=cursor,
        next_cursor=found.next_cursor,
        openable=openable,
    )


async def openable_webhooks(
    store: Store, scope: Scope, deliveries: Sequence[Delivery]
) -> frozenset[str]:
    """The webhooks of `deliveries` whose page the viewer may open: live, and all of whose
    accounts are the viewer's (a partner also lists its deliveries to others)."""

    async def one(webhook_id: str) -> str | None:
        try:
            return (await store.get_webhook(webhook_id, scope)).id
        except NotFound:
            return None

    ids = sorted({d.webhook_id for d in deliveries})
    return frozenset(found for found in await asyncio.gather(*map(one, ids)) if found)


async def _webhook_of(dash: Dashboard, webhook_id: str) -> Webhook | None:
    # Read unscoped only to learn the payload format and shaping the receiver got; the
    # page links to the webhook only when the viewer may see it. A deleted webhook is None.
    try:
        return await dash.store.get_webhook(webhook_id, Scope())
    except NotFound:
        return None


def _shaping_note(webhook: Webhook | None) -> str:
    """How the webhook's settings shape its bodies, for the payload's caption ("" if not)."""
    if webhook is None:
        return ""
    notes = []
    if webhook.fields is not None:
        notes.append(f"{len(webhook.fields)} listed fields")
    if webhook.personal_data is PersonalData.EXCLUDE:
        notes.append("personal data excluded")
    return ", ".join(notes)


async def detail_page(dash: Dashboard, request: Request, viewer: Viewer) -> Response:
    """GET /ui/deliveries/{id}: the bytes sent and every attempt."""
    view = await dash.store.get_delivery(
        request.path_params["delivery_id"], viewer.scope, with_batch=True
    )
    current = await _webhook_of(dash, view.delivery.webhook_id)
    webhook_visible = current is not None and viewer.scope.allows_all(current.accounts)
    # Built the way the dispatcher built it: the event shaped by the settings its last
    # attempt was sent with (before any attempt, by those the next send will use).
    sent_with = view.attempts[-1].body_settings if view.attempts else None
    webhook = None if current is None else with_body_settings(current, sent_with)
    payload_format = webhook.payload_format if webhook else PayloadFormat.ENVELOPE
    if webhook is None:
        body = encode_body(view.event, payload_format)
    elif view.delivery.batch_id is not None and view.batch and webhook_visible:
        # Sent in a batch (whose other events the viewer may see): the batch body.
        envelopes = [webhook_body(event, webhook) for event in view.batch]
        body = encode_batch(view.delivery.batch_id, envelopes)
    else:
        body = webhook_body(view.event, webhook)
    return dash.render(
        "delivery.html",
        viewer=viewer,
        title=f"Delivery {view.delivery.id}",
        nav="deliveries",
        view=view,
        delivery=view.delivery,
        webhook=webhook,
        webhook_visible=webhook_visible,
        payload_format=payload_format,
        shaping=_shaping_note(webhook),
        payload=body.decode("utf-8", errors="replace"),
        payload_pretty=pretty_body(body),
        payload_bytes=len(body),
        attempts=list(view.attempts),
        # A deleted webhook's deliveries cannot be retried (the operation answers 409).
        can_retry=webhook is not None and view.delivery.state in RETRYABLE_STATES,
        notice=notice(request),
    )
