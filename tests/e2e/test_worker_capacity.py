"""Isolation under a full worker (docs/guarantees.md): webhooks that hold every slot of
`ORDERHOOKS_WORKER_CONCURRENCY` with slow attempts must not delay another webhook, which
gets its own slot. Run on a `serve` of two processes (a sender process does the HTTP),
of one, and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.support.api import Api, admin_api
from tests.support.data import new_order

WORKER_CONCURRENCY = 4
# Far longer than the healthy webhook's wait below: the slow attempts hold their slots
# for all of it.
SLOW_TIMEOUT_SECONDS = 30
WAIT_HEALTHY_SECONDS = 15.0


@pytest.fixture(
    params=[
        "sqlite-2-processes",
        "sqlite-1-process",
        pytest.param("postgres-2-processes", marks=pytest.mark.postgres),
    ]
)
def full_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """`orderhooks serve` with a worker of `WORKER_CONCURRENCY`, on each engine and
    process layout."""
    engine, workers, _ = str(request.param).split("-")
    env = {
        "ORDERHOOKS_WORKERS": workers,
        "ORDERHOOKS_WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
    }
    if engine == "postgres":
        env["ORDERHOOKS_DATABASE_URL"] = request.getfixturevalue("pg_url")
    with ServerProcess(tmp_path / "data", log_path=tmp_path / "serve.log", env=env) as server:
        yield server


@pytest.fixture()
async def full_api(full_server: ServerProcess) -> AsyncIterator[Api]:
    """An admin client of that server."""
    async with admin_api(full_server) as api:
        yield api


async def test_slow_webhooks_filling_the_worker_do_not_delay_another(
    full_api: Api, account: str
) -> None:
    api = full_api
    async with Receiver() as slow, Receiver() as healthy:
        slow.black_hole()
        await api.create_webhook(
            slow.url,
            [account],
            timeoutSeconds=SLOW_TIMEOUT_SECONDS,
            maxConcurrency=WORKER_CONCURRENCY,
        )
        for _ in range(WORKER_CONCURRENCY + 2):
            await api.new_order(new_order(account))
        await slow.wait_for(
            lambda: slow.in_flight == WORKER_CONCURRENCY, what="the worker's slots all taken"
        )
        other = f"{account}-other"
        await api.create_webhook(healthy.url, [other])
        first = await api.new_order(new_order(other))
        await healthy.wait_for_delivered(set(first), timeout=WAIT_HEALTHY_SECONDS)
        # Its own slot is free again once its attempt ended: the next order goes too.
        second = await api.new_order(new_order(other))
        await healthy.wait_for_delivered(set(first + second), timeout=WAIT_HEALTHY_SECONDS)
        assert slow.in_flight == WORKER_CONCURRENCY, "the slow attempts were still in flight"
