"""Reading what happened (docs/api.md): deliveries and their attempts, events, orders;
and retrying one delivery now."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request

from orderhooks.domain.envelope import envelope
from orderhooks.domain.model import DeliveryState
from orderhooks.service import deliveries
from orderhooks.store.base import DeliveryFilter, EventFilter
from orderhooks.web.answer_json import delivery_json, delivery_view_json, order_view_json
from orderhooks.web.answer_models import (
    DeliveryDetail,
    DeliveryOut,
    DeliveryPage,
    EventOut,
    EventPage,
    OrderOut,
)
from orderhooks.web.auth import PartnerCaller
from orderhooks.web.bodies import read_json
from orderhooks.web.common import IdQuery, PageParams, TimeQuery, page_answer, time_range
from orderhooks.web.context import get_context
from orderhooks.web.openapi import AUTH_ERRORS, BODY_ERRORS, answers
from orderhooks.web.request_models import SubscribedType
from orderhooks.web.responses import OrjsonResponse

router = APIRouter(tags=["deliveries, events and orders"])


@router.get(
    "/v1/deliveries",
    summary="List deliveries",
    responses=answers(200, DeliveryPage, "A page of deliveries, newest first", *AUTH_ERRORS),
)
async def list_deliveries(
    request: Request,
    caller: PartnerCaller,
    page: PageParams,
    webhookId: IdQuery = None,
    state: Annotated[DeliveryState | None, Query()] = None,
    orderId: IdQuery = None,
    eventType: Annotated[SubscribedType | None, Query()] = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
) -> OrjsonResponse:
    """Deliveries of the caller's accounts, filtered; `since`/`until` bound `createdAt`."""
    ctx = get_context(request)
    start, end = time_range(since, until)
    flt = DeliveryFilter(
        scope=caller.scope,
        webhook_id=webhookId,
        state=state,
        order_id=orderId,
        event_type=eventType,
        since=start,
        until=end,
    )
    return await page_answer(page, "dlv", partial(ctx.store.list_deliveries, flt), delivery_json)


@router.get(
    "/v1/deliveries/{deliveryId}",
    summary="Read a delivery with its event and attempts",
    responses=answers(200, DeliveryDetail, "The delivery", 404, *AUTH_ERRORS),
)
async def get_delivery(request: Request, deliveryId: str, caller: PartnerCaller) -> OrjsonResponse:
    """One delivery, its event (the envelope) and its attempts, oldest first."""
    ctx = get_context(request)
    view = await ctx.store.get_delivery(deliveryId, caller.scope)
    return OrjsonResponse(delivery_view_json(view))


@router.post(
    "/v1/deliveries/{deliveryId}/retry",
    summary="Attempt a delivery now",
    status_code=202,
    responses=answers(
        202,
        DeliveryOut,
        "Due now (a failed one gets the schedule again)",
        404,
        409,
        *AUTH_ERRORS,
        *BODY_ERRORS,
    ),
)
async def retry_delivery(
    request: Request, deliveryId: str, caller: PartnerCaller
) -> OrjsonResponse:
    """Make a pending or failed delivery due now; 409 for delivered, delivering, cancelled."""
    ctx = get_context(request)
    view = await ctx.store.get_delivery(deliveryId, caller.scope)
    # No body is expected; an empty request needs no content type.
    await read_json(request, ctx.settings.max_body_bytes, required=False)
    delivery = await deliveries.retry_now(ctx.service, caller.actor, view.delivery.id)
    return OrjsonResponse(delivery_json(delivery), status_code=202)


@router.get(
    "/v1/events",
    summary="List events",
    responses=answers(200, EventPage, "A page of events (envelopes), oldest first", *AUTH_ERRORS),
)
async def list_events(
    request: Request,
    caller: PartnerCaller,
    page: PageParams,
    orderId: IdQuery = None,
    type: Annotated[SubscribedType | None, Query()] = None,
    account: IdQuery = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
) -> OrjsonResponse:
    """Events of the caller's accounts, filtered; `since`/`until` bound `timestamp`."""
    ctx = get_context(request)
    if account is not None:
        caller.require_accounts([account])
    start, end = time_range(since, until)
    flt = EventFilter(
        scope=caller.scope, order_id=orderId, type=type, account=account, since=start, until=end
    )
    return await page_answer(page, "evt", partial(ctx.store.list_events, flt), envelope)


@router.get(
    "/v1/events/{eventId}",
    summary="Read an event",
    responses=answers(200, EventOut, "The event's envelope", 404, *AUTH_ERRORS),
)
async def get_event(request: Request, eventId: str, caller: PartnerCaller) -> OrjsonResponse:
    """One event as its envelope."""
    ctx = get_context(request)
    return OrjsonResponse(envelope(await ctx.store.get_event(eventId, caller.scope)))


@router.get(
    "/v1/orders/{orderId}",
    summary="Read an order",
    responses=answers(
        200, OrderOut, "The order, its history, courier and events", 404, *AUTH_ERRORS
    ),
)
async def get_order(request: Request, orderId: str, caller: PartnerCaller) -> OrjsonResponse:
    """The current document, status history, courier and events of an order."""
    ctx = get_context(request)
    return OrjsonResponse(order_view_json(await ctx.store.get_order(orderId, caller.scope)))
