"""Batches in the claim: which deliveries of a batching webhook go out together now.

A batch is formed by the claim that sends it, in the claim's transaction (serialised
across workers: docs/architecture.md, "The queue"), so two workers or two processes can
never put one delivery in two batches. Its deliveries share a `batch_id` from then on:
a failed attempt leaves them `pending` together with one next attempt time, and the
claim that finds them due sends the same batch again, with the same id.

Per-order order: only queue heads (`ready`) join a new batch, so a batch carries at
most one event of an order, and the next event of that order becomes a head only once
the batch is delivered or failed (docs/guarantees.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orderhooks.domain.batches import BatchSettings
from orderhooks.store.shared.tx import Row, Tx


@dataclass(frozen=True, slots=True)
class Request:
    """The deliveries one request carries: one alone (`batch_id` None), or a batch; a
    batch not formed yet has no id until it is leased."""

    rows: tuple[Row, ...]
    batch_id: str | None


def body_order(row: Row) -> tuple[str, int, str]:
    """Where a delivery goes in its batch's body: an order's events in sequence order
    (docs/events.md); an operational event, which has neither, first. Sorted here, not by
    the engine (PostgreSQL puts a missing order last, SQLite first), so every attempt of
    a batch carries its events in the same order."""
    return (row["order_id"] or "", row["sequence"] or 0, row["id"])


def ready_to_send(rows: tuple[Row, ...], batch: BatchSettings, now_us: int) -> bool:
    """A new batch goes once it is full or its oldest due delivery (the first: rows come
    earliest first) has waited `maxWaitMs` since it fell due."""
    if len(rows) >= batch.max_events:
        return True
    return bool(rows) and rows[0]["next_attempt_at"] + batch.max_wait_ms * 1000 <= now_us


async def _retried_batches(tx: Tx, webhook_id: str, slots: int, now_us: int) -> list[Request]:
    """Batches due again, each with the deliveries it had. A delivery that is no longer
    the head of its order (an earlier event of it was replayed meanwhile) leaves its
    batch and waits its turn: a batch id never names other events than it did."""
    requests = []
    for due in await tx.fetch("due_batches", webhook_id=webhook_id, now=now_us, limit=slots):
        members = await tx.fetch("batch_members", batch_id=due["batch_id"])
        heads = tuple(sorted((row for row in members if row["ready"]), key=body_order))
        strays = [row["id"] for row in members if not row["ready"]]
        if strays:
            await tx.execute("leave_batch", ids=tx.array(strays))
        if heads:
            requests.append(Request(heads, due["batch_id"]))
    return requests


async def sent_alone(tx: Tx, rows: Sequence[Row]) -> list[Request]:
    """Batches of one delivery each (a batching webhook awaiting its agreement is sent its
    operational events one per request). A retry keeps the batch id of its first attempt,
    the `webhook-id` receivers deduplicate on, when that batch held it alone. A batch that
    held more (formed while the webhook was active) is dissolved: every delivery still in
    it leaves, and each is sent under a new id, so that no batch id ever names another
    set of events."""
    requests = []
    dissolved: set[str] = set()
    for row in rows:
        batch_id = row["batch_id"]
        if batch_id in dissolved:
            batch_id = None
        elif batch_id is not None:
            members = await tx.fetch("batch_members", batch_id=batch_id)
            if any(member["id"] != row["id"] for member in members):
                ids = [member["id"] for member in members] + [row["id"]]
                await tx.execute("leave_batch", ids=tx.array(sorted(set(ids))))
                dissolved.add(batch_id)
                batch_id = None
        requests.append(Request((row,), batch_id))
    return requests


async def due_batches(
    tx: Tx, webhook_id: str, batch: BatchSettings, slots: int, now_us: int
) -> list[Request]:
    """Up to `slots` batches of the webhook to send now: the ones being retried first,
    then new ones of its due heads, `maxEvents` at most each, of deliveries at one point
    of their retry schedule, earliest due first."""
    requests = await _retried_batches(tx, webhook_id, slots, now_us)
    free = slots - len(requests)
    if free <= 0:
        return requests
    limit = free * batch.max_events
    rows = await tx.fetch("due_unbatched", webhook_id=webhook_id, now=now_us, limit=limit)
    groups = _by_schedule_position(rows)
    if len(rows) == limit and len(groups) > 1:
        # The rows of one point may have crowded out enough of another's to fill a batch:
        # each point read on its own (rare: points differ only for a while). Fresh
        # deliveries too, whose point the read may not have reached at all.
        positions = sorted({int(group[0]["schedule_position"]) for group in groups} | {0})
        groups = []
        for position in positions:
            found = await tx.fetch(
                "due_unbatched_at",
                webhook_id=webhook_id,
                now=now_us,
                position=position,
                limit=limit,
            )
            if found:
                groups.append(list(found))
    formed = []
    for group in groups:
        for start in range(0, len(group), batch.max_events):
            chunk = tuple(group[start : start + batch.max_events])
            if not ready_to_send(chunk, batch, now_us):
                break  # the rest of this group came due later still
            formed.append(chunk)
    formed.sort(key=lambda chunk: (chunk[0]["next_attempt_at"], chunk[0]["id"]))
    requests.extend(Request(tuple(sorted(chunk, key=body_order)), None) for chunk in formed[:free])
    return requests


def _by_schedule_position(rows: Sequence[Row]) -> list[list[Row]]:
    """The rows (earliest due first) grouped by how far along their retry schedule they
    are, each group earliest due first. Only deliveries at the same point ride together:
    the batch's one outcome is decided at that point for all of them, so none is failed
    for good before its own schedule is used up (one that failed alone before joined
    fresh ones, say after its webhook started batching, and took them down with it)."""
    groups: dict[int, list[Row]] = {}
    for row in rows:
        groups.setdefault(int(row["schedule_position"]), []).append(row)
    return list(groups.values())
