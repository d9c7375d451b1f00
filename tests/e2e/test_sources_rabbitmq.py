"""RabbitMQ sources, end to end: a real orderhooks process consuming a real queue and
delivering to a real receiver (docs/operations.md). What NATS sources do alike is in
test_sources_brokers.py."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika

from orderhooks.testing.receiver import Receiver
from tests.cluster.pgproxy import PgProxy
from tests.e2e.brokers import (
    RabbitQueue,
    SourceRun,
    consuming,
    order_life,
    rabbit_queue,
    sources_of,
    wait_consumed,
    wait_delivered,
    wait_until,
)
from tests.e2e.support import assert_per_order
from tests.support.api import expect
from tests.support.data import unique

RABBIT_PORT = 5672


@contextlib.asynccontextmanager
async def consumed_queue(
    tmp_path: Path, rx: Receiver, account: str
) -> AsyncIterator[tuple[RabbitQueue, SourceRun]]:
    """A queue of the test's own, consumed by an orderhooks process that delivers
    `account`'s events to `rx`."""
    async with (
        rabbit_queue() as queue,
        consuming(tmp_path, queue.source_url(), rx, account) as run,
    ):
        yield queue, run


async def test_broker_away_at_start_and_gone_midway_comes_back(
    tmp_path: Path, rx: Receiver
) -> None:
    account = unique("acct")
    # A TCP proxy of the test's own stands for RabbitMQ: the shared server is never stopped.
    async with rabbit_queue() as queue:
        with PgProxy("127.0.0.1", RABBIT_PORT) as proxy:
            await _away_and_back(tmp_path, rx, account, queue, proxy)


async def _away_and_back(
    tmp_path: Path, rx: Receiver, account: str, queue: RabbitQueue, proxy: PgProxy
) -> None:
    proxy.cut()  # RabbitMQ is "down" for orderhooks at start
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/?queue={queue.name}"
    async with consuming(tmp_path, url, rx, account) as (server, client, _):
        [source] = await sources_of(client)
        assert source["state"] == "reconnecting"
        first, second = order_life(account), order_life(account)
        await queue.publish(first)
        proxy.restore()

        async def state_is(state: str) -> bool:
            [s] = await sources_of(client)
            return bool(s["state"] == state)

        await wait_delivered(rx, 5)
        assert await state_is("connected")
        proxy.cut()  # gone midway: the API keeps serving
        await wait_until(lambda: state_is("reconnecting"), "the source reconnecting")
        expect(await client.get("/v1/webhooks"), 200)
        # No broker reports a lag meanwhile: null, not the last one seen.
        [away] = await sources_of(client)
        assert away["lag"] is None, away
        await queue.publish(second)
        proxy.restore()
        await wait_delivered(rx, 10)
        await wait_until(lambda: state_is("connected"), "the source connected again")
        assert_per_order(rx.accepted())
        # Connection errors and reconnects are logged without the password.
        assert "guest:guest" not in server.log_text()


async def test_a_queue_deleted_and_declared_again_is_consumed_again(
    tmp_path: Path, rx: Receiver
) -> None:
    # RabbitMQ cancels the consumers of a deleted queue. Declared again at once (as a
    # script changing its arguments would), the queue looks fine to every passive check:
    # only the cancel itself tells orderhooks to consume anew.
    account = unique("acct")
    async with consumed_queue(tmp_path, rx, account) as (queue, (server, _client, _)):
        await queue.publish(order_life(account))
        await wait_delivered(rx, 5)
        await queue.channel.queue_delete(queue.name)
        await queue.channel.declare_queue(queue.name, durable=True)
        await queue.publish(order_life(account))
        await wait_delivered(rx, 10)
        assert_per_order(rx.accepted())
        assert "RabbitMQ cancelled the consumer" in server.log_text()


async def test_a_dead_letter_queue_deleted_while_consuming_is_declared_again(
    tmp_path: Path, rx: Receiver
) -> None:
    # Unroutable, a dead letter came back from RabbitMQ as returned, not refused: the
    # original was acknowledged and the message was gone.
    account = unique("acct")
    async with consumed_queue(tmp_path, rx, account) as (queue, (_, client, _)):
        await queue.publish(order_life(account))  # one message, an array
        await wait_delivered(rx, 5)
        await queue.channel.queue_delete(f"{queue.name}.dead")
        await queue.publish(b"{")
        await wait_consumed(client, 2)
        [(body, headers)] = await queue.dead_letters(1)
        assert body == b"{" and headers["orderhooks-error"] == "bad_request"


class WireBytes(str):
    """A header value sent as a long string of raw bytes that are not UTF-8, as clients
    such as pika send a bytes value: orderhooks' AMQP client reads it back as bytes."""

    raw: bytes

    def __new__(cls, raw: bytes) -> WireBytes:
        value = super().__new__(cls, raw.decode("latin-1"))
        value.raw = raw
        return value

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        """The raw bytes, whatever the encoding asked for."""
        return self.raw


async def test_a_header_that_is_not_utf8_does_not_stop_the_dead_letter(
    tmp_path: Path, rx: Receiver
) -> None:
    # The original headers are kept on the dead letter, but one read back as bytes could
    # not be written again: the publish failed, the consumer reconnected and the message
    # came back, for good, with the other messages of its round never acknowledged.
    account = unique("acct")
    digest = b"\xff\xfe\x00binary"
    async with consumed_queue(tmp_path, rx, account) as (queue, (_, client, _)):
        headers = {"digest": WireBytes(digest), "nested": {"digest": WireBytes(digest)}}
        bad = aio_pika.Message(b"{", headers=headers)
        await queue.channel.default_exchange.publish(bad, routing_key=queue.name)
        await queue.publish(order_life(account))
        await wait_consumed(client, 2)
        [(body, kept)] = await queue.dead_letters(1)
        assert body == b"{" and kept["orderhooks-error"] == "bad_request"
        assert bytes(kept["digest"]) == digest
        assert bytes(kept["nested"]["digest"]) == digest
        await wait_delivered(rx, 5)
