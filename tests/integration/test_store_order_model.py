"""Per-order order, maxConcurrency and batches under random interleavings, on both engines.

A seeded random walk drives the real store (a SQLite file, a fresh PostgreSQL database)
through ingests of new orders and updates for a few orders to two or three webhooks
(`per_order` and `none`, some batched), claims by two workers with small limits,
outcomes recorded in random order (delivered, failed and retried, failed for good),
expired leases, retry now, recover, replay, changes of `ordering`, and disabling and
enabling. The deliveries are read from the database around every claim, and each claim
is checked against what docs/guarantees.md promises ("Per-order order", "Batches",
"Isolation"):

- under `ordering: per_order`, a delivery is never claimed while a delivery of a lower
  sequence of its (webhook, order) is `pending` or `delivering` (a batch member counts),
  nor while a delivery of the same event to that webhook is in flight, nor, for a replay
  created while the event's delivery was still waiting or in flight, before that one is
  `delivered` or `failed`; a batch carries at most one event of an order;
- only `active` webhooks are sent their order events, and a delivery in flight is never
  claimed again before its lease ran out;
- a webhook never has more than `maxConcurrency` requests in flight (a batch is one),
  and a probed one (failing) gets one at a time, once its probe time has come;
- a batch never holds more than `maxEvents`, events of one order ride in sequence order,
  and a batch id never names events it did not name when it was formed;
- nothing is lost: each event ingested while a webhook is active gets a delivery to it,
  and once every webhook is enabled and every attempt succeeds, every delivery ends
  `delivered` or `failed`.

What the guarantees allow is allowed: a later event already in flight when an earlier
failed one is retried or recovered stays in flight (the earlier one may then go beside
it), and under `ordering: none` nothing is ordered.

Some steps run at once, in rounds (on PostgreSQL really side by side); a round's claims
are checked against what waited before the round and still waits after it, unless the
round also answered, retried or recovered it or changed the webhook's ordering.

Each seed runs on fresh webhooks and orders of the same store, and ends by draining and
deleting them. The slow test runs more seeds (`ORDER_MODEL_SEEDS=N`: N of them, from
`ORDER_MODEL_FIRST`); a failure names its seed and the steps that led to it (rounds
race, so a seed replays its steps exactly only outside them). Not checked here: rate
limits, and how long a batch waits to fill; probing only for claims without outcomes
before them, outside rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import random
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from orderhooks.delivery.claims import Claim, Outcome, requests_of
from orderhooks.domain.batches import BatchSettings
from orderhooks.domain.model import (
    DeliveryState,
    DisabledReason,
    EventType,
    Ordering,
    Scope,
    Webhook,
    WebhookState,
)
from orderhooks.exceptions import Conflict
from orderhooks.store.base import CourierItem
from orderhooks.store.shared.values import micros
from orderhooks.store.store import Store
from tests.integration.store_support import (
    NOW,
    StoreFactory,
    attempt,
    new_order,
    status,
    webhook,
)

SEEDS = 4  # the quick test's: about 2 s on SQLite, 5 s on PostgreSQL
# The slow test's (about 1 s each on PostgreSQL); ORDER_MODEL_SEEDS=N runs N of them,
# from ORDER_MODEL_FIRST=S on (S: 1000 by default).
SLOW_SEEDS = int(os.environ.get("ORDER_MODEL_SEEDS", "0")) or 20
FIRST_SLOW_SEED = int(os.environ.get("ORDER_MODEL_FIRST", "1000"))
STEPS = 60
WORKERS = ("w1", "w2")
TIMEOUT_SECONDS = 5
LEASE_SECONDS = TIMEOUT_SECONDS + 30  # claim.LEASE_GRACE_SECONDS
OPEN = ("pending", "delivering")
DRAIN_ROUNDS = 200

# The deliveries of some webhooks, as the model reads them (in `Row`'s order).
PG_QUERY = """SELECT id, webhook_id, event_id, order_id, sequence, state, replay, test, ready,
    batch_id, leased_by, lease_expires_at, next_attempt_at FROM deliveries
WHERE webhook_id = ANY($1::text[])"""
SQLITE_QUERY = """SELECT id, webhook_id, event_id, order_id, sequence, state, replay, test, ready,
    batch_id, leased_by, lease_expires_at, next_attempt_at FROM deliveries
WHERE webhook_id IN (SELECT value FROM json_each(?))"""
# Which webhooks are probed, and from when.
PG_PROBING = """SELECT webhook_id, probing, probe_at FROM webhook_runtime
WHERE webhook_id = ANY($1::text[])"""
SQLITE_PROBING = """SELECT webhook_id, probing, probe_at FROM webhook_runtime
WHERE webhook_id IN (SELECT value FROM json_each(?))"""


@dataclass(frozen=True, slots=True)
class Row:
    """A delivery as the database holds it."""

    id: str
    webhook_id: str
    event_id: str
    order_id: str | None
    sequence: int | None
    state: str
    replay: bool
    test: bool
    ready: bool
    batch_id: str | None
    leased_by: str | None
    lease_expires_at: int | None
    next_attempt_at: int | None


class Reader:
    """Reads the deliveries of some webhooks straight from the database (no store code)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pg: asyncpg.Pool | None = None

    async def open(self) -> None:
        if not self.url.startswith("sqlite:///"):
            self.pg = await asyncpg.create_pool(self.url, min_size=1, max_size=4)

    async def close(self) -> None:
        if self.pg is not None:
            await self.pg.close()

    async def _rows(
        self, pg_query: str, sqlite_query: str, webhook_ids: Sequence[str]
    ) -> list[tuple[Any, ...]]:
        """The rows of the engine's query for these webhooks, read beside the store."""
        ids = sorted(webhook_ids)
        if self.pg is not None:
            return [tuple(r) for r in await self.pg.fetch(pg_query, ids)]
        path = self.url.removeprefix("sqlite:///")
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute(sqlite_query, (json.dumps(ids),)).fetchall()
        db.close()
        return rows

    async def deliveries(self, webhook_ids: Sequence[str]) -> dict[str, Row]:
        rows = await self._rows(PG_QUERY, SQLITE_QUERY, webhook_ids)
        out = {}
        for r in rows:
            row = Row(*r)
            row = dataclasses.replace(
                row, replay=bool(row.replay), test=bool(row.test), ready=bool(row.ready)
            )
            out[row.id] = row
        return out

    async def probing(self, webhook_ids: Sequence[str]) -> dict[str, int | None]:
        """The probed webhooks among these, with their probe times."""
        rows = await self._rows(PG_PROBING, SQLITE_PROBING, webhook_ids)
        return {webhook_id: probe_at for webhook_id, probing, probe_at in rows if probing}


class Violation(AssertionError):
    """A promise broken, with the seed and the walk's last steps."""


@dataclass
class Walk:
    """One seed's random walk over its own webhooks and orders."""

    store: Store
    reader: Reader
    seed: int
    now: datetime
    rounds: bool = False  # some steps run at once (PostgreSQL: really side by side)
    rng: random.Random = field(init=False)
    hooks: dict[str, Webhook] = field(default_factory=dict)
    orders: list[str] = field(default_factory=list)
    ingested_at: list[datetime] = field(default_factory=list)
    # worker -> requests in flight (each a list of claims) as that worker holds them
    holding: dict[str, list[list[Claim]]] = field(default_factory=dict)
    batches: dict[str, frozenset[str]] = field(default_factory=dict)
    # replay delivery id -> deliveries of its event it must wait for
    waits: dict[str, set[str]] = field(default_factory=dict)
    expected: set[tuple[str, str]] = field(default_factory=set)  # (webhook, event)
    trace: list[str] = field(default_factory=list)
    counter: int = 0
    seen: dict[str, Row] = field(default_factory=dict)
    # A round of steps run at once: what its claims took, and what else moved.
    concurrent: bool = False
    round_claims: list[Claim] = field(default_factory=list)
    round_touched: set[str] = field(default_factory=set)  # answered or retried
    round_recovered: set[str] = field(default_factory=set)  # webhooks recovered
    round_reordered: set[str] = field(default_factory=set)  # webhooks whose ordering changed
    round_toggled: set[str] = field(default_factory=set)  # webhooks disabled or enabled
    round_expected: set[tuple[str, str]] = field(default_factory=set)  # by ingests

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.holding = {w: [] for w in WORKERS}

    # ------------------------------------------------------------ set-up and reading

    def fail(self, message: str) -> None:
        steps = "\n  ".join(self.trace[-40:])
        raise Violation(f"seed {self.seed}: {message}\nlast steps:\n  {steps}")

    async def setup(self) -> None:
        count = self.rng.choice((2, 3, 3))
        for n in range(count):
            batch = None
            if self.rng.random() < 0.4:
                batch = BatchSettings(self.rng.choice((2, 3)), self.rng.choice((0, 0, 2000)))
            ordering = Ordering.PER_ORDER if n == 0 or self.rng.random() < 0.7 else Ordering.NONE
            hook = webhook(
                ordering=ordering,
                # Sometimes `order.new` at a later status: two events of one update.
                new_order_trigger=self.rng.choice((None, None, None, 20)),
                batch=batch,
                max_concurrency=self.rng.choice((1, 2, 3)),
                timeout_seconds=TIMEOUT_SECONDS,
                retry_schedule=(2, 5, 10),
            )
            stored = await self.store.create_webhook(hook)
            self.hooks[stored.id] = stored
            self.trace.append(
                f"webhook {stored.id}: {ordering}, batch {batch}, "
                f"maxConcurrency {stored.max_concurrency}"
            )

    async def reload_hooks(self) -> None:
        for hook_id in self.hooks:
            self.hooks[hook_id] = await self.store.get_webhook(hook_id, Scope())

    async def rows(self) -> dict[str, Row]:
        return await self.reader.deliveries(list(self.hooks))

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        # A worker whose leases ran out died: its outcomes never come.
        for worker, held in self.holding.items():
            kept = [r for r in held if r[0].lease_expires_at > self.now]
            if len(kept) != len(held):
                self.trace.append(f"  {worker} loses {len(held) - len(kept)} expired request(s)")
            self.holding[worker] = kept

    # ------------------------------------------------------------ checks

    async def observe(self) -> None:
        """After every step: the database as the model expects it between steps."""
        rows = await self.rows()
        for row in rows.values():
            before = self.seen.get(row.id)
            if before is not None and before.state == "delivered" and row.state != "delivered":
                self.fail(f"{row.id} was delivered, is {row.state} now")
        for replay_id, waiting in self.waits.items():
            self.waits[replay_id] = {e for e in waiting if e in rows and rows[e].state in OPEN}
        missing = self.expected - {(r.webhook_id, r.event_id) for r in rows.values()}
        if missing:
            self.fail(f"events without their delivery: {sorted(missing)}")
        self.check_heads(rows)
        self.seen = rows

    def check_heads(self, rows: dict[str, Row]) -> None:
        """Between steps, each queue of a `per_order` webhook has one head (`ready`)
        among its pending and delivering deliveries: one of its lowest sequence, and
        not a pending one beside a delivering one of its event (the claim then never
        finds two, and a delivery coming back to `pending` is right). Under `none`
        every one is ready. A replay waiting for its event's delivery is no head."""
        queues: dict[tuple[str, str], list[Row]] = {}
        for r in rows.values():
            if r.state in OPEN and not r.test and r.order_id is not None:
                queues.setdefault((r.webhook_id, r.order_id), []).append(r)
        for (hook_id, order_id), queue in sorted(queues.items()):
            if self.hooks[hook_id].ordering == Ordering.NONE:
                stuck = [r.id for r in queue if not r.ready]
                if stuck:
                    self.fail(f"{stuck} of {hook_id} (ordering none) not ready")
                continue
            heads = [r for r in queue if r.ready]
            shown = sorted((r.sequence, r.state, r.ready, r.id) for r in queue)
            if len(heads) != 1:
                self.fail(f"queue {hook_id}/{order_id} has {len(heads)} heads: {shown}")
            [head] = heads
            lowest = min(r.sequence or 0 for r in queue)
            if head.sequence != lowest:
                self.fail(f"queue {hook_id}/{order_id}: head {head.id} not lowest: {shown}")
            twin = [r.id for r in queue if r.sequence == lowest and r.state == "delivering"]
            if head.state == "pending" and twin:
                self.fail(f"queue {hook_id}/{order_id}: head {head.id} beside {twin}: {shown}")
            if self.waits.get(head.id):
                self.fail(f"replay {head.id} is head before {self.waits[head.id]}: {shown}")

    def check_max_concurrency(self, after: dict[str, Row], when: str) -> None:
        """No webhook has more requests (a batch is one) in flight than its
        `maxConcurrency`."""
        for hook in self.hooks.values():
            flying = {
                r.batch_id or r.id
                for r in after.values()
                if r.webhook_id == hook.id and r.state == "delivering"
            }
            if len(flying) > hook.max_concurrency:
                self.fail(
                    f"{hook.id} has {len(flying)} requests in flight{when}, "
                    f"maxConcurrency {hook.max_concurrency}"
                )

    def check_claims(
        self, before: dict[str, Row], claims: Sequence[Claim], after: dict[str, Row]
    ) -> None:
        """`before`: the deliveries as the claim found them (outcomes of its transaction
        applied, expired leases back to pending)."""
        now_us = micros(self.now)
        claimed = {c.delivery.id for c in claims}
        for request in requests_of(claims):
            hook = self.hooks[request[0].delivery.webhook_id]
            ids = [c.delivery.id for c in request]
            if any(c.delivery.webhook_id != hook.id for c in request):
                self.fail(f"a request mixes webhooks: {ids}")
            if hook.state != WebhookState.ACTIVE:
                self.fail(f"{ids} claimed for {hook.id}, which is {hook.state}")
            batch_id = request[0].batch_id
            if batch_id is not None:
                assert hook.batch is not None, f"{hook.id} sent a batch without batching"
                if len(request) > hook.batch.max_events:
                    self.fail(f"batch {batch_id} holds {len(request)}: {ids}")
                keys = [(c.delivery.order_id or "", c.delivery.sequence or 0) for c in request]
                if keys != sorted(keys):
                    self.fail(f"batch {batch_id} is not in sequence order: {ids}")
                formed = self.batches.setdefault(batch_id, frozenset(ids))
                if not set(ids) <= formed:
                    self.fail(f"batch {batch_id} was {sorted(formed)}, now names {ids}")
                if hook.ordering == Ordering.PER_ORDER:
                    orders = [c.delivery.order_id for c in request]
                    if len(orders) != len(set(orders)):
                        self.fail(f"batch {batch_id} carries two events of an order: {ids}")
        for c in claims:
            d = c.delivery
            row = before.get(d.id)
            if row is None or row.state != "pending":
                self.fail(f"{d.id} claimed while {row.state if row else 'unknown'}")
            if row.next_attempt_at is None or row.next_attempt_at > now_us:
                self.fail(f"{d.id} claimed before it was due")
            hook = self.hooks[d.webhook_id]
            if hook.ordering != Ordering.PER_ORDER or d.test or d.order_id is None:
                continue
            for e in before.values():
                if e.id == d.id or e.test or e.webhook_id != d.webhook_id:
                    continue
                if e.order_id != d.order_id or e.state not in OPEN:
                    continue
                assert e.sequence is not None and d.sequence is not None
                in_flight = e.state == "delivering" or e.id in claimed
                if e.sequence < d.sequence:
                    self.fail(
                        f"{d.id} (seq {d.sequence}) sent while {e.id} (seq {e.sequence}) "
                        f"of order {d.order_id} is {'in flight' if in_flight else e.state}"
                    )
                if e.sequence == d.sequence and in_flight:
                    self.fail(f"{d.id} and {e.id}, one event, in flight at once")
                if e.sequence == d.sequence and e.id in self.waits.get(d.id, ()):
                    self.fail(f"replay {d.id} sent before {e.id} of its event finished")
        self.check_max_concurrency(after, "")
        for c in claims:
            if after[c.delivery.id].state != "delivering":
                self.fail(f"{c.delivery.id} claimed but {after[c.delivery.id].state}")

    # ------------------------------------------------------------ steps

    async def ingest(self) -> None:
        items: list[Any] = []
        for _ in range(self.rng.choice((1, 1, 2, 3))):
            if not self.orders or (len(self.orders) < 4 and self.rng.random() < 0.35):
                order_id = f"s{self.seed}o{len(self.orders) + 1}"
                self.orders.append(order_id)
                items.append(new_order(order_id))
            else:
                order_id = self.rng.choice(self.orders)
                self.counter += 1
                if self.rng.random() < 0.2:
                    items.append(CourierItem(order_id, {"status": 83, "n": self.counter}))
                else:
                    code = self.rng.choice((20, 30, 40, 50, 60, 70, 90))
                    items.append(status(order_id, code, f"2026-11-28T12:00:{self.counter:05d}Z"))
        results = await self.store.ingest(items, self.now)
        self.ingested_at.append(self.now)
        events = [e for r in results for e in r.event_ids]
        for event_id in events:
            event = await self.store.get_event(event_id, Scope())
            for hook in self.hooks.values():
                if hook.state != WebhookState.ACTIVE:
                    continue
                # An order's arrival goes to webhooks without a trigger (status 10 is
                # below each trigger); a triggered `order.new` to some with one.
                if event.type != EventType.NEW or (
                    event.sequence == 1 and hook.new_order_trigger is None
                ):
                    self.round_expected.add((hook.id, event_id))
        if not self.concurrent:
            self.expected |= self.round_expected
            self.round_expected = set()
        self.trace.append(f"ingest {[type(i).__name__ for i in items]} -> {events}")

    def outcome(self, request: list[Claim], kind: str) -> list[Outcome]:
        retry_at = self.now + timedelta(seconds=self.rng.choice((0, 1, 3, 8)))
        outcomes = []
        for c in request:
            if kind == "delivered":
                tried = attempt(c.delivery.id, c.attempt, 200, started_at=self.now)
                outcomes.append(
                    Outcome(
                        c.delivery.id,
                        c.webhook.id,
                        tried,
                        DeliveryState.DELIVERED,
                        None,
                        0,
                        batch_id=c.batch_id,
                    )
                )
            else:
                tried = attempt(c.delivery.id, c.attempt, 500, started_at=self.now)
                retried = kind == "retry"
                outcomes.append(
                    Outcome(
                        c.delivery.id,
                        c.webhook.id,
                        tried,
                        DeliveryState.PENDING if retried else DeliveryState.FAILED,
                        retry_at if retried else None,
                        c.delivery.schedule_position + 1,
                        batch_id=c.batch_id,
                    )
                )
        return outcomes

    def take_outcomes(self, worker: str | None = None) -> list[Outcome]:
        """Some requests in flight, answered: their outcomes in random order."""
        workers = [worker] if worker else list(WORKERS)
        chosen: list[list[Claim]] = []
        for w in workers:
            held = self.holding[w]
            self.rng.shuffle(held)
            n = self.rng.randint(0, len(held))
            chosen.extend(held[:n])
            self.holding[w] = held[n:]
        outcomes: list[Outcome] = []
        for request in chosen:
            kind = self.rng.choices(("delivered", "retry", "final"), (5, 3, 2))[0]
            outcomes.extend(self.outcome(request, kind))
            self.round_touched.update(c.delivery.id for c in request)
            self.trace.append(f"  answer {[c.delivery.id for c in request]}: {kind}")
        return outcomes

    async def record(self) -> None:
        outcomes = self.take_outcomes()
        self.trace.append(f"record {len(outcomes)} outcome(s)")
        # Several workers record apart: one call per slice, in random order.
        while outcomes:
            n = self.rng.randint(1, len(outcomes))
            await self.store.record(outcomes[:n], self.now)
            outcomes = outcomes[n:]
        await self.reload_hooks()

    async def claim(self, drain: list[Outcome] | None = None) -> None:
        """A claim by a random worker, with some of its outcomes first (`record_and_claim`)
        or not; while draining, by w1 with the outcomes `drain`."""
        worker = "w1" if drain is not None else self.rng.choice(WORKERS)
        limit = 50 if drain is not None else self.rng.choice((1, 1, 2, 3))
        if drain is not None:
            outcomes = drain
        else:
            outcomes = self.take_outcomes(worker) if self.rng.random() < 0.3 else []
        before = await self.rows()
        # Outcomes first may start or end probing in the claim's own transaction.
        probed = None if outcomes or self.concurrent else await self.reader.probing(self.hooks)
        # What the claim's transaction finds: its outcomes applied, expired leases back.
        applied = dict(before)
        for o in outcomes:
            row = applied[o.delivery_id]
            if row.state == "delivering":
                applied[o.delivery_id] = dataclasses.replace(row, state=str(o.next_state))
        now_us = micros(self.now)
        for row_id, row in applied.items():
            if row.state == "delivering" and (row.lease_expires_at or 0) <= now_us:
                applied[row_id] = dataclasses.replace(row, state="pending")
        if outcomes:
            claims = await self.store.record_and_claim(outcomes, self.now, limit, worker)
        else:
            claims = await self.store.claim(self.now, limit, worker)
        await self.reload_hooks()
        mine = [c for c in claims if c.webhook.id in self.hooks]
        self.trace.append(
            f"claim {worker} limit {limit} (+{len(outcomes)} outcomes) -> "
            + str(
                [
                    (c.delivery.id, c.delivery.order_id, c.delivery.sequence, c.batch_id)
                    for c in mine
                ]
            )
        )
        self.holding[worker].extend(requests_of(mine))
        if self.concurrent:
            self.round_claims.extend(mine)
            return
        after = await self.rows()
        self.check_claims(applied, mine, after)
        if probed is not None:
            self.check_probes(applied, probed, mine)

    def check_probes(
        self, before: dict[str, Row], probed: dict[str, int | None], claims: Sequence[Claim]
    ) -> None:
        """A probed webhook gets one request at a time, once its probe time has come
        (docs/guarantees.md, "Probing a failing webhook")."""
        for hook_id, probe_at in probed.items():
            requests = [r for r in requests_of(claims) if r[0].webhook.id == hook_id]
            if not requests:
                continue
            flying = [
                r.id for r in before.values() if r.webhook_id == hook_id and r.state == "delivering"
            ]
            if len(requests) > 1 or flying:
                self.fail(f"probed {hook_id} sent {len(requests)} request(s) beside {flying}")
            if probe_at is not None and probe_at > micros(self.now):
                self.fail(f"probed {hook_id} sent a request before its probe time")

    async def expire(self) -> None:
        self.trace.append("clock +LEASE")
        self.tick(LEASE_SECONDS + 1)

    async def wait(self) -> None:
        seconds = self.rng.choice((0.5, 1, 2, 3, 6))
        self.trace.append(f"clock +{seconds}s")
        self.tick(seconds)

    async def retry(self) -> None:
        rows = [r for r in (await self.rows()).values() if r.state in ("failed", "pending")]
        failed = [r for r in rows if r.state == "failed"]
        pool = failed if failed and self.rng.random() < 0.8 else rows
        if not pool:
            return
        row = self.rng.choice(sorted(pool, key=lambda r: r.id))
        self.trace.append(f"retry {row.id} ({row.state}, seq {row.sequence}, {row.order_id})")
        self.round_touched.add(row.id)
        with contextlib.suppress(Conflict):  # answered meanwhile, in a round
            await self.store.retry_delivery_now(row.id, self.now)

    async def recover(self) -> None:
        hook_id = self.rng.choice(sorted(self.hooks))
        since = self.rng.choice(self.ingested_at) if self.ingested_at else self.now
        self.round_recovered.add(hook_id)
        count = await self.store.recover_failed(hook_id, since, None, self.now)
        self.trace.append(f"recover {hook_id} since {since:%H:%M:%S.%f} -> {count}")

    async def replay(self) -> None:
        if not self.ingested_at:
            return
        hook = self.hooks[self.rng.choice(sorted(self.hooks))]
        since = self.rng.choice(self.ingested_at)
        until = None
        if self.rng.random() < 0.4:
            until = self.rng.choice([t for t in self.ingested_at if t >= since])
            until += timedelta(microseconds=1)
        before = await self.rows()
        count = await self.store.replay_events(hook, since, until, None, self.now)
        after = await self.rows()
        new = [r for r in after.values() if r.id not in before]
        if self.concurrent:
            # Other steps wrote meanwhile: neither the count nor what the replay found
            # waiting can be told apart from theirs.
            new = [r for r in new if r.replay and r.webhook_id == hook.id]
        elif len(new) != count:
            self.fail(f"replay said {count}, created {len(new)}")
        if hook.ordering == Ordering.PER_ORDER and not self.concurrent:
            for r in new:
                self.waits[r.id] = {
                    e.id
                    for e in before.values()
                    if e.webhook_id == r.webhook_id and e.event_id == r.event_id and e.state in OPEN
                }
        self.trace.append(
            f"replay {hook.id} [{since:%H:%M:%S.%f}, {until and f'{until:%H:%M:%S.%f}'}) -> "
            + str([(r.id, r.order_id, r.sequence) for r in new])
        )

    async def reorder(self) -> None:
        hook = self.hooks[self.rng.choice(sorted(self.hooks))]
        ordering = Ordering.NONE if hook.ordering == Ordering.PER_ORDER else Ordering.PER_ORDER
        changed = dataclasses.replace(hook, ordering=ordering, updated_at=self.now)
        self.round_reordered.add(hook.id)
        self.hooks[hook.id] = await self.store.update_webhook(changed)
        if ordering == Ordering.NONE:
            # Nothing waits under `none`: its replays may go beside their event at once.
            rows = await self.rows()
            for replay_id in [r for r in self.waits if rows[r].webhook_id == hook.id]:
                del self.waits[replay_id]
        self.trace.append(f"patch {hook.id} ordering {ordering}")

    async def toggle(self) -> None:
        hook = self.hooks[self.rng.choice(sorted(self.hooks))]
        self.round_toggled.add(hook.id)
        if hook.state == WebhookState.ACTIVE:
            state = WebhookState.DISABLED
            reason: DisabledReason | None = DisabledReason.MANUAL
        else:
            state, reason = WebhookState.ACTIVE, None
        self.hooks[hook.id] = await self.store.set_webhook_state(hook.id, state, reason, self.now)
        self.trace.append(f"{hook.id} -> {state}")

    async def round(self) -> None:
        """Two to four steps at once (claims, outcomes and changes racing), then what
        can be told of their claims: none went out while an earlier event of its order,
        or its own event, was waiting or in flight before the round and still is, unless
        the round also answered, retried or recovered it (then the claim may have come
        after), or changed the webhook's ordering."""
        before = await self.rows()
        actions = (
            self.ingest, self.claim, self.claim, self.record, self.retry, self.recover,
            self.replay, self.reorder, self.toggle,
        )  # fmt: skip
        chosen = self.rng.sample(actions, self.rng.choice((2, 3, 4)))
        self.trace.append(f"round of {[a.__name__ for a in chosen]}:")
        self.concurrent = True
        self.round_claims, self.round_touched = [], set()
        self.round_recovered, self.round_reordered = set(), set()
        self.round_toggled, self.round_expected = set(), set()
        try:
            await asyncio.gather(*(action() for action in chosen))
        finally:
            self.concurrent = False
        await self.reload_hooks()
        # An ingest beside a disable or an enable may have run before or after it.
        self.expected |= {e for e in self.round_expected if e[0] not in self.round_toggled}
        self.round_expected = set()
        after = await self.rows()
        self.check_round(before, after)
        await self.observe()

    def check_round(self, before: dict[str, Row], after: dict[str, Row]) -> None:
        claimed = {c.delivery.id for c in self.round_claims}
        for c in self.round_claims:
            d = c.delivery
            hook = self.hooks[d.webhook_id]
            was = before.get(d.id)
            leased = was is not None and (was.lease_expires_at or 0) > micros(self.now)
            if leased and was.state != "pending" and d.id not in self.round_touched:
                self.fail(f"{d.id} claimed while {was.state}")
            if hook.ordering != Ordering.PER_ORDER or hook.id in self.round_reordered:
                continue
            if hook.id in self.round_recovered:
                continue
            for e in before.values():
                if e.id == d.id or e.webhook_id != d.webhook_id or e.order_id != d.order_id:
                    continue
                if e.test or e.state not in OPEN or e.id in self.round_touched:
                    continue
                if e.id not in after or after[e.id].state not in OPEN:
                    continue
                assert e.sequence is not None and d.sequence is not None
                # In flight, unless its lease ran out (a claim of the round put it back).
                leased = (e.lease_expires_at or 0) > micros(self.now)
                both = e.id in claimed or (e.state == "delivering" and leased)
                if e.sequence < d.sequence or (e.sequence == d.sequence and both):
                    self.fail(
                        f"{d.id} (seq {d.sequence}) claimed in a round while {e.id} "
                        f"(seq {e.sequence}, {e.state}) of {d.order_id} waited throughout"
                    )
        self.check_max_concurrency(after, " after a round")

    async def step(self) -> None:
        if self.rounds and self.rng.random() < 0.25:
            await self.round()
            return
        steps = (
            (self.ingest, 5),
            (self.claim, 7),
            (self.record, 5),
            (self.wait, 4),
            (self.expire, 0.5),
            (self.retry, 2),
            (self.recover, 1),
            (self.replay, 1),
            (self.reorder, 0.6),
            (self.toggle, 0.6),
        )
        action = self.rng.choices([s for s, _ in steps], [w for _, w in steps])[0]
        await action()
        await self.observe()

    async def drain(self) -> None:
        """Every webhook enabled, every attempt succeeds: every delivery finishes."""
        self.trace.append("---- drain")
        for hook in list(self.hooks.values()):
            if hook.state != WebhookState.ACTIVE:
                self.hooks[hook.id] = await self.store.set_webhook_state(
                    hook.id, WebhookState.ACTIVE, None, self.now
                )
        for worker in WORKERS:
            for request in self.holding[worker]:
                await self.store.record(self.outcome(request, "delivered"), self.now)
            self.holding[worker] = []
        await self.observe()
        for _ in range(DRAIN_ROUNDS):
            if not any(r.state in OPEN for r in self.seen.values()):
                break
            self.tick(3)
            answered = [o for r in self.holding["w1"] for o in self.outcome(r, "delivered")]
            self.holding["w1"] = []
            await self.claim(drain=answered)
            await self.observe()
        stuck = sorted(
            (r.id, r.webhook_id, r.order_id, r.sequence, r.state, r.ready)
            for r in (await self.rows()).values()
            if r.state not in ("delivered", "failed")
        )
        if stuck:
            self.fail(f"deliveries never finished: {stuck}")
        for hook_id in self.hooks:
            await self.store.delete_webhook(hook_id, self.now)


async def walk(store: Store, reader: Reader, seed: int, start: datetime) -> datetime:
    run = Walk(store, reader, seed, start, rounds=True)
    await run.setup()
    await run.observe()
    for _ in range(STEPS):
        await run.step()
    await run.drain()
    return run.now + timedelta(days=1)


@pytest.fixture()
async def model_store(
    make_store: StoreFactory, engine_url: str
) -> AsyncIterator[tuple[Store, Reader]]:
    # Long enough that a walk's failing webhooks are not disabled for it: the walk
    # disables them by hand.
    store = await make_store(disable_after_seconds=10**7)
    reader = Reader(engine_url)
    await reader.open()
    yield store, reader
    await reader.close()


async def run_seeds(model_store: tuple[Store, Reader], seeds: range) -> None:
    store, reader = model_store
    start = NOW
    for seed in seeds:
        start = await walk(store, reader, seed, start)


async def test_random_walks_keep_per_order_order(model_store: tuple[Store, Reader]) -> None:
    await run_seeds(model_store, range(SEEDS))


@pytest.mark.slow
async def test_many_random_walks_keep_per_order_order(
    model_store: tuple[Store, Reader],
) -> None:
    await run_seeds(model_store, range(FIRST_SLOW_SEED, FIRST_SLOW_SEED + SLOW_SEEDS))
