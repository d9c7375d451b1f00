"""A webhook's health: probing after consecutive failures, disabling when failing too long."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from orderhooks.domain.health import (
    PROBE_AFTER_CONSECUTIVE_FAILURES,
    WebhookHealth,
    after_attempt,
    after_uncounted_failure,
)
from orderhooks.domain.model import DisabledReason

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
FIVE_DAYS = 432_000


def fail(
    health: WebhookHealth, at: datetime, retry_at: datetime | None = None
) -> tuple[WebhookHealth, DisabledReason | None]:
    """One failed attempt at `at`, retried a minute later unless told otherwise."""
    due = retry_at if retry_at is not None else at + timedelta(minutes=1)
    return after_attempt(health, False, at, due, FIVE_DAYS)


def test_a_success_resets_everything_and_records_the_time() -> None:
    sick = WebhookHealth(
        consecutive_failures=7,
        failing_since=T0,
        last_failure_at=T0,
        probing=True,
        probe_at=T0 + timedelta(hours=1),
    )
    health, disable = after_attempt(sick, True, T0 + timedelta(hours=2), None, FIVE_DAYS)
    assert disable is None
    assert health == WebhookHealth(
        consecutive_failures=0,
        failing_since=None,
        last_success_at=T0 + timedelta(hours=2),
        last_failure_at=T0,
        probing=False,
        probe_at=None,
    )


def test_failures_count_up_and_remember_when_failing_began() -> None:
    health, _ = fail(WebhookHealth(), T0)
    health, _ = fail(health, T0 + timedelta(seconds=5))
    assert health.consecutive_failures == 2
    assert health.failing_since == T0
    assert health.last_failure_at == T0 + timedelta(seconds=5)
    assert not health.probing
    assert health.probe_at is None


def test_probing_starts_after_consecutive_failures_at_the_next_retry() -> None:
    health = WebhookHealth()
    for n in range(PROBE_AFTER_CONSECUTIVE_FAILURES):
        retry_at = T0 + timedelta(minutes=n + 5)
        health, _ = fail(health, T0 + timedelta(minutes=n), retry_at)
    assert health.probing
    assert health.probe_at == T0 + timedelta(minutes=PROBE_AFTER_CONSECUTIVE_FAILURES + 4)


def test_a_final_failure_while_probing_hands_the_probe_on_at_once() -> None:
    health = WebhookHealth(consecutive_failures=5, failing_since=T0, probing=True)
    at = T0 + timedelta(hours=1)
    health, disable = after_attempt(health, False, at, None, FIVE_DAYS)
    assert disable is None
    assert health.probe_at == at


def test_failing_longer_than_the_limit_disables() -> None:
    health, disable = fail(WebhookHealth(), T0)
    health, disable = fail(health, T0 + timedelta(seconds=FIVE_DAYS - 1))
    assert disable is None
    health, disable = fail(health, T0 + timedelta(seconds=FIVE_DAYS))
    assert disable == DisabledReason.FAILING


def test_a_success_in_between_starts_the_clock_again() -> None:
    health, _ = fail(WebhookHealth(), T0)
    health, _ = after_attempt(health, True, T0 + timedelta(days=4), None, FIVE_DAYS)
    health, disable = fail(health, T0 + timedelta(days=6))
    assert disable is None
    assert health.failing_since == T0 + timedelta(days=6)
    _, disable = fail(health, T0 + timedelta(days=11))
    assert disable == DisabledReason.FAILING


def test_a_success_never_disables() -> None:
    old = WebhookHealth(consecutive_failures=100, failing_since=T0 - timedelta(days=30))
    _, disable = after_attempt(old, True, T0, None, FIVE_DAYS)
    assert disable is None


def test_an_uncounted_failure_is_the_last_failure_and_changes_nothing_else() -> None:
    sick, _ = fail(fail(WebhookHealth(last_success_at=T0), T0)[0], T0 + timedelta(minutes=1))
    later = T0 + timedelta(days=10)
    health = after_uncounted_failure(sick, later)
    assert health == dataclasses.replace(sick, last_failure_at=later)
    assert after_uncounted_failure(WebhookHealth(), later) == WebhookHealth(last_failure_at=later)
