"""A worker frozen in the middle of a claim (SIGSTOP here; a paused VM, a stuck host or a
silent network partition in production) holds the cluster's claim lock in a
transaction that will never finish. The other workers must go on delivering: the
database ends such a transaction once it has stayed idle too long, and the lock with it.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time

import asyncpg
import pytest

from orderhooks.testing.receiver import Receiver
from tests.cluster.cluster import Cluster, cluster_env
from tests.support.api import Api
from tests.support.data import new_order, unique

pytestmark = pytest.mark.postgres

CLAIM_LOCK_KEY = 7251001  # serialize_claims
FREEZE_TRIES = 200
# The database ends a bookkeeping transaction idle for 10 s; the other worker then claims.
DELIVERY_DEADLINE_SECONDS = 25.0


async def claim_lock_holder(conn: asyncpg.Connection) -> int | None:
    """The backend pid holding the claim lock, if any."""
    pid: int | None = await conn.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = 0 AND objid = $1 AND database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND pid IN (SELECT pid FROM pg_stat_activity WHERE state = 'idle in transaction')",
        CLAIM_LOCK_KEY,
    )
    return pid


async def freeze_in_a_claim(pid: int, conn: asyncpg.Connection) -> None:
    """SIGSTOP the process until it is stopped while holding the claim lock."""
    for _ in range(FREEZE_TRIES):
        os.kill(pid, signal.SIGSTOP)
        first = await claim_lock_holder(conn)
        await asyncio.sleep(0.3)  # the other worker's claims take milliseconds
        if first is not None and await claim_lock_holder(conn) == first:
            return
        os.kill(pid, signal.SIGCONT)
        await asyncio.sleep(random.uniform(0.001, 0.05))
    raise AssertionError("never caught the worker inside a claim")


async def test_a_worker_frozen_inside_a_claim_does_not_stop_the_cluster(
    pg_url: str, cluster: Cluster
) -> None:
    env = cluster_env(pg_url)
    api_process = cluster.add("api", "api", env)
    frozen, other = cluster.add("worker-1", "worker", env), cluster.add("worker-2", "worker", env)
    await cluster.start([api_process, frozen, other])
    account = unique("acct")
    conn = await asyncpg.connect(pg_url)
    assert frozen.pid is not None
    try:
        async with Receiver() as rx, api_process.async_client() as client:
            api = Api(client, api_process.admin_key)
            await api.create_webhook(rx.url, [account], maxConcurrency=4)
            # Both workers claim all the time while the deliveries of this load go out.
            load = [await api.new_order(new_order(account)) for _ in range(40)]
            await freeze_in_a_claim(frozen.pid, conn)
            started = time.monotonic()
            event_ids = await api.new_order(new_order(account))
            await rx.wait_for_delivered(set(event_ids), timeout=DELIVERY_DEADLINE_SECONDS)
            print(f"\ndelivered {time.monotonic() - started:.1f} s after the freeze")
            os.kill(frozen.pid, signal.SIGCONT)
            await rx.wait_for_delivered({i for ids in load for i in ids}, timeout=60)
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
        await conn.close()
