"""The ingest API (PRODUCT 7): orders, status and courier updates, and batches.

Each call validates its body with `domain.orders`, then makes one `Store.ingest` call,
which answers only once the events and deliveries are committed (PRODUCT 4.4).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from fastapi import APIRouter, Request

from orderhooks.domain.batch import batch_items
from orderhooks.domain.model import EventType
from orderhooks.domain.orders import (
    validate_courier_update,
    validate_order,
    validate_status_update,
)
from orderhooks.exceptions import FieldProblem, NotFound, ValidationError
from orderhooks.store.base import (
    CourierItem,
    IngestItem,
    IngestResult,
    NewOrderItem,
    StatusItem,
    UnknownOrder,
)
from orderhooks.web import ingest_docs
from orderhooks.web.auth import IngestCaller
from orderhooks.web.bodies import read_json, read_json_bytes
from orderhooks.web.context import ApiContext, get_context
from orderhooks.web.openapi import AUTH_ERRORS, BODY_ERRORS, answers, json_body
from orderhooks.web.responses import OrjsonResponse
from orderhooks.web.shapes import EventIds, IngestAccepted

router = APIRouter(tags=["ingest"])


def created_event_types(item: IngestItem, result: IngestResult) -> list[EventType]:
    """The types of the events an ingest item created, in order.

    The planner (domain.ingest) creates, for a new order, its `order.new`; for an update
    (or a newer version of an order), the triggered `order.new` events first and the
    update's own event last.
    """
    count = len(result.event_ids)
    if count == 0:
        return []
    if isinstance(item, NewOrderItem) and result.created:
        return [EventType.NEW] * count
    last = EventType.COURIER_UPDATE if isinstance(item, CourierItem) else EventType.STATUS_UPDATE
    return [EventType.NEW] * (count - 1) + [last]


async def ingest(ctx: ApiContext, items: Sequence[IngestItem]) -> list[IngestResult]:
    """Store the items in one transaction and count the events created."""
    results = await ctx.store.ingest(items, ctx.now())
    for item, result in zip(items, results, strict=True):
        for event_type in created_event_types(item, result):
            ctx.metrics.events_ingested.labels(type=event_type.value).inc()
    return results


async def _ingest_one(ctx: ApiContext, item: IngestItem) -> IngestResult:
    try:
        [result] = await ingest(ctx, [item])
    except UnknownOrder as exc:
        raise NotFound(f"unknown order {exc.order_id!r}") from None
    return result


def _event_ids_answer(result: IngestResult) -> OrjsonResponse:
    status = 200 if result.repeat else 202
    return OrjsonResponse({"eventIds": list(result.event_ids)}, status_code=status)


_INGEST_ERRORS = (*AUTH_ERRORS, *BODY_ERRORS)


@router.post(
    "/v1/orders",
    summary="Post a new order, or a newer version of a known one",
    status_code=202,
    response_class=OrjsonResponse,
    responses={
        **answers(202, IngestAccepted, "Stored; the events created", *_INGEST_ERRORS),
        **answers(200, IngestAccepted, "A byte-identical repeat: nothing created"),
    },
    openapi_extra=json_body(ingest_docs.ORDER),
)
async def post_order(request: Request, caller: IngestCaller) -> OrjsonResponse:
    """Validate and store an order document; a byte-identical repeat creates nothing."""
    ctx = get_context(request)
    raw, body = await read_json_bytes(request, ctx.settings.max_body_bytes)
    document = validate_order(body)
    item = NewOrderItem(document=document, body_hash=hashlib.sha256(raw).hexdigest())
    result = await _ingest_one(ctx, item)
    answer = {"orderId": result.order_id, "eventIds": list(result.event_ids)}
    return OrjsonResponse(answer, status_code=200 if result.repeat else 202)


@router.post(
    "/v1/orders/{orderId}/status",
    summary="Post a status update of a known order",
    status_code=202,
    response_class=OrjsonResponse,
    responses={
        **answers(202, EventIds, "Stored; the events created", 404, *_INGEST_ERRORS),
        **answers(200, EventIds, "An exact repeat (same status and timeStamp)"),
    },
    openapi_extra=json_body(ingest_docs.STATUS_UPDATE),
)
async def post_status(request: Request, orderId: str, caller: IngestCaller) -> OrjsonResponse:
    """Store a status update; an exact repeat creates nothing; unknown order 404."""
    ctx = get_context(request)
    update = validate_status_update(await read_json(request, ctx.settings.max_body_bytes))
    return _event_ids_answer(await _ingest_one(ctx, StatusItem(order_id=orderId, update=update)))


@router.post(
    "/v1/orders/{orderId}/courier",
    summary="Post a courier update of a known order",
    status_code=202,
    response_class=OrjsonResponse,
    responses={
        **answers(202, EventIds, "Stored; the events created", 404, *_INGEST_ERRORS),
        **answers(200, EventIds, "A repeat: nothing created"),
    },
    openapi_extra=json_body(ingest_docs.COURIER_UPDATE),
)
async def post_courier(request: Request, orderId: str, caller: IngestCaller) -> OrjsonResponse:
    """Store a courier update; unknown order 404."""
    ctx = get_context(request)
    update = validate_courier_update(await read_json(request, ctx.settings.max_body_bytes))
    return _event_ids_answer(await _ingest_one(ctx, CourierItem(order_id=orderId, update=update)))


@router.post(
    "/v1/events",
    summary="Post a batch of order events, all stored or none",
    status_code=202,
    response_class=OrjsonResponse,
    responses=answers(202, EventIds, "Stored; every event created, in item order", *_INGEST_ERRORS),
    openapi_extra=json_body(ingest_docs.BATCH),
)
async def post_batch(request: Request, caller: IngestCaller) -> OrjsonResponse:
    """Validate every item, then store them all in one transaction (repeats add none)."""
    ctx = get_context(request)
    items = batch_items(await read_json(request, ctx.settings.max_body_bytes))
    try:
        results = await ingest(ctx, items)
    except UnknownOrder as exc:
        # In a batch an unknown order makes its item invalid: 422 naming the index, like
        # any other bad item (PRODUCT 7); the single-update endpoints answer 404.
        problem = FieldProblem("orderId", "unknown order", index=exc.index)
        raise ValidationError([problem], message=f"unknown order {exc.order_id!r}") from None
    event_ids = [event_id for result in results for event_id in result.event_ids]
    return OrjsonResponse({"eventIds": event_ids}, status_code=202)
