"""Publishing simulated events to a broker source (`orderhooks simulate --to`) instead of
posting them to the API: one batch item per message, as a source consumes them
(docs/operations.md).

Each publish waits for the broker's confirmation, and each order waits for its own
before its next step, so an order's events reach the broker in order.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson

from orderhooks.exceptions import OrderhooksError
from orderhooks.simulate.posting import SimulationStats
from orderhooks.sources.config import SourceConfig, parse_source
from orderhooks.sources.consumer import describe_error

SIMULATED_SUBJECT_PART = "simulated"  # stands for the wildcards of a subject filter


def publish_subject(subject_filter: str) -> str:
    """A concrete subject matched by the source's filter: `orders.>` -> `orders.simulated`."""
    tokens = subject_filter.split(".")
    return ".".join(SIMULATED_SUBJECT_PART if t in ("*", ">") else t for t in tokens)


def batch_item(event_type: str, order_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The batch item of one simulated event."""
    item: dict[str, Any] = {"type": event_type, "data": body}
    if event_type != "order.new":
        item["orderId"] = order_id
    return item


class PublisherUnavailable(OrderhooksError):
    """The broker of `simulate --to` could not be connected to or set up."""


class BrokerPublisher:
    """What the publishers share: one message per item, a failure counted and shown."""

    def __init__(self, source: SourceConfig, stats: SimulationStats) -> None:
        self._source = source
        self._stats = stats
        self._connection: Any = None

    async def open(self) -> None:
        """Connect and make sure the source's stream or queue exists."""
        raise NotImplementedError

    async def _publish(self, data: bytes) -> None:
        """Publish one message and wait for the broker to confirm it."""
        raise NotImplementedError

    async def send(self, event_type: str, order_id: str, body: dict[str, Any]) -> bool:
        """Publish one item and wait for the broker's confirmation."""
        try:
            await self._publish(orjson.dumps(batch_item(event_type, order_id, body)))
        except Exception as exc:  # any failure is counted and shown, the run goes on
            self._stats.failed(f"{type(exc).__name__}: {exc}")
            return False
        self._stats.accepted(1)
        return True

    async def close(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            await self._connection.close()


class NatsPublisher(BrokerPublisher):
    """Publishes to the source's JetStream stream, creating the stream when missing."""

    async def open(self) -> None:
        """Connect; create the stream (capturing the source's subjects) if it is missing."""
        import nats.js.errors

        from orderhooks.sources.nats import connect_nats

        self._connection = await connect_nats(self._source)
        js = self._connection.jetstream()
        try:
            await js.stream_info(self._source.stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(name=self._source.stream, subjects=[self._source.subject])

    async def _publish(self, data: bytes) -> None:
        """Publish to a subject of the stream and wait for JetStream to store it."""
        await self._connection.jetstream().publish(publish_subject(self._source.subject), data)


class AmqpPublisher(BrokerPublisher):
    """Publishes persistent messages to the source's queue, confirmed by RabbitMQ."""

    def __init__(self, source: SourceConfig, stats: SimulationStats) -> None:
        super().__init__(source, stats)
        self._channel: Any = None

    async def open(self) -> None:
        """Connect; declare the queue durable if it is missing."""
        from orderhooks.sources.amqp import connect_amqp, declare_source_queue

        self._connection = await connect_amqp(self._source)
        await declare_source_queue(self._connection, self._source.queue)
        self._channel = await self._connection.channel()

    async def _publish(self, data: bytes) -> None:
        """Publish a persistent message to the queue and wait for the broker's confirmation."""
        import aio_pika

        message = aio_pika.Message(
            data, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        from orderhooks.sources.amqp import unrouted

        confirmation = await self._channel.default_exchange.publish(
            message, routing_key=self._source.queue
        )
        if unrouted(confirmation):
            # RabbitMQ hands back what no queue takes (the queue was deleted meanwhile).
            raise LookupError(f"unroutable: no queue {self._source.queue!r} took the message")


async def open_publisher(url: str, stats: SimulationStats) -> BrokerPublisher:
    """A connected publisher for a source URL (ConfigError when the URL is unusable)."""
    source = parse_source(url)
    publisher = (NatsPublisher if source.kind == "nats" else AmqpPublisher)(source, stats)
    try:
        await publisher.open()
    except Exception as exc:
        # One line for the command, never a traceback: the client's errors may repeat
        # the URL, so the password is blotted out.
        with contextlib.suppress(Exception):
            await publisher.close()
        reason = describe_error(exc, source.secrets)
        raise PublisherUnavailable(f"cannot publish to {source.display_url}: {reason}") from None
    return publisher
