"""RabbitMQ sources (AMQP 0-9-1): a queue consumed with a prefetch window and manual acks.

aio-pika opens the connection, declares the queues and publishes dead letters; the
messages themselves are consumed from its underlying aiormq channel, as aiormq hands
them over: aio-pika's message wrapper and its extra task per message cost about a third
of the client's CPU per message (docs/benchmarks.md, fourth round).

Several processes consuming the same queue share its messages: RabbitMQ hands each
message to one of them. Dead letters are published, body unchanged and with the
`orderhooks-error` headers, to `<queue>.dead`, a durable queue orderhooks declares; a
queue that does not exist yet is declared durable. When RabbitMQ cancels the consumer
itself (the queue was deleted, perhaps declared again at once), the session counts as
lost, so the consumer loop connects and consumes again instead of waiting on a consumer
that no longer exists. See docs/operations.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import aio_pika
import aio_pika.exceptions
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection
from aiormq.abc import AbstractChannel as UnderlyingChannel
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from orderhooks.sources.config import SourceConfig
from orderhooks.sources.consumer import BrokerLost, SourceMessage

PREFETCH_MESSAGES = 1000  # unacknowledged messages RabbitMQ may send ahead
ROUND_MAX_MESSAGES = 500  # at most this many messages per round (one transaction)
FETCH_WAIT_SECONDS = 1.0  # how long a round waits for its first message
# After the first message, how long a round waits for more: RabbitMQ pushes messages one
# by one, so without it a busy queue would make rounds (transactions) of a few messages.
ROUND_LINGER_SECONDS = 0.01
CONNECT_TIMEOUT_SECONDS = 3.0
LAG_REFRESH_SECONDS = 2.0
ERROR_HEADER = "orderhooks-error"
ERROR_MESSAGE_HEADER = "orderhooks-error-message"


async def connect_amqp(source: SourceConfig) -> AbstractRobustConnection:
    """A plain (not self-reconnecting) connection: the consumer loop owns reconnecting."""
    connection = await aio_pika.connect(source.connect_url, timeout=CONNECT_TIMEOUT_SECONDS)
    return connection  # type: ignore[return-value]


async def declare_source_queue(connection: AbstractRobustConnection, name: str) -> None:
    """Make sure the queue exists: kept as it is when it does, else declared durable."""
    probe = await connection.channel()
    try:
        await probe.declare_queue(name, passive=True)
    except aio_pika.exceptions.ChannelNotFoundEntity:
        channel = await connection.channel()
        await channel.declare_queue(name, durable=True)
        await channel.close()
    finally:
        with contextlib.suppress(Exception):
            await probe.close()


def _writable(value: object) -> object:
    """A header value as the client can write it again: a string that was not UTF-8 is
    read back as bytes, which the client cannot write; it is kept, the same bytes, as a
    byte array. Inside tables and arrays too."""
    if isinstance(value, bytes):
        return bytearray(value)
    if isinstance(value, dict):
        return writable_headers(value)
    if isinstance(value, list):
        return [_writable(item) for item in value]
    return value


def writable_headers(headers: Mapping[Any, object]) -> dict[str, Any]:
    """A message's headers, to be kept on its dead letter: a dead letter the client
    could not write would never be published, and its message never acknowledged."""
    return {
        key if isinstance(key, str) else bytes(key).decode("utf-8", "replace"): _writable(value)
        for key, value in headers.items()
    }


def unrouted(confirmation: object) -> bool:
    """Whether a mandatory publish came back from RabbitMQ unrouted (basic.return)."""
    return isinstance(confirmation, DeliveredMessage) and isinstance(
        confirmation.delivery, spec.Basic.Return
    )


class AmqpSession:
    """One connection consuming one queue."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        channel: AbstractChannel,
        underlying: UnderlyingChannel,
        queue: AbstractQueue,
        source: SourceConfig,
    ) -> None:
        self._connection = connection
        self._channel = channel
        self._underlying = underlying
        self._queue = queue
        self._source = source
        self._inbox: list[DeliveredMessage] = []  # delivered, in delivery order
        self._wanted = 1  # how many in the inbox end the current wait
        self._enough = asyncio.Event()
        self._lag: int | None = queue.declaration_result.message_count
        self._lag_checked = asyncio.get_running_loop().time()
        self._consumer_tag: str | None = None
        self._cancelled = False  # RabbitMQ cancelled the consumer

    async def start(self) -> None:
        """Start consuming into the session's inbox."""
        self._underlying.on_consumer_cancel_callbacks.add(self._on_cancel)
        ok = await self._underlying.basic_consume(self._source.queue, self._deliver, no_ack=False)
        self._consumer_tag = ok.consumer_tag

    def _on_cancel(self, frame: spec.Basic.Cancel) -> None:
        """RabbitMQ cancelled a consumer of the channel: if it is this session's, nothing
        more will be delivered, so the next `fetch` or `ack` ends the session."""
        if frame.consumer_tag == self._consumer_tag:
            self._cancelled = True
            self._enough.set()  # a fetch waiting for messages notices at once

    async def _deliver(self, message: DeliveredMessage) -> None:
        self._inbox.append(message)
        if len(self._inbox) >= self._wanted:
            self._enough.set()

    async def _wait_for(self, count: int, seconds: float) -> bool:
        """Wait up to `seconds` until the inbox holds `count` messages; whether it does."""
        if len(self._inbox) < count:
            self._wanted = count
            self._enough.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._enough.wait(), timeout=seconds)
        return len(self._inbox) >= count

    def _check_open(self) -> None:
        if self._connection.is_closed or self._channel.is_closed:
            raise BrokerLost("the RabbitMQ connection is closed")

    def _check_consuming(self) -> None:
        self._check_open()
        if self._cancelled:
            raise BrokerLost(f"RabbitMQ cancelled the consumer of queue {self._source.queue!r}")

    async def fetch(self) -> list[SourceMessage]:
        """The messages delivered so far (up to ROUND_MAX_MESSAGES), waiting
        FETCH_WAIT_SECONDS for the first, then ROUND_LINGER_SECONDS for more."""
        self._check_consuming()
        if not await self._wait_for(1, FETCH_WAIT_SECONDS):
            self._check_consuming()
            return []
        await self._wait_for(ROUND_MAX_MESSAGES, ROUND_LINGER_SECONDS)
        taken = self._inbox[:ROUND_MAX_MESSAGES]
        del self._inbox[:ROUND_MAX_MESSAGES]
        queue = self._source.queue
        return [SourceMessage(body=m.body, handle=m, subject=queue) for m in taken]

    async def dead_letter(self, message: SourceMessage, code: str, text: str) -> None:
        """Publish the body unchanged to `<queue>.dead`, confirmed by the broker, and
        routed to it: the queue is declared again when it was deleted meanwhile."""
        delivered = message.handle
        assert isinstance(delivered, DeliveredMessage)
        properties = delivered.header.properties
        headers = writable_headers(properties.headers or {})
        headers.update({ERROR_HEADER: code, ERROR_MESSAGE_HEADER: text})
        dead = aio_pika.Message(
            body=message.body,
            headers=headers,
            content_type=properties.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        exchange = self._channel.default_exchange
        queue = self._source.dead_letter_queue
        if unrouted(await exchange.publish(dead, routing_key=queue)):
            # No queue took it: `<queue>.dead` was deleted since the session declared it.
            # RabbitMQ hands an unroutable message back instead of refusing it, and the
            # original would then be acknowledged with its dead letter lost.
            await self._channel.declare_queue(queue, durable=True)
            if unrouted(await exchange.publish(dead, routing_key=queue)):
                raise BrokerLost(f"RabbitMQ routed no dead letter to queue {queue!r}")

    async def ack(self, messages: Sequence[SourceMessage]) -> None:
        """Acknowledge the round with one frame: the last message with `multiple`, which
        covers every earlier delivery of the channel (rounds are handled in delivery
        order, and each earlier round was acknowledged already)."""
        self._check_open()
        if not messages:
            return
        last = messages[-1].handle
        assert isinstance(last, DeliveredMessage) and last.delivery_tag is not None
        await self._underlying.basic_ack(last.delivery_tag, multiple=True)

    async def retry_later(self, message: SourceMessage) -> bool:
        """Never: a classic queue does not count deliveries, so an update naming an unknown
        order is dead-lettered at once (and can be replayed)."""
        return False

    async def lag(self) -> int | None:
        """Messages ready in the queue, refreshed every LAG_REFRESH_SECONDS."""
        now = asyncio.get_running_loop().time()
        if now - self._lag_checked >= LAG_REFRESH_SECONDS:
            self._lag_checked = now
            queue = await self._channel.declare_queue(self._source.queue, passive=True)
            self._lag = queue.declaration_result.message_count
        return self._lag

    async def close(self) -> None:
        """Close the connection; unacknowledged messages return to the queue."""
        await self._connection.close()


class AmqpBroker:
    """Opens `AmqpSession`s for one source."""

    def __init__(self, source: SourceConfig) -> None:
        self._source = source

    async def connect(self) -> AmqpSession:
        """Connect, make sure both queues exist, set the prefetch and start consuming."""
        connection = await connect_amqp(self._source)
        try:
            await declare_source_queue(connection, self._source.queue)
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=PREFETCH_MESSAGES)
            await channel.declare_queue(self._source.dead_letter_queue, durable=True)
            queue = await channel.declare_queue(self._source.queue, passive=True)
            underlying = await channel.get_underlay_channel()
            session = AmqpSession(connection, channel, underlying, queue, self._source)
            await session.start()
        except BaseException:
            await connection.close()
            raise
        return session
