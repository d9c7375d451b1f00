"""Deadlines on client connections, which uvicorn leaves unbounded.

uvicorn closes a connection only when it idles after an answer (`timeout_keep_alive`).
A connection that never sends a byte, or that sends its request a few bytes at a time
(slowloris), it keeps open for as long as the client likes: enough of them, opened
without any key, use up the process's file descriptors, and then the API answers no one
and deliveries cannot open their connections. With these deadlines a connection must
begin a request within the keep-alive time of opening (as it must after an answer), and
a request must arrive whole, head and body, within `request_seconds` of its first byte;
otherwise the connection is closed (docs/security.md).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# A whole request, from its first byte to its last: far more than a request of
# ORDERHOOKS_MAX_BODY_BYTES needs on any link that can deliver it.
REQUEST_SECONDS = 60.0


class _DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections that do not bring a request in
    time. The deadlines are class attributes: `bounded_protocol` sets them."""

    idle_seconds: float
    request_seconds: float
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.idle_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.request_seconds)

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
        "DeadlineProtocol",
        (_DeadlineProtocol,),
        {"idle_seconds": idle_seconds, "request_seconds": request_seconds},
    )


__all__ = ["REQUEST_SECONDS", "bounded_protocol"]
