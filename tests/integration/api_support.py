"""The harness of the `test_api_*` suites (no tests here): the real app from `create_app`
on a real SQLite file, driven in-process through `httpx.ASGITransport`, or over HTTP
through a real uvicorn server on loopback (`running_api(..., served=True)`).

The `api` fixture of integration/conftest.py runs it with the module's `API_SETTINGS`;
`running_api(tmp_path, ...)` makes one of a test's own (on a store of its own making
with `make_store`). Keys are made through the API itself, so authentication is
exercised exactly as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp

from orderhooks.config import Settings
from orderhooks.delivery.claims import Outcome
from orderhooks.domain.apikeys import generate_api_key, hash_api_key
from orderhooks.domain.ids import new_id
from orderhooks.domain.model import ApiKey, Attempt, AttemptError, DeliveryState, Role
from orderhooks.metrics import Metrics
from orderhooks.store import Store, open_store
from orderhooks.web.app import create_app
from tests.support.api import Api
from tests.support.data import unique


class LocalApi(Api):
    """The API of the app in this process, with the store, settings and metrics behind it."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        admin_key: str,
        store: Store,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        super().__init__(client, admin_key)
        self.store = store
        self.settings = settings
        self.metrics = metrics


def api_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings of a test app: a SQLite file in `tmp_path`, agreements required."""
    values: dict[str, Any] = {"data_dir": tmp_path, "retry_jitter": 0.0}
    values.update(overrides)
    return Settings(**values)


class _TestServer(uvicorn.Server):
    """uvicorn's server, leaving the signals to pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install no signal handler."""
        yield


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """`app` behind a real uvicorn server on a free loopback port, in this event loop;
    yields its base URL and stops the server afterwards."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="off"
    )
    server = _TestServer(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise AssertionError("the test server stopped before it started")
            await asyncio.sleep(0.01)
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def running_api(
    tmp_path: Path,
    role: str = "api",
    *,
    make_store: Callable[[Settings], Store] = open_store,
    served: bool = False,
    **overrides: Any,
) -> AsyncIterator[LocalApi]:
    """The app on a fresh, migrated store (`make_store(settings)`: by default SQLite in
    `tmp_path`), with an admin key in the store; `served`: over HTTP, through a real
    server on loopback."""
    settings = api_settings(tmp_path, **overrides)
    store = make_store(settings)
    await store.open()
    await store.migrate()
    admin_key = generate_api_key()
    now = datetime.now(UTC)
    await store.create_key(
        ApiKey(new_id("key"), Role.ADMIN, (), "test admin", hash_api_key(admin_key), now)
    )
    metrics = Metrics()
    app = create_app(settings, store, role=role, metrics=metrics)  # type: ignore[arg-type]
    try:
        async with contextlib.AsyncExitStack() as stack:
            if served:
                client = httpx.AsyncClient(base_url=await stack.enter_async_context(serving(app)))
            else:
                transport = httpx.ASGITransport(app=app)
                client = httpx.AsyncClient(transport=transport, base_url="http://orderhooks.test")
            async with client as c:
                yield LocalApi(c, admin_key, store, settings, metrics)
    finally:
        await store.close()


async def finish_deliveries(api: LocalApi, statuses: Mapping[str, int | None]) -> None:
    """Make one real attempt outcome for each delivery through the store's queue: claim
    what is due and record a 2xx as delivered, anything else as failed (no retries).

    Exactly the given deliveries must be due: a test arranges its traffic so.
    """
    now = datetime.now(UTC) + timedelta(seconds=1)
    claims = await api.store.claim(now, 1000, "api-tests")
    assert {c.delivery.id for c in claims} == set(statuses), "due deliveries differ"
    outcomes = []
    for claim in claims:
        status_code = statuses[claim.delivery.id]
        delivered = status_code is not None and 200 <= status_code < 300
        attempt = Attempt(
            delivery_id=claim.delivery.id,
            attempt=claim.attempt,
            started_at=now,
            duration_ms=42,
            status_code=status_code,
            response_body="ok" if delivered else "nope",
            error=None if delivered else AttemptError.HTTP_STATUS,
        )
        outcomes.append(
            Outcome(
                delivery_id=claim.delivery.id,
                webhook_id=claim.webhook.id,
                attempt=attempt,
                next_state=DeliveryState.DELIVERED if delivered else DeliveryState.FAILED,
                next_attempt_at=None,
                schedule_position=claim.delivery.schedule_position + (0 if delivered else 1),
            )
        )
    await api.store.record(outcomes, now)


async def finish_delivery(api: LocalApi, delivery_id: str, status_code: int | None) -> None:
    """`finish_deliveries` for the one delivery that is due."""
    await finish_deliveries(api, {delivery_id: status_code})


async def store_key(api: LocalApi, role: Role, accounts: tuple[str, ...] = ()) -> str:
    """A key written straight into the store (no API call: for rate-limit tests)."""
    plaintext = generate_api_key()
    key = ApiKey(
        new_id("key"), role, accounts, unique("k"), hash_api_key(plaintext), datetime.now(UTC)
    )
    await api.store.create_key(key)
    return plaintext
