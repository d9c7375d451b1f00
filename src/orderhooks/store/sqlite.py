"""The embedded engine: one SQLite file, WAL, one writer thread with group commit."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, Unpack

from orderhooks.exceptions import StoreError, StoreUnavailable
from orderhooks.private_files import create_private_file, make_private_dir
from orderhooks.store.shared.core import StoreOptions
from orderhooks.store.shared.migrations import apply_migrations, record_migration
from orderhooks.store.shared.tx import Job, Tx
from orderhooks.store.sql import compile_queries
from orderhooks.store.sqlite_io import READER_THREADS, Readers, SQLiteTx, Writer
from orderhooks.store.store import Store

T = TypeVar("T")


def sqlite_path(url: str) -> Path:
    """The file of a `sqlite:///path` URL (`sqlite:////abs/path` or `sqlite:///rel/path`)."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not an SQLite URL: {url!r}")
    return Path(url.removeprefix("sqlite:///"))


def migration_statements(script: str) -> list[str]:
    """The statements of a migration script, split where SQLite says one is complete."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        if not pending and (not line.strip() or line.lstrip().startswith("--")):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise StoreError("a migration ends in the middle of a statement")
    return statements


class SQLiteEngine:
    """Transactions on one SQLite file: writes on the writer thread, reads on readers."""

    writes_in_turn = True

    def __init__(self, path: Path, reader_threads: int = READER_THREADS) -> None:
        self.path = path
        self._queries = compile_queries("sqlite")
        self._reader_threads = reader_threads
        self.writer: Writer | None = None
        self._readers: Readers | None = None

    async def open(self, wake: Callable[[], None]) -> None:
        """Create the file if needed (0600 in a 0700 folder: it holds the secrets; SQLite
        gives its -wal and -shm the file's mode) and start the writer and reader threads.
        (Only this process writes work to the file: nothing else to listen to.)"""
        try:
            make_private_dir(self.path.parent)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of {self.path}: {exc.strerror}") from None
        try:
            create_private_file(self.path)
        except OSError as exc:
            folder = self.path.parent
            why = "" if os.access(folder, os.W_OK) else f" ({folder} is not writable)"
            raise StoreError(f"cannot create {self.path}: {exc.strerror}{why}") from None
        writer = Writer(self.path, self._queries)
        await asyncio.to_thread(writer.start)
        self.writer = writer
        self._readers = Readers(self.path, self._queries, self._reader_threads)

    async def close(self) -> None:
        """Commit queued writes, then stop the threads and close the connections."""
        writer, readers = self.writer, self._readers
        self.writer = self._readers = None
        if readers is not None:
            await asyncio.to_thread(readers.close)
        if writer is not None:
            await asyncio.to_thread(writer.stop)

    def abort(self) -> None:
        """Nothing to drop: closing waits only for the local file's last commit."""

    async def migrate(self) -> list[str]:
        """Apply the migrations not applied yet, in one transaction."""

        async def job(tx: Tx) -> list[str]:
            assert isinstance(tx, SQLiteTx)

            async def step(name: str, script: str) -> None:
                for statement in migration_statements(script):
                    tx.connection.execute(statement)
                await record_migration(tx, name)

            return await apply_migrations(tx, "sqlite", step)

        return await self.write(job, durable=True)

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the file answers a query."""
        try:
            await self.read(lambda tx: tx.fetchval("ping"))
        except StoreError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def write(self, job: Job[T], *, durable: bool) -> T:
        """Run `job` in the writer's next group commit."""
        if self.writer is None:
            raise StoreUnavailable("the SQLite store is not open")
        return await self.writer.submit(job, durable=durable)

    async def read(self, job: Job[T]) -> T:
        """Run `job` on a reader thread."""
        if self._readers is None:
            raise StoreUnavailable("the SQLite store is not open")
        return await self._readers.run(job)

    def work_created(self) -> None:
        """Nothing to do: the workers of this process were woken by the store."""

    async def compact(self) -> None:
        """Rewrite the file without free pages (VACUUM), then empty the WAL, so that
        content replaced earlier is in neither. Through the writer, outside a
        transaction. StoreError when a reader kept the checkpoint from finishing: the
        file then still holds the old pages."""
        if self.writer is None:
            raise StoreUnavailable("the SQLite store is not open")

        async def job(tx: Tx) -> None:
            assert isinstance(tx, SQLiteTx)
            tx.connection.execute("VACUUM")
            # Waits (busy timeout) for readers of older snapshots; one still reading then
            # keeps the rewritten pages out of the file, which holds the old ones.
            busy = tx.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if busy:
                raise StoreError(
                    "the rewritten database could not be copied into its file: another "
                    "connection kept reading an older snapshot (a long query, a backup, a "
                    "sqlite3 shell), so the file may still hold values as they were before; "
                    "run it again once that reader is done"
                )

        await self.writer.submit_outside(job)


class SQLiteStore(Store):
    """The Store on one SQLite file."""

    def __init__(
        self, path: Path, *, reader_threads: int = READER_THREADS, **options: Unpack[StoreOptions]
    ) -> None:
        self._sqlite = SQLiteEngine(path, reader_threads)
        super().__init__(self._sqlite, **options)
        self.path = path

    async def compact(self) -> None:
        """VACUUM and empty the WAL (see `SQLiteEngine.compact`)."""
        await self._sqlite.compact()
