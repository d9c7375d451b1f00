"""The RabbitMQ session's own logic without a broker: how deliveries gather into rounds,
the one acknowledgement per round, and the dead letter's headers (the broker itself is in
tests/e2e/test_sources_rabbitmq.py and test_sources_brokers.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import aio_pika
import pytest
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec
from pamqp.header import ContentHeader

from orderhooks.sources import amqp
from orderhooks.sources.amqp import AmqpSession
from orderhooks.sources.config import parse_source
from orderhooks.sources.consumer import BrokerLost

SOURCE = parse_source("amqp://guest:guest@127.0.0.1:5672/?queue=orders")


class Underlying:
    """The aiormq channel's calls the session makes, recorded, and its cancel callbacks."""

    def __init__(self) -> None:
        self.acks: list[tuple[int, bool]] = []
        self.on_consumer_cancel_callbacks: set[Any] = set()

    async def basic_consume(
        self, queue: str, callback: Any, *, no_ack: bool
    ) -> spec.Basic.ConsumeOk:
        assert queue == "orders" and not no_ack
        return spec.Basic.ConsumeOk(consumer_tag="ctag1.ours")

    def broker_cancels(self, consumer_tag: str) -> None:
        """What aiormq does when RabbitMQ sends Basic.Cancel on this channel."""
        for callback in list(self.on_consumer_cancel_callbacks):
            callback(spec.Basic.Cancel(consumer_tag=consumer_tag))

    async def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.acks.append((delivery_tag, multiple))


class Exchange:
    def __init__(self) -> None:
        self.published: list[tuple[aio_pika.Message, str]] = []

    async def publish(self, message: aio_pika.Message, routing_key: str) -> None:
        self.published.append((message, routing_key))


def _session() -> tuple[AmqpSession, Underlying, Exchange]:
    underlying, exchange = Underlying(), Exchange()
    open_ = SimpleNamespace(is_closed=False)
    channel = SimpleNamespace(is_closed=False, default_exchange=exchange)
    queue = SimpleNamespace(declaration_result=SimpleNamespace(message_count=7))
    session = AmqpSession(open_, channel, underlying, queue, SOURCE)  # type: ignore[arg-type]
    return session, underlying, exchange


def _delivered(tag: int, headers: dict[str, Any] | None = None) -> DeliveredMessage:
    properties = spec.Basic.Properties(headers=headers, content_type="application/json")
    return DeliveredMessage(
        delivery=spec.Basic.Deliver(delivery_tag=tag, routing_key="orders"),
        header=ContentHeader(body_size=1, properties=properties),
        body=b"m%d" % tag,
        channel=None,  # type: ignore[arg-type]
    )


async def test_a_round_takes_what_was_delivered_in_order_up_to_its_maximum(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(amqp, "ROUND_MAX_MESSAGES", 3)
    session, underlying, _ = _session()
    await session.start()
    for tag in range(1, 6):
        await session._deliver(_delivered(tag))
    first = await session.fetch()
    assert [m.body for m in first] == [b"m1", b"m2", b"m3"]
    assert {m.subject for m in first} == {"orders"}
    second = await session.fetch()  # the rest, after the linger for more
    assert [m.body for m in second] == [b"m4", b"m5"]
    await session.ack(first)
    await session.ack(second)
    await session.ack([])
    # One frame per round: the last delivery with `multiple`.
    assert underlying.acks == [(3, True), (5, True)]


async def test_an_idle_queue_gives_an_empty_round(monkeypatch: Any) -> None:
    monkeypatch.setattr(amqp, "FETCH_WAIT_SECONDS", 0.01)
    session, _, _ = _session()
    assert await session.fetch() == []
    assert await session.lag() == 7


async def test_a_dead_letter_keeps_the_body_and_headers_and_adds_the_error() -> None:
    session, _, exchange = _session()
    await session._deliver(_delivered(1, headers={"tenant": "a"}))
    [message] = await session.fetch()
    await session.dead_letter(message, "validation_error", "data: must be an object")
    [(dead, routing_key)] = exchange.published
    assert routing_key == "orders.dead" and dead.body == b"m1"
    assert dead.content_type == "application/json"
    assert dead.headers == {
        "tenant": "a",
        "orderhooks-error": "validation_error",
        "orderhooks-error-message": "data: must be an object",
    }


async def test_a_consumer_cancelled_by_the_broker_ends_the_session(monkeypatch: Any) -> None:
    # A queue deleted (and maybe declared again at once) cancels the consumer: nothing
    # more arrives, so the session must end and the loop consume anew.
    monkeypatch.setattr(amqp, "FETCH_WAIT_SECONDS", 5.0)
    session, underlying, _ = _session()
    await session.start()
    await session._deliver(_delivered(1))
    underlying.broker_cancels("ctag9.another-consumer")  # not this session's: no effect
    [delivered] = await session.fetch()
    underlying.broker_cancels("ctag1.ours")
    await session.ack([delivered])  # what was delivered before is still acknowledged
    assert underlying.acks == [(1, True)]
    waiting = asyncio.get_running_loop().time()
    with pytest.raises(BrokerLost, match="cancelled the consumer of queue 'orders'"):
        await session.fetch()
    assert asyncio.get_running_loop().time() - waiting < 1.0  # not after the whole wait


async def test_a_cancel_during_a_wait_ends_it_at_once(monkeypatch: Any) -> None:
    monkeypatch.setattr(amqp, "FETCH_WAIT_SECONDS", 5.0)
    session, underlying, _ = _session()
    await session.start()
    fetching = asyncio.create_task(session.fetch())
    await asyncio.sleep(0.05)
    underlying.broker_cancels("ctag1.ours")
    with pytest.raises(BrokerLost):
        await asyncio.wait_for(fetching, 1.0)
