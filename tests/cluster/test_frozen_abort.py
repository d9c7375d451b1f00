"""A transaction cancelled while its database host is frozen: asyncpg hands the connection
back to the pool only once the server has heard the cancel request, which it sends over
a new connection that hangs too. `PostgresEngine.abort` (a second SIGTERM) ends that
wait: the cancelled transaction returns at once."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from orderhooks.store.postgres import PostgresEngine
from tests.cluster.cluster import with_address
from tests.cluster.pgproxy import LOOPBACK, PgProxy

pytestmark = pytest.mark.postgres

SLEEP_SQL = "SELECT pg_sleep(30)"
CANCEL_ALONE_SECONDS = 1.0
ABORT_SECONDS = 2.0


async def test_an_abort_ends_a_transaction_cancelled_on_a_frozen_host(pg_url: str) -> None:
    target = urlsplit(pg_url)
    with PgProxy(target.hostname or LOOPBACK, target.port or 5432) as proxy:
        url = with_address(pg_url, LOOPBACK, proxy.port)
        engine = PostgresEngine(url, pool_size=2, listen=False)
        await engine.open(lambda: None)
        started = asyncio.Event()

        async def job(tx: Any) -> None:
            started.set()
            await tx.connection.fetchval(SLEEP_SQL)

        running = asyncio.create_task(engine.write(job, durable=True))
        await asyncio.wait_for(started.wait(), 5)
        await _running_on_the_server(pg_url, SLEEP_SQL)
        proxy.freeze()
        running.cancel()
        # The cancel alone leaves it waiting (for as long as the host stays frozen).
        await asyncio.wait({running}, timeout=CANCEL_ALONE_SECONDS)
        engine.abort()
        await asyncio.wait({running}, timeout=ABORT_SECONDS)
        assert running.done(), "still waiting after the abort"
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await asyncio.wait_for(engine.close(), ABORT_SECONDS)


async def _running_on_the_server(pg_url: str, sql: str) -> None:
    """Wait (10 s at most) until the server runs `sql`, seen past the proxy: a fixed pause
    was too short on a loaded machine."""
    conn = await asyncpg.connect(pg_url, timeout=5)
    try:
        for _ in range(100):
            running = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND state = 'active' AND query = $1",
                sql,
            )
            if running:
                return
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise AssertionError(f"the server never ran {sql!r}")
