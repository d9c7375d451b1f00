"""The embedded engine: one SQLite file, WAL, one writer thread with group commit."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from orderhooks.domain import ids
from orderhooks.domain.ids import IdFactory
from orderhooks.exceptions import StoreError, StoreUnavailable
from orderhooks.store.shared.codec import micros
from orderhooks.store.shared.sqlstore import SqlStore
from orderhooks.store.shared.tx import Job, Tx
from orderhooks.store.sql import load_migrations, load_queries
from orderhooks.store.sqlite_io import READER_THREADS, Readers, SQLiteTx, Writer

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


class SQLiteStore(SqlStore):
    """The Store on one SQLite file."""

    def __init__(
        self,
        path: Path,
        *,
        require_agreement: bool,
        disable_after_seconds: int,
        reader_threads: int = READER_THREADS,
        new_id: IdFactory = ids.new_id,
    ) -> None:
        super().__init__(
            require_agreement=require_agreement,
            disable_after_seconds=disable_after_seconds,
            new_id=new_id,
        )
        self.path = path
        self._queries = load_queries("sqlite")
        self._reader_threads = reader_threads
        self._writer: Writer | None = None
        self._readers: Readers | None = None

    async def open(self) -> None:
        """Create the file if needed and start the writer and reader threads."""
        self._work = asyncio.Event()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = Writer(self.path, self._queries)
        await asyncio.to_thread(writer.start)
        self._writer = writer
        self._readers = Readers(self.path, self._queries, self._reader_threads)

    async def close(self) -> None:
        """Commit queued writes, then stop the threads and close the connections."""
        writer, readers = self._writer, self._readers
        self._writer = self._readers = None
        if readers is not None:
            await asyncio.to_thread(readers.close)
        if writer is not None:
            await asyncio.to_thread(writer.stop)

    async def migrate(self) -> list[str]:
        """Apply the migrations not applied yet, in one transaction."""

        async def job(tx: Tx) -> list[str]:
            assert isinstance(tx, SQLiteTx)
            await tx.execute("create_migrations_table")
            done = {row["name"] for row in await tx.fetch("applied_migrations")}
            applied = []
            for name, script in load_migrations("sqlite"):
                if name in done:
                    continue
                for statement in migration_statements(script):
                    tx.connection.execute(statement)
                await tx.execute("insert_migration", name, micros(datetime.now(UTC)))
                applied.append(name)
            return applied

        return await self._write(job)

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the file answers a query."""
        try:
            await self._read(lambda tx: tx.fetchval("ping"))
        except StoreError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def _write(self, job: Job[T], *, wake: bool = False, durable: bool = True) -> T:
        if self._writer is None:
            raise StoreUnavailable("the SQLite store is not open")
        result = await self._writer.submit(job, durable=durable)
        if wake:
            self._wake_workers()
        return result

    async def _read(self, job: Job[T]) -> T:
        if self._readers is None:
            raise StoreUnavailable("the SQLite store is not open")
        return await self._readers.run(job)
