"""RabbitMQ sources (AMQP 0-9-1): a queue consumed with a prefetch window and manual acks.

Several processes consuming the same queue share its messages: RabbitMQ hands each
message to one of them. Dead letters are published, body unchanged and with the
`orderhooks-error` headers, to `<queue>.dead`, a durable queue orderhooks declares; a
queue that does not exist yet is declared durable. See docs/operations.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import aio_pika
import aio_pika.exceptions
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

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


class AmqpSession:
    """One connection consuming one queue."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        channel: AbstractChannel,
        queue: AbstractQueue,
        source: SourceConfig,
    ) -> None:
        self._connection = connection
        self._channel = channel
        self._queue = queue
        self._source = source
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._lag: int | None = queue.declaration_result.message_count
        self._lag_checked = asyncio.get_running_loop().time()

    async def start(self) -> None:
        """Start consuming into the session's inbox."""
        await self._queue.consume(self._inbox.put, no_ack=False)

    def _check_open(self) -> None:
        if self._connection.is_closed or self._channel.is_closed:
            raise BrokerLost("the RabbitMQ connection is closed")

    async def fetch(self) -> list[SourceMessage]:
        """The messages delivered so far (up to ROUND_MAX_MESSAGES), waiting
        FETCH_WAIT_SECONDS for the first."""
        self._check_open()
        try:
            first = await asyncio.wait_for(self._inbox.get(), timeout=FETCH_WAIT_SECONDS)
        except TimeoutError:
            self._check_open()
            return []
        messages = [first]
        deadline = asyncio.get_running_loop().time() + ROUND_LINGER_SECONDS
        while len(messages) < ROUND_MAX_MESSAGES:
            if self._inbox.empty():
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    messages.append(await asyncio.wait_for(self._inbox.get(), timeout=left))
                continue
            messages.append(self._inbox.get_nowait())
        return [SourceMessage(body=m.body, handle=m, subject=self._source.queue) for m in messages]

    async def dead_letter(self, message: SourceMessage, code: str, text: str) -> None:
        """Publish the body unchanged to `<queue>.dead`, confirmed by the broker."""
        incoming = message.handle
        assert isinstance(incoming, AbstractIncomingMessage)
        headers = dict(incoming.headers or {})
        headers.update({ERROR_HEADER: code, ERROR_MESSAGE_HEADER: text})
        dead = aio_pika.Message(
            body=message.body,
            headers=headers,
            content_type=incoming.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        exchange = self._channel.default_exchange
        await exchange.publish(dead, routing_key=self._source.dead_letter_queue)

    async def ack(self, messages: Sequence[SourceMessage]) -> None:
        """Acknowledge the round with one frame: the last message with `multiple`, which
        covers every earlier delivery of the channel (rounds are handled in delivery
        order, and each earlier round was acknowledged already)."""
        self._check_open()
        if not messages:
            return
        last = messages[-1].handle
        assert isinstance(last, AbstractIncomingMessage)
        await last.ack(multiple=True)

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
            session = AmqpSession(connection, channel, queue, self._source)
            await session.start()
        except BaseException:
            await connection.close()
            raise
        return session
