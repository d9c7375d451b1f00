"""The batch body: known bytes, envelopes kept byte for byte."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from orderhooks.domain.batches import BatchSettings, encode_batch, new_batch_id, parse_batch
from orderhooks.domain.envelope import encode_body
from orderhooks.domain.model import PayloadFormat
from orderhooks.domain.shaping import PersonalData, compile_shaping, shape_event
from orderhooks.exceptions import ValidationError
from tests.support.factories import SequentialIds, event
from tests.unit.sample_events import sample_events

ENVELOPE = PayloadFormat.ENVELOPE


def test_batch_bytes_known_answer() -> None:
    first = encode_body(event(id="evt_1", sequence=1, data={"status": 10}), PayloadFormat.ENVELOPE)
    second = encode_body(event(id="evt_2", sequence=2, data={"status": 20}), PayloadFormat.ENVELOPE)
    assert encode_batch("bat_01M8H0DJG0ABCDEFGHJKMNPQRS", [first, second]) == (
        b'{"type":"batch","id":"bat_01M8H0DJG0ABCDEFGHJKMNPQRS","events":['
        b'{"id":"evt_1","type":"order.status_update","timestamp":"2026-11-28T12:00:00.123456Z",'
        b'"account":"acc1","location":"loc1","orderId":"o1","sequence":1,"test":false,'
        b'"data":{"status":10}},'
        b'{"id":"evt_2","type":"order.status_update","timestamp":"2026-11-28T12:00:00.123456Z",'
        b'"account":"acc1","location":"loc1","orderId":"o1","sequence":2,"test":false,'
        b'"data":{"status":20}}]}'
    )


def test_envelopes_are_embedded_as_they_are() -> None:
    shaping = compile_shaping(("items[].plu",), PersonalData.EXCLUDE)
    envelopes = [
        encode_body(shape_event(e, shaping), PayloadFormat.ENVELOPE) for e in sample_events()
    ]
    body = encode_batch("bat_x", envelopes)
    parsed = orjson.loads(body)
    assert (parsed["type"], parsed["id"]) == ("batch", "bat_x")
    assert [orjson.dumps(e) for e in parsed["events"]] == envelopes
    assert [e["sequence"] for e in parsed["events"]] == [1, 2, 3]


def test_a_batch_is_never_empty() -> None:
    with pytest.raises(ValueError):
        encode_batch("bat_x", [])


def test_batch_ids_carry_their_prefix() -> None:
    assert new_batch_id(SequentialIds()) == "bat_0001"


def test_batch_settings() -> None:
    assert parse_batch(None, PayloadFormat.RAW) is None
    assert parse_batch({"maxEvents": 2, "maxWaitMs": 0}, ENVELOPE) == BatchSettings(2, 0)
    assert parse_batch({"maxEvents": 500, "maxWaitMs": 60000}, ENVELOPE) == BatchSettings(
        500, 60000
    )


@pytest.mark.parametrize(
    ("value", "payload_format", "fields"),
    [
        ({"maxEvents": 10, "maxWaitMs": 100}, PayloadFormat.RAW, ["batch"]),
        ([10, 100], ENVELOPE, ["batch"]),
        (True, ENVELOPE, ["batch"]),
        ({"maxEvents": 1, "maxWaitMs": 100}, ENVELOPE, ["batch.maxEvents"]),
        ({"maxEvents": 501, "maxWaitMs": 100}, ENVELOPE, ["batch.maxEvents"]),
        ({"maxEvents": 10, "maxWaitMs": -1}, ENVELOPE, ["batch.maxWaitMs"]),
        ({"maxEvents": 10, "maxWaitMs": 60001}, ENVELOPE, ["batch.maxWaitMs"]),
        ({"maxEvents": True, "maxWaitMs": 100}, ENVELOPE, ["batch.maxEvents"]),
        ({"maxEvents": 10.0, "maxWaitMs": "100"}, ENVELOPE, ["batch.maxEvents", "batch.maxWaitMs"]),
        ({"maxEvents": 10}, ENVELOPE, ["batch.maxWaitMs"]),
        ({"maxEvents": 10, "maxWaitMs": 5, "size": 1}, ENVELOPE, ["batch.size"]),
    ],
)
def test_bad_batch_settings_name_the_field(
    value: Any, payload_format: PayloadFormat, fields: list[str]
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_batch(value, payload_format)
    assert [p.field for p in caught.value.problems] == fields
