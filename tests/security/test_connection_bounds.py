"""Clients that hold connections open without sending a request, or send an endless
request head (docs/security.md, slow clients and long heads): the real app behind
uvicorn with the bounds of `cli.connections`, over real sockets on 127.0.0.1.

Without the deadlines, a connection that never sent a byte, or sent its request a few
bytes at a time, stayed open for as long as the client liked: enough of them, opened
without a key, use up the process's file descriptors. The deadlines here are a second
each (the server's are `HTTP_KEEP_ALIVE_SECONDS` and `REQUEST_SECONDS`, checked below).
Without the head limit, one connection sending an endless URL made the server hold
hundreds of megabytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import uvicorn

from orderhooks.cli.connections import MAX_HEAD_BYTES, REQUEST_SECONDS, bounded_protocol
from orderhooks.cli.runner import HTTP_KEEP_ALIVE_SECONDS, uvicorn_config
from orderhooks.config import Settings
from orderhooks.metrics import Metrics
from orderhooks.store import open_store
from orderhooks.web.app import create_app

DEADLINE_SECONDS = 1.0
# Long enough for the deadline and a loaded test machine, far short of "never".
CLOSED_WITHIN_SECONDS = 10.0
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class _Server(uvicorn.Server):
    """uvicorn's server, leaving the signals to pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install no signal handler."""
        yield


@pytest.fixture()
async def port(tmp_path: Path) -> AsyncIterator[int]:
    """The real app on a real store, behind uvicorn with one-second deadlines."""
    settings = Settings(data_dir=tmp_path)
    store = open_store(settings)
    await store.open()
    await store.migrate()
    app = create_app(settings, store, role="api", metrics=Metrics())
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_config=None,
        lifespan="off",
        http=bounded_protocol(DEADLINE_SECONDS, DEADLINE_SECONDS),
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the server stopped before it started"
            await asyncio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task
        await store.close()


async def _closed_after(reader: asyncio.StreamReader, started: float) -> float:
    """Seconds from `started` until the server closed the connection (whatever it
    answered first is read and dropped)."""
    async with asyncio.timeout(CLOSED_WITHIN_SECONDS):
        while await reader.read(65536):
            pass
    return time.monotonic() - started


async def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _closed_after(reader, started) >= DEADLINE_SECONDS * 0.9
    writer.close()


async def _dribbled_until_closed(port: int, opening: bytes, dribbled: bytes) -> None:
    """Send `opening`, then `dribbled` a byte every 50 ms, until the server closes the
    connection (within CLOSED_WITHIN_SECONDS, or the test fails)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(opening)
    started = time.monotonic()

    async def dribble() -> None:
        for byte in dribbled:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)

    dribbling = asyncio.create_task(dribble())
    try:
        await _closed_after(reader, started)
    finally:
        dribbling.cancel()
        writer.close()


async def test_a_request_head_sent_a_byte_at_a_time_is_cut_off(port: int) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: a\r\n" * 100
    await _dribbled_until_closed(port, b"", head)


async def test_a_body_sent_a_byte_at_a_time_is_cut_off(port: int) -> None:
    head = b"POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n"
    await _dribbled_until_closed(
        port, head + b"Content-Type: application/json\r\n\r\n", b" " * 1000
    )


async def test_requests_in_time_are_answered_on_one_connection(port: int) -> None:
    """The deadlines leave ordinary clients alone: requests on one kept-alive connection,
    with idle gaps shorter than the deadline between them, are all answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(3):
        writer.write(REQUEST)
        status = await reader.readline()
        assert status.startswith(b"HTTP/1.1 200"), status
        while (line := await reader.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        await asyncio.sleep(DEADLINE_SECONDS / 2)
    writer.close()


async def _answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The status line and body of one answer."""
    status = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return status, await reader.readexactly(length)


@pytest.mark.parametrize("part", ["url", "one header", "many headers"])
async def test_a_request_head_over_the_limit_is_refused_and_closed(port: int, part: str) -> None:
    """A head over MAX_HEAD_BYTES is answered 431 and its connection closed as soon as
    the limit is passed: the server never holds the rest of it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    endless = {
        "url": (b"GET /healthz?x=", b"a" * 4096),
        "one header": (b"GET /healthz HTTP/1.1\r\nX-Long: ", b"a" * 4096),
        "many headers": (b"GET /healthz HTTP/1.1\r\n", b"X-Many: " + b"a" * 4086 + b"\r\n"),
    }
    start, piece = endless[part]
    writer.write(start)

    async def send_forever() -> None:
        for _ in range(100_000):  # 400 MB: far past the limit
            writer.write(piece)
            await writer.drain()

    sending = asyncio.create_task(send_forever())
    try:
        async with asyncio.timeout(CLOSED_WITHIN_SECONDS):
            status, body = await _answer(reader)
            assert status.startswith(b"HTTP/1.1 431"), status
            assert str(MAX_HEAD_BYTES).encode() in body
            assert await reader.read() == b""
        with contextlib.suppress(ConnectionError):
            await sending
    finally:
        sending.cancel()
        writer.close()


async def test_a_head_within_the_limit_is_answered(port: int) -> None:
    """Heads of half the limit, in headers or in the URL, are answered as usual."""
    for head in (
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + b"".join(b"X-Big-%d: %s\r\n" % (i, b"a" * 1000) for i in range(32))
        + b"\r\n",
        b"GET /healthz?x=" + b"a" * (MAX_HEAD_BYTES // 2) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        status, _ = await _answer(reader)
        assert status.startswith(b"HTTP/1.1 200"), status
        writer.close()


def test_the_server_runs_with_the_deadlines(tmp_path: Path) -> None:
    """`serve` and `api` build uvicorn with the deadlines: as long to begin a request as
    an idle kept-alive connection is kept, REQUEST_SECONDS to send it."""
    config = uvicorn_config(object(), Settings(data_dir=tmp_path))
    protocol = config.http
    assert not isinstance(protocol, str)
    assert getattr(protocol, "idle_seconds", None) == HTTP_KEEP_ALIVE_SECONDS
    assert getattr(protocol, "request_seconds", None) == REQUEST_SECONDS
