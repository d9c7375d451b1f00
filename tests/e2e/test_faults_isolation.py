"""Isolation (docs/guarantees.md): a black-hole, a slow and an unreachable webhook, each with a
backlog, do not delay a healthy one; none has more than `maxConcurrency` in flight."""

from __future__ import annotations

import asyncio
import time

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import free_port
from tests.support.api import Api
from tests.support.data import new_order

BACKLOG_ORDERS = 10
PROBES = 5
# "Within a second of its ingest being acknowledged"; a little slack for a busy CI host.
HEALTHY_LATENCY_BOUND_SECONDS = 1.5
SLOW_CONCURRENCY = 2


async def test_bad_webhooks_do_not_delay_a_healthy_one(api: Api, account: str) -> None:
    async with (
        Receiver() as hole,
        Receiver() as slow,
        Receiver() as healthy,
    ):
        hole.black_hole()
        slow.slow(5)
        refused_url = f"http://127.0.0.1:{free_port()}/hook"
        bad_hooks = [
            await api.create_webhook(
                hole.url, [account], timeoutSeconds=5, maxConcurrency=SLOW_CONCURRENCY
            ),
            await api.create_webhook(
                slow.url, [account], timeoutSeconds=10, maxConcurrency=SLOW_CONCURRENCY
            ),
            await api.create_webhook(refused_url, [account], timeoutSeconds=2),
        ]
        healthy_hook = await api.create_webhook(healthy.url, [account])
        backlog = await api.new_orders(account, BACKLOG_ORDERS)
        await hole.wait_for(lambda: hole.in_flight == SLOW_CONCURRENCY, what="hole busy")
        await slow.wait_for(lambda: slow.in_flight == SLOW_CONCURRENCY, what="slow busy")
        await healthy.wait_for_delivered(set(backlog))

        latencies = []
        for _ in range(PROBES):
            sent = time.monotonic()
            [event_id] = await api.new_order(new_order(account))
            await healthy.wait_for_delivered({event_id}, timeout=10)
            arrival = next(r for r in healthy.requests if r.webhook_id == event_id)
            latencies.append(arrival.arrived_monotonic - sent)
            await asyncio.sleep(0.2)
        print(f"\nhealthy webhook latencies (s): {[round(x, 3) for x in latencies]}")
        assert max(latencies) < HEALTHY_LATENCY_BOUND_SECONDS, latencies
        assert hole.max_in_flight <= SLOW_CONCURRENCY
        assert slow.max_in_flight <= SLOW_CONCURRENCY
        healthy.verify_all(healthy_hook["secret"])
        hole.verify_all(bad_hooks[0]["secret"])
        slow.verify_all(bad_hooks[1]["secret"])
        for hook in bad_hooks:
            assert (await api.client.delete(f"/v1/webhooks/{hook['id']}")).status_code == 204
