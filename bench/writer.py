"""`python -m bench.writer`: the SQLite store's writer alone, without HTTP or sending.

One process drives `SQLiteStore` as `serve`'s claim loop and ingest would: each round
ingests two batches of 100 items (the `batch100` mix: 40 % status updates of open
orders, the rest new orders made from the bench's order fixture) beside a claim of up to
64 deliveries and the record of the previous claim's outcomes, then claims and records
once more. It prints the writer thread's CPU (from `/proc`), the bytes and write calls
the process made per event ingested (`/proc/self/io`: WAL frames, checkpoints, fsyncs),
and the wall time. The machine is shared: compare trees by running this alternately
(before, after, before, after) under the bench lock, as docs/benchmarks.md does.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.stackprof import thread_cpu_seconds
from bench.workload import Batch, Workload
from orderhooks.delivery.claims import Claim, Outcome
from orderhooks.delivery.signing import generate_secret
from orderhooks.domain.model import (
    ALL_ACCOUNTS,
    Attempt,
    DeliveryState,
    EventType,
    SigningSecret,
    Webhook,
)
from orderhooks.service.ingest import document_hash
from orderhooks.store.base import IngestItem, NewOrderItem, StatusItem
from orderhooks.store.sqlite import SQLiteStore
from orderhooks.store.sqlite_io import WRITER_THREAD_NAME

BATCH_SIZE = 100
CLAIM_LIMIT = 64  # the bench webhook's maxConcurrency
STATUS_RATIO = 0.4
WARM_UP_ROUNDS = 5
WORKER_ID = "bench-writer"


def _store_items(batch: Batch) -> list[IngestItem]:
    """The store's items for a batch body of the workload (as ingest would make them)."""
    items: list[IngestItem] = []
    updates = iter(batch.updates)
    for item in batch.items:
        document = item["data"]
        if item["type"] == "order.new":
            items.append(NewOrderItem(document, document_hash(document)))
        else:
            order_id, _ = next(updates)
            items.append(StatusItem(order_id, document))
    return items


def _writer_cpu_seconds() -> float:
    return thread_cpu_seconds()[WRITER_THREAD_NAME]


def _io() -> dict[str, int]:
    lines = Path("/proc/self/io").read_text().splitlines()
    return {name: int(value) for name, value in (line.split(": ") for line in lines)}


def _delivered(claims: list[Claim], now: datetime) -> list[Outcome]:
    return [
        Outcome(
            c.delivery.id,
            c.webhook.id,
            Attempt(c.delivery.id, c.attempt, now, 5, 200, "ok", None),
            DeliveryState.DELIVERED,
            None,
            0,
        )
        for c in claims
    ]


@dataclass
class _Loop:
    store: SQLiteStore
    workload: Workload
    outcomes: list[Outcome] = field(default_factory=list)
    ingested: int = 0
    delivered: int = 0

    async def ingest(self) -> None:
        batch = self.workload.batch(BATCH_SIZE)
        results = await self.store.ingest(_store_items(batch), datetime.now(UTC))
        self.workload.acknowledged(batch.new_ids, batch.updates)
        self.ingested += sum(len(r.event_ids) for r in results)

    async def claim_and_record(self) -> None:
        now = datetime.now(UTC)
        previous, self.outcomes = self.outcomes, []
        claims, _ = await asyncio.gather(
            self.store.claim(now, CLAIM_LIMIT, WORKER_ID), self.store.record(previous, now)
        )
        self.delivered += len(previous)
        self.outcomes = _delivered(claims, now)

    async def round(self) -> None:
        await asyncio.gather(self.ingest(), self.ingest(), self.claim_and_record())
        await self.claim_and_record()


async def run(rounds: int, seed: int) -> str:
    """Run the loop in a fresh database; returns the figures as one line."""
    folder = Path(tempfile.mkdtemp(prefix="orderhooks-writer-"))
    store = SQLiteStore(folder / "oh.db", require_agreement=False, disable_after_seconds=3600)
    try:
        await store.open()
        await store.migrate()
        now = datetime.now(UTC)
        hook = Webhook(
            id="wh_bench",
            url="https://receiver.invalid/hook",
            accounts=(ALL_ACCOUNTS,),
            event_types=tuple(EventType),
            secrets=(SigningSecret(generate_secret()),),
            max_concurrency=CLAIM_LIMIT,
            created_at=now,
            updated_at=now,
        )
        await store.create_webhook(hook)
        loop = _Loop(store, Workload("w", STATUS_RATIO, seed))
        for _ in range(WARM_UP_ROUNDS):
            await loop.round()
        cpu0, io0, t0 = _writer_cpu_seconds(), _io(), time.monotonic()
        events0, delivered0 = loop.ingested, loop.delivered
        for _ in range(rounds):
            await loop.round()
        cpu, io1, wall = _writer_cpu_seconds() - cpu0, _io(), time.monotonic() - t0
        events, delivered = loop.ingested - events0, loop.delivered - delivered0
    finally:
        await store.close()
        shutil.rmtree(folder, ignore_errors=True)
    return (
        f"events {events} deliveries {delivered} wall {wall:.2f} s; writer CPU {cpu:.2f} s, "
        f"{cpu / (events + delivered) * 1e6:.1f} ms per 1k (events + deliveries); per event "
        f"{(io1['wchar'] - io0['wchar']) / events / 1024:.1f} KiB written in "
        f"{(io1['syscw'] - io0['syscw']) / events:.2f} write calls, "
        f"{(io1['rchar'] - io0['rchar']) / events / 1024:.1f} KiB read"
    )


def main() -> None:
    """Parse the options and print one line of figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.writer", description=__doc__)
    parser.add_argument("--rounds", type=int, default=150, help="measured rounds")
    parser.add_argument("--seed", type=int, default=7)
    options = parser.parse_args()
    print(asyncio.run(run(options.rounds, options.seed)))


if __name__ == "__main__":
    main()
