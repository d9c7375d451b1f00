"""Fresh PostgreSQL databases on the shared test server, made and dropped on a connection
of their own."""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg

PG_ADMIN_DSN = os.environ.get("ORDERHOOKS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def create_database(prefix: str = "oh_test") -> str:
    """A new, empty database; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    return f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"


async def drop_database(url: str) -> None:
    """Drop a database made by `create_database`, cutting its connections."""
    name = url.rsplit("/", 1)[-1]
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def admin_sql(sql: str) -> None:
    """Run one statement as the admin user, from synchronous code (fixtures)."""
    asyncio.run(_admin(sql))
