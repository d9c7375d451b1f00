"""The ingest API (PRODUCT 7): orders, status and courier updates, and batches.

Each call validates its body with `domain.orders`, then makes one `Store.ingest` call,
which answers only once the events and deliveries are committed (PRODUCT 4.4).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import APIRouter, Request

from orderhooks.domain.model import EventType
from orderhooks.domain.orders import (
    validate_courier_update,
    validate_order,
    validate_status_update,
)
from orderhooks.exceptions import FieldProblem, NotFound, UnknownOrder, ValidationError
from orderhooks.store.base import (
    CourierItem,
    IngestItem,
    IngestResult,
    NewOrderItem,
    StatusItem,
)
from orderhooks.web import ingest_docs
from orderhooks.web.auth import IngestCaller
from orderhooks.web.bodies import read_json, read_json_bytes
from orderhooks.web.context import ApiContext, get_context
from orderhooks.web.openapi import AUTH_ERRORS, BODY_ERRORS, answers, json_body
from orderhooks.web.responses import OrjsonResponse
from orderhooks.web.shapes import EventIds, IngestAccepted

router = APIRouter(tags=["ingest"])

_BATCH_KEYS = frozenset({"type", "orderId", "data"})
_EVENT_TYPES = tuple(t.value for t in EventType)


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


def _prefixed(problems: Sequence[FieldProblem], index: int) -> list[FieldProblem]:
    """Problems of an item's `data`, named from the item: `data.items[0].price`."""
    out = []
    for p in problems:
        if not p.field or p.field == "body":
            field = "data"
        elif p.field.startswith("["):
            field = f"data{p.field}"
        else:
            field = f"data.{p.field}"
        out.append(FieldProblem(field, p.message, index))
    return out


def _batch_fields(index: int, raw: Any) -> tuple[EventType, str | None, dict[str, Any]]:
    """The type, orderId and data of a batch item, checked for shape only."""
    if not isinstance(raw, dict):
        raise ValidationError([FieldProblem("item", "must be an object", index)])
    problems = [FieldProblem(k, "unknown field", index) for k in raw if k not in _BATCH_KEYS]
    type_value, order_id, data = raw.get("type"), raw.get("orderId"), raw.get("data")
    if not isinstance(type_value, str) or type_value not in _EVENT_TYPES:
        problems.append(FieldProblem("type", "must be one of " + ", ".join(_EVENT_TYPES), index))
    if order_id is not None and not isinstance(order_id, str):
        problems.append(FieldProblem("orderId", "must be a string", index))
    if not isinstance(data, dict):
        problems.append(FieldProblem("data", "must be an object", index))
    if problems:
        raise ValidationError(problems)
    assert isinstance(type_value, str) and isinstance(data, dict)
    return EventType(type_value), order_id, data


def batch_item(index: int, raw: Any) -> IngestItem:
    """One batch item validated (PRODUCT 7.1); ValidationError naming `index` otherwise."""
    event_type, order_id, data = _batch_fields(index, raw)
    if event_type is not EventType.NEW and order_id is None:
        raise ValidationError([FieldProblem("orderId", "is required for updates", index)])
    try:
        if event_type is EventType.STATUS_UPDATE:
            assert order_id is not None
            return StatusItem(order_id=order_id, update=validate_status_update(data))
        if event_type is EventType.COURIER_UPDATE:
            assert order_id is not None
            return CourierItem(order_id=order_id, update=validate_courier_update(data))
        document = validate_order(data)
    except ValidationError as exc:
        raise ValidationError(_prefixed(exc.problems, index)) from None
    if order_id is not None and order_id != document.get("_id"):
        raise ValidationError([FieldProblem("orderId", "must equal data._id", index)])
    # An item has no bytes of its own: the hash of its canonical encoding marks repeats.
    body_hash = hashlib.sha256(orjson.dumps(document)).hexdigest()
    return NewOrderItem(document=document, body_hash=body_hash)


def batch_items(body: Any) -> list[IngestItem]:
    """Every item of a batch validated; one ValidationError naming every bad item."""
    if not isinstance(body, list) or not 1 <= len(body) <= ingest_docs.MAX_BATCH_ITEMS:
        message = f"must be an array of 1 to {ingest_docs.MAX_BATCH_ITEMS} items"
        raise ValidationError([FieldProblem("body", message)])
    items: list[IngestItem] = []
    problems: list[FieldProblem] = []
    for index, raw in enumerate(body):
        try:
            items.append(batch_item(index, raw))
        except ValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ValidationError(problems, message="the batch is invalid; nothing was stored")
    return items


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
