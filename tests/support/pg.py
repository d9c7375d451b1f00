"""Fresh PostgreSQL databases on the shared test server (`orderhooks.testing.databases`
on the server `ORDERHOOKS_TEST_PG` names)."""

from __future__ import annotations

import asyncio
import os

from orderhooks.testing import databases

PG_ADMIN_DSN = os.environ.get("ORDERHOOKS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


async def create_database(prefix: str = "oh_test") -> str:
    """A new, empty database; its URL."""
    return await databases.create_database(PG_ADMIN_DSN, prefix)


async def drop_database(url: str) -> None:
    """Drop a database made by `create_database`, cutting its connections."""
    await databases.drop_database(PG_ADMIN_DSN, url)


def admin_sql(sql: str) -> None:
    """Run one statement as the admin user, from synchronous code (fixtures)."""
    asyncio.run(databases.admin_execute(PG_ADMIN_DSN, sql))
