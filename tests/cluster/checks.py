"""What a receiver's records say about the delivery guarantees (docs/guarantees.md).

`TimedReceiver` is the programmable receiver of `orderhooks.testing.receiver` that
also notes when each answer was handed back, so that "no event arrives before its
predecessor was answered" can be checked against the answer, not only its arrival.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Iterable

from aiohttp import web

from orderhooks.testing import ReceivedRequest, Receiver, Reply


class TimedReceiver(Receiver):
    """A Receiver recording, per request index, the monotonic time its answer was ready."""

    def __init__(self, *, port: int = 0, seed: int = 0) -> None:
        super().__init__(port=port, seed=seed)
        self._answered_at: dict[int, float] = {}

    def __enter__(self) -> TimedReceiver:
        self.start()
        return self

    async def _answer(
        self, request: web.Request, index: int, reply: Reply, delay: float
    ) -> web.StreamResponse:
        response = await super()._answer(request, index, reply, delay)
        # Noted before aiohttp writes the response: a successor can only be sent after
        # the write, so comparing its arrival with this time never hides a violation
        # that the real answer time would reveal (it is, if anything, stricter).
        with self._lock:
            self._answered_at[index] = time.monotonic()
        return response

    def answered_at(self, index: int) -> float | None:
        """When the answer to request `index` was ready, if it was."""
        with self._lock:
            return self._answered_at.get(index)


def replied_2xx(request: ReceivedRequest) -> bool:
    """Whether the receiver chose a 2xx answer (whether or not the client still listened)."""
    return request.reply.isdigit() and 200 <= int(request.reply) < 300


def envelope_key(request: ReceivedRequest) -> tuple[str, int]:
    """(orderId, sequence) of an envelope request."""
    return str(request.json["orderId"]), int(request.json["sequence"])


def first_arrivals(requests: Iterable[ReceivedRequest]) -> list[ReceivedRequest]:
    """The first request of each webhook-id, in arrival order."""
    seen: set[str | None] = set()
    firsts = []
    for request in requests:
        if request.webhook_id not in seen:
            seen.add(request.webhook_id)
            firsts.append(request)
    return firsts


def out_of_order_first_arrivals(requests: list[ReceivedRequest]) -> list[str]:
    """Orders whose events first arrived with a sequence not above the one before."""
    by_order: dict[str, list[int]] = defaultdict(list)
    for request in first_arrivals(requests):
        order_id, sequence = envelope_key(request)
        by_order[order_id].append(sequence)
    return [
        f"order {order_id} first arrived as {sequences}"
        for order_id, sequences in by_order.items()
        if any(b <= a for a, b in itertools.pairwise(sequences))
    ]


def sent_before_predecessor_answered(receiver: TimedReceiver) -> list[str]:
    """Requests that arrived before the previous event of their order (among the events
    this receiver gets) had been answered 2xx to a client still waiting."""
    requests = receiver.requests
    answered_ok: dict[tuple[str, int], float] = {}
    sequences: dict[str, set[int]] = defaultdict(set)
    for request in requests:
        order_id, sequence = envelope_key(request)
        sequences[order_id].add(sequence)
        done = receiver.answered_at(request.index)
        if request.accepted and done is not None:
            key = (order_id, sequence)
            answered_ok[key] = min(done, answered_ok.get(key, done))
    previous = {
        (order_id, b): a
        for order_id, seqs in sequences.items()
        for a, b in itertools.pairwise(sorted(seqs))
    }
    problems = []
    for request in requests:
        order_id, sequence = envelope_key(request)
        before = previous.get((order_id, sequence))
        if before is None:
            continue
        done = answered_ok.get((order_id, before))
        if done is None or done > request.arrived_monotonic:
            problems.append(
                f"order {order_id}: sequence {sequence} (request {request.index}, attempt "
                f"{request.attempt}) arrived before sequence {before} was answered 2xx"
            )
    return problems


def duplicates(requests: Iterable[ReceivedRequest]) -> int:
    """Requests repeating a webhook-id that was already answered 2xx before (retries after
    a failure answer are not duplicates; re-sends after a crash are)."""
    answered: set[str | None] = set()
    count = 0
    for request in requests:
        if request.webhook_id in answered:
            count += 1
        if replied_2xx(request):
            answered.add(request.webhook_id)
    return count


def received_ids(receiver: Receiver) -> set[str]:
    """Every webhook-id that reached the receiver, answered or not."""
    return {r.webhook_id for r in receiver.requests if r.webhook_id is not None}
