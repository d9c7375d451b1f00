"""What the delivery queue hands a worker (`Claim`) and what the worker hands back
(`Outcome`): the values between the dispatcher, the recorder and the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from orderhooks.domain.model import (
    Attempt,
    Delivery,
    DeliveryState,
    DisabledReason,
    Event,
    Webhook,
)


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery leased to this worker: send attempt number `attempt` now.

    `trace_parent` is the W3C traceparent of the ingest span that created the event
    (None when tracing was off then): the attempt's span links to it."""

    delivery: Delivery
    webhook: Webhook
    event: Event
    attempt: int
    lease_expires_at: datetime
    # Claims sharing a batch id are one request (docs/events.md, "Batches"); the store
    # hands them out next to each other, in the order they go in the body.
    batch_id: str | None = None
    trace_parent: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The recorded result of one attempt and what happens next to its delivery.

    `next_state` is DELIVERED, FAILED or PENDING (a retry at `next_attempt_at`).
    `disable` disables the webhook with that reason (410 gives GONE).
    """

    delivery_id: str
    webhook_id: str
    attempt: Attempt
    next_state: DeliveryState
    next_attempt_at: datetime | None
    schedule_position: int
    disable: DisabledReason | None = None
    # The outcomes of one batch are one attempt for the webhook's health.
    batch_id: str | None = None


def requests_of(claims: Sequence[Claim]) -> list[list[Claim]]:
    """The claims grouped by request: each alone, or the claims of one batch together
    (the store hands a batch's claims out side by side, in body order)."""
    requests: list[list[Claim]] = []
    for claim in claims:
        previous = requests[-1][0] if requests else None
        if (
            claim.batch_id is not None
            and previous is not None
            and previous.batch_id == claim.batch_id
        ):
            requests[-1].append(claim)
        else:
            requests.append([claim])
    return requests
