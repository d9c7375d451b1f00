"""The request of a batch: claims grouped by batch, headers, and a signature over the
whole body that the `standardwebhooks` package verifies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from orderhooks.delivery.claims import Claim, requests_of
from orderhooks.delivery.outbound import build_batch_request
from orderhooks.domain.batches import encode_batch
from orderhooks.domain.envelope import encode_body
from orderhooks.domain.model import PayloadFormat
from tests.support import factories
from tests.support.factories import SECRET, event, webhook

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def claim(delivery_id: str, batch_id: str | None, attempt: int = 1) -> Claim:
    """A claim of event `evt_<delivery_id>` in batch `batch_id`."""
    delivery = factories.delivery(
        id=delivery_id,
        event_id=f"evt_{delivery_id}",
        created_at=NOW,
        next_attempt_at=NOW,
        attempt_count=attempt - 1,
        batch_id=batch_id,
    )
    return Claim(
        delivery=delivery,
        webhook=webhook(headers={"X-Tenant": "t1", "orderhooks-batch-size": "999"}),
        event=event(id=f"evt_{delivery_id}"),
        attempt=attempt,
        lease_expires_at=NOW + timedelta(seconds=45),
        batch_id=batch_id,
    )


def test_claims_are_grouped_by_batch() -> None:
    claims = [
        claim("d1", None),
        claim("d2", "bat_a"),
        claim("d3", "bat_a"),
        claim("d4", None),
        claim("d5", "bat_b"),
    ]
    assert [[c.delivery.id for c in r] for r in requests_of(claims)] == [
        ["d1"],
        ["d2", "d3"],
        ["d4"],
        ["d5"],
    ]
    assert requests_of([]) == []


def test_a_batch_request_is_signed_over_the_whole_body() -> None:
    claims = [claim("d1", "bat_a", attempt=2), claim("d2", "bat_a", attempt=2)]
    envelopes = [encode_body(c.event, PayloadFormat.ENVELOPE) for c in claims]
    body = encode_batch("bat_a", envelopes)
    # Signed now: standardwebhooks refuses timestamps far from its clock.
    request = build_batch_request(claims, body, datetime.now(UTC))
    headers = request.headers
    assert request.body == body
    assert headers["webhook-id"] == "bat_a"
    assert headers["orderhooks-delivery-id"] == "d1,d2"
    assert headers["orderhooks-batch-size"] == "2"  # never the webhook's static value
    assert headers["orderhooks-event-type"] == "batch"
    assert headers["orderhooks-attempt"] == "2"
    assert headers["X-Tenant"] == "t1"
    verified = StandardWebhook(SECRET).verify(body, headers)
    assert [e["id"] for e in verified["events"]] == ["evt_d1", "evt_d2"]
    tampered = body.replace(b"evt_d2", b"evt_d3")
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(SECRET).verify(tampered, headers)
