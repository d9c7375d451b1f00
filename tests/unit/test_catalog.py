"""The event catalog: valid 2020-12 schemas that accept what orderhooks sends (the sample
events through the real envelope code, shaped or not, operational events, batches) and
refuse what it never sends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jsonschema
import orjson
import pytest

from orderhooks.domain.batches import encode_batch
from orderhooks.domain.catalog import batch_schema, event_catalog, event_schema
from orderhooks.domain.envelope import encode_body, encode_json, envelope
from orderhooks.domain.health import WebhookHealth, after_attempt
from orderhooks.domain.model import (
    Attempt,
    AttemptError,
    DeliveryState,
    DisabledReason,
    EventType,
    PayloadFormat,
)
from orderhooks.domain.opevents import (
    OperationalEventType,
    delivery_failed_data,
    operational_envelope,
    operational_event,
    webhook_disabled_data,
    webhook_failing_data,
    webhook_recovered_data,
)
from orderhooks.domain.shaping import PersonalData, compile_shaping, shape_event
from orderhooks.service.testevents import synthetic_event
from tests.support.factories import NOW, delivery, webhook
from tests.unit.sample_events import sample_events

ORDER_TYPES = [t.value for t in EventType]
OPERATIONAL_TYPES = [t.value for t in OperationalEventType]
Validator = jsonschema.Draft202012Validator


def validate(body: Any, schema: dict[str, Any]) -> None:
    Validator(schema, format_checker=Validator.FORMAT_CHECKER).validate(body)


def is_valid(body: Any, schema: dict[str, Any]) -> bool:
    return Validator(schema, format_checker=Validator.FORMAT_CHECKER).is_valid(body)


def sent(body: bytes) -> Any:
    """A body as the receiver parses it."""
    return orjson.loads(body)


# ---------------------------------------------------------------- the catalog itself


def test_the_catalog_lists_every_type_once_in_order() -> None:
    catalog = event_catalog()
    assert [entry["type"] for entry in catalog] == ORDER_TYPES + OPERATIONAL_TYPES
    for entry in catalog:
        assert set(entry) == {"type", "description", "schema"}
        assert entry["description"].strip()
        assert entry["schema"]["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert entry["schema"]["properties"]["type"] == {"const": entry["type"]}


def test_every_schema_is_valid_2020_12() -> None:
    for entry in event_catalog():
        Validator.check_schema(entry["schema"])
    Validator.check_schema(batch_schema())


def test_schemas_are_self_contained() -> None:
    text = orjson.dumps([event_catalog(), batch_schema()])
    assert b"$ref" not in text


def test_callers_get_copies() -> None:
    event_catalog()[0]["schema"]["properties"].clear()
    batch_schema()["properties"].clear()
    assert event_catalog()[0]["schema"]["properties"]
    assert batch_schema()["properties"]


def test_unknown_types_have_no_schema() -> None:
    with pytest.raises(KeyError):
        event_schema("order.deleted")


# ---------------------------------------------------------------- order events


@pytest.mark.parametrize("payload_format", [PayloadFormat.ENVELOPE, PayloadFormat.RAW])
@pytest.mark.parametrize(
    ("fields", "personal"),
    [
        (None, PersonalData.INCLUDE),
        (None, PersonalData.EXCLUDE),
        (("items[].plu", "courier.status"), PersonalData.INCLUDE),
        ((), PersonalData.EXCLUDE),
    ],
)
def test_sample_events_validate_shaped_or_not(
    payload_format: PayloadFormat, fields: tuple[str, ...] | None, personal: PersonalData
) -> None:
    shaping = compile_shaping(fields, personal)
    for event in sample_events():
        schema = event_schema(event.type)
        body = sent(encode_body(shape_event(event, shaping), payload_format))
        if payload_format is PayloadFormat.RAW:
            schema = {"$schema": schema["$schema"], **schema["properties"]["data"]}
        validate(body, schema)


@pytest.mark.parametrize("event_type", list(EventType))
def test_test_events_validate(event_type: EventType) -> None:
    event = synthetic_event(webhook(), event_type, NOW)
    validate(sent(encode_body(event, PayloadFormat.ENVELOPE)), event_schema(event_type))


def test_order_schemas_refuse_what_is_never_sent() -> None:
    new, status, courier = (envelope(e) for e in sample_events())
    broken: list[tuple[dict[str, Any], str]] = [
        ({**new, "type": "order.status_update"}, "order.new"),
        ({**new, "id": "dlv_1"}, "order.new"),
        ({**new, "sequence": 0}, "order.new"),
        ({**new, "sequence": None}, "order.new"),
        ({k: v for k, v in new.items() if k != "test"}, "order.new"),
        ({**new, "data": {**new["data"], "status": "10"}}, "order.new"),
        ({**new, "data": {**new["data"], "items": [{"plu": 1}]}}, "order.new"),
        ({**new, "data": {k: v for k, v in new["data"].items() if k != "_id"}}, "order.new"),
        ({**status, "data": {**status["data"], "previousStatus": 1000}}, "order.status_update"),
        ({**courier, "data": {**courier["data"], "coordinates": [1, 2]}}, "order.courier_update"),
        ({**courier, "location": None}, "order.courier_update"),
    ]
    for body, event_type in broken:
        assert not is_valid(sent(encode_json(body)), event_schema(event_type)), body


def test_sub_items_nest_as_deep_as_ingest_allows() -> None:
    item: dict[str, Any] = {"plu": "p", "name": "n", "price": 1, "quantity": 1, "subItems": []}
    for _ in range(5):
        item = {**item, "subItems": [item]}
    new = envelope(sample_events()[0])
    allowed = {**new, "data": {**new["data"], "items": [item]}}
    assert is_valid(sent(encode_json(allowed)), event_schema("order.new"))
    deeper = {**new, "data": {**new["data"], "items": [{**item, "subItems": [item]}]}}
    assert not is_valid(sent(encode_json(deeper)), event_schema("order.new"))


# ---------------------------------------------------------------- operational events

W = webhook(id="wh_w", url="https://pos.example.com/in", accounts=("acc1",))
ATTEMPT = Attempt("dlv_1", 10, NOW, 15000, 503, "", AttemptError.HTTP_STATUS)
DELIVERY = delivery(
    webhook_id="wh_w",
    event_type=EventType.NEW,
    state=DeliveryState.FAILED,
    next_attempt_at=None,
    attempt_count=10,
)


def operational_bodies() -> dict[OperationalEventType, dict[str, Any]]:
    health = WebhookHealth()
    for minute in range(3):
        at = NOW + timedelta(minutes=minute)
        health, _ = after_attempt(health, False, at, at, 432000)
    data = {
        OperationalEventType.WEBHOOK_FAILING: webhook_failing_data(W, health, ATTEMPT),
        OperationalEventType.WEBHOOK_RECOVERED: webhook_recovered_data(W, health),
        OperationalEventType.WEBHOOK_DISABLED: webhook_disabled_data(W, DisabledReason.FAILING),
        OperationalEventType.DELIVERY_FAILED: delivery_failed_data(DELIVERY, ATTEMPT),
    }
    return {
        event_type: sent(
            encode_json(
                operational_envelope(
                    operational_event("evt_01M8H0DJG0ABCDEFGHJKMNPQRS", event_type, W, d, NOW)
                )
            )
        )
        for event_type, d in data.items()
    }


def test_operational_events_validate() -> None:
    for event_type, body in operational_bodies().items():
        validate(body, event_schema(event_type))


def test_operational_schemas_refuse_what_is_never_sent() -> None:
    bodies = operational_bodies()
    failing = bodies[OperationalEventType.WEBHOOK_FAILING]
    failed = bodies[OperationalEventType.DELIVERY_FAILED]
    disabled = bodies[OperationalEventType.WEBHOOK_DISABLED]
    broken: list[tuple[dict[str, Any], str]] = [
        ({**failing, "sequence": 1}, "webhook.failing"),
        ({**failing, "orderId": "o1"}, "webhook.failing"),
        ({**failing, "data": {**failing["data"], "lastError": "boom"}}, "webhook.failing"),
        ({**failed, "orderId": None}, "delivery.failed"),
        ({**disabled, "data": {**disabled["data"], "reason": "bored"}}, "webhook.disabled"),
        (failing, "webhook.recovered"),
    ]
    for body, event_type in broken:
        assert not is_valid(body, event_schema(event_type)), body


# ---------------------------------------------------------------- batches


def test_batch_bodies_validate() -> None:
    shaping = compile_shaping(("items[].plu",), PersonalData.EXCLUDE)
    envelopes = [
        encode_body(shape_event(e, shaping), PayloadFormat.ENVELOPE) for e in sample_events()
    ]
    operational = [encode_json(body) for body in operational_bodies().values()]
    validate(sent(encode_batch("bat_01", envelopes + operational)), batch_schema())


def test_batch_schema_refuses_bad_batches() -> None:
    good = encode_body(sample_events()[0], PayloadFormat.ENVELOPE)
    assert not is_valid({"type": "batch", "id": "bat_1", "events": []}, batch_schema())
    assert not is_valid({"type": "batch", "id": "evt_1", "events": [sent(good)]}, batch_schema())
    bad_event = {**sent(good), "type": "order.unknown"}
    assert not is_valid({"type": "batch", "id": "bat_1", "events": [bad_event]}, batch_schema())
