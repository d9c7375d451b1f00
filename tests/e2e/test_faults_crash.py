"""Crash safety and draining (docs/guarantees.md): SIGKILL mid-stream loses no acknowledged
event; SIGTERM finishes the attempts in flight and exits 0."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.e2e.support import assert_per_order, states
from tests.support.api import Api
from tests.support.data import new_order

MAX_CONCURRENCY = 4
# After a crash only deliveries whose outcome was not yet recorded are sent again: those in
# flight (at most maxConcurrency) plus those that finished within the last commit interval
# (with 50 ms answers, about as many again).
MAX_DUPLICATES = 2 * MAX_CONCURRENCY
TIMEOUT_SECONDS = 2
# An attempt in flight at the crash is made again at most timeoutSeconds + 30 s later.
LEASE_SECONDS = TIMEOUT_SECONDS + 30
INGEST_BEFORE_CRASH_SECONDS = 2.0
INGEST_AFTER_RESTART_SECONDS = 1.0
DRAIN_BOUND_SECONDS = 15.0
SLOW_ANSWER_SECONDS = 2.0
STATUS_FLOW = (20, 40, 50, 60, 70, 80, 90)


# Each test starts, and leaves, the module's server running, whatever the last did.
pytestmark = pytest.mark.usefixtures("server_up")


@dataclass
class Ingester:
    """A client that keeps ingesting and remembers only what was acknowledged with 2xx."""

    client: httpx.AsyncClient
    account: str
    acknowledged: list[str] = field(default_factory=list)
    refused: int = 0
    stop: bool = False

    async def run(self) -> None:
        """Create orders and move each through the status flow until told to stop."""
        orders: list[tuple[str, int]] = []  # (order id, next step) of acknowledged orders
        while not self.stop:
            if len(orders) < 6:
                order = new_order(self.account)
                if await self._post("/v1/orders", order):
                    orders.append((order["_id"], 0))
                continue
            order_id, step = orders.pop(0)
            if await self._post(f"/v1/orders/{order_id}/status", {"status": STATUS_FLOW[step]}):
                step += 1
            if step < len(STATUS_FLOW):
                orders.append((order_id, step))

    async def _post(self, path: str, body: dict[str, object]) -> bool:
        try:
            response = await self.client.post(path, json=body, timeout=5)
        except httpx.HTTPError:
            self.refused += 1
            await asyncio.sleep(0.05)
            return False
        if response.status_code in (200, 202):
            self.acknowledged += response.json()["eventIds"]
            return True
        self.refused += 1
        await asyncio.sleep(0.05)
        return False


@pytest.mark.slow
async def test_sigkill_mid_stream_loses_no_acknowledged_event(
    api: Api, server: ServerProcess, account: str, rx: Receiver
) -> None:
    rx.slow(0.05)  # keeps a few requests in flight at any moment
    hook = await api.create_webhook(
        rx.url, [account], maxConcurrency=MAX_CONCURRENCY, timeoutSeconds=TIMEOUT_SECONDS
    )
    async with server.async_client() as client:
        ingester = Ingester(client, account)
        task = asyncio.create_task(ingester.run())
        await asyncio.sleep(INGEST_BEFORE_CRASH_SECONDS)
        before_crash = len(ingester.acknowledged)
        server.kill()
        await asyncio.sleep(0.3)
        await asyncio.to_thread(server.start)
        await asyncio.sleep(INGEST_AFTER_RESTART_SECONDS)
        ingester.stop = True
        await task
    acknowledged = set(ingester.acknowledged)
    assert before_crash > 0, "the client got acknowledgements before the crash"
    assert len(acknowledged) > before_crash, "and after the restart"

    await rx.wait_for_delivered(acknowledged, timeout=LEASE_SECONDS + 20)
    # What was answered before the crash but not recorded is sent again only once its
    # lease expires, possibly after every event has arrived once: count the duplicates when
    # every delivery is recorded `delivered`, after which nothing is sent again.
    await api.wait_deliveries(
        hook["id"],
        lambda ds: len(ds) >= len(acknowledged) and states(ds) == {"delivered": len(ds)},
        timeout=LEASE_SECONDS + 20,
        what="every delivery recorded as delivered",
    )
    assert_per_order(rx.requests, contiguous=True)
    duplicates = sum(n - 1 for n in Counter(r.webhook_id for r in rx.accepted()).values())
    print(
        f"\nSIGKILL: {len(acknowledged)} events acknowledged, {ingester.refused} refused, "
        f"{len(rx.delivered_ids())} delivered, {duplicates} duplicates"
    )
    assert duplicates <= MAX_DUPLICATES, f"{duplicates} duplicates after one crash"
    assert rx.max_in_flight <= MAX_CONCURRENCY
    rx.verify_all(hook["secret"])


@pytest.mark.slow
async def test_sigterm_drains_attempts_in_flight(
    api: Api, server: ServerProcess, account: str, rx: Receiver
) -> None:
    rx.slow(SLOW_ANSWER_SECONDS)
    hook = await api.create_webhook(rx.url, [account], timeoutSeconds=10)
    await api.new_orders(account, 3)
    await rx.wait_for(lambda: rx.in_flight == 3, what="3 attempts in flight")

    started = time.monotonic()
    code = await asyncio.to_thread(server.terminate, DRAIN_BOUND_SECONDS)
    took = time.monotonic() - started
    assert code == 0, f"exit code {code} after SIGTERM"
    assert took < DRAIN_BOUND_SECONDS

    await asyncio.to_thread(server.start)
    deliveries = await api.deliveries(hook["id"])
    assert states(deliveries) == {"delivered": 3}, "the outcomes in flight were recorded"
    assert all(d["attemptCount"] == 1 for d in deliveries)
    await asyncio.sleep(1.5)
    assert len(rx.requests) == 3, "nothing was sent again after the restart"
    assert rx.abandoned() == [], "the server did not hang up on an attempt in flight"
    rx.verify_all(hook["secret"])
