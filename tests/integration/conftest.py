"""Fixtures of the integration tests.

`api`: the real app in this process on a fresh SQLite file (integration/api_support.py),
with the settings a module sets in `API_SETTINGS` (a dict of `Settings` fields);
`api_on_each_engine`: the same app once on SQLite and once on a fresh PostgreSQL database.
`spawn`: starts `python -m orderhooks ...` processes (integration/cli_support.py), every
one of them killed by pid at the end of the test.
`engine_url`, `make_store`, `store`: the store tests' stores, on SQLite and on PostgreSQL
(integration/store_support.py); a module may define its own `store`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from orderhooks.store.store import Store
from tests.integration.api_support import LocalApi, running_api
from tests.integration.cli_support import Spawner
from tests.integration.store_support import StoreFactory, build_store


@pytest.fixture()
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LocalApi]:
    """The app on a fresh, migrated SQLite store, with an admin key."""
    async with running_api(tmp_path, **getattr(request.module, "API_SETTINGS", {})) as app:
        yield app


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def api_on_each_engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[LocalApi]:
    """`api`, on a fresh SQLite file and on a fresh PostgreSQL database."""
    settings = dict(getattr(request.module, "API_SETTINGS", {}))
    if request.param == "postgres":
        settings["database_url"] = request.getfixturevalue("pg_url")
    async with running_api(tmp_path, **settings) as app:
        yield app


@pytest.fixture()
def spawn(tmp_path: Path) -> Iterator[Spawner]:
    """Start CLI processes; all are killed at the end of the test."""
    logs = tmp_path / "proc-logs"
    logs.mkdir()
    processes = Spawner(logs)
    try:
        yield processes
    finally:
        processes.kill_all()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the store under test lives: a tmp SQLite file or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orderhooks.db'}"
    url: str = request.getfixturevalue("pg_url")  # fails when PostgreSQL is unreachable
    return url


@pytest.fixture()
async def make_store(engine_url: str) -> AsyncIterator[StoreFactory]:
    """Open (and migrate) stores on the engine under test; all closed afterwards."""
    opened: list[Store] = []

    async def make(**options: Any) -> Store:
        store = build_store(engine_url, **options)
        await store.open()
        await store.migrate()
        opened.append(store)
        return store

    yield make
    for store in reversed(opened):
        await store.close()


@pytest.fixture()
async def store(make_store: StoreFactory) -> Store:
    """An open, migrated store of the engine under test, without agreement checks."""
    return await make_store()
