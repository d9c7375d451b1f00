"""What one attempt's result means: its `Outcome` (the attempt as recorded and the
delivery's next state, from `retry.decide`) and what it adds to the metrics and the log.

The dispatcher sends; these functions turn what came back into what the recorder writes
and what an operator sees, so the mapping reads (and is tested) apart from the sending.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime

from orderhooks.delivery import retry
from orderhooks.delivery.claims import Claim, Outcome
from orderhooks.delivery.retry import Decision
from orderhooks.delivery.transport import TransportResult
from orderhooks.domain.envelope import body_settings
from orderhooks.domain.health import counts_toward_health
from orderhooks.domain.model import Attempt, DeliveryState
from orderhooks.logging import get_logger
from orderhooks.metrics import Metrics

OUTCOME_LABELS = {DeliveryState.DELIVERED: "delivered", DeliveryState.FAILED: "failed"}

log = get_logger("orderhooks.delivery")


def outcome_label(outcome: Outcome) -> str:
    """The `outcome` label of the delivery metrics: delivered, failed or retry."""
    return OUTCOME_LABELS.get(outcome.next_state, "retry")


def decide(
    claim: Claim,
    schedule_position: int,
    result: TransportResult,
    *,
    default_schedule: Sequence[int],
    jitter: float,
    now: datetime,
    rng: random.Random,
) -> Decision:
    """The next state of `claim`'s delivery after `result`: by the webhook's retry schedule,
    or the server's default one."""
    schedule = claim.webhook.retry_schedule
    return retry.decide(
        status_code=result.status_code,
        error=result.error,
        response_headers=result.response_headers,
        schedule_position=schedule_position,
        schedule=schedule if schedule is not None else default_schedule,
        jitter=jitter,
        now=now,
        rng=rng,
    )


def outcome_of(
    claim: Claim, started_at: datetime, result: TransportResult, decision: Decision
) -> Outcome:
    """The attempt as the store records it, and where `decision` takes its delivery."""
    attempt = Attempt(
        delivery_id=claim.delivery.id,
        attempt=claim.attempt,
        started_at=started_at,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        response_body=result.response_excerpt,
        error=result.error,
        body_settings=body_settings(claim.webhook),
    )
    return Outcome(
        delivery_id=claim.delivery.id,
        webhook_id=claim.webhook.id,
        attempt=attempt,
        next_state=decision.state,
        next_attempt_at=decision.next_attempt_at,
        schedule_position=decision.schedule_position,
        disable=decision.disable,
        batch_id=claim.batch_id,
    )


def observe(metrics: Metrics, claim: Claim, outcome: Outcome, result: TransportResult) -> None:
    """Count one attempt (its webhook's health series only when the error counts toward
    health) and log it when it did not deliver: ids, status and error, never the body,
    headers or secrets."""
    label = outcome_label(outcome)
    metrics.deliveries.labels(outcome=label).inc()
    if counts_toward_health(result.error):
        metrics.count_webhook_attempt(claim.webhook.id, label)
    else:
        metrics.proxy_errors.inc()
    metrics.attempt_latency.observe(result.duration_ms / 1000)
    if outcome.next_state is DeliveryState.DELIVERED:
        return
    log.info(
        "delivery attempt failed",
        webhook_id=claim.webhook.id,
        delivery_id=claim.delivery.id,
        batch_id=claim.batch_id,
        attempt=claim.attempt,
        status_code=result.status_code,
        error=str(result.error) if result.error else None,
        detail=result.detail or None,
        next_state=str(outcome.next_state),
        disable=str(outcome.disable) if outcome.disable else None,
    )


__all__ = ["decide", "observe", "outcome_label", "outcome_of"]
