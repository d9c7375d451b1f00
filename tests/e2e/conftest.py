"""Fixtures of the end-to-end suites: one real server per module, receivers per test.

A module sets `SERVER_ENV` (a dict of `ORDERHOOKS_*` variables) to configure its
server; tests sharing it use their own accounts and webhooks, so they never interfere.
When a test fails, the end of the server's log is attached to the report.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import pytest

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.support.api import Api
from tests.support.data import unique

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
    async with server.async_client() as client:
        yield Api(client, server.admin_key)


@pytest.fixture()
async def rx() -> AsyncIterator[Receiver]:
    """A receiver answering 200 until told otherwise."""
    async with Receiver() as receiver:
        yield receiver


@pytest.fixture()
def account() -> str:
    """An account no other test uses."""
    return unique("acct")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Attach the tail of the server log to a failed test's report."""
    outcome = yield
    report = outcome.get_result()
    process = getattr(item, "funcargs", {}).get("server")
    if report.failed and isinstance(process, ServerProcess):
        report.sections.append(("server log (tail)", process.log_tail(LOG_TAIL_ON_FAILURE_CHARS)))
