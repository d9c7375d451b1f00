"""Applying an engine's migrations (`store/sql/NNNN_name.sql` and
`store/sql/<engine>/NNNN_name.sql`) in order, each once, recorded in `schema_migrations`.
How a script runs is the engine's business."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from orderhooks.store.shared.tx import Tx
from orderhooks.store.shared.values import micros
from orderhooks.store.sql import load_migrations

# Runs one migration script (name, SQL) and records it with `record_migration`.
Step = Callable[[str, str], Awaitable[None]]


async def apply_migrations(tx: Tx, engine: str, step: Step) -> list[str]:
    """Run `step` for every migration of `engine` not applied yet, in order; returns
    their names."""
    await tx.execute("create_migrations_table")
    done = {row["name"] for row in await tx.fetch("applied_migrations")}
    pending = [(name, script) for name, script in load_migrations(engine) if name not in done]
    for name, script in pending:
        await step(name, script)
    return [name for name, _ in pending]


async def record_migration(tx: Tx, name: str) -> None:
    """Record that migration `name` is applied."""
    await tx.execute("insert_migration", name=name, applied_at=micros(datetime.now(UTC)))
