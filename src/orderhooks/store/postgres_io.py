"""asyncpg at the edge: the `Tx` of a connection, error translation, the LISTEN loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import asyncpg

from orderhooks.exceptions import Conflict, StorageFull, StoreError, StoreUnavailable
from orderhooks.store.shared.tx import Row
from orderhooks.store.sql import Query

WORK_CHANNEL = "orderhooks_work"
CONNECT_TIMEOUT_SECONDS = 5.0
LISTEN_RETRY_SECONDS = 1.0
LISTEN_CHECK_SECONDS = 10.0  # how often an idle listening connection is checked

# The server is down, restarting or unreachable: the operation may succeed later.
# asyncpg raises InternalClientError ("cannot switch to state ...") when a pooled
# connection is used in the instant after the server cut it, before asyncpg noticed.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
# The connection broke: a transaction that had not begun to commit may run again on a
# fresh one (a pooled connection goes stale when the server restarts). Not timeouts.
BROKEN_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
# The server rolled the transaction back to keep it correct; running it again is safe.
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
)
# The primary key that two concurrent ingests of one new order race for.
ORDER_KEY_CONSTRAINT = "orders_pkey"


def is_retryable(exc: BaseException) -> bool:
    """Whether a transaction that failed before its commit may simply run again."""
    if isinstance(exc, (*RETRYABLE_ERRORS, *BROKEN_CONNECTION_ERRORS)):
        return True
    return (
        isinstance(exc, asyncpg.UniqueViolationError)
        and getattr(exc, "constraint_name", None) == ORDER_KEY_CONSTRAINT
    )


def translate(exc: BaseException) -> Exception:
    """The orderhooks error for an asyncpg or socket error."""
    if isinstance(exc, asyncpg.DiskFullError):  # SQLSTATE 53100 disk_full
        return StorageFull(f"PostgreSQL cannot write, its disk is full: {exc}")
    if isinstance(exc, CONNECTION_ERRORS):
        return StoreUnavailable(f"PostgreSQL is unavailable: {exc}")
    if isinstance(exc, asyncpg.LockNotAvailableError):  # a lock_timeout ran out
        return StoreUnavailable(f"PostgreSQL could not take a lock in time: {exc}")
    if isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict(f"the change clashes with stored data: {exc}")
    return StoreError(f"PostgreSQL failed: {exc}")


def _affected(status: str) -> int:
    """Rows changed, from a command tag such as `UPDATE 3` or `INSERT 0 1`."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PgTx:
    """The `Tx` of an asyncpg connection inside a transaction: named queries compiled
    to `$n` placeholders, lists as arrays."""

    def __init__(self, conn: Any, queries: Mapping[str, Query]) -> None:
        self.connection = conn
        self._queries = queries

    def _bound(self, query: str, params: Mapping[str, object]) -> tuple[str, tuple[object, ...]]:
        compiled = self._queries[query]
        return compiled.sql, compiled.bind(params)

    async def fetch(self, query: str, /, **params: object) -> list[Row]:
        """All rows of the named query."""
        sql, args = self._bound(query, params)
        rows: list[Row] = await self.connection.fetch(sql, *args)
        return rows

    async def fetchrow(self, query: str, /, **params: object) -> Row | None:
        """The first row of the named query, if any."""
        sql, args = self._bound(query, params)
        row: Row | None = await self.connection.fetchrow(sql, *args)
        return row

    async def fetchval(self, query: str, /, **params: object) -> Any:
        """The first column of the first row, or None."""
        sql, args = self._bound(query, params)
        return await self.connection.fetchval(sql, *args)

    async def execute(self, query: str, /, **params: object) -> int:
        """Run the named statement; returns the rows it changed."""
        sql, args = self._bound(query, params)
        status = await self.connection.execute(sql, *args)
        return _affected(str(status))

    async def executemany(self, query: str, rows: Sequence[Mapping[str, object]]) -> None:
        """Run the named statement once per parameter mapping (pipelined by asyncpg)."""
        if rows:
            compiled = self._queries[query]
            await self.connection.executemany(compiled.sql, [compiled.bind(r) for r in rows])

    def array(self, values: Iterable[object]) -> object:
        """A list parameter: a PostgreSQL array."""
        return list(values)


class Notifier:
    """Sends NOTIFY on the work channel after commits that asked for it, coalesced: while
    one notification is being sent, any number of further requests make one more.

    Outside the transactions on purpose: a NOTIFY inside a transaction serialises its
    commit with every other notifying commit of the cluster, which halves ingest rates.
    """

    def __init__(self, send: Callable[[], Awaitable[None]]) -> None:
        self._send = send
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the sending task."""
        self._task = asyncio.create_task(self._run(), name="orderhooks-pg-notify")

    def request(self) -> None:
        """Ask for a notification soon (after the commit that just happened)."""
        self._wanted.set()

    async def stop(self) -> None:
        """Send what was asked for, then stop."""
        if self._task is None:
            return
        task, self._task = self._task, None
        if self._wanted.is_set():
            await self._send_quietly()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self._send_quietly()

    async def _send_quietly(self) -> None:
        # Best effort: without it other processes' workers still poll on their timeouts.
        with contextlib.suppress(*CONNECTION_ERRORS, asyncpg.PostgresError):
            await self._send()


async def listen_forever(dsn: str, on_notify: Callable[[], None], sender: str) -> None:
    """Keep one connection LISTENing on the work channel, reconnecting whenever it is
    lost; `on_notify` runs for every notification another process sent (not `sender`,
    this one) and after every (re)connect, since notifications sent while nobody
    listened are lost."""
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_SECONDS)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError):
            await asyncio.sleep(LISTEN_RETRY_SECONDS)
            continue
        try:
            await _listen(conn, on_notify, sender)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError):
            pass
        finally:
            with contextlib.suppress(*CONNECTION_ERRORS, asyncpg.PostgresError):
                await asyncio.wait_for(conn.close(), CONNECT_TIMEOUT_SECONDS)
        await asyncio.sleep(LISTEN_RETRY_SECONDS)


async def _listen(conn: Any, on_notify: Callable[[], None], sender: str) -> None:
    lost = asyncio.Event()
    conn.add_termination_listener(lambda _conn: lost.set())

    def notified(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload != sender:
            on_notify()

    await conn.add_listener(WORK_CHANNEL, notified)
    on_notify()
    while not conn.is_closed():
        try:
            await asyncio.wait_for(lost.wait(), LISTEN_CHECK_SECONDS)
            return
        except TimeoutError:
            # A silent network failure closes nothing: ask the server now and then.
            await conn.fetchval("SELECT 1", timeout=CONNECT_TIMEOUT_SECONDS)
