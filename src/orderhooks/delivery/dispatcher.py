"""The delivery worker: claims due deliveries, sends them, records what happened.

One claim loop asks the store for as much work as this process has free capacity
(`worker_concurrency` attempts in flight, shared by every webhook), starts one task per
attempt, and sleeps until work may be claimable again: the next due time, a wake-up from
the store (an ingest, an enable, a retry) or from a recorded outcome (the next event of
that order may now be the head of its queue), or at most `IDLE_WAIT_CAP_SECONDS`, so
that work released by other processes is picked up. The store enforces per-order order,
`maxConcurrency`, rate limits and probing across the cluster; this loop only sends.

Each webhook also has one slot of its own (docs/guarantees.md, "Isolation"): once the
shared capacity is full, the loop goes on claiming, one request each, for the webhooks
with no attempt in flight here, so that slow webhooks holding the whole capacity do not
delay the others. At most `worker_concurrency` attempts more go out that way: never more
than `in_flight_bound` in all, which the transport's connection pool allows. Such a claim
is a whole claim (on PostgreSQL under the cluster's claim lock) made for a worker that is
already full: after one that left own slots free, the next waits
`OWN_SLOTS_CLAIM_INTERVAL_SECONDS`, however many ingests wake the loop meanwhile, unless a
webhook of this worker has no attempt in flight any more (its next event may take its own
slot) or an outcome is to be written with it.

Outcomes go to an `OutcomeRecorder`, which writes them in batches. Where the store
writes in turn (SQLite's one writer), the claim loop writes them instead, in the
transaction of its next claim (`Store.record_and_claim`): an attempt's slot is then
freed and filled again in one write instead of two, each of which waits its turn
behind the ingests. Elsewhere (PostgreSQL) the recorder writes them on its own, so that
no worker holds the claim lock while its outcomes are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import socket
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from orderhooks.clock import utc_now
from orderhooks.config import Settings
from orderhooks.delivery.claims import Claim, Outcome, requests_of
from orderhooks.delivery.outbound import BodyCache, build_batch_request, build_request
from orderhooks.delivery.outcomes import decide, observe, outcome_label, outcome_of
from orderhooks.delivery.recorder import OutcomeRecorder
from orderhooks.delivery.retry import Decision
from orderhooks.delivery.transport import AttemptAbandoned, Transport, TransportResult
from orderhooks.domain.batches import encode_batch
from orderhooks.logging import get_logger
from orderhooks.metrics import Metrics
from orderhooks.store import Store
from orderhooks.tracing import TRACING_OFF, Tracing, describe_outcome, traceparent_of

MAX_CLAIM_BATCH = 500
IDLE_WAIT_CAP_SECONDS = 1.0
CLAIM_RETRY_INITIAL_SECONDS = 0.1
CLAIM_RETRY_MAX_SECONDS = 5.0
# After the in-flight attempts, their outcomes get at least this long to be written.
FINAL_RECORD_SECONDS = 5.0
# A full worker's claims for the webhooks' own slots, after one that filled fewer than it
# asked for, are this far apart at least (ingests alone do not cut the wait short): the
# most an event of a webhook with nothing in flight on a full worker waits past its
# wake-up, besides a claim already running (docs/guarantees.md, "Isolation").
OWN_SLOTS_CLAIM_INTERVAL_SECONDS = 0.2

log = get_logger("orderhooks.delivery")


def in_flight_bound(worker_concurrency: int) -> int:
    """The most attempts a worker holds in flight: its shared capacity, and as many again
    in the webhooks' own slots (one each, for webhooks with nothing else in flight on it)."""
    return 2 * max(1, worker_concurrency)


def default_worker_id() -> str:
    """A worker id unique across hosts, processes and restarts."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Dispatcher:
    """Sends due deliveries of one process and records their outcomes."""

    def __init__(
        self,
        store: Store,
        transport: Transport,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        worker_id: str | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] | None = None,
        tracing: Tracing = TRACING_OFF,
    ) -> None:
        self._store = store
        self._tracing = tracing
        self._transport = transport
        self._settings = settings
        self._metrics = metrics if metrics is not None else Metrics()
        self._worker_id = worker_id or default_worker_id()
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock if clock is not None else utc_now
        self._capacity = max(1, settings.worker_concurrency)
        self._bound = in_flight_bound(settings.worker_concurrency)
        self._recorder = OutcomeRecorder(store, self._clock, self.notify)
        self._records_with_claims = store.writes_in_turn
        self._in_flight: set[asyncio.Task[None]] = set()
        # The attempts among them that went out in the webhooks' own slots: counted apart,
        # so that they never take the shared capacity (nor the shared attempts the own slots).
        self._in_own_slots: set[asyncio.Task[None]] = set()
        # Requests in flight by webhook id: those with none may take an own slot.
        self._busy: dict[str, int] = {}
        # When the last own-slot claim that left own slots free ended (loop time), and the
        # webhooks it left out: the next one waits (`_own_slots_pause`).
        self._own_slots_claimed: tuple[float, frozenset[str]] | None = None
        self._wake = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._stopping = False
        self._claim_task: asyncio.Task[None] | None = None
        self._record_task: asyncio.Task[None] | None = None

    @property
    def worker_id(self) -> str:
        """The id this worker claims under."""
        return self._worker_id

    @property
    def running(self) -> bool:
        """Whether the claim loop is alive and not stopping."""
        task = self._claim_task
        return task is not None and not task.done() and not self._stopping

    @property
    def in_flight(self) -> int:
        """Attempts being sent right now."""
        return len(self._in_flight)

    def notify(self) -> None:
        """Wake the claim loop: new work may be claimable."""
        self._wake.set()

    async def start(self) -> None:
        """Start claiming and recording."""
        if self._claim_task is not None:
            return
        if not self._records_with_claims:
            self._start_recorder()
        self._claim_task = asyncio.create_task(self._claim_loop(), name="claim-loop")
        # Should the claim loop end (stopping, or a fault), the recorder writes outcomes.
        self._claim_task.add_done_callback(lambda _task: self._start_recorder())
        log.info("delivery worker started", worker_id=self._worker_id, capacity=self._capacity)

    async def stop(self, drain_timeout: float = 30) -> None:
        """Claim nothing more; let attempts in flight finish (abandoning those still running
        after `drain_timeout` seconds to their leases) and record their outcomes."""
        if self._claim_task is None or self._stopping:
            return
        self._stopping = True
        self._stop_requested.set()
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, drain_timeout)
        try:
            if await _finish([self._claim_task], deadline - loop.time()):
                # Stuck in a claim (the store does not answer): ended here. The outcomes it
                # took are its write's, committed or not: the recorder gets the others.
                await _cancel([self._claim_task])
            # From here the recorder writes every outcome (where the claim loop wrote
            # them, those still queued and those of the attempts in flight).
            self._start_recorder()
            abandoned = await _finish(list(self._in_flight), deadline - loop.time())
            if abandoned:
                log.warning(
                    "attempts abandoned at shutdown; their leases will expire",
                    attempts=abandoned,
                )
            self._recorder.close()
            record_time = max(deadline - loop.time(), FINAL_RECORD_SECONDS)
            if self._record_task is not None and await _finish([self._record_task], record_time):
                log.error(
                    "outcomes not recorded at shutdown; their deliveries will be retried",
                    outcomes=self._recorder.pending,
                )
        finally:
            await _cancel([self._claim_task, self._record_task, *self._in_flight])
            log.info("delivery worker stopped", worker_id=self._worker_id)

    def _start_recorder(self) -> None:
        if self._record_task is None:
            self._record_task = asyncio.create_task(self._recorder.run(), name="outcome-recorder")

    # ------------------------------------------------------------ the claim loop

    async def _claim_loop(self) -> None:
        backoff = CLAIM_RETRY_INITIAL_SECONDS
        while not self._stopping:
            limit, one_each_except = self._room()
            outcomes = self._recorder.take() if self._records_with_claims else []
            if limit <= 0 and not outcomes:
                # Shared and own slots full: a finished attempt (every few tens of ms) wakes
                # the loop.
                self._wake.clear()
                await self._sleep(IDLE_WAIT_CAP_SECONDS, with_store=False)
                continue
            pause = 0.0 if outcomes else self._own_slots_pause(one_each_except)
            if pause > 0:
                # Woken (an ingest, most often) too soon after an own-slot claim that found
                # nothing more: claim once the interval is over, or sooner if room frees.
                self._wake.clear()
                await self._sleep(pause, with_store=True)
                continue
            # Cleared before claiming, so that a wake-up during the claim is not lost.
            self._wake.clear()
            claimed_at = self._clock()
            try:
                claims = await self._record_and_claim(outcomes, claimed_at, limit, one_each_except)
            except Exception as exc:
                self._recorder.put_back(outcomes)  # written with the next claim
                log.warning(
                    "claiming deliveries failed",
                    outcomes=len(outcomes),
                    error=f"{type(exc).__name__}: {exc}",
                )
                # Not cut short by new outcomes or work: only a stop ends the backoff.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), backoff)
                backoff = min(backoff * 2, CLAIM_RETRY_MAX_SECONDS)
                continue
            backoff = CLAIM_RETRY_INITIAL_SECONDS
            requests = requests_of(claims)
            self._dispatch(requests, own_slots=one_each_except is not None)
            self._own_slots_claimed = None
            if len(requests) >= limit:
                await asyncio.sleep(0)  # more is due: let the attempts start, then claim again
            elif one_each_except is not None:
                # Full: every webhook that could use its own slot has it. A finished attempt,
                # new work or the cap wakes the loop (a due time waits for one of them, so
                # up to IDLE_WAIT_CAP_SECONDS: next_due_at is that of the busy webhooks).
                self._own_slots_claimed = (asyncio.get_running_loop().time(), one_each_except)
                await self._sleep(IDLE_WAIT_CAP_SECONDS, with_store=True)
            else:
                await self._idle(claimed_at)

    def _room(self) -> tuple[int, frozenset[str] | None]:
        """How many requests to claim now, and for which webhooks: from the free shared
        capacity for any (None); once it is full, from the free own slots (as many as the
        shared capacity), one each for the webhooks with no attempt in flight here (the
        set leaves out the others); when both are full, none."""
        in_own_slots = len(self._in_own_slots)
        free = self._capacity - (len(self._in_flight) - in_own_slots)
        if free > 0:
            return min(free, MAX_CLAIM_BATCH), None
        own = self._bound - self._capacity - in_own_slots
        if own > 0:
            return min(own, MAX_CLAIM_BATCH), frozenset(self._busy)
        return 0, None

    def _own_slots_pause(self, one_each_except: frozenset[str] | None) -> float:
        """How long an own-slot claim for the webhooks not in `one_each_except` waits
        still: the rest of `OWN_SLOTS_CLAIM_INTERVAL_SECONDS` after the last one, when that
        one left own slots free and every webhook it left out is in flight here still;
        else (a shared claim, or a webhook whose attempts all ended since) none."""
        last = self._own_slots_claimed
        if one_each_except is None or last is None:
            return 0.0
        ended_at, left_out = last
        if not left_out <= one_each_except:
            return 0.0
        return ended_at + OWN_SLOTS_CLAIM_INTERVAL_SECONDS - asyncio.get_running_loop().time()

    async def _record_and_claim(
        self,
        outcomes: Sequence[Outcome],
        now: datetime,
        limit: int,
        one_each_except: frozenset[str] | None,
    ) -> list[Claim]:
        """Claim up to `limit` requests (one each for the webhooks not in
        `one_each_except`, when given), after writing `outcomes` (a batch taken from the
        recorder) in the same transaction."""
        if outcomes and limit <= 0:
            await self._store.record(outcomes, now)
            return []
        return await self._store.record_and_claim(
            outcomes, now, limit, self._worker_id, one_each_except=one_each_except
        )

    async def _idle(self, claimed_at: datetime) -> None:
        """Sleep until work may be claimable (never busy: at least a wake-up or a due time)."""
        try:
            due = await self._store.next_due_at()
        except Exception:
            due = None
        timeout = IDLE_WAIT_CAP_SECONDS
        if due is not None:
            now = self._clock()
            if claimed_at < due <= now:
                return  # fell due since the claim
            if due > now:
                timeout = min(timeout, (due - now).total_seconds())
            # Due before the claim yet not claimed: blocked (head of order, slots, rate,
            # probing) until an outcome is recorded somewhere, so wait for a wake-up.
        await self._sleep(timeout, with_store=True)

    async def _sleep(self, seconds: float, *, with_store: bool) -> None:
        if self._stopping or seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        woken = asyncio.ensure_future(self._wake.wait())
        waiters: list[asyncio.Future[Any]] = [woken]
        if with_store:
            waiters.append(asyncio.ensure_future(self._store.wait_for_work(seconds)))
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
            if woken not in done and any(not w.cancelled() and w.exception() for w in done):
                # The store's wake-up channel failed: sleep the time out rather than spin.
                await asyncio.wait([woken], timeout=max(0.0, deadline - loop.time()))
        finally:
            await _cancel(waiters)

    def _dispatch(self, requests: Sequence[Sequence[Claim]], *, own_slots: bool) -> None:
        """Start one attempt per request, in the webhooks' own slots when `own_slots`."""
        bodies = BodyCache()
        for claims in requests:
            claim = claims[0]
            try:
                if claim.batch_id is None:
                    body = bodies.body(claim.event, claim.webhook)
                    attempt = self._attempt(claim, body)
                else:
                    # Each event's envelope as it would go alone (shaped), joined as they are.
                    envelopes = [bodies.body(c.event, c.webhook) for c in claims]
                    body = encode_batch(claim.batch_id, envelopes)
                    attempt = self._attempt_batch(claims, body)
            except Exception:
                log.exception("encoding a delivery body failed", delivery_id=claim.delivery.id)
                continue  # left to its lease, as if this process had died
            self._track(asyncio.create_task(attempt), claim.webhook.id, own_slot=own_slots)

    def _track(self, task: asyncio.Task[None], webhook_id: str, *, own_slot: bool) -> None:
        """Count the attempt in flight, in all, in the own slots when `own_slot`, and for
        its webhook, until it ends (however it ends: a done callback)."""
        self._in_flight.add(task)
        if own_slot:
            self._in_own_slots.add(task)
        self._busy[webhook_id] = self._busy.get(webhook_id, 0) + 1

        def done(finished: asyncio.Task[None]) -> None:
            self._in_flight.discard(finished)
            self._in_own_slots.discard(finished)
            left = self._busy[webhook_id] - 1
            if left:
                self._busy[webhook_id] = left
            else:
                del self._busy[webhook_id]

        task.add_done_callback(done)

    # ------------------------------------------------------------ one attempt

    async def _attempt(self, claim: Claim, body: bytes) -> None:
        if self._tracing.enabled:
            with self._tracing.attempt_span(claim) as span:
                propagated = traceparent_of(span) if self._settings.trace_propagation else None
                sent = await self._send(claim, body, propagated)
                if sent is not None:
                    describe_outcome(span, sent[0], sent[1].status_code)
        else:
            sent = await self._send(claim, body, None)
        if sent is not None:
            outcome, result = sent
            self._queue_outcome(outcome)
            observe(self._metrics, claim, outcome, result)

    async def _send(
        self, claim: Claim, body: bytes, trace_parent: str | None
    ) -> tuple[Outcome, TransportResult] | None:
        """Send one attempt and decide its outcome; None when it could not be made (its
        lease brings it back)."""
        try:
            started_at = self._clock()
            request = build_request(claim, body, started_at, trace_parent=trace_parent)
            result = await self._transport.send(request)
            return self._outcome(claim, started_at, result), result
        except AttemptAbandoned as exc:
            log.warning(
                "a delivery attempt was abandoned; its lease will bring it back",
                delivery_id=claim.delivery.id,
                reason=str(exc),
            )
            return None
        except Exception:
            log.exception("a delivery attempt could not be made", delivery_id=claim.delivery.id)
            return None

    async def _attempt_batch(self, claims: Sequence[Claim], body: bytes) -> None:
        """One request for the batch; its outcome is the outcome of every event in it."""
        if self._tracing.enabled:
            with self._tracing.batch_attempt_span(claims) as span:
                propagated = traceparent_of(span) if self._settings.trace_propagation else None
                sent = await self._send_batch(claims, body, propagated)
                if sent is not None:
                    describe_outcome(span, sent[0][0], sent[1].status_code)
        else:
            sent = await self._send_batch(claims, body, None)
        if sent is None:
            return
        outcomes, result = sent
        for outcome in outcomes:
            self._queue_outcome(outcome)
        # One request: its attempt, latency and log line once; each event's outcome counted.
        observe(self._metrics, claims[0], outcomes[0], result)
        label = outcome_label(outcomes[0])
        self._metrics.deliveries.labels(outcome=label).inc(len(outcomes) - 1)

    async def _send_batch(
        self, claims: Sequence[Claim], body: bytes, trace_parent: str | None
    ) -> tuple[list[Outcome], TransportResult] | None:
        """Send one batch request and decide the outcome of each of its events; None when
        it could not be made (the leases bring them back)."""
        first = claims[0]
        try:
            started_at = self._clock()
            request = build_batch_request(claims, body, started_at, trace_parent=trace_parent)
            result = await self._transport.send(request)
            # One decision, so that the events are retried together, at one time.
            position = max(c.delivery.schedule_position for c in claims)
            decision = self._decide(first, position, result)
            return [outcome_of(c, started_at, result, decision) for c in claims], result
        except AttemptAbandoned as exc:
            log.warning(
                "a batch attempt was abandoned; its leases will bring it back",
                batch_id=first.batch_id,
                reason=str(exc),
            )
            return None
        except Exception:
            log.exception("a batch attempt could not be made", batch_id=first.batch_id)
            return None

    def _queue_outcome(self, outcome: Outcome) -> None:
        self._recorder.add(outcome)
        if self._records_with_claims:
            self._wake.set()  # the claim loop writes it, and fills the slot it frees

    def _decide(self, claim: Claim, schedule_position: int, result: TransportResult) -> Decision:
        settings = self._settings
        return decide(
            claim,
            schedule_position,
            result,
            default_schedule=settings.retry_schedule,
            jitter=settings.retry_jitter,
            now=self._clock(),
            rng=self._rng,
        )

    def _outcome(self, claim: Claim, started_at: datetime, result: TransportResult) -> Outcome:
        decision = self._decide(claim, claim.delivery.schedule_position, result)
        return outcome_of(claim, started_at, result, decision)


async def _finish(tasks: Sequence[asyncio.Task[None] | None], seconds: float) -> int:
    """Wait up to `seconds` for the tasks; returns how many are still running."""
    live = [t for t in tasks if t is not None and not t.done()]
    if live and seconds > 0:
        await asyncio.wait(live, timeout=seconds)
    return sum(1 for t in live if not t.done())


async def _cancel(tasks: Sequence[asyncio.Future[Any] | None]) -> None:
    """Cancel the tasks still running and wait for them; their errors are already logged."""
    futures = [t for t in tasks if t is not None]
    for future in futures:
        future.cancel()
    # return_exceptions: collect (and so silence) what the tasks raised or their cancellation.
    await asyncio.gather(*futures, return_exceptions=True)


__all__ = [
    "IDLE_WAIT_CAP_SECONDS",
    "MAX_CLAIM_BATCH",
    "OWN_SLOTS_CLAIM_INTERVAL_SECONDS",
    "Dispatcher",
    "default_worker_id",
    "in_flight_bound",
]
