"""Pending deliveries when a webhook is deleted, disabled, or its receiver is down
(docs/api.md, webhooks; docs/guarantees.md, retries): cancelled, waiting, and probed rather than
hammered."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from orderhooks.testing.receiver import Receiver
from tests.e2e.support import assert_per_order, states
from tests.support.api import Api, expect, poll
from tests.support.data import new_order

SETTLE_SECONDS = 1.5
DOWN_SECONDS = 6.0


async def ingest_orders(api: Api, account: str, orders: int, updates: tuple[int, ...]) -> list[str]:
    """Ingest `orders` new orders, then each status of `updates` for each of them."""
    created = [new_order(account) for _ in range(orders)]
    ids: list[str] = []
    for order in created:
        ids += await api.new_order(order)
    for status in updates:
        for order in created:
            ids += await api.status(order["_id"], status)
    return ids


async def test_delete_cancels_pending_deliveries(api: Api, account: str, rx: Receiver) -> None:
    rx.answer(500)
    hook = await api.create_webhook(rx.url, [account], retrySchedule=[30])
    ids = await ingest_orders(api, account, 3, (20,))
    await rx.wait_for(lambda: len(rx.requests) == 3, what="the 3 heads attempted")
    await asyncio.sleep(0.3)
    assert (await api.client.delete(f"/v1/webhooks/{hook['id']}")).status_code == 204
    assert (await api.client.get(f"/v1/webhooks/{hook['id']}")).status_code == 404
    deliveries = await api.wait_deliveries(
        hook["id"], lambda ds: states(ds) == {"cancelled": 6}, what="6 cancelled"
    )
    assert sorted(d["eventId"] for d in deliveries) == sorted(ids)
    one = await api.delivery(deliveries[0]["id"])
    assert one["state"] == "cancelled"
    rx.healthy()
    await asyncio.sleep(SETTLE_SECONDS)
    assert len(rx.requests) == 3, "nothing is sent for a deleted webhook"
    rx.verify_all(hook["secret"])
    # Nothing is due any more: a cancelled delivery has no next attempt (docs/api.md).
    assert {d["nextAttemptAt"] for d in deliveries} == {None}


async def test_delete_during_an_attempt_counts_that_attempt(
    api: Api, account: str, rx: Receiver
) -> None:
    """A delivery cancelled while its attempt was in flight keeps that attempt, and its
    `attemptCount` counts it (docs/api.md, a delivery)."""
    rx.slow(1.5)
    hook = await api.create_webhook(rx.url, [account])
    await api.new_order(new_order(account))
    await rx.wait_for(lambda: rx.in_flight == 1, what="the attempt in flight")
    assert (await api.client.delete(f"/v1/webhooks/{hook['id']}")).status_code == 204
    await rx.wait_for(lambda: len(rx.accepted()) == 1, what="the attempt answered")
    [listed] = await api.wait_deliveries(
        hook["id"], lambda ds: len(ds) == 1, what="the cancelled delivery"
    )
    one = await poll(
        lambda: api.delivery(listed["id"]),
        lambda d: len(d["attempts"]) == 1,
        timeout=10,
        what="the attempt recorded",
    )
    assert one["state"] == "cancelled"
    assert one["attemptCount"] == 1 == one["attempts"][0]["attempt"]
    assert one["nextAttemptAt"] is None and one["deliveredAt"] is None


@pytest.mark.slow
async def test_disabled_webhook_waits_and_resumes_in_order(
    api: Api, account: str, rx: Receiver
) -> None:
    rx.answer(500)
    hook = await api.create_webhook(rx.url, [account], retrySchedule=[2] * 10)
    ids = await ingest_orders(api, account, 2, (20, 40))
    await rx.wait_for(lambda: len(rx.requests) == 2, what="the 2 heads attempted")
    disabled = expect(await api.client.post(f"/v1/webhooks/{hook['id']}/disable"), 200)
    assert (disabled["state"], disabled["disabledReason"]) == ("disabled", "manual")
    rx.healthy()
    while_disabled = await ingest_orders(api, account, 1, ())
    # The heads' failed attempts are recorded a moment after the receiver answered: once
    # no delivery is `delivering`, nothing more is sent (nothing is claimed while disabled).
    await api.wait_deliveries(hook["id"], lambda ds: states(ds) == {"pending": 6}, what="6 pending")
    seen = len(rx.requests)
    await asyncio.sleep(3)  # past the heads' retry time
    assert len(rx.requests) == seen, "a disabled webhook's pending deliveries wait"
    deliveries = await api.deliveries(hook["id"])
    assert states(deliveries) == {"pending": 6}
    assert while_disabled[0] not in {d["eventId"] for d in deliveries}

    expect(await api.client.post(f"/v1/webhooks/{hook['id']}/enable"), 200)
    await rx.wait_for_delivered(set(ids), timeout=15)
    await asyncio.sleep(SETTLE_SECONDS)
    assert while_disabled[0] not in {r.webhook_id for r in rx.requests}
    assert_per_order(rx.requests, contiguous=True)
    rx.verify_all(hook["secret"])


@pytest.mark.slow
async def test_probing_a_receiver_that_is_down(api: Api, account: str) -> None:
    rx = Receiver().start()
    rx.stop()  # its port now refuses connections; `start` reopens the same port
    try:
        hook = await api.create_webhook(
            rx.url, [account], retrySchedule=[1] * 20, maxConcurrency=8, timeoutSeconds=1
        )
        down_at = time.monotonic()
        ids = await ingest_orders(api, account, 5, (20, 40))
        await asyncio.sleep(DOWN_SECONDS)
        deliveries = await api.deliveries(hook["id"])
        elapsed = time.monotonic() - down_at
        attempts = sum(d["attemptCount"] for d in deliveries)
        events = await api.list_all("/v1/events", account=account)
        sequence = {e["id"]: e["sequence"] for e in events}
        heads = [d for d in deliveries if sequence[d["eventId"]] == 1]
        # Hammering would cost each of the 5 heads one attempt a second; probing costs the
        # first burst plus about one attempt a second for the whole webhook.
        print("\nprobing:", _attempt_report(deliveries, elapsed))
        assert attempts <= len(heads) + elapsed + 3, _attempt_report(deliveries, elapsed)
        assert all(d["attemptCount"] == 0 for d in deliveries if sequence[d["eventId"]] > 1)
        # A probe may be in flight at the moment the states are read.
        in_queue = states(deliveries)
        assert in_queue.get("pending", 0) >= 14, in_queue
        assert set(in_queue) <= {"pending", "delivering"}, in_queue
        assert in_queue.get("delivering", 0) <= 1, in_queue

        rx.start()
        back_at = time.monotonic()
        await rx.wait_for_delivered(set(ids), timeout=20)
        first_ok = rx.accepted()[0].arrived_monotonic
        last_ok = rx.accepted()[-1].arrived_monotonic
        assert first_ok - back_at < 3, "the next probe is due within about a second"
        assert last_ok - first_ok < 5, "one success releases the backlog at once"
        assert_per_order(rx.requests, contiguous=True)
        rx.verify_all(hook["secret"])
    finally:
        rx.stop()


def _attempt_report(deliveries: list[dict[str, Any]], elapsed: float) -> str:
    counts = sorted((d["attemptCount"] for d in deliveries), reverse=True)
    return f"{sum(counts)} attempts in {elapsed:.1f} s while down: {counts}"


async def test_backlog_keeps_moving_after_a_final_failure(
    api: Api, account: str, rx: Receiver
) -> None:
    """Each failed attempt ends its delivery (empty schedule); the backlog's next delivery is
    already due, so it probes at once: no extra cool-down (docs/guarantees.md, retries)."""
    rx.answer(500)
    hook = await api.create_webhook(rx.url, [account], retrySchedule=[], maxConcurrency=1)
    await ingest_orders(api, account, 5, ())
    deliveries = await api.wait_deliveries(
        hook["id"], lambda ds: states(ds) == {"failed": 5}, timeout=10, what="5 failed"
    )
    assert all(d["attemptCount"] == 1 for d in deliveries)
    assert len(rx.requests) == 5
    rx.verify_all(hook["secret"])
