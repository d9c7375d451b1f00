"""The catch-all middleware (web/errors.py): an exception before the answer starts is a
500 with the error JSON; one after it started is not answered a second time."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from orderhooks.web.errors import CatchAllMiddleware

SCOPE: Scope = {
    "type": "http",
    "method": "GET",
    "path": "/v1/x",
    "headers": [],
    "query_string": b"",
}


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _run(app: CatchAllMiddleware) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(SCOPE, _receive, send))
    return sent


async def _fails_before_answering(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("boom")


async def _fails_while_answering(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise RuntimeError("boom")


def test_an_exception_before_the_answer_is_a_500_with_the_error_json() -> None:
    sent = _run(CatchAllMiddleware(_fails_before_answering))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 500
    assert orjson.loads(sent[1]["body"])["error"]["code"] == "internal_error"


def test_an_exception_after_the_answer_started_is_raised_not_answered_again() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(CatchAllMiddleware(_fails_while_answering)(SCOPE, _receive, send))
    assert [(m["type"], m["status"]) for m in sent] == [("http.response.start", 200)]
