"""The status an ASGI app answers with, noted on the way out (for the middlewares that
time or trace requests)."""

from __future__ import annotations

from starlette.types import Message, Send

# What a request counts as when the app fails before it starts an answer.
STATUS_WHEN_NO_ANSWER = 500


class StatusNotingSend:
    """An ASGI `send` that passes every message on and notes the answer's status code."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = STATUS_WHEN_NO_ANSWER

    async def __call__(self, message: Message) -> None:
        """Note the status of `http.response.start`, then send the message on."""
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
        await self._send(message)
