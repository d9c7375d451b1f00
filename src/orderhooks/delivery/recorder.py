"""Writes attempt outcomes to the store in batches, and never drops one.

One `Store.record` transaction serves every outcome that finished while the previous one
was being written: batches grow with the load and cost no waiting when it is light.
When the store fails, the outcomes stay queued and the write is retried with backoff: a
delivery leaves `delivering` only through a recorded outcome (or, if this process dies
first, through its lease), which is what makes delivery at least once.

The dispatcher may also write a batch itself, in the transaction of its next claim
(`take`, then `put_back` if the write failed; see `Dispatcher`): then `run` only writes
what is left when the dispatcher stops. A batch leaves the queue while it is written, so
two writers never write the same outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

from orderhooks.delivery.claims import Outcome
from orderhooks.logging import get_logger
from orderhooks.store import Store

# No fixed gathering delay: a finished delivery holds a `maxConcurrency` slot (and the
# next event of its order) until its outcome is recorded, so waiting here would cap the
# throughput of every webhook at maxConcurrency / interval. Batching comes from the
# record in progress instead (and from the store's group commit).
RECORD_INTERVAL_SECONDS = 0.0
RECORD_BATCH_MAX = 500
RECORD_RETRY_INITIAL_SECONDS = 0.1
RECORD_RETRY_MAX_SECONDS = 5.0

log = get_logger("orderhooks.delivery")


class OutcomeRecorder:
    """Queues outcomes and records them in batches until closed and empty."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime],
        on_recorded: Callable[[], None],
        *,
        interval_seconds: float = RECORD_INTERVAL_SECONDS,
        batch_max: int = RECORD_BATCH_MAX,
    ) -> None:
        self._store = store
        self._clock = clock
        self._on_recorded = on_recorded
        self._interval = interval_seconds
        self._batch_max = batch_max
        self._outcomes: list[Outcome] = []
        self._queued = asyncio.Event()
        self._batch_full = asyncio.Event()
        self._closing = False
        self._writing = 0  # outcomes of the batch `run` is writing

    @property
    def pending(self) -> int:
        """Outcomes not recorded yet: queued, or in the write of `run`."""
        return len(self._outcomes) + self._writing

    def add(self, outcome: Outcome) -> None:
        """Queue one outcome for the next batch."""
        self._outcomes.append(outcome)
        self._queued.set()
        if len(self._outcomes) >= self._batch_max:
            self._batch_full.set()

    def take(self) -> list[Outcome]:
        """The next batch to write, oldest first, out of the queue: `put_back` it unless
        it was written. The outcomes of one batched request are never split between two
        writes: each write counts them as one attempt for the webhook's health."""
        end = min(self._batch_max, len(self._outcomes))
        last = self._outcomes[end - 1].batch_id if end else None
        # A request's outcomes are queued side by side (see `Dispatcher._attempt_batch`).
        while last is not None and end < len(self._outcomes):
            if self._outcomes[end].batch_id != last:
                break
            end += 1
        batch = self._outcomes[:end]
        del self._outcomes[:end]
        if len(self._outcomes) < self._batch_max:
            self._batch_full.clear()
        return batch

    def put_back(self, batch: list[Outcome]) -> None:
        """A batch from `take` that could not be written: first in line again."""
        self._outcomes[:0] = batch
        if batch:
            self._queued.set()
        if len(self._outcomes) >= self._batch_max:
            self._batch_full.set()

    def close(self) -> None:
        """Take no more outcomes: `run` returns once the queued ones are recorded."""
        self._closing = True
        self._queued.set()

    async def run(self) -> None:
        """Record batches until closed and empty."""
        backoff = RECORD_RETRY_INITIAL_SECONDS
        while True:
            if not self._outcomes:
                if self._closing:
                    return
                self._queued.clear()
                await self._queued.wait()
                continue
            await self._gather_batch()
            if await self._record_batch():
                backoff = RECORD_RETRY_INITIAL_SECONDS
                self._on_recorded()
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECORD_RETRY_MAX_SECONDS)

    async def _gather_batch(self) -> None:
        # Give outcomes finishing right now a moment to join this transaction.
        if self._closing or len(self._outcomes) >= self._batch_max:
            return
        if self._interval <= 0:
            await asyncio.sleep(0)  # the attempts completing in this loop turn join in
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._interval):
                await self._batch_full.wait()

    async def _record_batch(self) -> bool:
        batch = self.take()
        self._writing = len(batch)
        try:
            await self._store.record(batch, self._clock())
        except Exception as exc:
            # Kept, not dropped: the same outcomes are written on the next try.
            log.warning(
                "recording attempt outcomes failed; retrying",
                outcomes=len(batch),
                error=f"{type(exc).__name__}: {exc}",
            )
            self.put_back(batch)
            return False
        finally:
            self._writing = 0
        return True


__all__ = ["RECORD_BATCH_MAX", "RECORD_INTERVAL_SECONDS", "OutcomeRecorder"]
