"""`PostgresEngine.abort` (a second SIGTERM) against a pool whose graceful close waits on a
server that stopped answering: the close returns at once, whether the abort comes before
the close reached the pool or while the pool is closing. The process-level case is
tests/cluster/test_pg_restart.py; this one pins the moment that test cannot reach."""

from __future__ import annotations

import asyncio

from orderhooks.store.postgres import PostgresEngine


class HangingPool:
    """A pool whose close waits until its connections are terminated."""

    def __init__(self) -> None:
        self.closing = asyncio.Event()
        self.terminated = asyncio.Event()

    async def close(self) -> None:
        self.closing.set()
        await self.terminated.wait()

    def terminate(self) -> None:
        self.terminated.set()


async def test_an_abort_while_the_pool_closes_ends_the_close() -> None:
    engine = PostgresEngine("postgresql://127.0.0.1:1/none", pool_size=1, listen=False)
    pool = HangingPool()
    engine._pool = pool
    closing = asyncio.create_task(engine.close())
    await asyncio.wait_for(pool.closing.wait(), 1)  # the close is waiting on the pool
    engine.abort()
    await asyncio.wait_for(closing, 1)
    assert pool.terminated.is_set()
    engine.abort()  # nothing left to drop: a no-op


async def test_an_abort_before_the_close_drops_the_pool() -> None:
    engine = PostgresEngine("postgresql://127.0.0.1:1/none", pool_size=1, listen=False)
    pool = HangingPool()
    engine._pool = pool
    engine.abort()
    await asyncio.wait_for(engine.close(), 1)
    assert pool.terminated.is_set()
