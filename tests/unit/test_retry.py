"""Retry policy (docs/guarantees.md, retries): schedule, jitter, Retry-After, 410, exhaustion."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderhooks.config import DEFAULT_RETRY_SCHEDULE_SECONDS
from orderhooks.delivery.retry import (
    RETRY_AFTER_CAP_SECONDS,
    Decision,
    decide,
    is_success,
    parse_retry_after,
    retry_delay,
)
from orderhooks.domain.model import AttemptError, DeliveryState, DisabledReason

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SCHEDULE = DEFAULT_RETRY_SCHEDULE_SECONDS


def outcome(**overrides: Any) -> Decision:
    """`decide` with defaults: a 500 on the first attempt, the default schedule, no jitter."""
    values: dict[str, Any] = {
        "status_code": 500,
        "error": AttemptError.HTTP_STATUS,
        "response_headers": {},
        "schedule_position": 0,
        "schedule": SCHEDULE,
        "jitter": 0.0,
        "now": NOW,
        "rng": random.Random(1),
    }
    values.update(overrides)
    return decide(**values)


# ---------------------------------------------------------------- retry_delay


def test_known_answers_with_a_seeded_random() -> None:
    # Expected values: schedule entry * Random(seed).uniform(0.8, 1.2), computed once.
    rng = random.Random(42)
    assert retry_delay(SCHEDULE, 1, 0.2, rng) == pytest.approx(5.278853596915766)
    assert retry_delay(SCHEDULE, 2, 0.2, rng) == pytest.approx(243.00129062672005)
    assert retry_delay(SCHEDULE, 3, 0.2, random.Random(7)) == pytest.approx(1673.159590679877)


def test_without_jitter_the_delay_is_the_schedule_entry() -> None:
    delays = [retry_delay(SCHEDULE, n, 0.0, random.Random()) for n in range(1, 10)]
    assert delays == [float(s) for s in SCHEDULE]


def test_the_schedule_is_exhausted_after_its_last_entry() -> None:
    assert retry_delay(SCHEDULE, len(SCHEDULE) + 1, 0.2, random.Random()) is None
    assert retry_delay((), 1, 0.2, random.Random()) is None


def test_positions_count_from_one() -> None:
    with pytest.raises(ValueError):
        retry_delay(SCHEDULE, 0, 0.2, random.Random())


@given(st.integers(1, 9), st.floats(0.0, 0.9), st.integers())
def test_jitter_stays_within_its_band(position: int, jitter: float, seed: int) -> None:
    delay = retry_delay(SCHEDULE, position, jitter, random.Random(seed))
    base = SCHEDULE[position - 1]
    assert delay is not None
    assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9


# ---------------------------------------------------------------- parse_retry_after


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("999999", float(RETRY_AFTER_CAP_SECONDS)),
        ("1" + "0" * 400, float(RETRY_AFTER_CAP_SECONDS)),  # beyond a float
        ("9" * 5000, float(RETRY_AFTER_CAP_SECONDS)),  # beyond int()'s digit limit
        ("0" * 5000 + "7", 7.0),
        ("Sat, 28 Nov 2026 12:10:00 GMT", 600.0),
        ("Sat, 28 Nov 2026 11:00:00 GMT", 0.0),  # in the past: no wait
        ("Mon, 30 Nov 2026 12:00:00 GMT", float(RETRY_AFTER_CAP_SECONDS)),
    ],
)
def test_retry_after_values(value: str, seconds: float) -> None:
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "٣"])
def test_unreadable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


# ---------------------------------------------------------------- decide


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    decision = outcome(status_code=status, error=None, schedule_position=3)
    assert decision == Decision(DeliveryState.DELIVERED, None, None, 3)


def test_a_2xx_reported_with_an_error_is_not_a_success() -> None:
    assert not is_success(200, AttemptError.TIMEOUT)
    assert outcome(status_code=200, error=AttemptError.TIMEOUT).state == DeliveryState.PENDING


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, AttemptError.HTTP_STATUS),
        (404, AttemptError.HTTP_STATUS),
        (301, AttemptError.REDIRECT),
        (302, None),
        (None, AttemptError.TIMEOUT),
        (None, AttemptError.CONNECTION_ERROR),
        (None, AttemptError.BLOCKED_ADDRESS),
        (199, None),
    ],
)
def test_anything_else_is_retried_after_the_schedule_delay(
    status: int | None, error: AttemptError | None
) -> None:
    decision = outcome(status_code=status, error=error, schedule_position=1)
    assert decision == Decision(DeliveryState.PENDING, NOW + timedelta(seconds=300), None, 2)


def test_410_fails_the_delivery_and_disables_the_webhook() -> None:
    decision = outcome(status_code=410, schedule_position=2)
    assert decision == Decision(DeliveryState.FAILED, None, DisabledReason.GONE, 3)


def test_exhausted_schedule_fails_the_delivery() -> None:
    decision = outcome(schedule_position=len(SCHEDULE))
    assert decision == Decision(DeliveryState.FAILED, None, None, len(SCHEDULE) + 1)


def test_a_schedule_of_n_entries_allows_n_plus_one_attempts() -> None:
    schedule = (1, 2, 3)
    position, attempts, state = 0, 0, DeliveryState.PENDING
    while state == DeliveryState.PENDING:
        attempts += 1
        decision = outcome(schedule=schedule, schedule_position=position)
        position, state = decision.schedule_position, decision.state
    assert attempts == 4
    assert state == DeliveryState.FAILED


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_longer_than_the_schedule_wins(status: int) -> None:
    decision = outcome(status_code=status, response_headers={"Retry-After": "60"})
    assert decision.next_attempt_at == NOW + timedelta(seconds=60)
    assert decision.state == DeliveryState.PENDING


@pytest.mark.parametrize("status", [429, 503])
def test_schedule_longer_than_retry_after_wins(status: int) -> None:
    decision = outcome(
        status_code=status, response_headers={"retry-after": "60"}, schedule_position=1
    )
    assert decision.next_attempt_at == NOW + timedelta(seconds=300)


def test_retry_after_is_capped_at_a_day() -> None:
    decision = outcome(status_code=429, response_headers={"RETRY-AFTER": "1000000"})
    assert decision.next_attempt_at == NOW + timedelta(seconds=RETRY_AFTER_CAP_SECONDS)


def test_retry_after_is_ignored_on_other_statuses() -> None:
    decision = outcome(status_code=500, response_headers={"Retry-After": "3600"})
    assert decision.next_attempt_at == NOW + timedelta(seconds=5)


def test_retry_after_does_not_extend_an_exhausted_schedule() -> None:
    decision = outcome(
        status_code=429, response_headers={"Retry-After": "60"}, schedule_position=len(SCHEDULE)
    )
    assert decision.state == DeliveryState.FAILED


def test_decide_applies_jitter_from_the_given_random() -> None:
    decision = outcome(jitter=0.2, rng=random.Random(42))
    assert decision.next_attempt_at == NOW + timedelta(seconds=5.278853596915766)
