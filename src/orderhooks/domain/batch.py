"""Batch items (docs/api.md): the pure validation of `{type, orderId?, data}` items.

Shared by `POST /v1/events` and the broker sources (docs/operations.md), so that a
message and a request body are held to exactly the same rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

from orderhooks.domain.model import EventType
from orderhooks.domain.orders import (
    validate_courier_update,
    validate_order,
    validate_status_update,
)
from orderhooks.exceptions import FieldProblem, ValidationError
from orderhooks.store.base import CourierItem, IngestItem, NewOrderItem, StatusItem

MAX_BATCH_ITEMS = 1000

_BATCH_KEYS = frozenset({"type", "orderId", "data"})
_EVENT_TYPES = tuple(t.value for t in EventType)


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
    """One batch item validated (docs/api.md); ValidationError naming `index` otherwise."""
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
