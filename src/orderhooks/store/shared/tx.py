"""The seam between the store and an engine: a transaction that runs named queries, and
the engine that runs jobs in transactions.

Each query is named and has named parameters (`:name`, see `store.sql`), passed as
keywords: `await tx.fetchrow("webhook_by_id", id=webhook_id)`. Values are always bound,
never formatted in. The store's operations are written once against `Tx`; an engine
only provides transactions (`Engine`) and its SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from orderhooks.store.shared.values import unstorable

T = TypeVar("T")


class Row(Protocol):
    """A result row: columns by name (sqlite3.Row and asyncpg.Record both qualify)."""

    def __getitem__(self, key: str, /) -> Any: ...


class Tx(Protocol):
    """One open transaction of an engine.

    The SQLite engine runs these coroutines on its writer or reader thread and they never
    suspend; the PostgreSQL engine awaits asyncpg. Logic written against this protocol
    must await nothing else, so that both can drive it.
    """

    async def fetch(self, query: str, /, **params: object) -> list[Row]:
        """All rows of the named query."""
        ...

    async def fetchrow(self, query: str, /, **params: object) -> Row | None:
        """The first row of the named query, if any."""
        ...

    async def fetchval(self, query: str, /, **params: object) -> Any:
        """The first column of the first row, or None."""
        ...

    async def execute(self, query: str, /, **params: object) -> int:
        """Run the named statement; returns the rows it changed."""
        ...

    async def executemany(self, query: str, rows: Sequence[Mapping[str, object]]) -> None:
        """Run the named statement once per parameter mapping."""
        ...

    def array(self, values: Iterable[object]) -> object:
        """The engine's form of a list parameter (JSON text on SQLite, an array on
        PostgreSQL)."""
        ...


async def lookup(tx: Tx, query: str, /, **key: object) -> Row | None:
    """The row the named query finds by `key`; None without asking the engine when a key
    value is `unstorable` (no stored row can have it)."""
    if unstorable(*key.values()):
        return None
    return await tx.fetchrow(query, **key)


# A unit of work run inside one transaction; the engine owns begin and commit.
Job = Callable[[Tx], Coroutine[Any, Any, T]]


class Engine(Protocol):
    """What a database engine gives the store: connections and transactions."""

    # Whether this process's write transactions run one after another on one connection
    # (SQLite's writer thread): then one more statement in a transaction costs less than
    # one more transaction, and holding a lock longer delays no other writer.
    writes_in_turn: bool

    async def open(self, wake: Callable[[], None]) -> None:
        """Connect; `wake` is called when another process created work (if the engine
        can tell)."""
        ...

    async def close(self) -> None:
        """Release connections; pending writes are committed first."""
        ...

    def abort(self) -> None:
        """Stop waiting on the database server: a `close` in progress returns without
        closing its connections gracefully, and so do cancelled transactions (a second
        signal; a no-op where nothing waits on a remote server)."""
        ...

    async def migrate(self) -> list[str]:
        """Apply the migrations not applied yet; returns the names applied."""
        ...

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""
        ...

    async def write(self, job: Job[T], *, durable: bool) -> T:
        """Run `job` in one write transaction, committed when this returns; on disk too
        unless `durable` is False (delivery bookkeeping: on disk no later than the next
        durable commit or a short bound)."""
        ...

    async def read(self, job: Job[T]) -> T:
        """Run `job` in one read-only transaction that sees one snapshot."""
        ...

    def work_created(self) -> None:
        """Tell the workers of other processes that a commit created work."""
        ...
