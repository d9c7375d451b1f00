"""Helpers of the broker source tests: streams and queues of their own, publishing, reading
dead letters, and running orderhooks against a source.

Every test makes its own JetStream stream or RabbitMQ queues (unique names) and deletes
them afterwards. The brokers are the machine's: NATS at 127.0.0.1:4222 and RabbitMQ at
127.0.0.1:5672 (guest/guest); a test fails when they cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import aio_pika
import httpx
import nats
import orjson
from nats.aio.client import Client
from nats.js.api import RetentionPolicy, StreamConfig

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.e2e.support import assert_per_order
from tests.support.api import admin_api, expect
from tests.support.data import iso_now, unique
from tests.support.data import new_order as make_order

NATS_URL = "nats://127.0.0.1:4222"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
WAIT_SECONDS = 60.0


def unique_name(prefix: str) -> str:
    """A stream, subject or queue name no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


class Broker(Protocol):
    """A NATS stream or a RabbitMQ queue of the test's own, as the shared scenarios use it."""

    def source_url(self) -> str:
        """The `ORDERHOOKS_SOURCES` entry consuming it."""
        ...

    async def publish(self, body: bytes | Any) -> None:
        """Publish one message (bytes as they are, anything else as JSON)."""
        ...

    async def dead_letters(self, expected: int) -> Sequence[tuple[bytes, Mapping[str, Any]]]:
        """The dead letters (body, headers), waiting until `expected` are there."""
        ...


@dataclass
class NatsStream:
    """A stream `name` capturing `<prefix>.>` (so also its dead letters)."""

    connection: Client
    name: str
    prefix: str

    @property
    def subject(self) -> str:
        """The subject orders are published on."""
        return f"{self.prefix}.orders"

    def source_url(
        self, durable: str = "orderhooks", server: str = NATS_URL, wildcard: str = ">"
    ) -> str:
        """The `ORDERHOOKS_SOURCES` entry consuming this stream (filtering `<prefix>.>`,
        or `<prefix>.*` with `wildcard="*"`)."""
        return f"{server}/{self.name}?subject={self.prefix}.{wildcard}&durable={durable}"

    async def publish(self, body: bytes | Any) -> None:
        """Publish one message (bytes as they are, anything else as JSON), stored."""
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        await self.connection.jetstream().publish(self.subject, data)

    async def dead_letters(self, expected: int) -> list[tuple[bytes, dict[str, str]]]:
        """The dead letters stored in the stream: (body, headers), waiting for `expected`."""
        js = self.connection.jetstream()
        subject = f"{self.subject}.dead"
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            info = await js.stream_info(self.name, subjects_filter=subject)
            count = (info.state.subjects or {}).get(subject, 0)
            if count >= expected or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        sub = await js.pull_subscribe(subject, stream=self.name)
        out: list[tuple[bytes, dict[str, str]]] = []
        with contextlib.suppress(nats.errors.TimeoutError):
            while len(out) < count:
                for msg in await sub.fetch(count - len(out), timeout=2):
                    out.append((msg.data, dict(msg.headers or {})))
                    await msg.ack()
        await sub.unsubscribe()
        return out


@contextlib.asynccontextmanager
async def nats_stream(
    server: str = NATS_URL,
    retention: RetentionPolicy = RetentionPolicy.LIMITS,
    max_msg_size: int | None = None,
) -> AsyncIterator[NatsStream]:
    """A fresh stream on `server` (limits retention and no size limit of its own unless
    told), deleted afterwards."""
    try:
        connection = await nats.connect(servers=[server], connect_timeout=5)
    except Exception as exc:
        raise AssertionError(f"NATS is not reachable at {server}: {exc}") from exc
    stream = NatsStream(connection, unique_name("OHTEST").upper(), unique_name("ohtest"))
    js = connection.jetstream()
    config = StreamConfig(
        name=stream.name,
        subjects=[f"{stream.prefix}.>"],
        retention=retention,
        max_msg_size=max_msg_size,
    )
    await js.add_stream(config)
    try:
        yield stream
    finally:
        with contextlib.suppress(Exception):
            await js.delete_stream(stream.name)
        await connection.close()


@dataclass
class RabbitQueue:
    """A queue `name` and its dead-letter queue, on a channel of the test's own."""

    channel: aio_pika.abc.AbstractChannel
    name: str

    def source_url(self, server: str = AMQP_URL) -> str:
        """The `ORDERHOOKS_SOURCES` entry consuming this queue."""
        return f"{server}?queue={self.name}"

    async def publish(self, body: bytes | Any) -> None:
        """Publish one persistent message to the queue, confirmed by the broker."""
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        message = aio_pika.Message(data, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await self.channel.default_exchange.publish(message, routing_key=self.name)

    async def dead_letters(self, expected: int) -> list[tuple[bytes, dict[str, Any]]]:
        """The messages of `<queue>.dead`, waiting until `expected` are there."""
        queue = await self.channel.declare_queue(f"{self.name}.dead", durable=True)
        out: list[tuple[bytes, dict[str, Any]]] = []
        deadline = time.monotonic() + WAIT_SECONDS
        while len(out) < expected and time.monotonic() < deadline:
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.2)
                continue
            out.append((message.body, dict(message.headers or {})))
        return out


@contextlib.asynccontextmanager
async def rabbit_queue() -> AsyncIterator[RabbitQueue]:
    """A fresh durable queue, deleted (with its dead-letter queue) afterwards."""
    try:
        connection = await aio_pika.connect(AMQP_URL, timeout=5)
    except Exception as exc:
        raise AssertionError(f"RabbitMQ is not reachable at {AMQP_URL}: {exc}") from exc
    channel = await connection.channel()
    queue = RabbitQueue(channel, unique_name("ohtest"))
    await channel.declare_queue(queue.name, durable=True)
    try:
        yield queue
    finally:
        for name in (queue.name, f"{queue.name}.dead"):
            with contextlib.suppress(Exception):
                await channel.queue_delete(name)
        await connection.close()


def order_life(account: str, order_id: str | None = None) -> list[dict[str, Any]]:
    """One order's batch items: new, accepted, a courier update, preparing, prepared."""
    order = make_order(account, order_id=order_id)
    oid = order["_id"]
    courier = {"status": 83, "received": iso_now(), "courier": {"firstName": "Jonas"}}
    return [
        {"type": "order.new", "data": order},
        {"type": "order.status_update", "orderId": oid, "data": _status(20)},
        {"type": "order.courier_update", "orderId": oid, "data": courier},
        {"type": "order.status_update", "orderId": oid, "data": _status(50)},
        {"type": "order.status_update", "orderId": oid, "data": _status(60)},
    ]


def _status(code: int) -> dict[str, Any]:
    return {"status": code, "timeStamp": iso_now()}


def source_server(tmp_path: Path, name: str, sources: str, **env: str) -> ServerProcess:
    """An orderhooks process (not started) consuming `sources`."""
    return ServerProcess(
        tmp_path / name,
        log_path=tmp_path / f"{name}.log",
        env={"ORDERHOOKS_SOURCES": sources, **env},
    )


class SourceRun(NamedTuple):
    """A started orderhooks process consuming a source, a client of its API, and the
    webhook that delivers the test account's events to the receiver."""

    server: ServerProcess
    client: httpx.AsyncClient
    webhook: dict[str, Any]


@contextlib.asynccontextmanager
async def consuming(
    tmp_path: Path, sources: str, rx: Receiver, account: str, **env: str
) -> AsyncIterator[SourceRun]:
    """Start `source_server(...)` on `sources` and make a webhook of `account` to `rx`."""
    with source_server(tmp_path, "serve", sources, **env) as server:
        async with admin_api(server) as api:
            webhook = await api.create_webhook(rx.url, [account])
            yield SourceRun(server, api.client, webhook)


async def sources_of(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """`GET /v1/sources`."""
    response = await client.get("/v1/sources")
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def events_of(client: httpx.AsyncClient, account: str) -> list[dict[str, Any]]:
    """Every stored event of `account`, all pages of `GET /v1/events`."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"account": account, "limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = expect(await client.get("/v1/events", params=params), 200)
        out.extend(page["data"])
        cursor = page["nextCursor"]
        if not cursor:
            return out


async def wait_until(check: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> None:
    """Poll the async `check()` until it is truthy; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.2)


async def wait_delivered(rx: Receiver, count: int, timeout: float = WAIT_SECONDS) -> None:
    """Wait until `rx` has answered `count` distinct events 2xx."""
    await rx.wait_for(lambda: len(rx.delivered_ids()) >= count, timeout)


async def wait_consumed(client: httpx.AsyncClient, count: int) -> None:
    """Wait until the process's only source has acknowledged `count` messages."""

    async def done() -> bool:
        [source] = await sources_of(client)
        return int(source["consumed"]) >= count

    await wait_until(done, f"{count} messages consumed")


async def source_messages(client: httpx.AsyncClient, outcome: str) -> int:
    """The process's `orderhooks_source_messages_total` of one outcome, all sources."""
    text = (await client.get("/metrics")).text
    pattern = rf'^orderhooks_source_messages_total\{{[^}}]*outcome="{outcome}"[^}}]*\}} (\S+)$'
    return int(sum(float(v) for v in re.findall(pattern, text, re.M)))


def statuses_by_order(events: Iterable[dict[str, Any]]) -> dict[str, list[int]]:
    """The status of each `order.status_update` per order, in the order received."""
    out: dict[str, list[int]] = {}
    for event in events:
        if event["type"] == "order.status_update":
            out.setdefault(event["orderId"], []).append(event["data"]["status"])
    return out


async def dashboard_overview(base_url: str, admin_key: str) -> str:
    """The dashboard's overview page as an admin sees it, signed in through its form."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as browser:
        form = await browser.get("/ui")
        token = form.text.split('name="signin_token" value="', 1)[1].split('"', 1)[0]
        signed_in = await browser.post(
            "/ui/signin",
            data={"signin_token": token, "api_key": admin_key, "next": "/ui"},
            follow_redirects=True,
        )
        assert signed_in.status_code == 200, signed_in.text[:500]
        return signed_in.text


def bad_messages(account: str, too_large: int) -> list[tuple[str, bytes]]:
    """Every kind of message that can never be accepted, with its dead-letter code; a body
    of `too_large` bytes is over the server's limit."""

    def item(body: Any) -> bytes:
        return orjson.dumps(body)

    def update_of_unknown_order(update_type: str, status: int) -> bytes:
        return item({"type": update_type, "orderId": unique("nope"), "data": {"status": status}})

    nul_escaped = item({"type": "order.new", "data": make_order(account, note="a\x00b")})
    bad_item = {"type": "order.status_update", "orderId": "x", "data": {"status": "20"}}
    return [
        ("bad_request", b"this is not JSON"),
        ("bad_request", b"\x00"),
        ("bad_request", b'{"type": "order.new", "data": {"_id": "a\x00"}}'),
        ("validation_error", b"42"),
        ("validation_error", b'"a string, not an item"'),
        ("validation_error", b"[]"),
        ("validation_error", item({"type": "order.new"})),
        ("validation_error", item({"type": "order.nope", "data": {}})),
        ("validation_error", item({"type": "order.new", "data": {"_id": 1}})),
        ("validation_error", item({"type": "order.new", "data": {"_id": "x"}})),
        ("validation_error", item([{"type": "order.new", "data": {}}] * 10_000)),
        ("validation_error", nul_escaped),
        ("unknown_order", update_of_unknown_order("order.status_update", 20)),
        ("unknown_order", update_of_unknown_order("order.courier_update", 83)),
        ("payload_too_large", b"[" + b" " * too_large + b"]"),
        # An array with one bad item: the whole message is refused.
        ("validation_error", item([{"type": "order.new", "data": make_order(account)}, bad_item])),
    ]


async def dead_letter_all(
    broker: Broker,
    client: httpx.AsyncClient,
    rx: Receiver,
    account: str,
    bad: list[tuple[str, bytes]],
) -> None:
    """Publish the `bad` messages, then a good order: each bad one is dead-lettered with
    its code and a message, the good one alone is stored and delivered."""
    for _, body in bad:
        await broker.publish(body)
    good = make_order(account)
    await broker.publish({"type": "order.new", "data": good})
    await wait_delivered(rx, 1)
    await wait_consumed(client, len(bad) + 1)
    letters = await broker.dead_letters(len(bad))
    # Unknown orders are found at the commit, after the others of their round.
    assert sorted((h["orderhooks-error"], body) for body, h in letters) == sorted(bad)
    assert all(h["orderhooks-error-message"] for _, h in letters)
    events = await events_of(client, account)
    assert [e["orderId"] for e in events] == [good["_id"]]
    [source] = await sources_of(client)
    assert source["deadLettered"] == len(bad)


async def deliver_lives(broker: Broker, rx: Receiver, lives: list[Any], secret: str) -> list[Any]:
    """Publish `lives` (half the orders one item per message, half as one array per order)
    and wait until every event is delivered: signed with `secret`, in order per order, each
    order's statuses 20, 50, 60. Returns the messages as published."""
    messages: list[Any] = []
    for i, life in enumerate(lives):
        messages.extend(life if i % 2 == 0 else [life])
    for message in messages:
        await broker.publish(message)
    expected = sum(len(life) for life in lives)
    await wait_delivered(rx, expected)
    rx.verify_all(secret)
    assert_per_order(rx.accepted())
    for order_id, statuses in statuses_by_order(rx.events(accepted_only=True)).items():
        assert statuses == [20, 50, 60], order_id
    return messages


async def deliver_again(broker: Broker, client: httpx.AsyncClient, messages: list[Any]) -> None:
    """The broker delivering every one of `messages` again, in order, courier updates
    included, after all of them were applied; waits until the source has consumed them.
    Each message's key is recorded with what it created, so nothing is created twice."""
    for message in messages:
        await broker.publish(message)
    await wait_consumed(client, 2 * len(messages))


async def redelivery_creates_nothing(
    broker: Broker, run: SourceRun, rx: Receiver, account: str
) -> None:
    """Six orders delivered in order (`deliver_lives`), then every message delivered again
    (`deliver_again`): each event is stored and delivered once, each repeat counted a
    duplicate, nothing dead-lettered, the source connected."""
    lives = [order_life(account) for _ in range(6)]
    messages = await deliver_lives(broker, rx, lives, run.webhook["secret"])
    await deliver_again(broker, run.client, messages)
    events = await events_of(run.client, account)
    assert len(events) == sum(len(life) for life in lives)
    assert await source_messages(run.client, "duplicate") == len(messages)
    [source] = await sources_of(run.client)
    assert source["state"] == "connected"
    assert source["deadLettered"] == 0
    await asyncio.sleep(1)  # anything created twice would be delivered by now
    assert_each_event_once(rx, lives)


def assert_each_event_once(rx: Receiver, lives: list[list[dict[str, Any]]]) -> None:
    """The receiver got each order's five events exactly once: one courier update each."""
    accepted = rx.events(accepted_only=True)
    assert len(rx.accepted()) == len(rx.delivered_ids()) == sum(len(life) for life in lives)
    for life in lives:
        order_id = life[0]["data"]["_id"]
        types = [e["type"] for e in accepted if e["orderId"] == order_id]
        assert sorted(types) == sorted(item["type"] for item in life), order_id


async def sigkill_mid_stream(tmp_path: Path, rx: Receiver, broker: Broker) -> None:
    """300 orders published, the process SIGKILLed once it has consumed some: after a
    restart every event is delivered, in order per order."""
    account = unique("acct")
    lives = [order_life(account) for _ in range(300)]
    with source_server(tmp_path, "serve", broker.source_url()) as server:
        async with admin_api(server) as api:
            await api.create_webhook(rx.url, [account])
        for life in lives:
            await broker.publish(life)

        async def some_consumed() -> bool:
            async with server.async_client() as client:
                [source] = await sources_of(client)
                return int(source["consumed"]) > 0

        await wait_until(some_consumed, "the first messages consumed")
        server.kill()
        server.start()
        order_ids = {life[0]["data"]["_id"] for life in lives}

        def all_new_orders() -> bool:
            return order_ids <= {e["orderId"] for e in rx.events(accepted_only=True)}

        await rx.wait_for(all_new_orders, WAIT_SECONDS * 2, "every order delivered")
        expected = sum(len(life) for life in lives)
        await wait_delivered(rx, expected)
        assert_per_order(rx.accepted())
