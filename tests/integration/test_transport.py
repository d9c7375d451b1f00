"""AiohttpTransport against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import functools
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from ipaddress import ip_network

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict

from orderhooks.delivery.netguard import NetworkGuard
from orderhooks.delivery.transport import (
    AiohttpTransport,
    BlockedAddressError,
    GuardedResolver,
    OutboundRequest,
    TransportResult,
)
from orderhooks.domain.model import AttemptError

LOOPBACK = (ip_network("127.0.0.0/8"),)


@dataclass
class Receiver:
    """A real aiohttp server that records what it receives."""

    base: str
    received: list[tuple[str, bytes, CIMultiDict[str]]] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)


async def _handle(receiver: Receiver, request: web.Request) -> web.StreamResponse:
    body = await request.read()
    receiver.received.append((request.path, body, CIMultiDict(request.headers)))
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if peer is not None:
        receiver.peers.append((peer[0], peer[1]))
    path = request.path
    if path == "/ok":
        return web.Response(text="ok", headers={"X-Answer": "42"})
    if path == "/fail":
        return web.Response(status=500, text="boom")
    if path == "/unavailable":
        return web.Response(status=503, text="later", headers={"Retry-After": "120"})
    if path == "/redirect":
        raise web.HTTPFound("/ok")
    if path == "/big":
        return web.Response(body=b"x" * 10_000)
    if path == "/huge":
        return web.Response(body=b"y" * 1_000_000)
    if path == "/utf8":
        return web.Response(body=("é" * 2000).encode())
    if path == "/slow-body":
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"partial")
        await asyncio.sleep(5)
        return response
    return web.Response(status=404)


@pytest.fixture()
async def receiver() -> AsyncIterator[Receiver]:
    recorder = Receiver("")
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", functools.partial(_handle, recorder))
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    recorder.base = f"http://127.0.0.1:{port}"
    yield recorder
    await runner.cleanup()


@pytest.fixture()
async def transport() -> AsyncIterator[AiohttpTransport]:
    sender = AiohttpTransport(NetworkGuard(LOOPBACK), limit=16)
    yield sender
    await sender.close()


def _request(
    url: str, timeout: float = 5.0, headers: dict[str, str] | None = None
) -> OutboundRequest:
    return OutboundRequest(
        url=url,
        body=b'{"hello": "world"}',
        headers={"content-type": "application/json", **(headers or {})},
        timeout_seconds=timeout,
    )


async def _send_to_raw_server(
    transport: AiohttpTransport,
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    timeout: float = 5.0,
) -> TransportResult:
    """Send `_request` to a TCP server on loopback that answers (or not) with `handle`;
    the server and the connections it accepted are closed afterwards."""
    accepted: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await handle(reader, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await transport.send(_request(f"http://127.0.0.1:{port}/", timeout=timeout))
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


class StaticResolver(AbstractResolver):
    """Resolves names from a table, counting lookups."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.lookups = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups += 1
        if host not in self.table:
            raise OSError(f"unknown host {host}")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        pass


async def test_2xx_is_delivered_with_body_headers_and_excerpt(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    result = await transport.send(_request(f"{receiver.base}/ok", headers={"x-static": "yes"}))
    assert result.status_code == 200
    assert result.error is None
    assert result.response_excerpt == "ok"
    assert result.response_headers["x-answer"] == "42"
    assert result.response_headers["X-ANSWER"] == "42"
    assert result.duration_ms >= 0
    path, body, headers = receiver.received[0]
    assert (path, body) == ("/ok", b'{"hello": "world"}')
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Static"] == "yes"
    assert "Accept-Encoding" not in headers
    assert "Cookie" not in headers


async def test_non_2xx_is_an_http_status_error_with_the_body(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    result = await transport.send(_request(f"{receiver.base}/fail"))
    assert (result.status_code, result.error) == (500, AttemptError.HTTP_STATUS)
    assert result.response_excerpt == "boom"

    unavailable = await transport.send(_request(f"{receiver.base}/unavailable"))
    assert unavailable.status_code == 503
    assert unavailable.response_headers["retry-after"] == "120"


async def test_redirects_are_not_followed(receiver: Receiver, transport: AiohttpTransport) -> None:
    result = await transport.send(_request(f"{receiver.base}/redirect"))
    assert (result.status_code, result.error) == (302, AttemptError.REDIRECT)
    assert [path for path, _, _ in receiver.received] == ["/redirect"]


async def test_a_silent_server_times_out(transport: AiohttpTransport) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def stay_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    result = await _send_to_raw_server(transport, stay_silent, timeout=0.3)
    assert accepted, "the server accepted the connection"
    assert result.error is AttemptError.TIMEOUT
    assert result.status_code is None
    assert result.duration_ms >= 250


async def test_a_body_that_never_ends_times_out(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    result = await transport.send(_request(f"{receiver.base}/slow-body", timeout=0.5))
    assert result.error is AttemptError.TIMEOUT


async def test_connection_refused_is_a_connection_error(transport: AiohttpTransport) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await transport.send(_request(f"http://127.0.0.1:{port}/"))
    assert result.error is AttemptError.CONNECTION_ERROR
    assert result.status_code is None
    assert result.response_excerpt == ""
    assert result.detail


async def test_a_reset_connection_is_a_connection_error(transport: AiohttpTransport) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        sock = writer.get_extra_info("socket")
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    result = await _send_to_raw_server(transport, reset)
    assert result.error is AttemptError.CONNECTION_ERROR
    assert result.status_code is None


async def test_the_excerpt_keeps_the_first_2_kib(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    big = await transport.send(_request(f"{receiver.base}/big"))
    assert big.status_code == 200
    assert big.response_excerpt == "x" * 2048

    huge = await transport.send(_request(f"{receiver.base}/huge"))
    assert huge.status_code == 200
    assert huge.response_excerpt == "y" * 2048

    # 2048 bytes of two-byte characters: 1024 of them, none cut in half.
    utf8 = await transport.send(_request(f"{receiver.base}/utf8"))
    assert utf8.response_excerpt == "é" * 1024


async def test_connections_are_reused(receiver: Receiver, transport: AiohttpTransport) -> None:
    for _ in range(3):
        result = await transport.send(_request(f"{receiver.base}/ok"))
        assert result.status_code == 200
    assert len(set(receiver.peers)) == 1


async def test_a_literal_blocked_address_is_never_connected_to(receiver: Receiver) -> None:
    sender = AiohttpTransport(NetworkGuard(), limit=4)
    try:
        port = receiver.base.rsplit(":", 1)[1]
        for url in (f"{receiver.base}/ok", f"http://0x7f.1:{port}/ok", f"http://[::1]:{port}/"):
            result = await sender.send(_request(url))
            assert result.error is AttemptError.BLOCKED_ADDRESS, url
            assert result.status_code is None
    finally:
        await sender.close()
    assert receiver.received == []


async def test_a_legacy_literal_is_sent_to_its_canonical_address(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    port = receiver.base.rsplit(":", 1)[1]
    result = await transport.send(_request(f"http://0x7f.1:{port}/ok"))
    assert result.status_code == 200
    assert len(receiver.received) == 1


async def test_a_name_resolving_to_a_blocked_address_is_refused(receiver: Receiver) -> None:
    port = receiver.base.rsplit(":", 1)[1]
    resolver = StaticResolver({"receiver.example": ["127.0.0.1"]})
    sender = AiohttpTransport(NetworkGuard(), limit=4, resolver=resolver)
    try:
        result = await sender.send(_request(f"http://receiver.example:{port}/ok"))
    finally:
        await sender.close()
    assert result.error is AttemptError.BLOCKED_ADDRESS
    assert result.status_code is None
    assert resolver.lookups == 1
    assert receiver.received == []


async def test_a_name_is_connected_only_to_its_allowed_addresses(receiver: Receiver) -> None:
    port = receiver.base.rsplit(":", 1)[1]
    # 10.0.0.1 comes first; connecting to it would hang: only 127.0.0.1 may be used.
    resolver = StaticResolver({"receiver.example": ["10.0.0.1", "127.0.0.1"]})
    sender = AiohttpTransport(NetworkGuard(LOOPBACK), limit=4, resolver=resolver)
    try:
        first = await sender.send(_request(f"http://receiver.example:{port}/ok", timeout=3))
        second = await sender.send(_request(f"http://receiver.example:{port}/ok", timeout=3))
    finally:
        await sender.close()
    assert (first.status_code, second.status_code) == (200, 200)
    assert resolver.lookups == 1  # cached briefly, not resolved per request
    assert receiver.received[0][2]["Host"] == f"receiver.example:{port}"


async def test_a_name_that_does_not_resolve_is_a_connection_error() -> None:
    sender = AiohttpTransport(NetworkGuard(LOOPBACK), limit=4, resolver=StaticResolver({}))
    try:
        result = await sender.send(_request("http://nowhere.example/"))
    finally:
        await sender.close()
    assert result.error is AttemptError.CONNECTION_ERROR


async def test_many_concurrent_sends_share_the_pool(
    receiver: Receiver, transport: AiohttpTransport
) -> None:
    results = await asyncio.gather(
        *(transport.send(_request(f"{receiver.base}/ok")) for _ in range(64))
    )
    assert all(r.status_code == 200 for r in results)
    assert len(receiver.received) == 64
    assert len(set(receiver.peers)) <= 16  # never more connections than the limit


async def test_the_guarded_resolver_drops_blocked_addresses() -> None:
    inner = StaticResolver(
        {
            "mixed.example": ["10.0.0.1", "93.184.216.34", "::ffff:127.0.0.1", "2606:4700::1"],
            "private.example": ["10.0.0.1", "fd00::1"],
        }
    )
    resolver = GuardedResolver(NetworkGuard(), inner)
    addresses = [r["host"] for r in await resolver.resolve("mixed.example", 443)]
    assert addresses == ["93.184.216.34", "2606:4700::1"]
    with pytest.raises(BlockedAddressError):
        await resolver.resolve("private.example", 443)


async def test_a_body_cut_short_is_a_connection_error_with_its_status(
    transport: AiohttpTransport,
) -> None:
    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly ten b")
        await writer.drain()
        writer.close()

    result = await _send_to_raw_server(transport, cut_short)
    assert result.error is AttemptError.CONNECTION_ERROR
    assert result.status_code == 200
