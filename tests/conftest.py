"""Fixtures shared by every test folder: temporary SQLite files and fresh PostgreSQL databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

PG_ADMIN_DSN = os.environ.get("ORDERHOOKS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture()
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards.

    Fails (never skips) when the server cannot be reached: the PostgreSQL engine is
    part of the product and CI must not pass without it.
    """
    import asyncio

    import asyncpg

    name = f"oh_test_{uuid.uuid4().hex[:12]}"

    async def run_admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def admin(sql: str) -> None:
        # A thread of its own: async tests use this fixture while their loop is running.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, run_admin(sql)).result()

    try:
        admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_DSN}: {exc}")
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
