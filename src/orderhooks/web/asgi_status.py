"""The status an ASGI app answers with, noted on the way out (for the middlewares that
time or trace requests, or must know whether an answer has started)."""

from __future__ import annotations

from starlette.types import Message, Send

# What a request counts as when the app fails before it starts an answer.
STATUS_WHEN_NO_ANSWER = 500


class StatusNotingSend:
    """An ASGI `send` that passes every message on and notes whether the answer has
    started and with which status code."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.status = STATUS_WHEN_NO_ANSWER

    async def __call__(self, message: Message) -> None:
        """Note `http.response.start` and its status, then send the message on."""
        if message["type"] == "http.response.start":
            self.started = True
            self.status = int(message["status"])
        await self._send(message)
