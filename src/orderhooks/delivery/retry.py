"""What a finished attempt means for its delivery (PRODUCT 4.3), as pure functions."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from orderhooks.domain.model import AttemptError, DeliveryState, DisabledReason

RETRY_AFTER_CAP_SECONDS = 86_400


def retry_delay(
    schedule: Sequence[int], position: int, jitter: float, rng: random.Random
) -> float | None:
    """Seconds to wait after the failed attempt number `position` (1-based) counted against
    the schedule, with ±`jitter` applied; None when the schedule is exhausted."""
    raise NotImplementedError


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date), capped at 24 h."""
    raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Decision:
    """The next state of a delivery after one attempt."""

    state: DeliveryState
    next_attempt_at: datetime | None
    disable: DisabledReason | None = None
    schedule_position: int = 0


def decide(
    *,
    status_code: int | None,
    error: AttemptError | None,
    response_headers: Mapping[str, str],
    schedule_position: int,
    schedule: Sequence[int],
    jitter: float,
    now: datetime,
    rng: random.Random,
) -> Decision:
    """2xx: delivered. 410: failed and the webhook disabled (`gone`). Anything else: a retry
    after the schedule's delay (at least Retry-After on 429/503), or failed when the
    schedule is exhausted. `schedule_position` is the count of failed attempts so far
    against the schedule, this one excluded; the decision carries the new count."""
    raise NotImplementedError
