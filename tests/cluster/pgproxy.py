"""A TCP proxy in front of PostgreSQL that can play a database outage.

The tests share one PostgreSQL server with every other test, so they must never stop
it. Pointed at this proxy instead, orderhooks sees what a restart looks like from the
client side: `cut()` drops every open connection and refuses new ones (connection
refused), `restore()` accepts them again on the same port. `freeze()` plays a server
that stops answering without closing anything (a frozen host, a silent partition):
nothing is forwarded any more and new connections hang. It runs its own event loop
in a daemon thread, like the test receiver, so the test's loop may block freely.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, Self

from orderhooks.testing.lifecycle import Background

LOOPBACK = "127.0.0.1"
PIPE_CHUNK_BYTES = 65536
CALL_TIMEOUT_SECONDS = 10.0


class PgProxy(Background):
    """Forwards 127.0.0.1:<port> to the PostgreSQL server; `cut` and `restore` it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pgproxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._frozen = asyncio.Event()
        self.port = 0
        self.connections = 0  # accepted since start, for the test's figures

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(CALL_TIMEOUT_SECONDS)

    def start(self) -> Self:
        """Start the thread and listen on a free port."""
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        """Drop every open connection and refuse new ones, as a stopped server would."""
        self._call(self._cut())

    def freeze(self) -> None:
        """Forward nothing more, in either direction, and let new connections hang."""
        self._loop.call_soon_threadsafe(self._frozen.set)

    def restore(self) -> None:
        """Accept connections again on the same port."""
        self._call(self._listen())

    def stop(self) -> None:
        """Cut, then stop the thread."""
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CALL_TIMEOUT_SECONDS)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, LOOPBACK, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()  # refuse new connections from now on
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._frozen.is_set():
            self._writers.add(client_w)  # aborted by `cut`, never answered before
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.transport.abort()
            return
        self.connections += 1
        self._writers.update((client_w, server_w))
        try:
            await asyncio.gather(
                _pipe(client_r, server_w, self._frozen), _pipe(server_r, client_w, self._frozen)
            )
        finally:
            for writer in (client_w, server_w):
                self._writers.discard(writer)
                writer.transport.abort()


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frozen: asyncio.Event
) -> None:
    """Copy one direction until either side closes; once `frozen`, drop what comes."""
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while chunk := await reader.read(PIPE_CHUNK_BYTES):
            if frozen.is_set():
                continue
            writer.write(chunk)
            await writer.drain()
    writer.transport.abort()
