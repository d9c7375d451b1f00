"""An attempt's result as the recorder writes it (`delivery/outcomes.py`): the attempt's
fields, the webhook's retry schedule before the server's, and the metric labels."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from orderhooks.delivery.claims import Claim
from orderhooks.delivery.outcomes import decide, outcome_label, outcome_of
from orderhooks.delivery.transport import fake_result
from orderhooks.domain.model import AttemptError, DeliveryState
from tests.support import factories
from tests.support.factories import event, webhook

NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)


def claim(retry_schedule: tuple[int, ...] | None = None, batch_id: str | None = None) -> Claim:
    delivery = factories.delivery(
        id="dlv_1", event_id="evt_1", created_at=NOW, next_attempt_at=NOW, batch_id=batch_id
    )
    return Claim(
        delivery=delivery,
        webhook=webhook(retry_schedule=retry_schedule),
        event=event(id="evt_1"),
        attempt=3,
        lease_expires_at=NOW + timedelta(seconds=45),
        batch_id=batch_id,
    )


def test_a_delivered_attempt_is_recorded_as_it_came_back() -> None:
    result = fake_result(200, excerpt="ok", duration_ms=12)
    c = claim(batch_id="bat_1")
    decision = decide(
        c, 0, result, default_schedule=(60,), jitter=0.0, now=NOW, rng=random.Random(1)
    )
    outcome = outcome_of(c, NOW, result, decision)
    assert (outcome.delivery_id, outcome.webhook_id, outcome.batch_id) == (
        "dlv_1",
        c.webhook.id,
        "bat_1",
    )
    assert outcome.next_state is DeliveryState.DELIVERED and outcome_label(outcome) == "delivered"
    attempt = outcome.attempt
    assert (attempt.attempt, attempt.started_at, attempt.duration_ms) == (3, NOW, 12)
    assert (attempt.status_code, attempt.response_body, attempt.error) == (200, "ok", None)


def test_the_webhooks_own_schedule_comes_before_the_servers() -> None:
    failed = fake_result(503)
    rng = random.Random(1)
    own = decide(claim((7,)), 0, failed, default_schedule=(600,), jitter=0.0, now=NOW, rng=rng)
    server = decide(claim(None), 0, failed, default_schedule=(600,), jitter=0.0, now=NOW, rng=rng)
    assert own.next_attempt_at == NOW + timedelta(seconds=7)
    assert server.next_attempt_at == NOW + timedelta(seconds=600)
    assert outcome_label(outcome_of(claim(), NOW, failed, own)) == "retry"
    # The schedule used up: failed for good.
    last = decide(
        claim((7,)),
        1,
        fake_result(None, error=AttemptError.TIMEOUT),
        default_schedule=(600,),
        jitter=0.0,
        now=NOW,
        rng=rng,
    )
    assert last.state is DeliveryState.FAILED
