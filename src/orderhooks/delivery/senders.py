"""Sender processes: the sending half of delivery, on the other cores (docs/architecture.md).

With `ORDERHOOKS_WORKERS` above 1, `serve` keeps the store, the API, the claims and the
recording in its own process and hands the requests it has built and signed to
`workers - 1` sender processes (`python -m orderhooks.delivery.sender`), which send them
with the real `AiohttpTransport` (the network guard, the timeout, no redirects, the
pool) and answer with the `TransportResult`. To the dispatcher, `SenderPool` is just
another `Transport`: claims, per-order order, `maxConcurrency`, rate limits and probing
stay in the one process that owns the store, exactly as with one process.

The channel is a socket pair per sender, both ends ours, with frames of a 4-byte length
and a pickled list of messages (every request or result finished in one turn of the
event loop travels in one frame).

A sender that dies (a crash, SIGKILL) loses nothing: each request it had not answered
goes to another sender (or to its replacement) as soon as that attempt's timeout is
over, not after its lease (timeout + 30 s), signed afresh; one that could not be
answered before the lease ends is given up (`AttemptAbandoned`) and left to it. Until
then its delivery keeps its `maxConcurrency` slot, as an attempt that timed out would:
the receiver may still be working on the first copy. The second copy is what
at-least-once delivery allows (docs/guarantees.md). A sender that hangs (SIGSTOP, stuck) keeps
its channel open: one that has not answered a request `HUNG_GRACE_SECONDS` after its
timeout is killed, and is then a sender that died. The pool starts a replacement at
once, or with a backoff when senders keep dying. Senders ignore SIGTERM and SIGINT: the
parent drains its attempts first, then closes the channels, and a sender exits when its
channel closes (so it also exits when the parent dies).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import socket
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from orderhooks.clock import utc_now
from orderhooks.delivery.transport import AttemptAbandoned, OutboundRequest, TransportResult
from orderhooks.domain.model import AttemptError, ClientTls
from orderhooks.logging import get_logger

FRAME_HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 256 * 1024 * 1024
RESTART_BACKOFF_INITIAL_SECONDS = 0.1
RESTART_BACKOFF_MAX_SECONDS = 5.0
# A sender that stayed up this long was healthy: its next crash restarts it at once.
HEALTHY_UPTIME_SECONDS = 10.0
EXIT_WAIT_SECONDS = 5.0
# A sender answers each request by the end of its timeout (the transport's own bound on
# the whole attempt). One this late, or not ready this long after its start, is hung
# (stopped, or stuck): it is killed, and its requests go to another sender.
HUNG_GRACE_SECONDS = 10.0  # generous: a sender starved of CPU on a loaded host is not hung
START_TIMEOUT_SECONDS = 30.0
# A copy sent again must be answered, and its outcome written, this long before the
# delivery's lease ends.
RESEND_MARGIN_SECONDS = 2.0
HUNG_CHECK_SECONDS = 1.0
SENDER_MODULE = "orderhooks.delivery.sender"

log = get_logger("orderhooks.delivery")

# What crosses the channel: plain tuples, cheap to pickle.
RequestMessage = tuple[int, str, bytes, tuple[tuple[str, str], ...], float, ClientTls | None, str]
ResultMessage = tuple[int, int | None, str, tuple[tuple[str, str], ...], str | None, int, str]


@dataclass(frozen=True, slots=True)
class SenderConfig:
    """What a sender process needs to build its transport, sent as its first frame."""

    allowed_networks: tuple[str, ...]
    limit: int
    proxy: str | None
    log_format: str
    log_level: str


def encode_frame(messages: Sequence[Any]) -> bytes:
    """One frame: the length, then the pickled list."""
    payload = pickle.dumps(messages, protocol=pickle.HIGHEST_PROTOCOL)
    return FRAME_HEADER.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next frame's list; `asyncio.IncompleteReadError` when the channel closed."""
    (size,) = FRAME_HEADER.unpack(await reader.readexactly(FRAME_HEADER.size))
    if size > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {size} bytes is too large")
    # Both ends of the socket pair belong to orderhooks: nothing else can write to it.
    return pickle.loads(await reader.readexactly(size))  # noqa: S301


def request_message(request_id: int, request: OutboundRequest) -> RequestMessage:
    """The request as it crosses the channel."""
    return (
        request_id,
        request.url,
        request.body,
        tuple(request.headers.items()),
        request.timeout_seconds,
        request.client_tls,
        request.webhook_id,
    )


def request_from_message(message: RequestMessage) -> tuple[int, OutboundRequest]:
    """The request id and the request of a message."""
    request_id, url, body, headers, timeout_seconds, client_tls, webhook_id = message
    request = OutboundRequest(url, body, dict(headers), timeout_seconds, client_tls, webhook_id)
    return request_id, request


def result_message(request_id: int, result: TransportResult) -> ResultMessage:
    """The result as it crosses the channel."""
    return (
        request_id,
        result.status_code,
        result.response_excerpt,
        tuple(result.response_headers.items()),
        result.error.value if result.error is not None else None,
        result.duration_ms,
        result.detail,
    )


def result_from_message(message: ResultMessage) -> tuple[int, TransportResult]:
    """The request id and the result of a message."""
    request_id, status, excerpt, headers, error, duration_ms, detail = message
    return request_id, TransportResult(
        status,
        excerpt,
        CIMultiDictProxy(CIMultiDict(headers)),
        AttemptError(error) if error is not None else None,
        duration_ms,
        detail,
    )


@dataclass
class _Sender:
    """One sender process and the requests it has not answered yet."""

    number: int
    process: asyncio.subprocess.Process | None = None
    writer: asyncio.StreamWriter | None = None
    reader_task: asyncio.Task[None] | None = None
    # Unanswered requests, with the loop time their attempt's timeout ends.
    pending: dict[int, tuple[OutboundRequest, float]] = field(default_factory=dict)
    started_at: float = 0.0
    ready_at: float | None = None  # when its first frame (that it is ready) arrived
    backoff: float = RESTART_BACKOFF_INITIAL_SECONDS
    outbox: list[RequestMessage] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.writer is not None and not self.writer.is_closing()


class SenderPool:
    """A `Transport` whose requests are sent by `size` sender processes."""

    def __init__(self, size: int, config: SenderConfig) -> None:
        if size < 1:
            raise ValueError("a sender pool needs at least one sender")
        self._config = config
        self._senders = [_Sender(number) for number in range(size)]
        self._futures: dict[int, asyncio.Future[TransportResult]] = {}
        self._ids = itertools.count(1)
        self._closing = False
        self._waiting: list[tuple[int, OutboundRequest]] = []  # no sender alive right now
        self._restarts: set[asyncio.Task[None]] = set()
        self._flush_scheduled = False
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def pids(self) -> list[int]:
        """The process ids of the running senders."""
        return [s.process.pid for s in self._senders if s.process is not None and s.alive]

    async def start(self) -> None:
        """Start every sender process."""
        for sender in self._senders:
            await self._start(sender)
        self._watchdog = asyncio.create_task(self._watch(), name="sender-watchdog")

    async def send(self, request: OutboundRequest) -> TransportResult:
        """Hand the request to the least busy sender and wait for its result."""
        if self._closing:
            raise RuntimeError("the sender pool is closed")
        request_id = next(self._ids)
        future: asyncio.Future[TransportResult] = asyncio.get_running_loop().create_future()
        self._futures[request_id] = future
        self._assign(request_id, request)
        try:
            return await future
        finally:
            self._futures.pop(request_id, None)

    async def close(self) -> None:
        """Close every channel and wait for the senders to exit (killing laggards)."""
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        for task in list(self._restarts):
            task.cancel()
        await asyncio.gather(*self._restarts, return_exceptions=True)
        for future in self._futures.values():
            if not future.done():
                future.cancel()
        await asyncio.gather(*(self._stop(sender) for sender in self._senders))

    # ------------------------------------------------------------ assigning work

    def _assign(self, request_id: int, request: OutboundRequest) -> None:
        live = [s for s in self._senders if s.alive]
        if not live:
            self._waiting.append((request_id, request))
            return
        sender = min(live, key=lambda s: len(s.pending))
        deadline = asyncio.get_running_loop().time() + request.timeout_seconds
        sender.pending[request_id] = (request, deadline)
        sender.outbox.append(request_message(request_id, request))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Write each sender's requests of this loop turn as one frame."""
        self._flush_scheduled = False
        for sender in self._senders:
            if sender.outbox and sender.alive and sender.writer is not None:
                sender.writer.write(encode_frame(sender.outbox))
            sender.outbox = []

    def _reassign(self, requests: Iterable[tuple[int, OutboundRequest]]) -> None:
        """Send again what a dead sender had not answered, or what waited for a sender:
        signed afresh, as `webhook-timestamp` is the time of each attempt. One that could
        still be in flight when its delivery's lease ends is given up instead (the lease
        brings the delivery back): else the claim after the lease sends a copy of its
        own, and the two are in flight at once."""
        now = utc_now()
        for request_id, request in requests:
            future = self._futures.get(request_id)
            if future is None or future.done():
                continue
            lease = request.lease_expires_at
            if (
                lease is not None
                and now + timedelta(seconds=request.timeout_seconds + RESEND_MARGIN_SECONDS) > lease
            ):
                future.set_exception(AttemptAbandoned("no time left in the lease to send it again"))
                continue
            if request.resign is not None:
                request = request.resign(now)
            self._assign(request_id, request)

    # ------------------------------------------------------------ one sender's life

    async def _start(self, sender: _Sender) -> None:
        parent_end, child_end = socket.socketpair()
        try:
            sender.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                SENDER_MODULE,
                str(child_end.fileno()),
                pass_fds=(child_end.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        reader, writer = await asyncio.open_connection(sock=parent_end)
        writer.write(encode_frame([self._config]))
        sender.writer = writer
        sender.started_at = asyncio.get_running_loop().time()
        sender.ready_at = None
        sender.reader_task = asyncio.create_task(
            self._read_results(sender, reader), name=f"sender-{sender.number}"
        )
        log.info("sender process started", sender=sender.number, pid=sender.process.pid)
        waiting, self._waiting = self._waiting, []
        self._reassign(waiting)

    async def _read_results(self, sender: _Sender, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                messages = await read_frame(reader)
                if sender.ready_at is None:
                    self._ready(sender)
                for message in messages:
                    request_id, result = result_from_message(message)
                    sender.pending.pop(request_id, None)
                    future = self._futures.get(request_id)
                    if future is not None and not future.done():
                        future.set_result(result)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, pickle.PickleError):
            pass  # the channel closed: the sender exited or died
        if not self._closing:
            self._lost(sender)

    def _ready(self, sender: _Sender) -> None:
        """The sender's first frame (empty) arrived: it starts on its requests now, so
        none of them can end before its timeout counted from here."""
        now = asyncio.get_running_loop().time()
        sender.ready_at = now
        for request_id, (request, deadline) in list(sender.pending.items()):
            sender.pending[request_id] = (request, max(deadline, now + request.timeout_seconds))

    async def _watch(self) -> None:
        """Kill a sender that is hung: a stopped process keeps its channel open, so
        nothing else would ever notice, and its requests would hold their deliveries'
        slots and orders for ever. Its channel then closes, as when it dies."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(HUNG_CHECK_SECONDS)
            now = loop.time()
            for sender in self._senders:
                process = sender.process
                if process is None or process.returncode is not None or not sender.alive:
                    continue
                if sender.ready_at is None:
                    hung = now - sender.started_at > START_TIMEOUT_SECONDS
                else:
                    late = now - HUNG_GRACE_SECONDS
                    hung = any(deadline < late for _, deadline in sender.pending.values())
                if hung:
                    log.warning(
                        "sender process hung; killing it",
                        sender=sender.number,
                        pid=process.pid,
                        requests=len(sender.pending),
                    )
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()

    def _lost(self, sender: _Sender) -> None:
        """A sender died: its unanswered requests go elsewhere now, and it comes back."""
        code = _end(sender)
        orphans = list(sender.pending.items())
        sender.pending.clear()
        loop = asyncio.get_running_loop()
        now = loop.time()
        log.warning(
            "sender process died; restarting it",
            sender=sender.number,
            exit_code=code,
            requests_resent=len(orphans),
        )
        # Each one is sent again once its attempt's timeout is over, as after an attempt
        # that timed out: the receiver may still be working on it, and `maxConcurrency`
        # counts it until then.
        for request_id, (request, deadline) in orphans:
            loop.call_at(max(now, deadline), self._reassign, [(request_id, request)])
        task = asyncio.create_task(self._restart(sender))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _restart(self, sender: _Sender) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - sender.started_at >= HEALTHY_UPTIME_SECONDS:
            sender.backoff = RESTART_BACKOFF_INITIAL_SECONDS
        else:
            await asyncio.sleep(sender.backoff)
            sender.backoff = min(sender.backoff * 2, RESTART_BACKOFF_MAX_SECONDS)
        while not self._closing:
            try:
                await self._start(sender)
                return
            except Exception as exc:  # whatever it was, the sender must come back
                log.error("could not start a sender process", error=repr(exc))
                await asyncio.sleep(sender.backoff)
                sender.backoff = min(sender.backoff * 2, RESTART_BACKOFF_MAX_SECONDS)

    async def _stop(self, sender: _Sender) -> None:
        if sender.writer is not None:
            sender.writer.close()
            try:
                # A closing channel first writes out what is buffered, which a sender
                # that reads nothing (stopped, hung) never takes: then it is cut.
                await asyncio.wait_for(sender.writer.wait_closed(), EXIT_WAIT_SECONDS)
            except TimeoutError:
                sender.writer.transport.abort()
            except OSError:
                pass
        if sender.reader_task is not None:
            sender.reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender.reader_task
        process = sender.process
        if process is None:
            return
        try:
            await asyncio.wait_for(process.wait(), EXIT_WAIT_SECONDS)
        except TimeoutError:
            log.warning("a sender process did not exit; killing it", pid=process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def _end(sender: _Sender) -> int | None:
    """Close a lost sender's channel and make sure its process ends; its exit code if known."""
    if sender.writer is not None:
        sender.writer.close()
    process = sender.process
    if process is None:
        return None
    if process.returncode is None:
        # The channel broke but the process lives on (or is still exiting): it is of no
        # use any more. Its exit is collected by the event loop's child watcher.
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    return process.returncode


def sender_config(
    allowed_networks: Iterable[object], limit: int, proxy: str | None, log_format: str
) -> SenderConfig:
    """The configuration of this process's senders (the log level is this process's)."""
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    return SenderConfig(
        tuple(str(network) for network in allowed_networks), limit, proxy, log_format, level
    )


__all__ = ["SenderConfig", "SenderPool", "sender_config"]
