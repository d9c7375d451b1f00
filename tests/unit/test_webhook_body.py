"""The body a webhook receives: the event shaped by the webhook's settings, in its format;
the dispatcher's body cache keyed by format and shaping, never mixing two webhooks'."""

from __future__ import annotations

import orjson

from orderhooks.delivery.outbound import BodyCache
from orderhooks.domain.envelope import encode_body, webhook_body
from orderhooks.domain.model import EventType, PayloadFormat, PersonalData
from tests.support.factories import event, webhook

NEW = event(
    type=EventType.NEW,
    data={
        "_id": "o1",
        "account": "acc1",
        "location": "loc1",
        "status": 10,
        "customer": {"name": "Ana"},
        "items": [{"plu": "P1", "name": "Burger"}],
    },
    status=10,
)
EXCLUDE = webhook(id="wh_x", personal_data=PersonalData.EXCLUDE)
PROJECTED = webhook(id="wh_p", fields=("items[].plu",))
PROJECTED_TOO = webhook(id="wh_q", fields=("items[].plu",))


def test_default_settings_send_the_stored_bytes() -> None:
    plain = webhook()
    assert webhook_body(NEW, plain) == encode_body(NEW, PayloadFormat.ENVELOPE)
    raw = webhook(payload_format=PayloadFormat.RAW)
    assert webhook_body(NEW, raw) == encode_body(NEW, PayloadFormat.RAW)


def test_shaped_bodies_and_the_event_unchanged() -> None:
    excluded = orjson.loads(webhook_body(NEW, EXCLUDE))
    assert "customer" not in excluded["data"] and excluded["id"] == NEW.id
    assert orjson.loads(webhook_body(NEW, PROJECTED))["data"] == {
        "_id": "o1",
        "account": "acc1",
        "location": "loc1",
        "status": 10,
        "items": [{"plu": "P1"}],
    }
    raw = webhook(payload_format=PayloadFormat.RAW, personal_data=PersonalData.EXCLUDE)
    assert orjson.loads(webhook_body(NEW, raw)) == excluded["data"]
    assert NEW.data["customer"] == {"name": "Ana"}, "the stored event is not changed"


def test_body_cache_keys_on_format_and_shaping() -> None:
    cache = BodyCache()
    plain = cache.body(NEW, webhook())
    excluded = cache.body(NEW, EXCLUDE)
    projected = cache.body(NEW, PROJECTED)
    assert len({plain, excluded, projected}) == 3
    assert cache.body(NEW, PROJECTED_TOO) is projected, "same settings share one encoding"
    assert cache.body(NEW, webhook(id="wh_other")) is plain
