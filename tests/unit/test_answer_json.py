"""Known-answer tests of the flat API answers (docs/api.md): the exact bytes of a delivery,
an attempt, a key and an audit entry, key order included."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import orjson

from orderhooks.domain.model import (
    ApiKey,
    Attempt,
    AttemptError,
    AuditEntry,
    DeliveryState,
    OperationalEventType,
    Role,
)
from orderhooks.web.answer_json import attempt_json, audit_json, delivery_json, key_json
from tests.support.factories import NOW, delivery


def _bytes(value: dict[str, object]) -> bytes:
    return orjson.dumps(value)


def test_delivery_json_known_answer() -> None:
    failed = delivery(
        state=DeliveryState.FAILED, replay=True, sequence=3, next_attempt_at=None, attempt_count=2
    )
    assert _bytes(delivery_json(replace(failed, schedule_position=1, batch_id="bat_1"))) == (
        b'{"id":"dlv_1","webhookId":"wh_1","eventId":"evt_1",'
        b'"eventType":"order.status_update","orderId":"o1","account":"acc1","sequence":3,'
        b'"state":"failed","replay":true,"test":false,'
        b'"createdAt":"2026-11-28T12:00:00.123456Z","nextAttemptAt":null,"deliveredAt":null,'
        b'"attemptCount":2}'
    )


def test_operational_delivery_json_has_no_order() -> None:
    operational = next(iter(OperationalEventType))
    answer = delivery_json(
        delivery(event_type=operational, order_id=None, sequence=None, delivered_at=NOW)
    )
    assert answer["eventType"] == operational.value
    assert type(answer["eventType"]) is str
    assert (answer["orderId"], answer["sequence"]) == (None, None)
    assert answer["deliveredAt"] == answer["nextAttemptAt"] == "2026-11-28T12:00:00.123456Z"


def test_attempt_json_known_answer() -> None:
    failed = Attempt("dlv_1", 2, NOW, 150, None, "", AttemptError.TIMEOUT, body_settings="s")
    assert _bytes(attempt_json(failed)) == (
        b'{"attempt":2,"startedAt":"2026-11-28T12:00:00.123456Z","durationMs":150,'
        b'"statusCode":null,"responseBody":"","error":"timeout"}'
    )
    answered = Attempt("dlv_1", 3, NOW, 20, 200, "ok", None)
    assert attempt_json(answered)["error"] is None
    assert attempt_json(answered)["statusCode"] == 200


def test_key_json_known_answer_never_carries_the_hash() -> None:
    key = ApiKey("key_1", Role.PARTNER, ("acc1", "acc2"), "partner one", "h" * 64, NOW)
    assert _bytes(key_json(key)) == (
        b'{"id":"key_1","role":"partner","accounts":["acc1","acc2"],"name":"partner one",'
        b'"createdAt":"2026-11-28T12:00:00.123456Z","revokedAt":null}'
    )
    assert type(key_json(key)["accounts"]) is list


def test_audit_json_known_answer() -> None:
    details = MappingProxyType({"url": "https://example.test/", "n": [1, 2]})
    entry = AuditEntry("aud_1", NOW, "key_1", "webhook.create", "webhook", "wh_1", details)
    answer = audit_json(entry)
    assert type(answer["details"]) is dict
    assert _bytes(answer) == (
        b'{"id":"aud_1","at":"2026-11-28T12:00:00.123456Z","actor":"key_1",'
        b'"action":"webhook.create","targetType":"webhook","targetId":"wh_1",'
        b'"details":{"url":"https://example.test/","n":[1,2]}}'
    )
