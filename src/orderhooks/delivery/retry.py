"""What a finished attempt means for its delivery (docs/guarantees.md, retries), as pure
functions."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from orderhooks.domain.model import AttemptError, DeliveryState, DisabledReason

RETRY_AFTER_CAP_SECONDS = 86_400
# Statuses whose Retry-After header the schedule honours (docs/guarantees.md, retries).
RETRY_AFTER_STATUSES = frozenset({429, 503})
GONE_STATUS = 410


def retry_delay(
    schedule: Sequence[int], position: int, jitter: float, rng: random.Random
) -> float | None:
    """Seconds to wait after the failed attempt number `position` (1-based) counted against
    the schedule, with ±`jitter` applied; None when the schedule is exhausted."""
    if position < 1:
        raise ValueError("position counts failed attempts from 1")
    if position > len(schedule):
        return None
    factor = rng.uniform(1.0 - jitter, 1.0 + jitter)
    return max(0.0, schedule[position - 1] * factor)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date), capped at 24 h."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        # Any number of digits: more than the cap has (leading zeros aside) is the cap,
        # never converted (a float overflows, and Python refuses 4,300 digits and more).
        digits = text.lstrip("0") or "0"
        if len(digits) > len(str(RETRY_AFTER_CAP_SECONDS)):
            return float(RETRY_AFTER_CAP_SECONDS)
        seconds = float(int(digits))
    else:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:  # RFC 9110 dates are GMT
            moment = moment.replace(tzinfo=UTC)
        seconds = max(0.0, (moment - now).total_seconds())
    return min(seconds, float(RETRY_AFTER_CAP_SECONDS))


@dataclass(frozen=True, slots=True)
class Decision:
    """The next state of a delivery after one attempt."""

    state: DeliveryState
    next_attempt_at: datetime | None
    disable: DisabledReason | None = None
    schedule_position: int = 0


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # Plain dicts from tests and case-insensitive multidicts from aiohttp alike.
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None


def is_success(status_code: int | None, error: AttemptError | None) -> bool:
    """Whether an attempt delivered the event: a 2xx response and no error."""
    return error is None and status_code is not None and 200 <= status_code < 300


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
    if is_success(status_code, error):
        return Decision(DeliveryState.DELIVERED, None, schedule_position=schedule_position)
    position = schedule_position + 1
    if status_code == GONE_STATUS:
        return Decision(DeliveryState.FAILED, None, DisabledReason.GONE, position)
    delay = retry_delay(schedule, position, jitter, rng)
    if delay is None:
        return Decision(DeliveryState.FAILED, None, schedule_position=position)
    if status_code in RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(_header(response_headers, "retry-after"), now)
        if retry_after is not None:
            delay = max(delay, retry_after)
    return Decision(DeliveryState.PENDING, now + timedelta(seconds=delay), None, position)
