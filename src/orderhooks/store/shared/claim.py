"""The claim: which due deliveries a worker leases now (docs/architecture.md, "The queue").

Runs in one transaction that the engine serialises across workers (PostgreSQL takes a
transaction-scoped advisory lock in `serialize_claims`; SQLite has one writer), so the
in-flight counts, probing and rate limits below are exact for the whole cluster.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from orderhooks.delivery.claims import Claim, Outcome
from orderhooks.domain.batches import new_batch_id
from orderhooks.domain.ids import IdFactory
from orderhooks.domain.model import OperationalEventType, Ordering, Webhook, WebhookState
from orderhooks.domain.opevents import RECEIVING_STATES
from orderhooks.store.shared.batching import Request, due_batches, sent_alone
from orderhooks.store.shared.codec import delivery_from_row, event_from_row
from orderhooks.store.shared.core import StoreCore, reading
from orderhooks.store.shared.heads import lock_orders, refresh_heads, share_ordering
from orderhooks.store.shared.record import Emitter, write_outcomes
from orderhooks.store.shared.tx import Row, Tx
from orderhooks.store.shared.values import micros, moment_or_none

LEASE_GRACE_SECONDS = 30  # a lease outlives the attempt's timeout by this much
OPERATIONAL_TYPES = sorted(t.value for t in OperationalEventType)
# A worker that claimed within this window shares the slots. A worker with free capacity
# claims at least once a second (the dispatcher's idle cap); one that is full needs none:
# its claims for the webhooks' own slots (one request each) take no share and note nothing.
CLAIMER_SEEN_SECONDS = 5
CLAIMER_FORGET_SECONDS = 60
# A claim for a worker's own slots that no webhook of the catalog, checked this recently,
# could use is not made: a full worker is woken by every ingest and finished attempt.
# A webhook created or enabled by another process meanwhile is seen once the catalog is
# this old: its deliveries wait that long plus the full worker's sleep after the skipped
# claim (the dispatcher's IDLE_WAIT_CAP_SECONDS at most), 2 s in all.
OWN_SLOTS_CATALOG_SECONDS = 1.0
U = TypeVar("U")


@dataclass(frozen=True, slots=True)
class Budget:
    """How many deliveries one webhook may start now, and its rate-limit tokens after."""

    webhook: Webhook
    slots: int
    tokens: float | None


def refill(tokens: float | None, refilled_at: int | None, rate: float, now_us: int) -> float:
    """A token bucket's tokens at `now_us`: `rate` per second, holding at most one
    second's worth (and at least one token)."""
    capacity = max(1.0, rate)
    if tokens is None or refilled_at is None:
        return capacity
    elapsed = max(0, now_us - refilled_at) / 1_000_000
    return min(capacity, tokens + elapsed * rate)


def budget(webhook: Webhook, in_flight: int, runtime: Row | None, now_us: int) -> Budget:
    """The webhook's free slots, narrowed by probing and its rate limit."""
    slots = webhook.max_concurrency - in_flight
    if runtime is not None and runtime["probing"]:
        # A failing webhook is probed: one attempt at a time, once its probe time came.
        probe_at = runtime["probe_at"]
        if in_flight > 0 or (probe_at is not None and probe_at > now_us):
            return Budget(webhook, 0, None)
        slots = min(slots, 1)
    tokens = None
    if webhook.rate_limit_per_second is not None and runtime is not None:
        tokens = refill(
            runtime["rate_tokens"],
            runtime["rate_refilled_at"],
            webhook.rate_limit_per_second,
            now_us,
        )
        slots = min(slots, math.floor(tokens))
    return Budget(webhook, max(0, slots), tokens)


def fair_share(b: Budget, mine: int, claimers: int) -> Budget:
    """The budget narrowed to this worker's share of the webhook's slots when `claimers`
    workers claim: `ceil(maxConcurrency / claimers)`, less what it has in flight. Without
    it, the worker that claims first after slots free up takes every one of them, and
    the others of the cluster wait."""
    if claimers <= 1:
        return b
    share = math.ceil(b.webhook.max_concurrency / claimers) - mine
    return dataclasses.replace(b, slots=max(0, min(b.slots, share)))


def interleave(
    candidates: Mapping[str, Sequence[U]], order: Sequence[str], limit: int
) -> dict[str, list[U]]:
    """Take up to `limit` requests, one per webhook in turn, so that each webhook gets its
    own slice and none crowds out the others."""
    taken: dict[str, list[U]] = {webhook_id: [] for webhook_id in order}
    total = 0
    depth = 0
    while total < limit:
        progressed = False
        for webhook_id in order:
            rows = candidates[webhook_id]
            if depth < len(rows) and total < limit:
                taken[webhook_id].append(rows[depth])
                total += 1
                progressed = True
        if not progressed:
            break
        depth += 1
    return taken


async def _claimers(tx: Tx, worker_id: str, now_us: int) -> int:
    """Note this worker as a claimer; how many workers claimed lately (itself included)."""
    await tx.execute("note_claimer", worker_id=worker_id, now=now_us)
    await tx.execute("forget_claimers", before=now_us - CLAIMER_FORGET_SECONDS * 1_000_000)
    count = await tx.fetchval("count_claimers", since=now_us - CLAIMER_SEEN_SECONDS * 1_000_000)
    return max(1, int(count or 0))


async def _budgets(
    tx: Tx, active: Sequence[Webhook], now_us: int, worker_id: str, *, shared: bool = True
) -> list[Budget]:
    """The webhooks' budgets, narrowed to this worker's share when `shared` (a claim of
    the worker's shared capacity; a claim of its own slots takes no share)."""
    rows = await tx.fetch("in_flight", worker_id=worker_id)
    in_flight = {row["webhook_id"]: row["n"] for row in rows}
    mine = {row["webhook_id"]: int(row["mine"] or 0) for row in rows}
    claimers = await _claimers(tx, worker_id, now_us) if shared else 1
    runtime_rows = await tx.fetch("runtime_of", webhook_ids=tx.array([w.id for w in active]))
    runtime = {row["webhook_id"]: row for row in runtime_rows}
    budgets = [
        fair_share(
            budget(w, in_flight.get(w.id, 0), runtime.get(w.id), now_us),
            mine.get(w.id, 0),
            claimers,
        )
        for w in active
    ]
    return [b for b in budgets if b.slots > 0]


async def _requests(tx: Tx, webhook: Webhook, slots: int, now_us: int) -> list[Request]:
    """Up to `slots` requests of the webhook that may start now: its due heads one by
    one, or, for a batching webhook, its batches."""
    if webhook.state != WebhookState.ACTIVE:
        # Awaiting an agreement: its operational events only, one by one.
        rows = await tx.fetch(
            "due_operational_heads",
            webhook_id=webhook.id,
            now=now_us,
            limit=slots,
            types=tx.array(OPERATIONAL_TYPES),
        )
        if webhook.batch is None:
            return [Request((row,), None) for row in rows]
        return await sent_alone(tx, rows)
    if webhook.batch is None:
        rows = await tx.fetch("due_heads", webhook_id=webhook.id, now=now_us, limit=slots)
        return [Request((row,), None) for row in rows]
    return await due_batches(tx, webhook.id, webhook.batch, slots, now_us)


async def _expire_leases(tx: Tx, webhooks: Mapping[str, Webhook], now_us: int) -> None:
    """Attempts whose process died: due again, as the head they were (a batch: the
    batch). Their queues' heads are refreshed too, under the orders' locks taken before
    any row is written (the lock order of `record_and_claim`): another delivery of the
    same event may still be in flight (an event and its replay both sent while the
    webhook's ordering was `none`, then turned to `per_order`), and that one is the head
    then, so that one event is not sent twice at once (docs/guarantees.md). Rare (a
    process died): a claim with no lease run out only reads."""
    rows = await tx.fetch("expiring_queues", now=now_us)
    queues = sorted(
        {
            (r["webhook_id"], r["order_id"])
            for r in rows
            if r["webhook_id"] in webhooks and not r["test"] and r["order_id"] is not None
        }
    )
    if queues:
        await share_ordering(tx)
        await lock_orders(tx, [order_id for _, order_id in queues])
    await tx.execute("expire_leases", now=now_us)
    if not queues:
        return
    # The ordering as it is now that changes of it wait for this transaction: the
    # catalog may have been read before one committed.
    ids = sorted({webhook_id for webhook_id, _ in queues})
    fresh = {
        row["id"]: Ordering(row["ordering"])
        for row in await tx.fetch("orderings_of", ids=tx.array(ids))
    }
    current = {
        webhook_id: dataclasses.replace(webhooks[webhook_id], ordering=ordering)
        for webhook_id, ordering in fresh.items()
    }
    await refresh_heads(tx, queues, current)


async def _claim(
    tx: Tx,
    webhooks: Mapping[str, Webhook],
    now: datetime,
    limit: int,
    worker_id: str,
    rotation: int,
    new_id: IdFactory,
    one_each_except: Collection[str] | None = None,
) -> list[Claim]:
    """Lease up to `limit` requests of due heads (a batch is one request); `rotation`
    turns the order webhooks are served in. With `one_each_except`, at most one request
    each, for the webhooks not in it (a worker's own slots, `ClaimOperations.claim`)."""
    now_us = micros(now)
    await tx.execute("serialize_claims")
    await _expire_leases(tx, webhooks, now_us)
    # A webhook awaiting its accounts' agreements is sent operational events only:
    # agreements do not gate them (docs/events.md).
    active = [w for w in webhooks.values() if w.state in RECEIVING_STATES]
    if one_each_except is not None:
        active = [w for w in active if w.id not in one_each_except]
    if limit <= 0 or not active:
        return []
    if one_each_except is None:
        budgets = await _budgets(tx, active, now_us, worker_id)
    else:
        # Within the budget still: maxConcurrency, probing and the rate limit hold as ever.
        budgets = await _budgets(tx, active, now_us, worker_id, shared=False)
        budgets = [dataclasses.replace(b, slots=1) for b in budgets]
    if not budgets:
        return []
    start = rotation % len(budgets)
    budgets = budgets[start:] + budgets[:start]
    candidates = {
        b.webhook.id: await _requests(tx, b.webhook, min(b.slots, limit), now_us) for b in budgets
    }
    taken = interleave(candidates, [b.webhook.id for b in budgets], limit)
    leased = await _lease(tx, budgets, taken, now, worker_id, new_id)
    if not leased:
        return []
    await _spend_tokens(tx, budgets, leased, now_us)
    return await _claims(tx, webhooks, leased, now)


@dataclass(frozen=True, slots=True)
class Leased:
    """One request leased: its deliveries' rows, its lease and its batch id."""

    rows: tuple[Row, ...]
    lease: datetime
    batch_id: str | None


async def _mark(
    tx: Tx, rows: Sequence[Row], lease: datetime, worker_id: str, batch_id: str | None
) -> set[str]:
    """Mark the rows `delivering` (in batch `batch_id`); the ids that were still pending."""
    # Guarded by state: a delete may have cancelled one since it was read.
    marked = await tx.fetch(
        "mark_delivering",
        ids=tx.array([row["id"] for row in rows]),
        lease_expires_at=micros(lease),
        leased_by=worker_id,
        batch_id=batch_id,
    )
    return {row["id"] for row in marked}


async def _lease(
    tx: Tx,
    budgets: Sequence[Budget],
    taken: Mapping[str, Sequence[Request]],
    now: datetime,
    worker_id: str,
    new_id: IdFactory,
) -> dict[str, list[Leased]]:
    leased: dict[str, list[Leased]] = {}
    for b in budgets:
        requests = taken.get(b.webhook.id) or []
        if not requests:
            continue
        lease = now + timedelta(seconds=b.webhook.timeout_seconds + LEASE_GRACE_SECONDS)
        if b.webhook.batch is None:
            rows = [request.rows[0] for request in requests]
            still = await _mark(tx, rows, lease, worker_id, None)
            leased[b.webhook.id] = [Leased((r,), lease, None) for r in rows if r["id"] in still]
            continue
        out = []
        for request in requests:
            # A batch being retried keeps its id; a new one gets its id now.
            batch_id = request.batch_id or new_batch_id(new_id)
            still = await _mark(tx, request.rows, lease, worker_id, batch_id)
            kept = tuple(row for row in request.rows if row["id"] in still)
            if kept:
                out.append(Leased(kept, lease, batch_id))
        leased[b.webhook.id] = out
    return leased


async def _spend_tokens(
    tx: Tx,
    budgets: Sequence[Budget],
    leased: Mapping[str, Sequence[object]],
    now_us: int,
) -> None:
    spent = [
        {
            "webhook_id": b.webhook.id,
            "rate_tokens": b.tokens - len(leased.get(b.webhook.id, ())),
            "rate_refilled_at": now_us,
        }
        for b in budgets
        if b.tokens is not None and leased.get(b.webhook.id)
    ]
    await tx.executemany("spend_tokens", spent)


async def _claims(
    tx: Tx,
    webhooks: Mapping[str, Webhook],
    leased: Mapping[str, Sequence[Leased]],
    now: datetime,
) -> list[Claim]:
    """The claims, request by request, earliest due first; a batch's claims side by side
    in the order of its body."""
    event_ids = sorted({row["event_id"] for rs in leased.values() for r in rs for row in r.rows})
    event_rows = await tx.fetch("events_by_ids", ids=tx.array(event_ids))
    events = {row["id"]: event_from_row(row) for row in event_rows}
    trace_parents = {row["id"]: row["trace_parent"] for row in event_rows}
    requests: list[tuple[tuple[datetime, str], list[Claim]]] = []
    for webhook_id, rs in leased.items():
        for request in rs:
            claims = []
            for row in request.rows:
                delivery = delivery_from_row(row, leased=True, batch_id=request.batch_id)
                claims.append(
                    Claim(
                        delivery=delivery,
                        webhook=webhooks[webhook_id],
                        event=events[row["event_id"]],
                        attempt=delivery.attempt_count + 1,
                        lease_expires_at=request.lease,
                        batch_id=request.batch_id,
                        trace_parent=trace_parents[row["event_id"]],
                    )
                )
            first = min(claims, key=lambda c: (c.delivery.next_attempt_at or now, c.delivery.id))
            requests.append(((first.delivery.next_attempt_at or now, first.delivery.id), claims))
    requests.sort(key=lambda request: request[0])
    return [claim for _, claims in requests for claim in claims]


class ClaimOperations(StoreCore):
    """The delivery queue's side of a worker: what to send now, and when to look again."""

    async def claim(
        self,
        now: datetime,
        limit: int,
        worker_id: str,
        *,
        one_each_except: Collection[str] | None = None,
    ) -> list[Claim]:
        """Lease up to `limit` requests of due deliveries (a batch counts as one, its
        claims share a `batch_id`), honouring per-order order, each webhook's
        maxConcurrency and rate limit across the cluster, and probing of failing
        webhooks. Deliveries whose lease expired count as due again.

        With `one_each_except` (the webhooks the worker has attempts in flight for), the
        claim fills the worker's own slots once its shared capacity is full: at most one
        request each, for the webhooks not in it (docs/guarantees.md, "Isolation"). It
        takes no share of a webhook's slots from the other workers (`fair_share`), and
        is not made at all (no transaction) while every webhook this process read in the
        last `OWN_SLOTS_CATALOG_SECONDS` is in it."""
        if one_each_except is not None and self._none_outside(one_each_except):
            return []
        rotation = next(self._rotation)

        async def job(tx: Tx) -> list[Claim]:
            live = await self._catalog.load(tx)
            return await _claim(
                tx, live, now, limit, worker_id, rotation, self._new_id, one_each_except
            )

        # A lost lease only puts its deliveries back in `pending`: no fsync needed.
        return await self._write(job, durable=False)

    async def record_and_claim(
        self,
        outcomes: Sequence[Outcome],
        now: datetime,
        limit: int,
        worker_id: str,
        *,
        one_each_except: Collection[str] | None = None,
    ) -> list[Claim]:
        """`record(outcomes, now)`, then `claim(now, limit, worker_id, one_each_except=…)`,
        in one write transaction: the claim sees what the outcomes freed (their slots,
        the next event of their orders). One transaction instead of two halves the
        delivery worker's waits where the engine writes in turn (SQLite). PostgreSQL
        workers keep the two apart, so that the claim lock, taken first here as in
        `claim`, is not held while their outcomes are written."""
        if not outcomes:
            return await self.claim(now, limit, worker_id, one_each_except=one_each_except)
        rotation = next(self._rotation)

        async def job(tx: Tx) -> tuple[list[OperationalEventType], list[Claim]]:
            await tx.execute("serialize_claims")  # the lock order of `claim`
            await share_ordering(tx)  # the outcomes refresh heads by the ordering read now
            live = await self._catalog.load(tx)
            emitter = await Emitter.start(tx, self._new_id, live, now)
            await write_outcomes(tx, outcomes, self._disable_after_seconds, emitter)
            # The outcomes' disables are known: no need to read the webhooks again.
            claimable = {wid: w for wid, w in live.items() if wid not in emitter.disabled}
            claims = await _claim(
                tx, claimable, now, limit, worker_id, rotation, self._new_id, one_each_except
            )
            return emitter.emitted, claims

        # Not durable, as each of the two alone (see `record` and `claim`). The claim
        # itself is the wake-up a finished delivery would send this process's workers.
        emitted, claims = await self._write(job, durable=False)
        self._emitted(emitted)
        return claims

    def _none_outside(self, webhook_ids: Collection[str]) -> bool:
        """Whether every webhook that may be sent to is among `webhook_ids`, as the catalog
        checked in the last `OWN_SLOTS_CATALOG_SECONDS` has it (False when it is older)."""
        live = self._catalog.recent(OWN_SLOTS_CATALOG_SECONDS)
        if live is None:
            return False
        return all(w.id in webhook_ids for w in live.values() if w.state in RECEIVING_STATES)

    @reading
    async def next_due_at(self, tx: Tx) -> datetime | None:
        """When the earliest head of an active webhook falls due (probing webhooks: not
        before their probe time), if any."""
        return moment_or_none(await tx.fetchval("next_due_at"))
