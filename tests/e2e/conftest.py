"""Fixtures of the end-to-end suites: one real server per module, receivers per test.

A module sets `SERVER_ENV` (a dict of `ORDERHOOKS_*` variables) to configure its
server; tests sharing it use their own accounts and webhooks, so they never interfere.
`broker` runs a test once on a NATS stream and once on a RabbitMQ queue.
When a test fails, the end of the server's log is attached to the report.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.e2e.brokers import Broker, nats_stream, rabbit_queue
from tests.support.api import Api, admin_api
from tests.support.data import unique
from tests.support.processes import log_tails_on_failure

LOG_TAIL_ON_FAILURE_CHARS = 6000


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The real server process for this module, killed by pid at teardown."""
    env: dict[str, str] = getattr(request.module, "SERVER_ENV", {})
    base = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    process = ServerProcess(base / "data", log_path=base / "server.log", env=env)
    with process:
        yield process


@pytest.fixture()
def server_up(server: ServerProcess) -> Iterator[None]:
    """For modules whose tests kill the server (`pytestmark = usefixtures("server_up")`):
    each test starts, and leaves, the module's server running, whatever the last did."""
    if not server.running:
        server.start()
    yield
    if not server.running:
        server.start()


@pytest.fixture()
async def api(server: ServerProcess) -> AsyncIterator[Api]:
    """An admin API client of the module's server."""
    async with admin_api(server) as api:
        yield api


@pytest.fixture()
def pg_server(pg_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """`orderhooks serve` of the test's own, on a fresh PostgreSQL database."""
    env = {"ORDERHOOKS_DATABASE_URL": pg_url}
    with ServerProcess(tmp_path / "data", log_path=tmp_path / "serve.log", env=env) as server:
        yield server


@pytest.fixture()
async def rx() -> AsyncIterator[Receiver]:
    """A receiver answering 200 until told otherwise."""
    async with Receiver() as receiver:
        yield receiver


@pytest.fixture()
def account() -> str:
    """An account no other test uses."""
    return unique("acct")


@pytest.fixture(params=["nats", "rabbitmq"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    """A JetStream stream or a RabbitMQ queue of the test's own, for the tests every broker
    source passes alike."""
    async with nats_stream() if request.param == "nats" else rabbit_queue() as target:
        yield target


# The tail of the server log, in a failed test's report.
pytest_runtest_makereport = log_tails_on_failure(
    "server",
    ServerProcess,
    lambda process: [("server log (tail)", process.log_tail(LOG_TAIL_ON_FAILURE_CHARS))],
)
