"""The event catalog (docs/events.md, "Event catalog"): every event type a webhook can
receive, with a description and the JSON Schema (2020-12) of its envelope, `data`
included, and the schema of the batch body.

`GET /v1/event-types` and the `webhooks` section of `/openapi.json` publish these same
schemas, so receivers can generate their models from either.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orderhooks.domain.batches import MAX_BATCH_EVENTS
from orderhooks.domain.event_schemas import (
    RFC3339,
    STRING,
    Schema,
    courier_update_schema,
    delivery_failed_schema,
    obj,
    order_document_schema,
    status_update_schema,
    webhook_disabled_schema,
    webhook_failing_schema,
    webhook_recovered_schema,
)
from orderhooks.domain.model import EventType
from orderhooks.domain.opevents import OperationalEventType

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
BATCH_TYPE = "batch"
_SHAPING_NOTE = (
    " The webhook's `fields` and `personalData` settings may leave out any field of `data`"
    " except `orderId`, `_id`, `account`, `location` and `status`."
)


@dataclass(frozen=True, slots=True)
class EventTypeEntry:
    """One event type of the catalog."""

    type: str
    description: str
    data_schema: Callable[[], Schema]
    operational: bool


_ENTRIES = (
    EventTypeEntry(
        EventType.NEW.value,
        "A new order, or an order that first reached the webhook's `newOrderTrigger` status;"
        " `data` is the full order document as known at that moment." + _SHAPING_NOTE,
        order_document_schema,
        operational=False,
    ),
    EventTypeEntry(
        EventType.STATUS_UPDATE.value,
        "The order's status changed; `data` is a status update with the previous status."
        + _SHAPING_NOTE,
        status_update_schema,
        operational=False,
    ),
    EventTypeEntry(
        EventType.COURIER_UPDATE.value,
        "Courier or delivery progress changed; `data` is a courier update whose `status` is"
        " the courier status." + _SHAPING_NOTE,
        courier_update_schema,
        operational=False,
    ),
    EventTypeEntry(
        OperationalEventType.WEBHOOK_FAILING.value,
        "A webhook of your accounts started failing: after 3 consecutive failed attempts its"
        " backlog waits while the retry schedule probes the endpoint.",
        webhook_failing_schema,
        operational=True,
    ),
    EventTypeEntry(
        OperationalEventType.WEBHOOK_RECOVERED.value,
        "A failing webhook of your accounts had its first successful delivery again.",
        webhook_recovered_schema,
        operational=True,
    ),
    EventTypeEntry(
        OperationalEventType.WEBHOOK_DISABLED.value,
        "A webhook of your accounts was disabled: by hand (`manual`), because its endpoint"
        " answered 410 (`gone`), or after failing for too long (`failing`).",
        webhook_disabled_schema,
        operational=True,
    ),
    EventTypeEntry(
        OperationalEventType.DELIVERY_FAILED.value,
        "A delivery to a webhook of your accounts failed for good after its last attempt.",
        delivery_failed_schema,
        operational=True,
    ),
)


def _order_envelope() -> dict[str, Schema]:
    return {
        "account": STRING,
        "location": STRING,
        "orderId": STRING,
        "sequence": {
            "type": "integer",
            "minimum": 1,
            "description": "Numbers the events of one order, from 1, in creation order",
        },
    }


def _operational_envelope(event_type: str) -> dict[str, Schema]:
    order_id = STRING if event_type == OperationalEventType.DELIVERY_FAILED else {"type": "null"}
    return {
        "account": {"type": "string", "description": "The first account of the webhook"},
        "location": {"type": "null"},
        "orderId": order_id,
        "sequence": {"type": "null"},
    }


def envelope_schema(entry: EventTypeEntry) -> Schema:
    """The schema of one type's envelope, `data` included (no `$schema`: embeddable)."""
    middle = _operational_envelope(entry.type) if entry.operational else _order_envelope()
    properties = {
        "id": {"type": "string", "pattern": "^evt_", "description": "Also the `webhook-id`"},
        "type": {"const": entry.type},
        "timestamp": {**RFC3339, "description": "When the event was created"},
        **middle,
        "test": {"type": "boolean", "description": "A synthetic event sent by `test`"},
        "data": entry.data_schema(),
    }
    return obj(
        properties,
        tuple(properties),
        title=f"{entry.type} event",
        description=entry.description,
    )


def batch_schema_body() -> Schema:
    """The schema of a batch body (no `$schema`): complete envelopes of any type."""
    return obj(
        {
            "type": {"const": BATCH_TYPE},
            "id": {"type": "string", "pattern": "^bat_", "description": "Also the `webhook-id`"},
            "events": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH_EVENTS,
                "items": {"oneOf": [envelope_schema(entry) for entry in _ENTRIES]},
            },
        },
        ("type", "id", "events"),
        title="batch",
        description=BATCH_DESCRIPTION,
    )


BATCH_DESCRIPTION = (
    "Several events in one request, for a webhook with `batch` set: every envelope complete"
    " and shaped, events of one order in sequence order. The batch id is the `webhook-id`,"
    " the same on every attempt."
)


@functools.cache
def _catalog() -> tuple[dict[str, Any], ...]:
    return tuple(
        {
            "type": entry.type,
            "description": entry.description,
            "schema": {"$schema": JSON_SCHEMA_DIALECT, **envelope_schema(entry)},
        }
        for entry in _ENTRIES
    )


def event_catalog() -> list[dict[str, Any]]:
    """Every event type as `{"type", "description", "schema"}` (a fresh copy)."""
    return copy.deepcopy(list(_catalog()))


def event_schema(event_type: str) -> Schema:
    """The JSON Schema (2020-12) of one event type's envelope; KeyError if unknown."""
    for item in _catalog():
        if item["type"] == event_type:
            schema: Schema = copy.deepcopy(item["schema"])
            return schema
    raise KeyError(event_type)


@functools.cache
def _batch_schema() -> Schema:
    return {"$schema": JSON_SCHEMA_DIALECT, **batch_schema_body()}


def batch_schema() -> Schema:
    """The JSON Schema (2020-12) of the batch body (a fresh copy)."""
    return copy.deepcopy(_batch_schema())
