"""Per-key request rate limit: a token bucket per API key id, in this process's memory."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

# Buckets of keys idle this long are forgotten, so memory stays bounded by active keys.
IDLE_BUCKET_SECONDS = 300.0
MIN_RETRY_AFTER_SECONDS = 1
# A rate so small that one token takes longer (or a wait no float holds) still answers a
# number: a day, after which the client may as well try again.
MAX_RETRY_AFTER_SECONDS = 86_400


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class KeyRateLimiter:
    """`rate` requests per second per key, with a burst of one second's worth (at least 1)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._last_sweep = clock()

    @property
    def enabled(self) -> bool:
        """Whether a limit applies (a rate of 0 means unlimited)."""
        return self.rate > 0

    def acquire(self, key_id: str) -> int | None:
        """Take one token for `key_id`: None when allowed, else the seconds to wait (1 to
        MAX_RETRY_AFTER_SECONDS)."""
        if not self.enabled:
            return None
        now = self._clock()
        self._sweep(now)
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        wait = min((1.0 - bucket.tokens) / self.rate, MAX_RETRY_AFTER_SECONDS)
        return max(MIN_RETRY_AFTER_SECONDS, math.ceil(wait))

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < IDLE_BUCKET_SECONDS:
            return
        self._last_sweep = now
        idle = [k for k, b in self._buckets.items() if now - b.updated > IDLE_BUCKET_SECONDS]
        for key_id in idle:
            del self._buckets[key_id]
