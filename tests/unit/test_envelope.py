"""The bytes that leave the system: known-answer tests of the envelope and raw bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

from orderhooks.domain.envelope import (
    body_settings,
    encode_body,
    envelope,
    format_timestamp,
    webhook_body,
    with_body_settings,
)
from orderhooks.domain.model import EventType, PayloadFormat, PersonalData
from tests.support.data import ENVELOPE_KEYS
from tests.support.factories import event, webhook

FIXED = event(
    id="evt_01M8H0DJG0ABCDEFGHJKMNPQRS",
    type=EventType.STATUS_UPDATE,
    order_id="o1",
    account="acc1",
    location="loc1",
    sequence=3,
    created_at=datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC),
    data={"orderId": "o1", "status": 20, "note": "café ✓", "nested": {"b": 1, "a": [1.5, None]}},
    status=20,
)


def test_format_timestamp_is_utc_with_microseconds_and_z() -> None:
    assert format_timestamp(datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)) == (
        "2026-11-28T12:00:00.123456Z"
    )
    assert format_timestamp(datetime(2026, 11, 28, 12, 0, tzinfo=UTC)) == (
        "2026-11-28T12:00:00.000000Z"
    )


def test_format_timestamp_converts_other_zones_to_utc() -> None:
    brussels = timezone(timedelta(hours=1))
    assert format_timestamp(datetime(2026, 11, 28, 13, 0, 0, 5, tzinfo=brussels)) == (
        "2026-11-28T12:00:00.000005Z"
    )


def test_format_timestamp_takes_naive_times_as_utc() -> None:
    assert format_timestamp(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000000Z"


def test_envelope_has_exactly_the_fields_of_the_product_in_order() -> None:
    assert tuple(envelope(FIXED)) == ENVELOPE_KEYS


def test_envelope_bytes_known_answer() -> None:
    expected = (
        b'{"id":"evt_01M8H0DJG0ABCDEFGHJKMNPQRS","type":"order.status_update",'
        b'"timestamp":"2026-11-28T12:00:00.123456Z","account":"acc1","location":"loc1",'
        b'"orderId":"o1","sequence":3,"test":false,'
        b'"data":{"orderId":"o1","status":20,"note":"caf\xc3\xa9 \xe2\x9c\x93",'
        b'"nested":{"b":1,"a":[1.5,null]}}}'
    )
    assert encode_body(FIXED, PayloadFormat.ENVELOPE) == expected


def test_raw_body_is_the_data_alone() -> None:
    expected = (
        b'{"orderId":"o1","status":20,"note":"caf\xc3\xa9 \xe2\x9c\x93",'
        b'"nested":{"b":1,"a":[1.5,null]}}'
    )
    assert encode_body(FIXED, PayloadFormat.RAW) == expected


def test_test_events_say_so() -> None:
    body = json.loads(encode_body(event(test=True), PayloadFormat.ENVELOPE))
    assert body["test"] is True


def test_read_only_mappings_encode_like_dicts() -> None:
    data = MappingProxyType({"a": MappingProxyType({"b": 2})})
    assert encode_body(event(data=data), PayloadFormat.RAW) == b'{"a":{"b":2}}'


def test_the_body_round_trips_through_a_json_parser() -> None:
    parsed = json.loads(encode_body(FIXED, PayloadFormat.ENVELOPE))
    assert parsed["data"] == FIXED.data
    assert parsed["type"] == "order.status_update"
    assert parsed["sequence"] == 3


def test_recorded_body_settings_give_the_same_body_again() -> None:
    """An attempt records what shaped its body; applied to the webhook as it is later,
    they build the bytes that attempt sent (docs/dashboard.md, the delivery page)."""
    shaped = webhook(
        payload_format=PayloadFormat.RAW,
        personal_data=PersonalData.EXCLUDE,
        fields=("items[].plu",),
    )
    plain = webhook()
    assert body_settings(plain) == "", "the defaults cost nothing to record"
    for sent_with, now in ((shaped, plain), (plain, shaped)):
        recorded = body_settings(sent_with)
        rebuilt = webhook_body(event(), with_body_settings(now, recorded))
        assert rebuilt == webhook_body(event(), sent_with)
        assert rebuilt != webhook_body(event(), now)
    assert with_body_settings(shaped, None) == shaped, "nothing recorded: as it is now"
