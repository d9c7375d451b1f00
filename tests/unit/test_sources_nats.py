"""The NATS session's pull requests without a broker: what it asks JetStream for, how
the answers on its inbox end a fetch, and a refusal that makes the loop reconnect (the
broker itself is in tests/e2e/test_sources_nats.py and test_sources_brokers.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from nats.aio.msg import Msg

from orderhooks.sources import nats as nats_source
from orderhooks.sources.config import parse_source
from orderhooks.sources.consumer import BrokerLost
from orderhooks.sources.nats import NatsSession

SOURCE = parse_source("nats://127.0.0.1:4222/ORDERS?subject=orders.>&durable=hooks")
NEXT = "$JS.API.CONSUMER.MSG.NEXT.ORDERS.hooks"

Answer = Callable[[dict[str, Any]], list[Msg]]


class Connection:
    """Answers each pull request on the inbox, as `answer` says."""

    def __init__(self, answer: Answer) -> None:
        self.is_closed = False
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.callback: Callable[[Msg], Awaitable[None]] | None = None
        self.deliveries: list[asyncio.Future[None]] = []

    def new_inbox(self) -> str:
        return "_INBOX.test"

    async def subscribe(self, subject: str, cb: Callable[[Msg], Awaitable[None]]) -> None:
        assert subject == "_INBOX.test"
        self.callback = cb

    async def publish(self, subject: str, payload: bytes, reply: str) -> None:
        assert subject == NEXT and reply == "_INBOX.test"
        request = orjson.loads(payload)
        self.requests.append(request)
        asyncio.get_running_loop().call_soon(self._answer, request)

    def _answer(self, request: dict[str, Any]) -> None:
        assert self.callback is not None
        for msg in self.answer(request):
            self.deliveries.append(asyncio.ensure_future(self.callback(msg)))


def _message(sequence: int, pending: int) -> Msg:
    reply = f"$JS.ACK.ORDERS.hooks.1.{sequence}.{sequence}.1700000000000000000.{pending}"
    return Msg(None, subject="orders.x", reply=reply, data=b"m%d" % sequence)  # type: ignore[arg-type]


def _status(code: str, description: str) -> Msg:
    headers = {"Status": code, "Description": description}
    return Msg(None, subject="_INBOX.test", headers=headers)  # type: ignore[arg-type]


async def _session(answer: Answer) -> tuple[NatsSession, Connection]:
    connection = Connection(answer)
    session = NatsSession(connection, None, SimpleNamespace(), SOURCE)  # type: ignore[arg-type]
    await session.start()
    return session, connection


async def test_a_fetch_takes_what_is_available_at_once() -> None:
    def answer(request: dict[str, Any]) -> list[Msg]:
        return [_message(1, 9), _message(2, 8), _message(3, 7), _status("404", "No Messages")]

    session, connection = await _session(answer)
    fetched = await session.fetch()
    assert [m.body for m in fetched] == [b"m1", b"m2", b"m3"]
    assert connection.requests == [{"batch": 500, "no_wait": True}]
    assert await session.lag() == 7  # as the last message said


async def test_an_idle_durable_is_asked_again_with_a_wait(monkeypatch: Any) -> None:
    monkeypatch.setattr(nats_source, "FETCH_WAIT_SECONDS", 0.05)

    def answer(request: dict[str, Any]) -> list[Msg]:
        if request.get("no_wait"):
            return [_status("404", "No Messages")]
        return [_message(4, 0)]

    session, connection = await _session(answer)
    [message] = await session.fetch()
    assert message.body == b"m4"
    assert connection.requests == [
        {"batch": 500, "no_wait": True},
        {"batch": 500, "expires": 50_000_000},
    ]


async def test_nothing_within_the_wait_is_an_empty_round(monkeypatch: Any) -> None:
    monkeypatch.setattr(nats_source, "FETCH_WAIT_SECONDS", 0.05)

    def answer(request: dict[str, Any]) -> list[Msg]:
        return [_status("404", "No Messages")] if request.get("no_wait") else []

    session, _ = await _session(answer)
    assert await session.fetch() == []


async def test_a_refused_pull_request_makes_the_loop_reconnect() -> None:
    def answer(request: dict[str, Any]) -> list[Msg]:
        return [_status("409", "Consumer Deleted")]

    session, _ = await _session(answer)
    with pytest.raises(BrokerLost, match="409 Consumer Deleted"):
        await session.fetch()
