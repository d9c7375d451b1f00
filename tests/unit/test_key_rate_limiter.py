"""The per-key rate limiter on a clock the test moves: a bucket of one second's worth of
requests per key, refilled continuously, idle buckets forgotten."""

from __future__ import annotations

import pytest

from orderhooks.web.ratelimit import IDLE_BUCKET_SECONDS, KeyRateLimiter
from tests.support.factories import ManualClock


def test_a_rate_of_zero_never_limits() -> None:
    limiter = KeyRateLimiter(0, ManualClock())
    assert not limiter.enabled
    assert all(limiter.acquire("key_1") is None for _ in range(1000))


def test_a_burst_of_one_seconds_worth_then_a_wait() -> None:
    clock = ManualClock()
    limiter = KeyRateLimiter(5, clock)
    assert [limiter.acquire("key_1") for _ in range(5)] == [None] * 5
    assert limiter.acquire("key_1") == 1  # 0.2 s until the next token, rounded up
    clock.now += 0.2
    assert limiter.acquire("key_1") is None
    assert limiter.acquire("key_1") == 1


def test_a_slow_rate_still_allows_one_request_and_says_how_long_to_wait() -> None:
    clock = ManualClock()
    limiter = KeyRateLimiter(0.25, clock)
    assert limiter.capacity == 1.0
    assert limiter.acquire("key_1") is None
    assert limiter.acquire("key_1") == 4  # one token every 4 s
    clock.now += 3
    assert limiter.acquire("key_1") == 1  # never less than one second
    clock.now += 1
    assert limiter.acquire("key_1") is None


@pytest.mark.parametrize("rate", [1e-6, 1e-320])
def test_a_rate_too_small_for_its_wait_answers_a_day(rate: float) -> None:
    # 1 / 1e-320 is no float: the wait must still be a number for Retry-After.
    limiter = KeyRateLimiter(rate, ManualClock())
    assert limiter.acquire("key_1") is None
    assert limiter.acquire("key_1") == 86_400


def test_refused_requests_take_no_token() -> None:
    clock = ManualClock()
    limiter = KeyRateLimiter(2, clock)
    assert [limiter.acquire("key_1") for _ in range(2)] == [None, None]
    assert [limiter.acquire("key_1") for _ in range(10)] == [1] * 10
    clock.now += 0.5
    assert limiter.acquire("key_1") is None


def test_the_bucket_never_holds_more_than_one_seconds_worth() -> None:
    clock = ManualClock()
    limiter = KeyRateLimiter(3, clock)
    clock.now += 60
    assert [limiter.acquire("key_1") for _ in range(4)] == [None, None, None, 1]


def test_each_key_has_its_own_bucket() -> None:
    limiter = KeyRateLimiter(1, ManualClock())
    assert limiter.acquire("key_1") is None
    assert limiter.acquire("key_1") == 1
    assert limiter.acquire("key_2") is None


@pytest.mark.parametrize("idle", [IDLE_BUCKET_SECONDS + 1, 10 * IDLE_BUCKET_SECONDS])
def test_idle_buckets_are_forgotten(idle: float) -> None:
    clock = ManualClock()
    limiter = KeyRateLimiter(1, clock)
    for n in range(100):
        limiter.acquire(f"key_{n}")
    assert len(limiter._buckets) == 100
    clock.now += idle
    assert limiter.acquire("key_new") is None
    assert list(limiter._buckets) == ["key_new"]


def test_buckets_in_use_are_kept() -> None:
    clock = ManualClock()
    limiter = KeyRateLimiter(1, clock)
    limiter.acquire("key_busy")
    clock.now += IDLE_BUCKET_SECONDS / 2
    limiter.acquire("key_busy")
    clock.now += IDLE_BUCKET_SECONDS / 2 + 1
    limiter.acquire("key_other")
    assert set(limiter._buckets) == {"key_busy", "key_other"}
