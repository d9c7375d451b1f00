"""The one ingest path: validated items -> `Store.ingest` -> results.

The API's four ingest endpoints and the broker sources all come through here. Bodies
arrive already parsed from JSON; they are validated with `domain.orders` (strict types,
unknown fields kept), then stored in one transaction that commits before this returns
(docs/guarantees.md: an acknowledged event is durable).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from orderhooks.domain.model import EventType
from orderhooks.domain.orders import (
    validate_courier_update,
    validate_order,
    validate_status_update,
)
from orderhooks.exceptions import (
    FieldProblem,
    NotFound,
    OrderAccountChanged,
    UnknownOrder,
    ValidationError,
)
from orderhooks.service.context import ServiceContext
from orderhooks.store.base import (
    CourierItem,
    IngestItem,
    IngestResult,
    MessageKey,
    NewOrderItem,
    StatusItem,
)
from orderhooks.tracing import Tracing, describe_ingest, traceparent_of

MAX_BATCH_ITEMS = 1000
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


async def ingest_items(
    ctx: ServiceContext,
    items: Sequence[IngestItem],
    message_keys: Sequence[MessageKey] | None = None,
) -> list[IngestResult]:
    """Store validated items in one transaction and count the events created (traced as
    `orderhooks.ingest` when tracing is on). `message_keys`: the broker sources' (see
    `Store.ingest`); the HTTP API passes none."""
    types: list[str] | None = None
    if ctx.tracing is None or not ctx.tracing.enabled:
        results = await ctx.store.ingest(items, ctx.now(), message_keys=message_keys)
    else:
        results, types = await _traced_ingest(ctx, ctx.tracing, items, message_keys)
    if ctx.metrics is not None:
        # Counted per type, once per call: a batch of 100 is a few increments, not 100.
        counted = Counter(types if types is not None else _created_types(items, results))
        for event_type, count in counted.items():
            ctx.metrics.events_ingested.labels(type=event_type).inc(count)
    return results


def _created_types(items: Sequence[IngestItem], results: Sequence[IngestResult]) -> list[str]:
    """The type of every event the items created, in order."""
    return [
        str(event_type)
        for item, result in zip(items, results, strict=True)
        for event_type in created_event_types(item, result)
    ]


async def _traced_ingest(
    ctx: ServiceContext,
    tracing: Tracing,
    items: Sequence[IngestItem],
    message_keys: Sequence[MessageKey] | None,
) -> tuple[list[IngestResult], list[str]]:
    """The results, and the types of the events created (the span's and the metrics')."""
    # The span's traceparent is stored with the events: the attempts link to it later.
    with tracing.ingest_span() as span:
        results = await ctx.store.ingest(
            items, ctx.now(), trace_parent=traceparent_of(span), message_keys=message_keys
        )
        types = _created_types(items, results)
        event_ids = [event_id for result in results for event_id in result.event_ids]
        describe_ingest(span, [result.order_id for result in results], event_ids, types)
    return results, types


async def _ingest_one(ctx: ServiceContext, item: IngestItem) -> IngestResult:
    try:
        [result] = await ingest_items(ctx, [item])
    except UnknownOrder as exc:
        raise NotFound(f"unknown order {exc.order_id!r}") from None
    except OrderAccountChanged as exc:
        # The body is the order itself: the field is named as in the body, without index.
        problems = [FieldProblem(p.field, p.message) for p in exc.problems]
        raise ValidationError(problems, exc.message) from None
    return result


def document_hash(document: Mapping[str, Any]) -> str:
    """The repeat key of an order document: the SHA-256 of its compact JSON encoding.

    The same whichever path brought the document (`POST /v1/orders`, a batch item, a
    broker message) and however its JSON was written (whitespace, escapes, the spelling of
    a number), so an order posted again through another path, or by another encoder, is
    a repeat rather than a newer version that would undo the updates posted since.
    """
    return hashlib.sha256(orjson.dumps(document)).hexdigest()


def new_order_item(document: Any, raw: bytes | None = None) -> NewOrderItem:
    """An order document validated, with its repeat key; `raw`: the bytes of a
    `POST /v1/orders` body it was parsed from."""
    validated = validate_order(document)
    raw_hash = None if raw is None else hashlib.sha256(raw).hexdigest()
    return NewOrderItem(document=validated, body_hash=document_hash(validated), raw_hash=raw_hash)


async def ingest_order(ctx: ServiceContext, document: Any, raw: bytes) -> IngestResult:
    """A new order, or a newer version of a known one; `raw` are the bytes it was parsed
    from (the same document again creates nothing)."""
    return await _ingest_one(ctx, new_order_item(document, raw))


async def ingest_status(ctx: ServiceContext, order_id: str, update: Any) -> IngestResult:
    """A status update of a known order (NotFound otherwise); an exact repeat adds nothing."""
    item = StatusItem(order_id=order_id, update=validate_status_update(update))
    return await _ingest_one(ctx, item)


async def ingest_courier(ctx: ServiceContext, order_id: str, update: Any) -> IngestResult:
    """A courier update of a known order (NotFound otherwise)."""
    item = CourierItem(order_id=order_id, update=validate_courier_update(update))
    return await _ingest_one(ctx, item)


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
    """One batch item (`{"type", "orderId"?, "data"}`) validated; ValidationError naming
    `index` otherwise."""
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
        item = new_order_item(data)
    except ValidationError as exc:
        raise ValidationError(_prefixed(exc.problems, index)) from None
    if order_id is not None and order_id != item.document.get("_id"):
        raise ValidationError([FieldProblem("orderId", "must equal data._id", index)])
    return item


def batch_items(body: Any) -> list[IngestItem]:
    """Every item of a batch validated; one ValidationError naming every bad item."""
    if not isinstance(body, list) or not 1 <= len(body) <= MAX_BATCH_ITEMS:
        message = f"must be an array of 1 to {MAX_BATCH_ITEMS} items"
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


async def ingest_batch(ctx: ServiceContext, body: Any) -> list[str]:
    """A batch of items (a parsed JSON array), all stored or none; the ids of every event
    created, in item order. An unknown order, or a newer version of an order naming another
    account, makes its item invalid (422 naming the index)."""
    items = batch_items(body)
    try:
        results = await ingest_items(ctx, items)
    except UnknownOrder as exc:
        problem = FieldProblem("orderId", "unknown order", index=exc.index)
        raise ValidationError([problem], message=f"unknown order {exc.order_id!r}") from None
    except OrderAccountChanged as exc:
        raise ValidationError(_prefixed(exc.problems, exc.index), exc.message) from None
    return [event_id for result in results for event_id in result.event_ids]
