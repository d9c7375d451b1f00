"""The batch body: known bytes, envelopes kept byte for byte."""

from __future__ import annotations

import orjson
import pytest

from orderhooks.domain.batches import encode_batch, new_batch_id
from orderhooks.domain.envelope import encode_body
from orderhooks.domain.model import PayloadFormat
from orderhooks.domain.shaping import PersonalData, compile_shaping, shape_event
from tests.unit.factories import SequentialIds, event
from tests.unit.sample_events import sample_events


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
