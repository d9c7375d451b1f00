"""What the delivery queue hands a worker (`Claim`) and what the worker hands back
(`Outcome`): the values between the dispatcher, the recorder and the store."""

from __future__ import annotations

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
    """A delivery leased to this worker: send attempt number `attempt` now."""

    delivery: Delivery
    webhook: Webhook
    event: Event
    attempt: int
    lease_expires_at: datetime


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
