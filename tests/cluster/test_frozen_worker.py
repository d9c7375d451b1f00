"""A worker frozen in the middle of a claim (a paused VM, a stuck host or a silent network
partition) holds the cluster's claim lock in a transaction that will never finish. The
other workers must go on delivering: the database ends such a transaction once it has
stayed idle too long, and the lock with it.

The frozen worker is a store of the test's own, standing for one more worker process: its
claim transaction (opened by the engine as every claim is, with the claim lock taken
first) stops talking once it holds the lock. Catching a real worker process with SIGSTOP
inside its few milliseconds of claim depends on timing; the server sees the same thing.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from orderhooks.store.postgres import PostgresStore
from orderhooks.store.shared.tx import Tx
from orderhooks.testing.receiver import Receiver
from tests.cluster.cluster import Cluster, cluster_env
from tests.support.api import admin_api
from tests.support.data import new_order, unique

pytestmark = pytest.mark.postgres

# The database ends a bookkeeping transaction idle for 10 s; the workers then claim.
DELIVERY_DEADLINE_SECONDS = 25.0


async def test_a_worker_frozen_inside_a_claim_does_not_stop_the_cluster(
    pg_url: str, cluster: Cluster
) -> None:
    env = cluster_env(pg_url)
    api_process = cluster.add("api", "api", env)
    worker = cluster.add("worker", "worker", env)
    await cluster.start([api_process, worker])
    frozen = PostgresStore(
        pg_url, require_agreement=False, disable_after_seconds=3600, pool_size=2, listen=False
    )
    await frozen.open()
    holding, never = asyncio.Event(), asyncio.Event()

    async def claim_then_stop_talking(tx: Tx) -> None:
        await tx.execute("serialize_claims")  # the claim lock, as every claim takes it
        holding.set()
        await never.wait()

    claim = asyncio.create_task(frozen._write(claim_then_stop_talking, durable=False))
    try:
        async with Receiver() as rx, admin_api(api_process) as api:
            account = unique("acct")
            await api.create_webhook(rx.url, [account])
            await asyncio.wait_for(holding.wait(), 10)
            started = time.monotonic()
            event_ids = await api.new_order(new_order(account))
            await rx.wait_for_delivered(set(event_ids), timeout=DELIVERY_DEADLINE_SECONDS)
            print(f"\ndelivered {time.monotonic() - started:.1f} s after the freeze")
        # The server ended the frozen transaction: its next word fails, nothing committed.
        never.set()
        with pytest.raises(Exception):  # noqa: B017 - whichever error the engine raises
            await asyncio.wait_for(claim, 10)
    finally:
        claim.cancel()
        await asyncio.gather(claim, return_exceptions=True)
        await frozen.close()
