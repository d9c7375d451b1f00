"""Validation of the ingest bodies (docs/events.md, the order document and status and courier
updates): strict types, unknown fields kept.

Each body is checked against a shape: a table of known fields, each with a check and
whether it is required. Nothing is coerced: an integer refuses strings, booleans and
floats (even `2.0`), a string refuses numbers. Unknown fields are not looked at and the
body is returned as it came. Optional fields may be `null` (sources send that for
"unknown"); required ones may not. Every problem is collected, named by a dotted path
such as `items[0].subItems[1].price`, before one ValidationError is raised.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orderhooks.domain.model import ALL_ACCOUNTS
from orderhooks.domain.statuses import MAX_STATUS
from orderhooks.exceptions import FieldProblem, ValidationError

MAX_STRING_CHARS = 10_000
# What a webhook's `channels` filter names, and what PostgreSQL stores (32 bits).
MAX_CHANNEL = 2**31 - 1
# What keys, webhooks, agreements and usage name an account by; PostgreSQL indexes it
# (the usage key), and an index entry cannot hold thousands of characters.
MAX_ACCOUNT_CHARS = 128
MAX_ARRAY_ITEMS = 1_000
MAX_SUB_ITEM_DEPTH = 5  # levels of `subItems` below a top-level item
MAX_TIMESTAMP_CHARS = 64
ORDER_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
# The characters and separators of an ISO 8601 time: a date, then optionally `T` (or, as
# RFC 3339 allows, `t` or a space), a time of day and an offset in hours and minutes.
# Python's `datetime.fromisoformat`, which checks the values, also takes any character
# between date and time ("2026-11-28x12:00", a newline) and offsets with seconds.
_ISO_8601_SHAPE = re.compile(r"[0-9W-]+(?:[Tt ][0-9:.,]+(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?")

Problems = list[FieldProblem]
Check = Callable[[Any, str, Problems], None]


@dataclass(frozen=True, slots=True)
class Field:
    """A known field of a shape: how to check it and whether it must be present."""

    check: Check
    required: bool = False


Shape = Mapping[str, Field]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _is_int(value: Any) -> bool:
    # bool is a subclass of int in Python, but `true` is not an integer in JSON.
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(minimum: int | None = None, maximum: int | None = None) -> Check:
    def check(value: Any, path: str, problems: Problems) -> None:
        if not _is_int(value):
            problems.append(FieldProblem(path, "must be an integer"))
        elif (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            problems.append(FieldProblem(path, f"must be from {minimum} to {maximum}"))

    return check


def _number(value: Any, path: str, problems: Problems) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        problems.append(FieldProblem(path, "must be a number"))


def _boolean(value: Any, path: str, problems: Problems) -> None:
    if not isinstance(value, bool):
        problems.append(FieldProblem(path, "must be a boolean"))


def _string(value: Any, path: str, problems: Problems) -> None:
    if not isinstance(value, str):
        problems.append(FieldProblem(path, "must be a string"))
    elif len(value) > MAX_STRING_CHARS:
        problems.append(FieldProblem(path, f"must be at most {MAX_STRING_CHARS} characters"))


def _account(value: Any, path: str, problems: Problems) -> None:
    if not isinstance(value, str):
        problems.append(FieldProblem(path, "must be a string"))
    elif not 1 <= len(value) <= MAX_ACCOUNT_CHARS:
        # As webhooks, keys and agreements take it: no webhook or partner key can name "",
        # so an order of "" could never be delivered where agreements are required.
        problems.append(FieldProblem(path, f"must be 1 to {MAX_ACCOUNT_CHARS} characters"))
    elif value == ALL_ACCOUNTS:
        # It names every account in webhooks and keys: no agreement can be recorded for
        # it, so an order of "*" could never be delivered where agreements are required.
        problems.append(FieldProblem(path, '"*" is not an account'))


def _order_id(value: Any, path: str, problems: Problems) -> None:
    if not isinstance(value, str) or not ORDER_ID_PATTERN.fullmatch(value):
        problems.append(FieldProblem(path, "must be 1-64 characters of A-Z, a-z, 0-9, _ and -"))


def _timestamp(value: Any, path: str, problems: Problems) -> None:
    if not isinstance(value, str):
        problems.append(FieldProblem(path, "must be an ISO 8601 timestamp string"))
        return
    try:
        # Python 3.11 reads the ISO 8601 forms sources send, `Z` suffix included.
        if len(value) > MAX_TIMESTAMP_CHARS or not _ISO_8601_SHAPE.fullmatch(value):
            raise ValueError(value)
        datetime.fromisoformat(value)
    except ValueError:
        problems.append(FieldProblem(path, "must be an ISO 8601 timestamp"))


_status = _integer(0, MAX_STATUS)
_int = _integer()


def _object(shape: Shape) -> Check:
    def check(value: Any, path: str, problems: Problems) -> None:
        if not isinstance(value, dict):
            problems.append(FieldProblem(path, "must be an object"))
            return
        check_shape(value, shape, path, problems)

    return check


def _array(item_check: Check, max_items: int = MAX_ARRAY_ITEMS) -> Check:
    def check(value: Any, path: str, problems: Problems) -> None:
        if not isinstance(value, list):
            problems.append(FieldProblem(path, "must be an array"))
        elif len(value) > max_items:
            problems.append(FieldProblem(path, f"must have at most {max_items} entries"))
        else:
            for index, item in enumerate(value):
                item_check(item, f"{path}[{index}]", problems)

    return check


_ABSENT = object()  # a field the body does not have (a present one may be null)


def check_shape(body: Mapping[str, Any], shape: Shape, path: str, problems: Problems) -> None:
    """Check the known fields of `body` against `shape`, appending to `problems`."""
    for name, spec in shape.items():
        value = body.get(name, _ABSENT)
        if value is None and not spec.required:
            continue
        if value is _ABSENT:
            if spec.required:
                problems.append(FieldProblem(_join(path, name), "is required"))
            continue
        spec.check(value, _join(path, name), problems)


def _fields(check: Check, *names: str) -> dict[str, Field]:
    return {name: Field(check) for name in names}


# The names of fields of one kind, which the event catalog's schemas
# (`orderhooks.domain.event_schemas`) list too: declared once so the two cannot drift.
ORDER_TEXT_FIELDS = (
    "channelOrderId",
    "channelOrderDisplayId",
    "posId",
    "posReceiptId",
    "posLocationId",
    "by",
    "note",
    "table",
)
ORDER_TIME_FIELDS = ("_created", "_updated", "pickupTime", "deliveryTime", "estimatedPickupTime")
ORDER_FLAG_FIELDS = ("deliveryIsAsap", "orderIsAlreadyPaid", "testOrder")
COURIER_TEXT_FIELDS = ("firstName", "lastName", "phoneNumber", "deliveryBy")
CUSTOMER_TEXT_FIELDS = ("name", "companyName", "phoneNumber", "email", "note", "tin")
ADDRESS_TEXT_FIELDS = (
    "street",
    "streetNumber",
    "postalCode",
    "area",
    "city",
    "country",
    "extraAddressInfo",
)
PAYMENT_FIELDS = ("amount", "type", "due", "rebate")
DISCOUNT_TEXT_FIELDS = ("type", "provider", "name", "channelDiscountCode", "referenceId")
DISCOUNT_AMOUNT_FIELDS = ("value", "amount", "amountRestaurant", "amountChannel")
MONEY_FIELDS = (  # the order's amounts besides its items, in minor units
    "taxTotal",
    "serviceCharge",
    "deliveryCost",
    "bagFee",
    "tip",
    "driverTip",
    "discountTotal",
)


COORDINATES: Shape = _fields(_number, "latitude", "longitude")
COURIER: Shape = {
    **_fields(_string, *COURIER_TEXT_FIELDS),
    "status": Field(_status),
}
CUSTOMER: Shape = _fields(_string, *CUSTOMER_TEXT_FIELDS)
DELIVERY_ADDRESS: Shape = {
    **_fields(_string, *ADDRESS_TEXT_FIELDS),
    "coordinates": Field(_object(COORDINATES)),
}
PAYMENT: Shape = _fields(_int, *PAYMENT_FIELDS)
TAX: Shape = {"name": Field(_string), "taxClassId": Field(_int), "total": Field(_int)}
DISCOUNT: Shape = {
    **_fields(_string, *DISCOUNT_TEXT_FIELDS),
    **_fields(_int, *DISCOUNT_AMOUNT_FIELDS),
}
STATUS_HISTORY_ENTRY: Shape = {
    "timeStamp": Field(_timestamp, required=True),
    "status": Field(_status, required=True),
    "response": Field(_string),
    "source": Field(_int),
}


@functools.cache
def _item_check(depth: int) -> Check:
    """The check of an item whose `subItems` sit `depth` levels below the top-level items
    (built once per depth, on first use: not again for every item checked)."""

    def sub_items(value: Any, path: str, problems: Problems) -> None:
        if depth >= MAX_SUB_ITEM_DEPTH and isinstance(value, list) and value:
            levels = MAX_SUB_ITEM_DEPTH
            problems.append(FieldProblem(path, f"nests more than {levels} levels of subItems"))
            return
        _sub_items_check(depth + 1)(value, path, problems)

    shape: Shape = {
        "plu": Field(_string, required=True),
        "name": Field(_string, required=True),
        "price": Field(_int, required=True),
        "quantity": Field(_int, required=True),
        "productType": Field(_int),
        "subItems": Field(sub_items),
    }
    return _object(shape)


@functools.cache
def _sub_items_check(depth: int) -> Check:
    """The check of a `subItems` array whose items sit `depth` levels down."""
    return _array(_item_check(depth))


ORDER: Shape = {
    "_id": Field(_order_id, required=True),
    "account": Field(_account, required=True),
    "location": Field(_string, required=True),
    "channelLink": Field(_string, required=True),
    "channel": Field(_integer(0, MAX_CHANNEL), required=True),
    "status": Field(_status, required=True),
    "orderType": Field(_int, required=True),
    "items": Field(_array(_item_check(0)), required=True),
    **_fields(_string, *ORDER_TEXT_FIELDS),
    **_fields(_timestamp, *ORDER_TIME_FIELDS),
    "statusHistory": Field(_array(_object(STATUS_HISTORY_ENTRY))),
    **_fields(_boolean, *ORDER_FLAG_FIELDS),
    "courier": Field(_object(COURIER)),
    "customer": Field(_object(CUSTOMER)),
    "deliveryAddress": Field(_object(DELIVERY_ADDRESS)),
    "payment": Field(_object(PAYMENT)),
    "taxes": Field(_array(_object(TAX))),
    "discounts": Field(_array(_object(DISCOUNT))),
    **_fields(_int, "numberOfCustomers", *MONEY_FIELDS),
    "decimalDigits": Field(_integer(0, 9)),
}

STATUS_UPDATE: Shape = {
    "status": Field(_status, required=True),
    "timeStamp": Field(_timestamp),
    "reason": Field(_string),
    "isIgnoredPOSStatus": Field(_boolean),
    "response": Field(_string),
    "source": Field(_int),
    **_fields(_string, "orderId", "channelOrderId", "location", "account"),
    "previousStatus": Field(_status),
}

COURIER_UPDATE: Shape = {
    "status": Field(_status),
    "courier": Field(_object(COURIER)),
    **_fields(_timestamp, "received", "pickupTime", "deliveryTime"),
    "trackingURL": Field(_string),
    "coordinates": Field(_object(COORDINATES)),
    "updatedOrigin": Field(_int),
    **_fields(_string, "orderId", "location", "account"),
}


def _validate(body: Any, shape: Shape, what: str) -> tuple[dict[str, Any], Problems]:
    if not isinstance(body, dict):
        raise ValidationError([FieldProblem("body", "must be a JSON object")], f"{what} is invalid")
    problems: Problems = []
    check_shape(body, shape, "", problems)
    return body, problems


def _raise_if(problems: Problems, what: str) -> None:
    if problems:
        raise ValidationError(problems, f"{what} is invalid")


def validate_order(body: Any) -> dict[str, Any]:
    """Check a new-order document; return it unchanged (unknown fields kept).

    Raises ValidationError naming each bad field with a dotted path (`items[0].price`).
    """
    document, problems = _validate(body, ORDER, "the order")
    _raise_if(problems, "the order")
    return document


def validate_status_update(body: Any) -> dict[str, Any]:
    """Check a status update body (needs `status`); return it unchanged."""
    update, problems = _validate(body, STATUS_UPDATE, "the status update")
    _raise_if(problems, "the status update")
    return update


def validate_courier_update(body: Any) -> dict[str, Any]:
    """Check a courier update body (needs `courier` or `status`); return it unchanged."""
    update, problems = _validate(body, COURIER_UPDATE, "the courier update")
    if update.get("courier") is None and update.get("status") is None:
        problems.append(FieldProblem("courier", "courier or status is required"))
    _raise_if(problems, "the courier update")
    return update
