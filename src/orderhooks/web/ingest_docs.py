"""JSON schemas of the ingest bodies (docs/events.md, the order document and status and courier
updates; docs/api.md) for the OpenAPI document.

The validators in `domain.orders` are the authority; these schemas state the same
required fields and types so that clients (and fuzzers) know the contract. Unknown
fields are allowed and passed through.
"""

from __future__ import annotations

from typing import Any

from orderhooks.domain.orders import MAX_ACCOUNT_CHARS, MAX_CHANNEL
from orderhooks.service import ingest
from orderhooks.web.openapi import register_raw

MAX_BATCH_ITEMS = ingest.MAX_BATCH_ITEMS

_INT: dict[str, Any] = {"type": "integer"}
_STR: dict[str, Any] = {"type": "string"}
_STATUS: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": 999}
_TIMESTAMP: dict[str, Any] = {"type": "string", "format": "date-time"}

_ITEM: dict[str, Any] = {
    "type": "object",
    "required": ["plu", "name", "price", "quantity"],
    "properties": {
        "plu": _STR,
        "name": _STR,
        "price": _INT,
        "quantity": _INT,
        "productType": _INT,
        "subItems": {"type": "array", "items": {"$ref": "#/components/schemas/OrderItem"}},
    },
}

_ORDER: dict[str, Any] = {
    "type": "object",
    "description": "A Deliverect-style order document; unknown fields are kept.",
    "required": [
        "_id",
        "account",
        "location",
        "channelLink",
        "channel",
        "status",
        "orderType",
        "items",
    ],
    "properties": {
        "_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
        "account": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ACCOUNT_CHARS,
            "not": {"const": "*"},
        },
        "location": _STR,
        "channelLink": _STR,
        "channel": {"type": "integer", "minimum": 0, "maximum": MAX_CHANNEL},
        "status": _STATUS,
        "orderType": _INT,
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/OrderItem"}},
        "decimalDigits": {"type": "integer", "minimum": 0, "maximum": 9},
        "testOrder": {"type": "boolean"},
    },
}

_COURIER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "firstName": _STR,
        "lastName": _STR,
        "phoneNumber": _STR,
        "deliveryBy": _STR,
        "status": _INT,
    },
}

_STATUS_UPDATE: dict[str, Any] = {
    "type": "object",
    "description": "Only `status` is required; `timeStamp` defaults to the time of ingest.",
    "required": ["status"],
    "properties": {
        "status": _STATUS,
        "timeStamp": _TIMESTAMP,
        "reason": _STR,
        "isIgnoredPOSStatus": {"type": "boolean"},
    },
}

_COURIER_UPDATE: dict[str, Any] = {
    "type": "object",
    "description": "Needs `courier` or `status` (the courier status).",
    "anyOf": [{"required": ["courier"]}, {"required": ["status"]}],
    "properties": {
        "status": _STATUS,
        "courier": {"$ref": "#/components/schemas/Courier"},
        "received": _TIMESTAMP,
        "pickupTime": _TIMESTAMP,
        "deliveryTime": _TIMESTAMP,
        "trackingURL": _STR,
    },
}


def _batch_item(
    event_type: str,
    data_schema: str,
    order_id: dict[str, Any] = _STR,
    order_id_required: bool = True,
) -> dict[str, Any]:
    """One kind of batch item: its event type, its body (`data`) and its `orderId`."""
    required = ["type", "orderId", "data"] if order_id_required else ["type", "data"]
    return {
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": {
            "type": {"const": event_type},
            "orderId": order_id,
            "data": {"$ref": f"#/components/schemas/{data_schema}"},
        },
    }


_BATCH_ITEM: dict[str, Any] = {
    "oneOf": [
        _batch_item(
            "order.new",
            "Order",
            {**_STR, "description": "when given, equals data._id"},
            order_id_required=False,
        ),
        _batch_item("order.status_update", "StatusUpdate"),
        _batch_item("order.courier_update", "CourierUpdate"),
    ]
}


def _optional_nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """Optional fields may be `null` (sources send that for "unknown"); required may not."""
    required = set(schema.get("required", ()))
    properties = {
        name: prop if name in required else {"anyOf": [prop, {"type": "null"}]}
        for name, prop in schema["properties"].items()
    }
    return {**schema, "properties": properties}


ORDER_ITEM = register_raw("OrderItem", _optional_nullable(_ITEM))
COURIER = register_raw("Courier", _optional_nullable(_COURIER))
ORDER = register_raw("Order", _optional_nullable(_ORDER))
STATUS_UPDATE = register_raw("StatusUpdate", _optional_nullable(_STATUS_UPDATE))
COURIER_UPDATE = register_raw("CourierUpdate", _optional_nullable(_COURIER_UPDATE))
BATCH_ITEM = register_raw("BatchItem", _BATCH_ITEM)
BATCH = register_raw(
    "Batch",
    {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_BATCH_ITEMS,
        "items": {"$ref": "#/components/schemas/BatchItem"},
    },
)
