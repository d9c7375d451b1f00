"""The one seam to the network: send one webhook request, get what happened.

`AiohttpTransport` is the real thing: one pooled aiohttp session for every webhook,
redirects never followed, the webhook's timeout on the whole attempt, and the network
guard on every address actually connected to (literal addresses before connecting,
names through a resolver that drops blocked addresses, so DNS rebinding gets nowhere).
With an egress proxy (`ORDERHOOKS_EGRESS_PROXY`) every request goes through it, `https`
through CONNECT; the proxy resolves names and enforces the egress policy, so only the
literal-address check stays here (docs/security.md).
`FakeTransport` is its stand-in for tests that need no server.

Failures map to `AttemptError` (docs/api.md)::

    literal or resolved address blocked        BLOCKED_ADDRESS  (nothing is sent)
    no answer within the timeout               TIMEOUT
    refused, reset, DNS failure, bad response  CONNECTION_ERROR
    3xx (never followed)                       REDIRECT         (status recorded)
    any other non-2xx                          HTTP_STATUS      (status recorded)
    the egress proxy cannot be reached (its    PROXY_ERROR      (not counted against
      name included: refused, or a connection  the webhook's health)
      to it still not made when the attempt
      runs out of time), or asks for
      credentials (407)
    the egress proxy refuses the CONNECT       CONNECTION_ERROR (its status in `detail`)
"""

from __future__ import annotations

import asyncio
import codecs
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Protocol

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from orderhooks.delivery.clienttls import ClientTlsContexts
from orderhooks.delivery.netguard import NetworkGuard, parse_ip_literal
from orderhooks.domain.model import AttemptError, ClientTls

RESPONSE_EXCERPT_BYTES = 2048
# Reading a small response to its end lets the connection go back to the pool; a larger
# one is cut here and its connection closed, so a huge or endless body costs nothing.
RESPONSE_READ_LIMIT_BYTES = 65_536
DNS_CACHE_SECONDS = 10
# Idle pooled connections are dropped before the common 5 s server defaults (uvicorn,
# Node.js) close them, so a request rarely races a closing connection.
KEEPALIVE_SECONDS = 4
URL_CACHE_SIZE = 4096
PROXY_AUTHENTICATION_REQUIRED = 407
# An attempt that runs out of time while its connection is still being opened through
# the egress proxy checks, with one connection of its own bounded by this, whether the
# proxy takes connections at all: a proxy host that is down behind a firewall drops them
# (no refusal comes), and that is the operator's failure, not the receiver's timeout.
PROXY_PROBE_SECONDS = 1.0

EMPTY_HEADERS: Mapping[str, str] = CIMultiDictProxy(CIMultiDict())


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """One POST of a webhook body."""

    url: str
    body: bytes
    headers: Mapping[str, str]
    timeout_seconds: float
    client_tls: ClientTls | None = None  # the webhook's client certificate, if any
    webhook_id: str = ""  # whose client certificate (the key of the context cache)
    # The same request signed at another time (a fresh webhook-timestamp): what a copy
    # sent later, after a sender process died, goes out as. Never crosses a process.
    resign: Callable[[datetime], OutboundRequest] | None = field(
        default=None, compare=False, repr=False
    )
    # When the delivery's lease ends (its claim's): after it the delivery may be claimed
    # and sent again, so no copy of this request may still be in flight then.
    lease_expires_at: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class TransportResult:
    """What one attempt got back.

    `response_headers` is case-insensitive. `detail` says what went wrong below HTTP, for
    logs (never shown as a response body).
    """

    status_code: int | None
    response_excerpt: str
    response_headers: Mapping[str, str]
    error: AttemptError | None
    duration_ms: int
    detail: str = ""


class AttemptAbandoned(Exception):
    """The transport gave the request up without an answer (a copy sent now could not
    end before the delivery's lease): the lease brings the delivery back."""


class Transport(Protocol):
    """Sends webhook requests."""

    async def send(self, request: OutboundRequest) -> TransportResult:
        """POST the request and report the outcome; never raises for network failures."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@dataclass(slots=True)
class _Connecting:
    """Whether one request opened a new connection, and whether that finished (through
    a proxy: the connection to the proxy, and for https the tunnel and the handshake)."""

    started: bool = False
    ended: bool = False


async def _connection_started(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    if isinstance(context.trace_request_ctx, _Connecting):
        context.trace_request_ctx.started = True


async def _connection_ended(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    if isinstance(context.trace_request_ctx, _Connecting):
        context.trace_request_ctx.ended = True


def _connection_tracing() -> aiohttp.TraceConfig:
    """Marks each request's `_Connecting` as its new connection starts and ends."""
    config = aiohttp.TraceConfig()
    config.on_connection_create_start.append(_connection_started)
    config.on_connection_create_end.append(_connection_ended)
    return config


class BlockedAddressError(OSError):
    """Every address a name resolved to is blocked by the network guard."""


class GuardedResolver(AbstractResolver):
    """A resolver that drops the addresses the guard blocks."""

    def __init__(self, guard: NetworkGuard, inner: AbstractResolver | None = None) -> None:
        self._guard = guard
        self._owns_inner = inner is None
        self._inner = inner if inner is not None else aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The addresses of `host` that may be connected to; BlockedAddressError if none."""
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if not self._blocked(r["host"])]
        if not allowed:
            raise BlockedAddressError(f"{host} resolves only to blocked addresses")
        return allowed

    def _blocked(self, address: str) -> bool:
        try:
            ip = parse_ip_literal(address)
        except ValueError:
            return True  # not an address we can judge: never connect to it
        return ip is None or self._guard.is_blocked(ip)

    async def close(self) -> None:
        """Close the inner resolver if this one created it."""
        if self._owns_inner:
            await self._inner.close()


@dataclass(frozen=True, slots=True)
class _Target:
    url: URL | None
    problem: AttemptError | None
    detail: str = ""


class AiohttpTransport:
    """The real transport: one pooled aiohttp session, guarded at connect time.

    `proxy` (an `http://host:port` URL) sends every request through that forward proxy;
    `ssl_context` replaces the default certificate verification (tests use it to trust
    their own certificate authority).
    """

    def __init__(
        self,
        guard: NetworkGuard,
        *,
        limit: int,
        resolver: AbstractResolver | None = None,
        proxy: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._guard = guard
        self._limit = limit
        self._proxy = proxy
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        # Through a proxy, aiohttp resolves only the proxy's own name (the operator's, not
        # a webhook's), and the proxy resolves the receivers': no guard on resolution.
        self._resolver = GuardedResolver(guard, resolver) if proxy is None else resolver
        self._session: aiohttp.ClientSession | None = None
        # Webhook URLs repeat endlessly: parse and judge each one once.
        self._targets: dict[str, _Target] = {}
        # One context per webhook with a client certificate: connections are pooled per
        # context, so a certificate only ever rides connections opened with it.
        self._client_tls = ClientTlsContexts()

    def _open_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            limit_per_host=0,
            resolver=self._resolver,
            use_dns_cache=True,
            ttl_dns_cache=DNS_CACHE_SECONDS,
            keepalive_timeout=KEEPALIVE_SECONDS,
        )
        return aiohttp.ClientSession(
            connector=connector,
            # Receivers are strangers to each other: no cookies, no proxies from the
            # environment, no compression asked for.
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            skip_auto_headers=("Accept-Encoding",),
            timeout=aiohttp.ClientTimeout(total=None),
            trace_configs=[_connection_tracing()] if self._proxy is not None else None,
        )

    async def _proxy_takes_connections(self) -> bool:
        """Whether a TCP connection to the egress proxy opens within PROXY_PROBE_SECONDS."""
        assert self._proxy is not None
        proxy = URL(self._proxy)
        try:
            async with asyncio.timeout(PROXY_PROBE_SECONDS):
                _, writer = await asyncio.open_connection(proxy.raw_host, proxy.port)
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            target = self._judge(url)
            if len(self._targets) >= URL_CACHE_SIZE:
                self._targets.clear()
            self._targets[url] = target
        return target

    def _judge(self, url: str) -> _Target:
        try:
            parsed = URL(url)
            host = parsed.raw_host or ""
            literal = parse_ip_literal(host)
        except ValueError as exc:
            return _Target(None, AttemptError.CONNECTION_ERROR, f"invalid url: {exc}")
        if parsed.scheme not in ("http", "https") or not host:
            return _Target(None, AttemptError.CONNECTION_ERROR, "url must be http(s) with a host")
        if literal is not None and self._guard.is_blocked(literal):
            return _Target(None, AttemptError.BLOCKED_ADDRESS, f"{literal} is blocked")
        if literal is not None and host != str(literal) and ":" not in host:
            # `127.1` or `0x7f.1` would reach the resolver as a name; send the canonical form.
            parsed = parsed.with_host(str(literal))
        return _Target(parsed, None)

    async def send(self, request: OutboundRequest) -> TransportResult:
        """POST the request; every failure becomes a result, never an exception."""
        started = time.perf_counter()
        target = self._target(request.url)
        if target.url is None:
            return _failure(target.problem or AttemptError.CONNECTION_ERROR, started, target.detail)
        ssl_context: ssl.SSLContext | bool = self._ssl
        if request.client_tls is not None:
            try:
                own = self._client_tls.context_for(request.webhook_id, request.client_tls)
            except (ssl.SSLError, ValueError, OSError) as exc:
                detail = f"client certificate unusable: {exc}"
                return _failure(AttemptError.CONNECTION_ERROR, started, detail)
            if own is not None:
                ssl_context = own
        if self._session is None:
            self._session = self._open_session()
        status: int | None = None
        connecting = _Connecting()
        try:
            async with asyncio.timeout(request.timeout_seconds):
                async with self._session.post(
                    target.url,
                    data=request.body,
                    headers=request.headers,
                    allow_redirects=False,
                    proxy=self._proxy,
                    ssl=ssl_context,
                    trace_request_ctx=connecting,
                ) as response:
                    status = response.status
                    if self._proxy is not None and status == PROXY_AUTHENTICATION_REQUIRED:
                        detail = "the egress proxy asks for credentials"
                        return _failure(AttemptError.PROXY_ERROR, started, detail, status)
                    excerpt, complete = await _read_excerpt(response.content)
                    if not complete:
                        response.close()
                    return _answer(status, excerpt, response.headers, started)
        except TimeoutError:
            if (
                self._proxy is not None
                and connecting.started
                and not connecting.ended
                and not await self._proxy_takes_connections()
            ):
                detail = f"egress proxy: no connection to it within {request.timeout_seconds:g} s"
                return _failure(AttemptError.PROXY_ERROR, started, detail)
            detail = f"no complete answer within {request.timeout_seconds:g} s"
            return _failure(AttemptError.TIMEOUT, started, detail, status)
        except aiohttp.ClientProxyConnectionError as exc:
            return _failure(AttemptError.PROXY_ERROR, started, f"egress proxy: {exc}")
        except aiohttp.ClientHttpProxyError as exc:
            # The proxy answered the CONNECT itself: its policy refused the receiver, or the
            # receiver could not be reached from it. Only a 407 is the proxy's own problem.
            error = (
                AttemptError.PROXY_ERROR
                if exc.status == PROXY_AUTHENTICATION_REQUIRED
                else AttemptError.CONNECTION_ERROR
            )
            detail = f"the egress proxy answered CONNECT with {exc.status} {exc.message}"
            return _failure(error, started, detail)
        except aiohttp.ClientConnectorError as exc:
            if self._proxy is not None and isinstance(exc, aiohttp.ClientConnectorDNSError):
                # Through a proxy, only the proxy's own name is resolved here: it failing
                # to resolve means the proxy cannot be reached.
                return _failure(AttemptError.PROXY_ERROR, started, f"egress proxy: {exc}")
            if _is_blocked_error(exc):
                return _failure(AttemptError.BLOCKED_ADDRESS, started, str(exc))
            return _failure(AttemptError.CONNECTION_ERROR, started, str(exc))
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            # `status` is set when the connection broke while the body was being read.
            detail = f"{type(exc).__name__}: {exc}"
            return _failure(AttemptError.CONNECTION_ERROR, started, detail, status)

    async def close(self) -> None:
        """Close the pooled connections and the resolver."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        if isinstance(self._resolver, GuardedResolver):
            await self._resolver.close()


async def _read_excerpt(content: aiohttp.StreamReader) -> tuple[bytes, bool]:
    """The first bytes of the body, and whether the body was read to its end."""
    kept = bytearray()
    total = 0
    while chunk := await content.readany():
        total += len(chunk)
        if len(kept) < RESPONSE_EXCERPT_BYTES:
            kept += chunk[: RESPONSE_EXCERPT_BYTES - len(kept)]
        if total > RESPONSE_READ_LIMIT_BYTES:
            return bytes(kept), False
    return bytes(kept), True


def decode_excerpt(raw: bytes) -> str:
    """The text of a response excerpt; a character cut at the 2 KiB edge is dropped, and
    NUL characters become U+FFFD (PostgreSQL cannot store NUL in text, and one receiver's
    answer must never stop outcomes from being recorded)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return decoder.decode(raw[:RESPONSE_EXCERPT_BYTES], final=False).replace("\x00", "\ufffd")


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _answer(
    status: int, excerpt: bytes, headers: Mapping[str, str], started: float
) -> TransportResult:
    if 200 <= status < 300:
        error = None
    elif 300 <= status < 400:
        error = AttemptError.REDIRECT
    else:
        error = AttemptError.HTTP_STATUS
    return TransportResult(status, decode_excerpt(excerpt), headers, error, _elapsed_ms(started))


def _failure(
    error: AttemptError, started: float, detail: str, status: int | None = None
) -> TransportResult:
    return TransportResult(status, "", EMPTY_HEADERS, error, _elapsed_ms(started), detail)


def _is_blocked_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, BlockedAddressError):
            return True
        if isinstance(seen, aiohttp.ClientConnectorError) and isinstance(
            seen.os_error, BlockedAddressError
        ):
            return True
        seen = seen.__cause__
    return False


# ---------------------------------------------------------------- the fake


def fake_result(
    status_code: int | None = 200,
    *,
    error: AttemptError | None = None,
    excerpt: str = "",
    headers: Mapping[str, str] | None = None,
    duration_ms: int = 1,
) -> TransportResult:
    """A result as the real transport would build it (error derived from the status)."""
    if error is None and status_code is not None and not 200 <= status_code < 300:
        error = AttemptError.REDIRECT if 300 <= status_code < 400 else AttemptError.HTTP_STATUS
    if status_code is None and error is None:
        error = AttemptError.CONNECTION_ERROR
    return TransportResult(
        status_code,
        excerpt,
        CIMultiDictProxy(CIMultiDict(headers or {})),
        error,
        duration_ms,
    )


Responder = Callable[[OutboundRequest], Awaitable[TransportResult]]


@dataclass
class FakeTransport:
    """A scripted transport for tests: records every request, answers from per-URL
    scripts (first in, first out), then from `responder`, else `default`."""

    default: TransportResult = field(default_factory=fake_result)
    responder: Responder | None = None
    requests: list[OutboundRequest] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    max_in_flight: dict[str, int] = field(default_factory=dict)
    closed: bool = False
    _scripts: dict[str, list[TransportResult]] = field(default_factory=dict)

    def script(self, url: str, results: Iterable[TransportResult]) -> None:
        """Answer the next requests to `url` with `results`, in order."""
        self._scripts.setdefault(url, []).extend(results)

    def sent_to(self, url: str) -> list[OutboundRequest]:
        """The requests sent to `url`, in order."""
        return [r for r in self.requests if r.url == url]

    async def send(self, request: OutboundRequest) -> TransportResult:
        """Record the request and answer it from the script."""
        self.requests.append(request)
        self.in_flight[request.url] = self.in_flight.get(request.url, 0) + 1
        self.max_in_flight[request.url] = max(
            self.max_in_flight.get(request.url, 0), self.in_flight[request.url]
        )
        try:
            scripted = self._scripts.get(request.url)
            if scripted:
                return scripted.pop(0)
            if self.responder is not None:
                return await self.responder(request)
            await asyncio.sleep(0)  # a real send always yields to the loop
            return self.default
        finally:
            self.in_flight[request.url] -= 1

    async def close(self) -> None:
        """Mark the transport closed."""
        self.closed = True


__all__ = [
    "AiohttpTransport",
    "BlockedAddressError",
    "FakeTransport",
    "GuardedResolver",
    "OutboundRequest",
    "Transport",
    "TransportResult",
    "decode_excerpt",
    "fake_result",
]
