"""Hostile input against the real app on a real SQLite store, and on PostgreSQL (issue 5,
item 3).

Every request of `corpus.corpus()` must be refused with a clear 4xx in the error JSON of
docs/api.md, never a 5xx, and must store nothing: the row counts read directly from the
SQLite file (or on a PostgreSQL connection of the test's own), the lists of the API, the
seeded webhook and its secret are the same before and after, and an order the request
named does not exist. Bodies over the size limit are refused before being read whole,
with or without Content-Length.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from orderhooks.cli.runner import ensure_admin_key, open_migrated_store
from orderhooks.config import Settings, parse_networks
from orderhooks.testing.server import ServerProcess
from orderhooks.web.app import create_app
from tests.security.corpus import BadQuery, corpus, queries
from tests.security.corpus_base import ACCOUNT, JSON, MAX_BODY_BYTES, Bad
from tests.security.support import assert_error, count_rows, count_rows_pg, detail_fields
from tests.support.data import new_order
from tests.support.pg import create_database, drop_database

pytestmark = pytest.mark.asyncio(loop_scope="module")

ADMIN_KEY = "ohk_security_bad_input_admin_key"
STREAM_CHUNK_BYTES = 64 * 1024
STREAM_TOTAL_BYTES = 100 * 1024 * 1024
# What a real server may take in before it stops reading: the limit plus what the
# kernel's socket buffers on both ends of a loopback connection can hold.
REAL_SERVER_READ_BOUND_BYTES = 32 * 1024 * 1024
LIST_LIMIT = 500


RowCounter = Callable[[], Awaitable[dict[str, int]]]


@dataclass
class Harness:
    """The app under test, a way to count its rows, and the objects seeded in it."""

    client: httpx.AsyncClient
    count_rows: RowCounter
    order_id: str
    webhook_id: str

    def resolve(self, path: str) -> str:
        """`path` with `<order>` and `<webhook>` replaced by the seeded ids."""
        return path.replace("<order>", self.order_id).replace("<webhook>", self.webhook_id)

    async def send(self, case: Bad) -> httpx.Response:
        """Send one corpus request exactly as written (headers override the defaults)."""
        headers: dict[bytes, bytes] = {}
        if case.content_type is not None:
            headers[b"content-type"] = case.content_type.encode()
        headers.update((name.encode(), value) for name, value in case.headers)
        request = self.client.build_request(
            case.method, self.resolve(case.path), content=case.content, headers=headers
        )
        return await self.client.send(request)

    async def _ids(self, path: str) -> list[str]:
        response = await self.client.get(path, params={"limit": LIST_LIMIT})
        assert response.status_code == 200, response.text[:500]
        return [item["id"] for item in response.json()["data"]]

    async def snapshot(self) -> dict[str, Any]:
        """Everything a refused request must leave as it was."""
        webhook = await self.client.get(f"/v1/webhooks/{self.webhook_id}")
        secret = await self.client.get(f"/v1/webhooks/{self.webhook_id}/secret")
        assert webhook.status_code == 200 and secret.status_code == 200, webhook.text[:500]
        return {
            "rows": await self.count_rows(),
            "events": await self._ids("/v1/events"),
            "deliveries": await self._ids("/v1/deliveries"),
            "webhooks": await self._ids("/v1/webhooks"),
            "keys": await self._ids("/v1/keys"),
            "webhook": webhook.json(),
            "secret": secret.json(),
        }


async def _seed(settings: Settings, count: RowCounter) -> AsyncIterator[Harness]:
    """The app on a migrated store with an admin key, one webhook and one order."""
    store = await open_migrated_store(settings)
    try:
        await ensure_admin_key(store, settings, datetime.now(UTC))
        transport = httpx.ASGITransport(app=create_app(settings, store))
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://orderhooks.test",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as client:
            hook = {
                "url": "http://127.0.0.1:9/hook",
                "accounts": [ACCOUNT],
                "eventTypes": ["order.new", "order.status_update", "order.courier_update"],
            }
            created = await client.post("/v1/webhooks", json=hook)
            assert created.status_code == 201, created.text
            order = new_order(ACCOUNT, order_id="seeded-order")
            posted = await client.post("/v1/orders", json=order)
            assert posted.status_code == 202, posted.text
            yield Harness(client, count, order["_id"], created.json()["id"])
    finally:
        await store.close()


@pytest_asyncio.fixture(
    scope="module",
    loop_scope="module",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def harness(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Harness]:
    """The app on a fresh store of each engine; rows are counted behind the app's back."""
    data_dir = tmp_path_factory.mktemp(f"bad-input-{request.param}")
    settings = Settings(
        data_dir=data_dir,
        admin_key=ADMIN_KEY,
        max_body_bytes=MAX_BODY_BYTES,
        require_agreement=False,
        allowed_networks=parse_networks("127.0.0.0/8"),
    )
    if request.param == "sqlite":

        async def count_sqlite() -> dict[str, int]:
            return count_rows(data_dir / "orderhooks.db")

        async for harness in _seed(settings, count_sqlite):
            yield harness
        return
    url = await create_database("oh_security")
    connection = await asyncpg.connect(url)
    try:

        async def count_postgres() -> dict[str, int]:
            return await count_rows_pg(connection)

        async for harness in _seed(replace(settings, database_url=url), count_postgres):
            yield harness
    finally:
        await connection.close()
        await drop_database(url)


def _check_details(case: Bad, error: dict[str, Any]) -> None:
    fields = detail_fields(error)
    if case.field is not None:
        assert any(f.startswith(case.field) for f in fields), (
            f"details should name {case.field!r}: {error}"
        )
    if case.index is not None:
        indexes = [d.get("index") for d in error["details"] if isinstance(d, dict)]
        assert case.index in indexes, f"details should name index {case.index}: {error}"


@pytest.mark.parametrize("case", corpus(), ids=lambda case: case.id)
async def test_hostile_request_is_refused_and_stores_nothing(harness: Harness, case: Bad) -> None:
    """One corpus request: a 4xx in the error shape, and nothing stored."""
    before = await harness.snapshot()
    response = await harness.send(case)
    error = assert_error(response, *case.expect)
    _check_details(case, error)
    assert await harness.snapshot() == before, "a refused request changed what is stored"
    if case.order_id is not None and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", case.order_id):
        order = await harness.client.get(f"/v1/orders/{case.order_id}")
        assert_error(order, 404)


@pytest.mark.parametrize("query", queries(), ids=lambda query: query.id)
async def test_hostile_filter_is_refused_or_matches_nothing(
    harness: Harness, query: BadQuery
) -> None:
    """A hostile list filter is refused (4xx), or matches nothing: it never widens a query."""
    before = await harness.snapshot()
    response = await harness.client.get(harness.resolve(query.path))
    if query.strict or response.status_code != 200:
        assert_error(response, 400, 403, 404, 422)
    else:
        page = response.json()
        assert page["data"] == [] and page["nextCursor"] is None, page
    assert await harness.snapshot() == before


class CountingBody:
    """A request body that would be 100 MB, counting how much of it was taken."""

    def __init__(self, total: int = STREAM_TOTAL_BYTES, chunk: int = STREAM_CHUNK_BYTES) -> None:
        self.total = total
        self.chunk = b" " * chunk
        self.consumed = 0

    def _next(self) -> bytes | None:
        if self.consumed >= self.total:
            return None
        self.consumed += len(self.chunk)
        return self.chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (piece := self._next()) is not None:
            yield piece


BODY_PATHS = ["/v1/orders", "/v1/events", "/v1/webhooks", "/v1/orders/<order>/status"]


@pytest.mark.parametrize("path", BODY_PATHS)
async def test_chunked_body_over_limit_is_refused_while_streaming(
    harness: Harness, path: str
) -> None:
    """Without Content-Length, reading stops at the limit: 413 after about 1 MB of 100 MB."""
    before = await harness.snapshot()
    body = CountingBody()
    response = await harness.client.post(
        harness.resolve(path), content=body, headers={"content-type": JSON}
    )
    assert_error(response, 413)
    assert body.consumed <= MAX_BODY_BYTES + 2 * STREAM_CHUNK_BYTES, body.consumed
    assert await harness.snapshot() == before


@pytest.mark.parametrize("path", BODY_PATHS)
async def test_declared_length_over_limit_is_refused_unread(harness: Harness, path: str) -> None:
    """A Content-Length over the limit is refused before a byte of the body is taken."""
    body = CountingBody()
    response = await harness.client.post(
        harness.resolve(path),
        content=body,
        headers={"content-type": JSON, "content-length": str(STREAM_TOTAL_BYTES)},
    )
    assert_error(response, 413)
    assert body.consumed <= STREAM_CHUNK_BYTES, body.consumed


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`python -m orderhooks serve` with the default body limit; killed by pid at the end."""
    base = tmp_path_factory.mktemp("bad-input-server")
    env = {"ORDERHOOKS_MAX_BODY_BYTES": str(MAX_BODY_BYTES)}
    with ServerProcess(base / "data", log_path=base / "server.log", env=env) as server:
        yield server


async def test_real_server_stops_reading_a_chunked_body_over_limit(
    real_server: ServerProcess,
) -> None:
    """Over a real socket the server answers 413 (or hangs up) long before 100 MB arrive."""
    body = CountingBody()
    async with real_server.async_client() as client:
        try:
            response = await client.post("/v1/orders", content=body, headers={"content-type": JSON})
        except httpx.TransportError:
            response = None  # the server closed the connection mid-body: also a refusal
        if response is not None:
            assert_error(response, 413)
        assert body.consumed <= REAL_SERVER_READ_BOUND_BYTES, (
            f"the server took {body.consumed} bytes of a body over the {MAX_BODY_BYTES}-byte limit"
        )
        events = await client.get("/v1/events")
        assert events.status_code == 200 and events.json()["data"] == []
