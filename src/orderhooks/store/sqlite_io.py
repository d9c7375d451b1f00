"""The threads that own SQLite connections: one writer with group commit, a few readers.

One writer thread owns the only write connection. Requests queue their jobs; the writer
runs whatever is queued in one transaction (each job inside its own savepoint, so one
job's failure rolls back that job only) and commits once: with `synchronous=FULL` that
commit is one fsync for the whole group, and no job is answered before it is on disk.
Readers run on their own connections (WAL), so they never wait behind the writer.

Delivery bookkeeping (claims and outcomes) is submitted with `durable=False`: it commits
ahead of the durable jobs queued with it, in a group of its own (`bookkeeping_first`),
with `synchronous=NORMAL`, without its own fsync. The WAL is
written in order, so the next durable commit (an ingest) syncs those frames too, and the
writer syncs on its own once they have waited `MAX_UNSYNCED_SECONDS`. A crash can lose
only that short tail, which at-least-once delivery allows (docs/guarantees.md): a lost lease puts
its deliveries back in `pending`, a lost outcome sends its delivery again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from orderhooks.exceptions import Conflict, StorageFull, StoreError, StoreUnavailable
from orderhooks.store.shared.tx import Job, Row
from orderhooks.store.sql import Query

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000  # other processes (the CLI's `keys` command) may hold the lock
MAX_GROUP_JOBS = 512  # jobs per group commit; a bound on how long one transaction runs
READER_THREADS = 4
WRITER_THREAD_NAME = "orderhooks-sqlite-writer"
# The page size of a new file. An order document (2-3 KiB) is stored twice per event (the
# order, the event's data): on 4 KiB pages most such rows take a page of their own, on
# 8 KiB pages two or three share one, so a group commit writes fewer and fuller pages to
# the WAL and again at the checkpoint (docs/benchmarks.md, "Fourth round: the SQLite
# writer": about a fifth fewer bytes and half the write calls per event). An existing
# file keeps its page size: SQLite changes it only by VACUUM outside WAL mode.
PAGE_SIZE = 8192
# How long committed delivery bookkeeping may stay out of the fsynced WAL (see above).
MAX_UNSYNCED_SECONDS = 0.2


def connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    """A connection with the pragmas every orderhooks connection needs."""
    conn = sqlite3.connect(
        path,
        isolation_level=None,  # transactions are explicit (BEGIN / COMMIT below)
        check_same_thread=False,  # used by one thread at a time; closed by another
        timeout=BUSY_TIMEOUT_MS / 1000,
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    else:
        # Before anything is written (a no-op on an existing file): see PAGE_SIZE.
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE:d}")
        conn.execute("PRAGMA journal_mode = WAL")
        # Freed and overwritten content is zeroed, not left in free pages: a copy of
        # the file must not hold values that were replaced (secrets before sealing).
        conn.execute("PRAGMA secure_delete = ON")
        # FULL: the WAL is fsynced at every commit, so an acknowledged ingest survives
        # a power loss, not only a crash of the process.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA cache_size = -65536")
    return conn


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a store job on this thread: it awaits only SQLiteTx calls, which never
    suspend, so one `send` runs it to the end."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a store job awaited something other than the SQLite transaction")


SQLITE_FULL = 13  # the primary result code: "database or disk is full"
# "database is locked": another connection (a `sqlite3` shell, a CLI command) held the
# file's lock for longer than the busy timeout.
SQLITE_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
PRIMARY_CODE_MASK = 0xFF  # extended result codes keep the primary one in their low byte


def is_disk_full(exc: BaseException) -> bool:
    """Whether an SQLite or OS error means that the disk is full."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & PRIMARY_CODE_MASK == SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def is_locked(exc: sqlite3.Error) -> bool:
    """Whether an SQLite error means that another connection holds the lock."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & PRIMARY_CODE_MASK in SQLITE_BUSY_CODES


def translate(exc: sqlite3.Error) -> Exception:
    """The orderhooks error for an SQLite error."""
    if isinstance(exc, sqlite3.IntegrityError):
        return Conflict(f"the change clashes with stored data: {exc}")
    if is_disk_full(exc):
        return StorageFull(f"SQLite cannot write, the disk is full: {exc}")
    if is_locked(exc):
        # An outage like an unreachable server: the same request may succeed later.
        return StoreUnavailable(f"SQLite is locked by another connection: {exc}")
    return StoreError(f"SQLite failed: {exc}")


class SQLiteTx:
    """The `Tx` of an SQLite connection: named queries compiled to `?n` placeholders,
    lists as JSON text."""

    def __init__(self, conn: sqlite3.Connection, queries: Mapping[str, Query]) -> None:
        self.connection = conn
        self._queries = queries

    def _run(self, query: str, params: Mapping[str, object]) -> sqlite3.Cursor:
        compiled = self._queries[query]
        return self.connection.execute(compiled.sql, compiled.bind(params))

    async def fetch(self, query: str, /, **params: object) -> list[Row]:
        """All rows of the named query."""
        return self._run(query, params).fetchall()

    async def fetchrow(self, query: str, /, **params: object) -> Row | None:
        """The first row of the named query, if any."""
        row: Row | None = self._run(query, params).fetchone()
        return row

    async def fetchval(self, query: str, /, **params: object) -> Any:
        """The first column of the first row, or None."""
        row = self._run(query, params).fetchone()
        return None if row is None else row[0]

    async def execute(self, query: str, /, **params: object) -> int:
        """Run the named statement; returns the rows it changed."""
        cursor = self._run(query, params)
        # A statement with RETURNING reports its count only once its rows are read.
        cursor.fetchall()
        return max(cursor.rowcount, 0)

    async def executemany(self, query: str, rows: Sequence[Mapping[str, object]]) -> None:
        """Run the named statement once per parameter mapping."""
        if rows:
            compiled = self._queries[query]
            self.connection.executemany(compiled.sql, [compiled.bind(row) for row in rows])

    def array(self, values: Iterable[object]) -> object:
        """A list parameter: JSON text, read in SQL with json_each."""
        return orjson.dumps(list(values)).decode()


@dataclass(slots=True)
class _Queued:
    job: Job[Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    durable: bool = True
    outside: bool = False  # run alone, outside a transaction (VACUUM)


def bookkeeping_first(group: list[_Queued]) -> list[list[_Queued]]:
    """The transactions a group of queued jobs is committed in: the delivery bookkeeping
    (claims and outcomes, the jobs that need no fsync) first and on its own, then the
    rest. So a delivery worker waits for the group being written when its job arrived,
    not for the ingests queued beside it and their fsync as well. Jobs queued together
    were submitted concurrently (none waited for another), so any order is theirs."""
    quick = [item for item in group if not item.durable]
    if not quick or len(quick) == len(group):
        return [group]
    return [quick, [item for item in group if item.durable]]


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the caller gave up waiting; the work is done all the same
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class Writer:
    """The writer thread."""

    def __init__(self, path: Path, queries: Mapping[str, Query]) -> None:
        self._path = path
        self._queries = queries
        self._queue: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=WRITER_THREAD_NAME)
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._unsynced_since: float | None = None  # first commit not fsynced yet
        self._relaxed = False  # whether the connection runs synchronous=NORMAL now
        self._held: _Queued | None = None  # an `outside` job met while forming a group

    def start(self) -> None:
        """Open the write connection on the writer thread; raises if that fails."""
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            self._thread.join()
            folder = self._path.parent
            why = (
                f" ({folder} is not writable: SQLite creates {self._path.name}-wal and"
                f" {self._path.name}-shm beside the database)"
                if not os.access(folder, os.W_OK)
                else ""
            )
            raise StoreError(f"cannot open {self._path}: {self._open_error}{why}")

    def stop(self) -> None:
        """Commit what is queued, then close the connection and end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    async def submit(self, job: Job[T], *, durable: bool = True) -> T:
        """Queue a job; returns its result once its group is committed (and on disk,
        unless `durable` is False: see the module docstring)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Queued(job, loop, future, durable))
        return await future

    async def submit_outside(self, job: Job[T]) -> T:
        """Run a job on the writer's connection alone and outside a transaction (for
        statements SQLite refuses inside one, such as VACUUM); returns its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Queued(job, loop, future, True, outside=True))
        return await future

    def _run(self) -> None:
        try:
            conn = connect(self._path, readonly=False)
        except (sqlite3.Error, OSError) as exc:
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        tx = SQLiteTx(conn, self._queries)
        try:
            stopping = False
            while not stopping:
                first = self._next_job()
                if first is None:
                    break
                if first.outside:
                    self._sync()
                    self._settle_all([first], [self._run_outside(tx, first)])
                    continue
                group = [first]
                while len(group) < MAX_GROUP_JOBS:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stopping = True
                        break
                    if nxt.outside:
                        self._held = nxt
                        break
                    group.append(nxt)
                for part in bookkeeping_first(group):
                    self._commit_group(conn, tx, part)
            if self._held is not None:
                held, self._held = self._held, None
                self._settle_all([held], [self._run_outside(tx, held)])
            self._sync()
        finally:
            conn.close()

    def _next_job(self) -> _Queued | None:
        """The next job; while waiting, sync commits that have waited long enough."""
        if self._held is not None:
            held, self._held = self._held, None
            return held
        while self._unsynced_since is not None:
            left = self._unsynced_since + MAX_UNSYNCED_SECONDS - time.monotonic()
            try:
                return self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                self._sync()
        return self._queue.get()

    def _sync(self) -> None:
        """Put relaxed commits on disk: fsync the WAL file, which holds them in order."""
        if self._unsynced_since is None:
            return
        try:
            fd = os.open(f"{self._path}-wal", os.O_RDONLY)
        except FileNotFoundError:
            self._unsynced_since = None  # checkpointed and removed: nothing left to sync
            return
        except OSError:
            return  # tried again on the next wait; a durable commit syncs it anyway
        try:
            os.fsync(fd)
            self._unsynced_since = None
        except OSError:
            pass
        finally:
            os.close(fd)

    def _set_durability(self, conn: sqlite3.Connection, group: list[_Queued]) -> None:
        now = time.monotonic()
        overdue = (
            self._unsynced_since is not None and now - self._unsynced_since >= MAX_UNSYNCED_SECONDS
        )
        durable = overdue or any(item.durable for item in group)
        if durable == self._relaxed:  # a pragma costs little, but only when it changes
            conn.execute("PRAGMA synchronous = FULL" if durable else "PRAGMA synchronous = NORMAL")
            self._relaxed = not durable
        if durable:
            self._unsynced_since = None
        elif self._unsynced_since is None:
            self._unsynced_since = now

    def _commit_group(self, conn: sqlite3.Connection, tx: SQLiteTx, group: list[_Queued]) -> None:
        results: list[tuple[bool, Any]] = []
        try:
            self._set_durability(conn, group)
            conn.execute("BEGIN IMMEDIATE")
            for item in group:
                results.append(self._run_job(conn, tx, item))
            conn.execute("COMMIT")
        except Exception as exc:
            # A failed group (disk full, I/O error) is rolled back and reported to every
            # job in it; the thread lives on and serves the next group, so writes resume
            # by themselves once the cause is gone.
            self._roll_back(conn)
            error = translate(exc) if isinstance(exc, sqlite3.Error) else _unexpected(exc)
            results = [(False, error)] * len(group)
        self._settle_all(group, results)

    @staticmethod
    def _settle_all(group: list[_Queued], results: list[tuple[bool, Any]]) -> None:
        for item, (ok, value) in zip(group, results, strict=True):
            # RuntimeError: the caller's event loop is closed, nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                item.loop.call_soon_threadsafe(_settle, item.future, ok, value)

    @staticmethod
    def _roll_back(conn: sqlite3.Connection) -> None:
        """Roll the open transaction back, if any. SQLite may have rolled it back itself
        (its answer to SQLITE_FULL or an I/O error), and then ROLLBACK fails harmlessly."""
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    @staticmethod
    def _run_outside(tx: SQLiteTx, item: _Queued) -> tuple[bool, Any]:
        try:
            return True, run_sync(item.job(tx))
        except sqlite3.Error as exc:
            return False, translate(exc)
        except Exception as exc:
            return False, exc

    @staticmethod
    def _run_job(conn: sqlite3.Connection, tx: SQLiteTx, item: _Queued) -> tuple[bool, Any]:
        conn.execute("SAVEPOINT job")
        try:
            value = run_sync(item.job(tx))
        except Exception as exc:
            try:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
            except sqlite3.Error:
                # The error broke the whole transaction (disk full, I/O error): the group
                # fails as one, for the job's own reason rather than the savepoint's.
                raise exc from None
            return False, translate(exc) if isinstance(exc, sqlite3.Error) else exc
        conn.execute("RELEASE job")
        return True, value


def _unexpected(exc: Exception) -> Exception:
    if is_disk_full(exc):
        return StorageFull(f"SQLite cannot write, the disk is full: {exc}")
    return StoreError(f"the SQLite writer failed: {type(exc).__name__}: {exc}")


class Readers:
    """A few reader threads, each with its own read-only connection."""

    def __init__(self, path: Path, queries: Mapping[str, Query], threads: int = READER_THREADS):
        self._path = path
        self._queries = queries
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="orderhooks-sqlite-read")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    async def run(self, job: Job[T]) -> T:
        """Run a read job in one read transaction (one snapshot) on a reader thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, job)

    def close(self) -> None:
        """Wait for running reads, then close every reader connection."""
        self._executor.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    def _connection(self) -> SQLiteTx:
        tx: SQLiteTx | None = getattr(self._local, "tx", None)
        if tx is None:
            conn = connect(self._path, readonly=True)
            with self._lock:
                self._connections.append(conn)
            tx = SQLiteTx(conn, self._queries)
            self._local.tx = tx
        return tx

    def _run(self, job: Job[T]) -> T:
        try:
            tx = self._connection()
            tx.connection.execute("BEGIN")
            try:
                return run_sync(job(tx))
            finally:
                tx.connection.execute("COMMIT")
        except sqlite3.Error as exc:
            raise translate(exc) from exc
