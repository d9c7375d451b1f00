"""The seam between the engine-neutral store logic and an engine: a transaction that runs
named queries.

Each engine keeps its SQL in `store/sql/<engine>/queries.sql` under the same names, with
the same positional parameters (`?1` on SQLite, `$1` on PostgreSQL), so the logic in
`store.shared` is written once. Values are always bound parameters, never formatted in.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Protocol, TypeVar

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

    async def fetch(self, query: str, *args: object) -> list[Row]:
        """All rows of the named query."""
        ...

    async def fetchrow(self, query: str, *args: object) -> Row | None:
        """The first row of the named query, if any."""
        ...

    async def fetchval(self, query: str, *args: object) -> Any:
        """The first column of the first row, or None."""
        ...

    async def execute(self, query: str, *args: object) -> int:
        """Run the named statement; returns the rows it changed."""
        ...

    async def executemany(self, query: str, rows: Sequence[Sequence[object]]) -> None:
        """Run the named statement once per parameter row."""
        ...

    def array(self, values: Iterable[object]) -> object:
        """The engine's form of a list parameter (JSON text on SQLite, an array on
        PostgreSQL)."""
        ...


# A unit of work run inside one transaction; the engine owns begin and commit.
Job = Callable[[Tx], Coroutine[Any, Any, T]]
