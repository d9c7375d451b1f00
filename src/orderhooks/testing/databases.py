"""Fresh PostgreSQL databases for the tests and the benchmark: made and dropped over an
admin connection of their own, on the server that the caller's admin URL names."""

from __future__ import annotations

import uuid

import asyncpg

ADMIN_CONNECT_TIMEOUT_SECONDS = 5


async def admin_execute(admin_url: str, statement: str) -> None:
    """Run one statement as the admin user, on a connection of its own and outside any
    transaction (CREATE DATABASE cannot run in one)."""
    connection = await asyncpg.connect(admin_url, timeout=ADMIN_CONNECT_TIMEOUT_SECONDS)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def create_database(admin_url: str, prefix: str) -> str:
    """A new, empty database named `prefix` and 12 random hex digits; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    # The name is generated here from hex digits only; identifiers cannot be bound.
    await admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


async def drop_database(admin_url: str, url: str) -> None:
    """Drop a database made by `create_database`, cutting its connections."""
    name = url.rsplit("/", 1)[-1]
    await admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
