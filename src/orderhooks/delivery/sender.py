"""One sender process: `python -m orderhooks.delivery.sender <fd>` (see `senders.py`).

Reads its `SenderConfig` and answers with an empty frame (ready: the parent counts its
requests' timeouts from there), then reads frames of requests from the socket `fd`,
sends each one with an `AiohttpTransport` (the same guarded, pooled transport one
process uses) and writes the results back, a frame per loop turn. It exits when the
channel closes: the parent closes it after draining, or died. SIGTERM and SIGINT are
the parent's to act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import signal
import socket
import sys

from orderhooks.config.kinds import parse_network_list
from orderhooks.delivery.netguard import NetworkGuard
from orderhooks.delivery.senders import (
    RequestMessage,
    ResultMessage,
    SenderConfig,
    encode_frame,
    read_frame,
    request_from_message,
    result_message,
)
from orderhooks.delivery.transport import (
    AiohttpTransport,
    OutboundRequest,
    Transport,
    TransportResult,
)
from orderhooks.domain.model import AttemptError
from orderhooks.logging import configure_logging, get_logger

log = get_logger("orderhooks.delivery")

# Attempts started from one frame before the loop turns (bench: 8 or 4 gave the parent's
# drain 2,900-3,000 deliveries/s against 2,000-2,400 with a whole frame at once;
# docs/benchmarks.md, "Fifth round").
START_BEFORE_YIELDING = 8


class _Replies:
    """Results finished in one loop turn, written as one frame."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._outbox: list[ResultMessage] = []

    def add(self, message: ResultMessage) -> None:
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append(message)

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        if outbox and not self._writer.is_closing():
            self._writer.write(encode_frame(outbox))


async def send_or_fail(transport: Transport, request: OutboundRequest) -> TransportResult:
    """The transport's result, or a failed attempt when the transport itself raises: the
    parent waits for one reply per request, and a request left unanswered would hold its
    webhook's slot until the sender is replaced."""
    try:
        return await transport.send(request)
    except Exception as exc:
        log.error("the sender failed an attempt", error=type(exc).__name__)
        return TransportResult(
            None, "", {}, AttemptError.CONNECTION_ERROR, 0, f"sender error: {type(exc).__name__}"
        )


async def serve_channel(fd: int) -> None:
    """Send the requests arriving on `fd` until it closes."""
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    (config,) = await read_frame(reader)
    if not isinstance(config, SenderConfig):
        raise TypeError("the first frame must be the sender's configuration")
    configure_logging(config.log_format, config.log_level)
    guard = NetworkGuard(parse_network_list(",".join(config.allowed_networks)))
    transport = AiohttpTransport(guard, limit=config.limit, proxy=config.proxy)
    replies = _Replies(writer)
    writer.write(encode_frame([]))  # ready: the parent counts timeouts from here
    in_flight: set[asyncio.Task[None]] = set()

    async def attempt(message: RequestMessage) -> None:
        request_id, request = request_from_message(message)
        result = await send_or_fail(transport, request)
        replies.add(result_message(request_id, result))

    try:
        while True:
            try:
                messages = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                break  # the parent closed the channel (drained) or died
            for index, message in enumerate(messages):
                task = asyncio.create_task(attempt(message))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                if index % START_BEFORE_YIELDING == START_BEFORE_YIELDING - 1:
                    # One loop turn: the attempts started so far send, and answers that
                    # have arrived go back, before more start. Else a frame of 60 requests
                    # is sent whole before the first answer is read, and the parent's
                    # claims move in lockstep with this process's bursts.
                    await asyncio.sleep(0)
    finally:
        # Nobody is left to record an outcome: whatever is still in flight is dropped,
        # and its delivery's lease brings it back.
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        await transport.close()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def main(argv: list[str]) -> int:
    """Run one sender on the socket whose descriptor is `argv[0]`."""
    # The parent drains on SIGTERM and then closes the channel; a terminal's Ctrl-C
    # reaches the whole process group and must not cut the senders short either.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        uvloop.run(serve_channel(int(argv[0])))
    else:
        asyncio.run(serve_channel(int(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
