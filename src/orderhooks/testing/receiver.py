"""A programmable webhook receiver on 127.0.0.1, for end-to-end and fault tests.

The receiver runs an aiohttp server on its own event loop in a daemon thread, so that
what it measures (arrival times, requests in flight) does not depend on what the test's
own loop is doing. It records every request and answers according to a `Behaviour`
that tests change at runtime::

    async with Receiver() as rx:
        rx.fail_first(2, per_delivery=True)
        ...  # create a webhook pointing at rx.url, ingest an order
        await rx.wait_for(lambda: len(rx.accepted()) == 1, timeout=10)
        rx.verify_all(secret)
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

from orderhooks.testing.lifecycle import Background
from orderhooks.testing.recording import Behaviour, ReceivedRequest, Reply, ReplyKind
from orderhooks.testing.signatures import signature_problem

# The recorded requests, replies and signature checks are exported by `orderhooks.testing`.
__all__ = ["Receiver"]

LOOPBACK = "127.0.0.1"
DEFAULT_PATH = "/hook"
REDIRECT_TARGET_PATH = "/redirected"
POLL_INTERVAL_SECONDS = 0.02
SHUTDOWN_TIMEOUT_SECONDS = 1.0
START_TIMEOUT_SECONDS = 10.0


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


class Receiver(Background):
    """A recording HTTP receiver with behaviours settable at runtime (see module doc)."""

    def __init__(
        self, *, port: int = 0, seed: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._requested_port = port
        # With a context the receiver speaks HTTPS (one that requires client certificates
        # records each request's client name).
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._behaviour = Behaviour()
        self._rng = random.Random(seed)
        self._failures_so_far = 0
        self._failures_per_delivery: dict[str, int] = {}
        self._requests: list[ReceivedRequest] = []
        self._abandoned: set[int] = set()  # indexes of requests the client hung up on
        self._in_flight = 0
        self._max_in_flight = 0
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Start listening (on the same port as before after a `stop`)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, self.port or self._requested_port))
        sock.listen(512)
        self.port = sock.getsockname()[1]
        self._closing = False
        started = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, args=(self._loop, sock, started), name="receiver", daemon=True
        )
        self._thread.start()
        if not started.wait(START_TIMEOUT_SECONDS):
            raise RuntimeError("the receiver did not start")
        return self

    def stop(self) -> None:
        """Stop listening; what was recorded is kept. Connections are refused until `start`."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        # Black-hole and slow handlers poll this flag, so shutdown does not wait for them.
        self._closing = True
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT_SECONDS)
        self._loop = self._thread = None

    def _serve(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, started: threading.Event
    ) -> None:
        asyncio.set_event_loop(loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS, access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock, ssl_context=self._ssl_context).start())
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def __aenter__(self) -> Receiver:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    @property
    def url(self) -> str:
        """The URL a webhook should post to."""
        return self.url_for(DEFAULT_PATH)

    def url_for(self, path: str) -> str:
        """A URL on this receiver with another path."""
        scheme = "http" if self._ssl_context is None else "https"
        return f"{scheme}://{LOOPBACK}:{self.port}{path}"

    # ------------------------------------------------------------ behaviours

    def set_behaviour(self, behaviour: Behaviour) -> None:
        """Replace the whole behaviour and reset the failure counters."""
        with self._lock:
            self._behaviour = behaviour
            self._failures_so_far = 0
            self._failures_per_delivery.clear()

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._behaviour = replace(self._behaviour, **changes)

    def healthy(self) -> None:
        """Back to the default: answer 200 at once."""
        self.set_behaviour(Behaviour())

    def answer(
        self, status: int = 200, *, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> None:
        """Answer every request with `status` (and headers, body)."""
        self._update(reply=Reply(ReplyKind.STATUS, status, dict(headers or {}), body))

    def gone(self) -> None:
        """Answer 410 Gone."""
        self.answer(410)

    def throttle(self, status: int = 429, retry_after: str = "1") -> None:
        """Answer 429 or 503 with a `Retry-After` header."""
        self.answer(status, headers={"Retry-After": retry_after})

    def black_hole(self) -> None:
        """Accept requests and never answer them."""
        self._update(reply=Reply(ReplyKind.BLACK_HOLE))

    def reset_connections(self) -> None:
        """Read each request, then close its connection abruptly."""
        self._update(reply=Reply(ReplyKind.RESET))

    def redirect(self, status: int = 302, location: str | None = None) -> None:
        """Answer with a redirect (to `/redirected` on this receiver unless told)."""
        target = location or self.url_for(REDIRECT_TARGET_PATH)
        self.answer(status, headers={"Location": target})

    def slow(self, seconds: float) -> None:
        """Wait `seconds` before answering (0: answer at once)."""
        self._update(delay_seconds=seconds)

    def fail_first(
        self,
        count: int,
        *,
        per_delivery: bool = False,
        status: int = 500,
        headers: Mapping[str, str] | None = None,
        failure: Reply | None = None,
    ) -> None:
        """Fail the next `count` requests (globally, or of each delivery id) with `status`."""
        with self._lock:
            self._behaviour = replace(
                self._behaviour,
                fail_first=count,
                fail_first_per_delivery=per_delivery,
                failure=failure or Reply(ReplyKind.STATUS, status, dict(headers or {})),
            )
            self._failures_so_far = 0
            self._failures_per_delivery.clear()

    def fail_randomly(self, probability: float, *, seed: int = 0, status: int = 500) -> None:
        """Fail each request with `probability`, reproducibly from `seed`."""
        with self._lock:
            self._rng = random.Random(seed)
            self._behaviour = replace(
                self._behaviour,
                failure_probability=probability,
                failure=Reply(ReplyKind.STATUS, status),
            )

    def _choose_reply(self, delivery_id: str | None) -> tuple[Reply, float]:
        with self._lock:
            b = self._behaviour
            if b.fail_first_per_delivery and delivery_id is not None:
                failed = self._failures_per_delivery.get(delivery_id, 0)
                if failed < b.fail_first:
                    self._failures_per_delivery[delivery_id] = failed + 1
                    return b.failure, b.delay_seconds
            elif not b.fail_first_per_delivery and self._failures_so_far < b.fail_first:
                self._failures_so_far += 1
                return b.failure, b.delay_seconds
            if b.failure_probability > 0 and self._rng.random() < b.failure_probability:
                return b.failure, b.delay_seconds
            return b.reply, b.delay_seconds

    # ------------------------------------------------------------ serving

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        reply, delay = self._choose_reply(headers.get("orderhooks-delivery-id"))
        with self._lock:
            recorded = ReceivedRequest(
                index=len(self._requests),
                arrived_monotonic=time.monotonic(),
                arrived_wall=time.time(),
                method=request.method,
                path=request.path,
                headers=headers,
                body=body,
                json=_parse_json(body),
                reply=reply.describe(),
                client_name=_client_name(request),
            )
            self._requests.append(recorded)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            return await self._answer(request, recorded.index, reply, delay)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _answer(
        self, request: web.Request, index: int, reply: Reply, delay: float
    ) -> web.StreamResponse:
        connected = True
        if delay > 0:
            connected = await self._wait_while_connected(request, delay)
        if reply.kind is ReplyKind.BLACK_HOLE:
            connected = await self._wait_while_connected(request, float("inf"))
        elif reply.kind is ReplyKind.RESET:
            _reset(request)
        if not connected:
            with self._lock:
                self._abandoned.add(index)
        return web.Response(status=reply.status, headers=dict(reply.headers), body=reply.body)

    async def _wait_while_connected(self, request: web.Request, seconds: float) -> bool:
        """Sleep up to `seconds`; False as soon as the client hangs up (or we stop)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            transport = request.transport
            if self._closing or transport is None or transport.is_closing():
                return False
            await asyncio.sleep(min(POLL_INTERVAL_SECONDS, max(0.0, deadline - time.monotonic())))
        return True

    # ------------------------------------------------------------ observations

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return [
                replace(r, abandoned=True) if r.index in self._abandoned else r
                for r in self._requests
            ]

    @property
    def in_flight(self) -> int:
        """Requests being answered right now (or held in a black hole)."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests observed in flight at once."""
        with self._lock:
            return self._max_in_flight

    def reset_max_in_flight(self) -> None:
        """Start measuring the maximum in flight again from now."""
        with self._lock:
            self._max_in_flight = self._in_flight

    def abandoned(self) -> list[ReceivedRequest]:
        """Requests whose client hung up before the (delayed) answer was sent."""
        return [r for r in self.requests if r.abandoned]

    def accepted(self, path: str | None = None) -> list[ReceivedRequest]:
        """Requests answered 2xx, in arrival order."""
        return [r for r in self.requests if r.accepted and (path is None or r.path == path)]

    def events(self, *, accepted_only: bool = False, path: str | None = None) -> list[Any]:
        """Parsed bodies in arrival order (of every request, or of those answered 2xx)."""
        return [
            r.json
            for r in self.requests
            if (r.accepted or not accepted_only) and (path is None or r.path == path)
        ]

    def delivered_ids(self) -> set[str]:
        """The `webhook-id`s answered 2xx at least once."""
        return {r.webhook_id for r in self.accepted() if r.webhook_id is not None}

    def verify_all(self, secret: str, *, hex_secret: str | None = None) -> int:
        """Check every request's signatures (see `signature_problem`); the number checked."""
        requests = self.requests
        problems = [
            f"request {r.index} ({r.webhook_id}): {problem}"
            for r in requests
            if (problem := signature_problem(r, secret, hex_secret)) is not None
        ]
        assert not problems, "signature verification failed:\n" + "\n".join(problems)
        return len(requests)

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        # A deadline argument reads better in tests than an asyncio.timeout block per wait.
        timeout: float = 10.0,  # noqa: ASYNC109
        what: str = "",
    ) -> None:
        """Wait until `predicate()` holds; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise self._timed_out(predicate, timeout, what)
            await asyncio.sleep(POLL_INTERVAL_SECONDS)

    def wait_for_sync(
        self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = ""
    ) -> None:
        """`wait_for` for code without an event loop."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise self._timed_out(predicate, timeout, what)
            time.sleep(POLL_INTERVAL_SECONDS)

    def _timed_out(
        self, predicate: Callable[[], bool], timeout: float, what: str
    ) -> AssertionError:
        return AssertionError(
            f"timed out after {timeout} s waiting for {what or predicate!r}; "
            f"{len(self.requests)} requests received"
        )

    async def wait_for_delivered(
        self,
        webhook_ids: set[str],
        timeout: float = 10.0,  # noqa: ASYNC109 - as in wait_for
    ) -> None:
        """Wait until every id in `webhook_ids` has been answered 2xx."""
        await self.wait_for(
            lambda: webhook_ids <= self.delivered_ids(),
            timeout,
            f"{len(webhook_ids)} events delivered",
        )


def _client_name(request: web.Request) -> str | None:
    """The common name of the request's client certificate, if it presented one."""
    peer = request.transport.get_extra_info("peercert") if request.transport else None
    if not peer:
        return None
    subject = dict(pair[0] for pair in peer.get("subject", ()))
    return str(subject.get("commonName", ""))


def _reset(request: web.Request) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), as a crashing peer would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
