"""JSON Schemas (2020-12) of the `data` of every event type, for the event catalog.

The schemas are self-contained (no `$ref`), so they read the same alone, inside a batch
body and inside the OpenAPI document. They describe what a receiver can get, which is
less than ingest requires: a webhook's `fields` and `personalData` may leave any field
out except the always-kept ids (see `orderhooks.domain.shaping`), so only those are
`required`. Optional fields of orders may be `null` (sources send that for "unknown"),
and unknown fields are passed through, so objects stay open.
"""

from __future__ import annotations

from typing import Any

from orderhooks.domain.model import AttemptError, DisabledReason
from orderhooks.domain.orders import (
    ADDRESS_TEXT_FIELDS,
    COURIER_TEXT_FIELDS,
    CUSTOMER_TEXT_FIELDS,
    DISCOUNT_AMOUNT_FIELDS,
    DISCOUNT_TEXT_FIELDS,
    MAX_SUB_ITEM_DEPTH,
    MONEY_FIELDS,
    ORDER_FLAG_FIELDS,
    ORDER_TEXT_FIELDS,
    ORDER_TIME_FIELDS,
    PAYMENT_FIELDS,
)
from orderhooks.domain.statuses import MAX_STATUS

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
STATUS: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_STATUS}
TIMESTAMP_TEXT: Schema = {"type": "string", "description": "ISO 8601, as the source sent it"}
RFC3339: Schema = {"type": "string", "format": "date-time"}


def nullable(schema: Schema) -> Schema:
    """`schema` or `null`."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), **extra: Any) -> Schema:
    """An open object with these known `properties`."""
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def _optional(properties: dict[str, Schema]) -> dict[str, Schema]:
    return {name: nullable(schema) for name, schema in properties.items()}


def _named(schema: Schema, *names: str) -> dict[str, Schema]:
    return {name: schema for name in names}


COORDINATES = obj(_optional({"latitude": {"type": "number"}, "longitude": {"type": "number"}}))
COURIER = obj(_optional({**_named(STRING, *COURIER_TEXT_FIELDS), "status": STATUS}))
CUSTOMER = obj(_optional(_named(STRING, *CUSTOMER_TEXT_FIELDS)))
DELIVERY_ADDRESS = obj(
    _optional(
        {
            **_named(STRING, *ADDRESS_TEXT_FIELDS),
            "coordinates": COORDINATES,
        }
    )
)
PAYMENT = obj(_optional(_named(INTEGER, *PAYMENT_FIELDS)))
TAX = obj(_optional({"name": STRING, "taxClassId": INTEGER, "total": INTEGER}))
DISCOUNT = obj(
    _optional(
        {
            **_named(STRING, *DISCOUNT_TEXT_FIELDS),
            **_named(INTEGER, *DISCOUNT_AMOUNT_FIELDS),
        }
    )
)
STATUS_HISTORY_ENTRY = obj(
    {
        "timeStamp": TIMESTAMP_TEXT,
        "status": STATUS,
        **_optional({"response": STRING, "source": INTEGER, "reason": STRING}),
    }
)


def item_schema(depth: int = 0) -> Schema:
    """An order item whose `subItems` sit `depth` levels below the top-level items
    (unrolled: ingest refuses more than MAX_SUB_ITEM_DEPTH levels)."""
    if depth >= MAX_SUB_ITEM_DEPTH:
        sub_items: Schema = {"type": ["array", "null"], "maxItems": 0}
    else:
        sub_items = nullable({"type": "array", "items": item_schema(depth + 1)})
    return obj(
        {
            "plu": STRING,
            "name": STRING,
            "price": {"type": "integer", "description": "minor units"},
            "quantity": INTEGER,
            "productType": nullable(INTEGER),
            "subItems": sub_items,
        }
    )


def order_document_schema() -> Schema:
    """`data` of `order.new`: the order document (Deliverect order model)."""
    known = {
        "_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
        "account": STRING,
        "location": STRING,
        "status": STATUS,
        "channelLink": STRING,
        "channel": INTEGER,
        "orderType": {
            "type": "integer",
            "description": "1 pickup, 2 delivery, 3 eat-in, 4 curbside",
        },
        "items": {"type": "array", "items": item_schema()},
    }
    optional = {
        **_named(STRING, *ORDER_TEXT_FIELDS),
        **_named(TIMESTAMP_TEXT, *ORDER_TIME_FIELDS),
        "statusHistory": {"type": "array", "items": STATUS_HISTORY_ENTRY},
        **_named({"type": "boolean"}, *ORDER_FLAG_FIELDS),
        "courier": COURIER,
        "customer": CUSTOMER,
        "deliveryAddress": DELIVERY_ADDRESS,
        "payment": PAYMENT,
        "taxes": {"type": "array", "items": TAX},
        "discounts": {"type": "array", "items": DISCOUNT},
        **_named(INTEGER, "numberOfCustomers", *MONEY_FIELDS),
        "decimalDigits": {"type": "integer", "minimum": 0, "maximum": 9},
    }
    return obj({**known, **_optional(optional)}, ("_id", "account", "location", "status"))


def status_update_schema() -> Schema:
    """`data` of `order.status_update`."""
    properties = {
        "orderId": STRING,
        "channelOrderId": STRING,
        "location": STRING,
        "account": STRING,
        "status": STATUS,
        "timeStamp": TIMESTAMP_TEXT,
        "reason": STRING,
        "isIgnoredPOSStatus": {"type": "boolean"},
        "previousStatus": STATUS,
        **_optional({"response": STRING, "source": INTEGER}),
    }
    return obj(properties, ("orderId", "account", "location", "status"))


def courier_update_schema() -> Schema:
    """`data` of `order.courier_update`; `status` is the courier status."""
    properties = {
        "orderId": STRING,
        "location": STRING,
        "account": STRING,
        "status": nullable(STATUS),
        "received": TIMESTAMP_TEXT,
        "courier": COURIER,
        **_optional(
            {
                "pickupTime": TIMESTAMP_TEXT,
                "deliveryTime": TIMESTAMP_TEXT,
                "trackingURL": STRING,
                "coordinates": COORDINATES,
                "updatedOrigin": INTEGER,
            }
        ),
    }
    return obj(properties, ("orderId", "account", "location", "status"))


# ---------------------------------------------------------------- operational data

_ABOUT_WEBHOOK: dict[str, Schema] = {
    "webhookId": {"type": "string", "pattern": "^wh_"},
    "url": {"type": "string", "format": "uri"},
    "accounts": {"type": "array", "items": STRING, "minItems": 1},
}
LAST_ERROR: Schema = {"enum": [*(e.value for e in AttemptError), None]}
LAST_STATUS_CODE = nullable(INTEGER)


def webhook_failing_schema() -> Schema:
    """`data` of `webhook.failing`."""
    properties = {
        **_ABOUT_WEBHOOK,
        "consecutiveFailures": {"type": "integer", "minimum": 1},
        "lastError": LAST_ERROR,
        "lastStatusCode": LAST_STATUS_CODE,
        "since": RFC3339,
    }
    return obj(properties, tuple(properties))


def webhook_recovered_schema() -> Schema:
    """`data` of `webhook.recovered`."""
    properties = {
        **_ABOUT_WEBHOOK,
        "failingSince": RFC3339,
        "failedAttempts": {"type": "integer", "minimum": 0},
    }
    return obj(properties, tuple(properties))


def webhook_disabled_schema() -> Schema:
    """`data` of `webhook.disabled`."""
    properties = {**_ABOUT_WEBHOOK, "reason": {"enum": [r.value for r in DisabledReason]}}
    return obj(properties, tuple(properties))


def delivery_failed_schema() -> Schema:
    """`data` of `delivery.failed`."""
    properties = {
        "deliveryId": {"type": "string", "pattern": "^dlv_"},
        "webhookId": {"type": "string", "pattern": "^wh_"},
        "eventId": {"type": "string", "pattern": "^evt_"},
        "eventType": STRING,
        "orderId": STRING,
        "attempts": {"type": "integer", "minimum": 1},
        "lastError": LAST_ERROR,
        "lastStatusCode": LAST_STATUS_CODE,
    }
    return obj(properties, tuple(properties))
