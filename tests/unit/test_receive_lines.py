"""`orderhooks receive` prints operational events with the webhook they are about."""

from __future__ import annotations

from datetime import UTC, datetime

from orderhooks.cli.receive import describe_payload, event_line

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
HEADERS = {"webhook-id": "evt_1", "orderhooks-attempt": "1"}


def _envelope(event_type: str, data: dict[str, object]) -> dict[str, object]:
    return {
        "id": "evt_1",
        "type": event_type,
        "timestamp": "2026-12-04T12:00:00.000000Z",
        "account": "acct",
        "location": None,
        "orderId": None,
        "sequence": None,
        "test": False,
        "data": data,
    }


def test_a_failing_webhook_is_named_with_its_last_error() -> None:
    data = {"webhookId": "wh_a", "lastError": "http_status", "lastStatusCode": 500}
    event = describe_payload(HEADERS, _envelope("webhook.failing", data), NOW)
    assert event.about == "wh_a (http_status)"
    line = event_line(event, NOW).plain
    assert "webhook.failing" in line and "about wh_a (http_status)" in line
    assert "order -" in line and "seq -" in line


def test_a_disabled_webhook_is_named_with_its_reason() -> None:
    data = {"webhookId": "wh_b", "url": "https://x", "accounts": ["a"], "reason": "gone"}
    event = describe_payload(HEADERS, _envelope("webhook.disabled", data), NOW)
    assert event.about == "wh_b (gone)"


def test_order_events_are_about_no_webhook() -> None:
    envelope = _envelope("order.status_update", {"orderId": "o1", "status": 20})
    envelope.update(orderId="o1", sequence=2)
    event = describe_payload(HEADERS, envelope, NOW)
    assert event.about is None and event.order_id == "o1" and event.sequence == 2
    assert "about" not in event_line(event, NOW).plain
