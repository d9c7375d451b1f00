"""What every test folder shares: fresh PostgreSQL databases, and the `postgres` marker on
every test that uses one (so that `make check` can leave them out); a server's database
on either engine."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import pytest

from tests.support.pg import PG_ADMIN_DSN, create_database, drop_database


def _run_apart(coroutine: Coroutine[Any, Any, Any]) -> Any:
    # A thread of its own: async tests use pg_url while their loop is running.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture()
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards.

    Fails (never skips) when the server cannot be reached: the PostgreSQL engine is
    part of the product and CI must not pass without it. Fails too when the test lacks
    the `postgres` marker (a parameter that reaches this fixture through
    `request.getfixturevalue` must carry it), so `-m "not postgres"` leaves out every
    test that needs the server.
    """
    if request.node.get_closest_marker("postgres") is None:
        pytest.fail(f"{request.node.nodeid} uses PostgreSQL without the `postgres` marker")
    try:
        url: str = _run_apart(create_database())
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_DSN}: {exc}")
    yield url
    _run_apart(drop_database(url))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment choosing a server's database: SQLite in its data dir (nothing set),
    or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return {}
    return {"ORDERHOOKS_DATABASE_URL": request.getfixturevalue("pg_url")}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a PostgreSQL database (directly or through a fixture) as
    `postgres`, so the marker never depends on someone remembering it."""
    for item in items:
        if "pg_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
