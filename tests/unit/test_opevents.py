"""Operational events: their data, their envelope, and who receives them."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import timedelta
from typing import Any

import orjson
import pytest

from orderhooks.domain.envelope import encode_json
from orderhooks.domain.health import WebhookHealth, after_attempt
from orderhooks.domain.model import (
    Attempt,
    AttemptError,
    DeliveryState,
    DisabledReason,
    EventType,
    Webhook,
    WebhookState,
)
from orderhooks.domain.opevents import (
    OperationalEventType,
    covers_accounts,
    delivery_failed_data,
    operational_envelope,
    operational_event,
    recovers,
    route_operational_event,
    starts_failing,
    webhook_disabled_data,
    webhook_failing_data,
    webhook_recovered_data,
)
from tests.support.factories import NOW, delivery, webhook

FAILING = OperationalEventType.WEBHOOK_FAILING
W = webhook(id="wh_w", url="https://pos.example.com/in", accounts=("acc1", "acc2"))
ATTEMPT = Attempt(
    delivery_id="dlv_1",
    attempt=10,
    started_at=NOW,
    duration_ms=15000,
    status_code=None,
    response_body="",
    error=AttemptError.TIMEOUT,
)
DELIVERY = delivery(
    webhook_id="wh_w",
    sequence=2,
    state=DeliveryState.FAILED,
    next_attempt_at=None,
    attempt_count=10,
)


# ---------------------------------------------------------------- transitions


def fail(health: WebhookHealth, minutes: int) -> WebhookHealth:
    at = NOW + timedelta(minutes=minutes)
    return after_attempt(health, False, at, at + timedelta(minutes=5), 432000)[0]


def test_failing_starts_with_the_third_consecutive_failure_only() -> None:
    healths = [WebhookHealth()]
    for minute in range(5):
        healths.append(fail(healths[-1], minute))
    starts = [starts_failing(b, a) for b, a in itertools.pairwise(healths)]
    assert starts == [False, False, True, False, False]


def test_recovery_is_the_first_success_after_failing() -> None:
    failing = fail(fail(fail(WebhookHealth(), 0), 1), 2)
    healthy, _ = after_attempt(failing, True, NOW + timedelta(minutes=3), None, 432000)
    assert recovers(failing, healthy)
    again, _ = after_attempt(healthy, True, NOW + timedelta(minutes=4), None, 432000)
    assert not recovers(healthy, again)
    two_failures = fail(fail(WebhookHealth(), 0), 1)
    success, _ = after_attempt(two_failures, True, NOW, None, 432000)
    assert not recovers(two_failures, success), "never failing, so never recovered"


def test_recovery_after_failing_survives_a_disable_and_enable() -> None:
    failing = fail(fail(fail(WebhookHealth(), 0), 1), 2)
    # What enabling a disabled webhook does to its health (`reset_health`).
    enabled = dataclasses.replace(
        failing, consecutive_failures=0, failing_since=None, probing=False, probe_at=None
    )
    healthy, _ = after_attempt(enabled, True, NOW + timedelta(minutes=9), None, 432000)
    assert recovers(enabled, healthy)
    assert webhook_recovered_data(W, enabled)["failingSince"] == "2026-11-28T12:00:00.123456Z"
    again, _ = after_attempt(healthy, True, NOW + timedelta(minutes=10), None, 432000)
    assert not recovers(healthy, again)


# ---------------------------------------------------------------- data


def test_failing_data() -> None:
    health = fail(fail(fail(WebhookHealth(), 0), 1), 2)
    last = Attempt("dlv_9", 3, NOW, 12, 503, "busy", AttemptError.HTTP_STATUS)
    assert webhook_failing_data(W, health, last) == {
        "webhookId": "wh_w",
        "url": "https://pos.example.com/in",
        "accounts": ["acc1", "acc2"],
        "consecutiveFailures": 3,
        "lastError": "http_status",
        "lastStatusCode": 503,
        "since": "2026-11-28T12:00:00.123456Z",
    }


def test_recovered_data() -> None:
    health = fail(fail(fail(fail(WebhookHealth(), 0), 1), 2), 7)
    assert webhook_recovered_data(W, health) == {
        "webhookId": "wh_w",
        "url": "https://pos.example.com/in",
        "accounts": ["acc1", "acc2"],
        "failingSince": "2026-11-28T12:00:00.123456Z",
        "failedAttempts": 4,
    }


@pytest.mark.parametrize("reason", list(DisabledReason))
def test_disabled_data(reason: DisabledReason) -> None:
    assert webhook_disabled_data(W, reason) == {
        "webhookId": "wh_w",
        "url": "https://pos.example.com/in",
        "accounts": ["acc1", "acc2"],
        "reason": reason.value,
    }


def test_delivery_failed_data() -> None:
    assert delivery_failed_data(DELIVERY, ATTEMPT) == {
        "deliveryId": "dlv_1",
        "webhookId": "wh_w",
        "eventId": "evt_1",
        "eventType": "order.status_update",
        "orderId": "o1",
        "attempts": 10,
        "lastError": "timeout",
        "lastStatusCode": None,
    }


# ---------------------------------------------------------------- envelope


def test_delivery_failed_envelope_bytes_known_answer() -> None:
    data = delivery_failed_data(DELIVERY, ATTEMPT)
    event = operational_event(
        "evt_01M8H0DJG0ABCDEFGHJKMNPQRS", OperationalEventType.DELIVERY_FAILED, W, data, NOW
    )
    assert encode_json(operational_envelope(event)) == (
        b'{"id":"evt_01M8H0DJG0ABCDEFGHJKMNPQRS","type":"delivery.failed",'
        b'"timestamp":"2026-11-28T12:00:00.123456Z","account":"acc1","location":null,'
        b'"orderId":"o1","sequence":null,"test":false,'
        b'"data":{"deliveryId":"dlv_1","webhookId":"wh_w","eventId":"evt_1",'
        b'"eventType":"order.status_update","orderId":"o1","attempts":10,'
        b'"lastError":"timeout","lastStatusCode":null}}'
    )


def test_webhook_events_have_no_order() -> None:
    data = webhook_disabled_data(W, DisabledReason.GONE)
    event = operational_event("evt_2", OperationalEventType.WEBHOOK_DISABLED, W, data, NOW)
    body = orjson.loads(encode_json(operational_envelope(event)))
    assert (body["account"], body["location"], body["orderId"], body["sequence"]) == (
        "acc1",
        None,
        None,
        None,
    )
    assert event.webhook_id == "wh_w"


# ---------------------------------------------------------------- routing


def listener(hook_id: str, accounts: tuple[str, ...], **overrides: Any) -> Webhook:
    types = overrides.pop("event_types", (EventType.NEW, FAILING))
    return webhook(id=hook_id, accounts=accounts, event_types=types, **overrides)


def routed(*hooks: Webhook, about: Webhook = W) -> list[str]:
    result = route_operational_event(FAILING, about, hooks)
    return [hook.id for hook in result]


def test_routes_to_listeners_covering_every_account() -> None:
    hooks = [
        listener("wh_same", ("acc1", "acc2")),
        listener("wh_more", ("acc2", "acc3", "acc1")),
        listener("wh_all", ("*",)),
        listener("wh_part", ("acc1",)),
        listener("wh_other", ("acc3",)),
    ]
    assert routed(*hooks) == ["wh_same", "wh_more", "wh_all"]


def test_never_to_the_webhook_itself() -> None:
    itself = listener("wh_w", ("acc1", "acc2"))
    assert routed(itself, listener("wh_s", ("*",)), about=itself) == ["wh_s"]


def test_only_webhooks_listing_the_type() -> None:
    other_type = listener("wh_x", ("*",), event_types=(OperationalEventType.DELIVERY_FAILED,))
    orders_only = listener("wh_y", ("*",), event_types=tuple(EventType))
    assert routed(other_type, orders_only) == []


def test_disabled_webhooks_get_nothing_but_agreements_do_not_gate() -> None:
    hooks = [
        listener("wh_off", ("*",), state=WebhookState.DISABLED),
        listener("wh_wait", ("*",), state=WebhookState.AWAITING_AGREEMENT),
        listener("wh_on", ("*",)),
    ]
    assert routed(*hooks) == ["wh_wait", "wh_on"]


def test_about_a_webhook_on_all_accounts_only_all_account_listeners_hear() -> None:
    everywhere = webhook(id="wh_star", accounts=("*",))
    hooks = [listener("wh_a", ("acc1", "acc2")), listener("wh_b", ("*",))]
    assert routed(*hooks, about=everywhere) == ["wh_b"]
    assert not covers_accounts(listener("wh_a", ("acc1",)), everywhere)
