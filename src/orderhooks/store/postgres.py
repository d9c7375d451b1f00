"""The scale-out engine: PostgreSQL through an asyncpg pool, shared by many processes.

Claims of every worker are serialised by a transaction-scoped advisory lock, ingests of
one order by its row lock, and workers in other processes are woken by NOTIFY on the
`orderhooks_work` channel, sent after the commits that create work. The pool reconnects
after a server restart: operations fail with StoreUnavailable while the server is down
and work again once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar, Unpack

import asyncpg

from orderhooks.exceptions import StoreUnavailable
from orderhooks.logging import get_logger
from orderhooks.store.postgres_io import (
    CONNECT_TIMEOUT_SECONDS,
    CONNECTION_ERRORS,
    Notifier,
    PgTx,
    is_retryable,
    listen_forever,
    translate,
)
from orderhooks.store.shared.core import StoreOptions
from orderhooks.store.shared.migrations import apply_migrations, record_migration
from orderhooks.store.shared.tx import Job
from orderhooks.store.sql import compile_queries
from orderhooks.store.store import Store

T = TypeVar("T")

MAX_TRANSACTION_RUNS = 5  # a deadlock or a lost race for a new order runs it again
ACQUIRE_TIMEOUT_SECONDS = 10.0
PING_TIMEOUT_SECONDS = 5.0
MIN_PING_SECONDS = 0.1  # what the query gets when connecting took (almost) all the time
COMMAND_TIMEOUT_SECONDS = 60.0
# A migration that changes a table waits at most this long for the table's lock, then
# gives way and tries again: while it waits in the lock queue, every query on that
# table waits behind it, so a long transaction elsewhere would stop the whole cluster.
MIGRATION_LOCK_TIMEOUT_MS = 2_000
MIGRATION_RETRY_SECONDS = (1.0, 2.0, 5.0)  # pauses between tries, the last one repeated
MIGRATION_GIVE_UP_SECONDS = 600.0
# A migration's script is not bound by COMMAND_TIMEOUT_SECONDS: building an index on a
# large table takes longer, and every process migrates at start.
MIGRATION_SCRIPT_TIMEOUT_SECONDS = 6 * 3600.0

log = get_logger("orderhooks.store")


class PostgresEngine:
    """Transactions on a PostgreSQL database through an asyncpg pool."""

    writes_in_turn = False  # many connections, of many processes, at the same time

    def __init__(self, dsn: str, *, pool_size: int, listen: bool = True) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._listen = listen
        self._queries = compile_queries("postgres")
        self._pool: Any = None
        self._closing: Any = None  # the pool `close` is closing, until it is closed
        self._listener: asyncio.Task[None] | None = None
        self._notifier = Notifier(self._notify)
        self._sender = secrets.token_hex(8)  # names this process's NOTIFYs

    async def open(self, wake: Callable[[], None]) -> None:
        """Create the pool (raises StoreUnavailable when the server cannot be reached)
        and start listening for work other processes create (`wake` is called then)."""
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                timeout=CONNECT_TIMEOUT_SECONDS,
                command_timeout=COMMAND_TIMEOUT_SECONDS,
            )
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            raise translate(exc) from exc
        self._notifier.start()
        if self._listen:
            self._listener = asyncio.create_task(
                listen_forever(self._dsn, wake, self._sender), name="orderhooks-pg-listen"
            )

    async def close(self) -> None:
        """Stop listening and close the pool (running transactions finish first)."""
        await self._notifier.stop()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            self._closing = pool  # for `abort`, while the close waits on the server
            try:
                with contextlib.suppress(*CONNECTION_ERRORS, asyncpg.PostgresError):
                    await asyncio.wait_for(pool.close(), COMMAND_TIMEOUT_SECONDS)
            finally:
                self._closing = None

    def abort(self) -> None:
        """Drop the pool's connections at once: a `close` waiting on a server that does
        not answer (for up to COMMAND_TIMEOUT_SECONDS) returns now, whether it has begun
        closing the pool or not, and so does a cancelled transaction whose connection
        waits to hear that the server got the cancel."""
        if self._listener is not None:
            self._listener.cancel()
        for pool in (self._pool, self._closing):
            if pool is not None:
                pool.terminate()

    async def migrate(self) -> list[str]:
        """Apply the migrations not applied yet, under a session advisory lock so that
        concurrent `migrate` runs in other processes wait and then find nothing to do."""
        pool = self._require_pool()
        try:
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as conn:
                tx = PgTx(conn, self._queries)
                await tx.fetchval("lock_migrations")
                try:
                    return await self._apply_migrations(conn, tx)
                finally:
                    await tx.fetchval("unlock_migrations")
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            raise translate(exc) from exc

    async def _apply_migrations(self, conn: Any, tx: PgTx) -> list[str]:
        async def step(name: str, script: str) -> None:
            started = time.monotonic()
            for tries in itertools.count(1):
                try:
                    async with conn.transaction():
                        await tx.fetchval(
                            "migration_lock_timeout", lock_timeout=f"{MIGRATION_LOCK_TIMEOUT_MS}ms"
                        )
                        await conn.execute(script, timeout=MIGRATION_SCRIPT_TIMEOUT_SECONDS)
                        await record_migration(tx, name)
                    return
                except asyncpg.LockNotAvailableError:
                    waited = time.monotonic() - started
                    if waited >= MIGRATION_GIVE_UP_SECONDS:
                        raise StoreUnavailable(
                            f"migration {name} could not lock its tables in {waited:.0f} s "
                            f"({tries} tries): a long transaction holds them "
                            "(see pg_stat_activity)"
                        ) from None
                    pause = MIGRATION_RETRY_SECONDS[min(tries, len(MIGRATION_RETRY_SECONDS)) - 1]
                    log.warning(
                        "migration waits for a table lock held by another transaction",
                        migration=name,
                        tries=tries,
                        retry_in_s=pause,
                    )
                    await asyncio.sleep(pause)

        return await apply_migrations(tx, "postgres", step)

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the server answers within PING_TIMEOUT_SECONDS,
        all told (docs/operations.md, "Health checks"). A connection whose query got no
        answer is dropped, not given back: giving it back waited for asyncpg to cancel
        the query on the server that does not answer, as long again."""
        pool = self._require_pool()
        deadline = time.monotonic() + PING_TIMEOUT_SECONDS
        try:
            conn = await pool.acquire(timeout=PING_TIMEOUT_SECONDS)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(f"PostgreSQL is unavailable: {exc}") from exc
        try:
            left = max(deadline - time.monotonic(), MIN_PING_SECONDS)
            await conn.fetchval(self._queries["ping"].sql, timeout=left)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            if isinstance(exc, TimeoutError):
                conn.terminate()
            raise StoreUnavailable(f"PostgreSQL is unavailable: {exc}") from exc
        finally:
            await pool.release(conn)

    def _require_pool(self) -> Any:
        if self._pool is None:
            raise StoreUnavailable("the PostgreSQL store is not open")
        return self._pool

    async def write(self, job: Job[T], *, durable: bool) -> T:
        """Run `job` in one read-committed transaction (again after a deadlock or a
        lost race)."""
        return await self._run(job, readonly=False, durable=durable)

    async def read(self, job: Job[T]) -> T:
        """Run `job` in one read-only repeatable-read transaction."""
        return await self._run(job, readonly=True)

    def work_created(self) -> None:
        """NOTIFY the workers of the other processes, soon and coalesced."""
        self._notifier.request()

    async def _notify(self) -> None:
        pool = self._require_pool()
        query = self._queries["notify_work"]
        async with pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as conn:
            await conn.execute(query.sql, *query.bind({"sender": self._sender}))

    async def _run(self, job: Job[T], *, readonly: bool, durable: bool = True) -> T:
        """Run a job in one transaction, again when PostgreSQL rolled it back for a
        deadlock or a lost race, or when the connection broke before the commit began
        (a stale pooled connection after a server restart)."""
        for run in range(1, MAX_TRANSACTION_RUNS + 1):
            try:
                return await self._once(job, readonly=readonly, durable=durable)
            except _BeforeCommit as failure:
                cause = failure.__cause__
                assert cause is not None
                if not is_retryable(cause) or run == MAX_TRANSACTION_RUNS:
                    raise translate(cause) from cause
            except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
                raise translate(exc) from exc
        raise AssertionError("unreachable")

    async def _once(self, job: Job[T], *, readonly: bool, durable: bool = True) -> T:
        pool = self._require_pool()
        conn = await pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS)
        try:
            return await self._transaction(conn, job, readonly=readonly, durable=durable)
        finally:
            # Once committed, the outcome stands: a connection that breaks while going
            # back to the pool must not turn a stored ingest into an error (the client
            # would post it again).
            try:
                await pool.release(conn)
            except (*CONNECTION_ERRORS, asyncpg.PostgresError):
                # asyncpg terminated the connection already when its reset failed, and
                # the proxy then refuses every call: a second terminate would raise.
                with contextlib.suppress(*CONNECTION_ERRORS):
                    conn.terminate()

    async def _transaction(
        self, conn: asyncpg.Connection, job: Job[T], *, readonly: bool, durable: bool = True
    ) -> T:
        isolation = "repeatable_read" if readonly else "read_committed"
        transaction = conn.transaction(isolation=isolation, readonly=readonly)
        try:
            await transaction.start()
            if not durable and not readonly:
                # Claims and outcomes: PostgreSQL flushes them within wal_writer_delay, and
                # any later synchronous commit (an ingest) flushes them first.
                await conn.execute(self._queries["relaxed_commit"].sql)
            tx = PgTx(conn, self._queries)
            result = await job(tx)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            with contextlib.suppress(*CONNECTION_ERRORS, asyncpg.PostgresError):
                await transaction.rollback()
            raise _BeforeCommit from exc
        except BaseException:
            with contextlib.suppress(*CONNECTION_ERRORS, asyncpg.PostgresError):
                await transaction.rollback()
            raise
        # A failure from here on leaves the outcome unknown: never run it again.
        await transaction.commit()
        return result


class PostgresStore(Store):
    """The Store on a PostgreSQL database."""

    def __init__(
        self, dsn: str, *, pool_size: int, listen: bool = True, **options: Unpack[StoreOptions]
    ) -> None:
        super().__init__(PostgresEngine(dsn, pool_size=pool_size, listen=listen), **options)


class _BeforeCommit(Exception):
    """The transaction failed before its commit began; `__cause__` says why."""
