"""Bounds on client connections, which uvicorn leaves open-ended.

uvicorn closes a connection only when it idles after an answer (`timeout_keep_alive`).
A connection that never sends a byte, or that sends its request a few bytes at a time
(slowloris), it keeps open for as long as the client likes: enough of them, opened
without any key, use up the process's file descriptors, and then the API answers no one
and deliveries cannot open their connections. With these deadlines a connection must
begin a request within the keep-alive time of opening (as it must after an answer), and
a request must arrive whole, head and body, within `request_seconds` of its first byte;
otherwise the connection is closed.

uvicorn also holds a request's head (its request line and headers) however long it is,
copying the URL again with every piece of it that arrives: one connection sending an
endless URL held hundreds of megabytes. A head longer than MAX_HEAD_BYTES is answered
431 and the connection closed (docs/security.md).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# A whole request, from its first byte to its last: far more than a request of
# ORDERHOOKS_MAX_BODY_BYTES needs on any link that can deliver it.
REQUEST_SECONDS = 60.0
# The request line and headers together: no request of the API or the dashboard comes
# near it (their query values are at most a few hundred characters), and common proxies
# allow less (nginx: four buffers of 8 KiB).
MAX_HEAD_BYTES = 65_536
_HEAD_TOO_LARGE = f"the request line and headers are larger than {MAX_HEAD_BYTES} bytes".encode()
# After a 431, what the client still sends is read and dropped this long before the
# connection closes: closing with unread bytes would reset it, and the client would
# lose the answer.
REFUSED_LINGER_SECONDS = 1.0


class _BoundedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections that do not bring a request in
    time or whose request head is too long. The deadlines are class attributes:
    `bounded_protocol` sets them."""

    idle_seconds: float
    request_seconds: float
    _deadline: asyncio.TimerHandle | None = None
    _in_head = False  # between the first byte of a request and the end of its headers
    _head_bytes = 0
    _refused = False  # answered 431: the rest is dropped until the connection closes

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        was_in_head = self._in_head
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        # The head is still incomplete, so all of `data` since the request began is head
        # (the chunk it began in is counted whole: at most one read too many).
        self._head_bytes = self._head_bytes + len(data) if was_in_head else len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse_head()

    def _refuse_head(self) -> None:
        self._refused = True
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(_HEAD_TOO_LARGE)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + _HEAD_TOO_LARGE
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._arm(REFUSED_LINGER_SECONDS)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.idle_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._arm(self.request_seconds)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn arms its keep-alive timer when no pipelined request waits; that timer
        # ends at the first byte of the next request, this one only once it is whole.
        if self.timeout_keep_alive_task is not None:
            self._arm(self.idle_seconds)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def bounded_protocol(
    idle_seconds: float, request_seconds: float = REQUEST_SECONDS
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a deadline to begin a request after the
    connection opens (`idle_seconds`) and one to receive it whole (`request_seconds`)."""
    return type(
        "BoundedProtocol",
        (_BoundedProtocol,),
        {"idle_seconds": idle_seconds, "request_seconds": request_seconds},
    )


__all__ = ["MAX_HEAD_BYTES", "REQUEST_SECONDS", "bounded_protocol"]
