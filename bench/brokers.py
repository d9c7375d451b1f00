"""The broker source scenarios: orderhooks consuming NATS JetStream or RabbitMQ.

A scenario fills a fresh stream (or queue) with one batch item per message, as an order
platform publishes them (new orders and their status updates, from the same workload
as the HTTP scenarios), then starts `orderhooks serve` with that source and measures:

- **messages/s consumed**: messages acknowledged (from `GET /v1/sources`) between the
  first poll that saw some consumed and the poll that saw all, over that time; with one
  item per message this is also the ingest events/s, beside `batch100`'s;
- **deliveries/s end to end**: distinct deliveries the receiver saw over the time from
  the serve process start to the last arrival.

The webhook is created by a first start without the source, so no message is ingested
before it exists. The stream or queue is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
import requests

from bench import service
from bench.procs import free_port
from bench.receiver import start_receiver
from bench.report import delivery_figures
from bench.scenarios import RunContext, Scenario, Window, wait_for_arrivals
from bench.workload import Workload

NATS_URL = "nats://127.0.0.1:4222"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
MESSAGES_PER_SECOND_OF_DURATION = 2000  # how many messages a run publishes per second asked
MIN_MESSAGES = 5000
PUBLISH_IN_FLIGHT = 500
POLL_SECONDS = 0.25
CONSUME_LIMIT_SECONDS = 600.0


def _messages(count: int, run_id: str) -> list[bytes]:
    """`count` single-item messages: new orders, and status updates of earlier ones (an
    order's update always after it: one consumer applies them in publishing order)."""
    workload = Workload(run_id)
    out = []
    for _ in range(count):
        batch = workload.batch(1)
        workload.acknowledged(batch.new_ids, batch.updates)
        out.append(orjson.dumps(batch.items[0]))
    return out


async def _publish_nats(stream: str, subject: str, messages: list[bytes]) -> None:
    import nats

    connection = await nats.connect(servers=[NATS_URL])
    js = connection.jetstream()
    await js.add_stream(name=stream, subjects=[f"{subject}.>"])
    for start in range(0, len(messages), PUBLISH_IN_FLIGHT):
        chunk = messages[start : start + PUBLISH_IN_FLIGHT]
        # Published one after the other (JetStream keeps their order), confirmed together.
        futures = [await js.publish_async(f"{subject}.orders", body) for body in chunk]
        await asyncio.gather(*futures)
    await connection.close()


async def _delete_nats(stream: str) -> None:
    import nats

    connection = await nats.connect(servers=[NATS_URL])
    with contextlib.suppress(Exception):
        await connection.jetstream().delete_stream(stream)
    await connection.close()


async def _publish_amqp(queue: str, messages: list[bytes]) -> None:
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    await channel.declare_queue(queue, durable=True)
    for start in range(0, len(messages), PUBLISH_IN_FLIGHT):
        chunk = messages[start : start + PUBLISH_IN_FLIGHT]
        await asyncio.gather(
            *(
                channel.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=queue,
                )
                for body in chunk
            )
        )
    await connection.close()


async def _delete_amqp(queue: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    for name in (queue, f"{queue}.dead"):
        with contextlib.suppress(Exception):
            await channel.queue_delete(name)
    await connection.close()


def _consumed(base_url: str, admin_key: str) -> int:
    answer = requests.get(
        f"{base_url}/v1/sources", headers={"authorization": f"Bearer {admin_key}"}, timeout=10
    )
    answer.raise_for_status()
    return int(answer.json()["data"][0]["consumed"])


def _wait_consumed(base_url: str, admin_key: str, total: int) -> tuple[float, int, float]:
    """Poll until `total` are consumed: (time some were first seen, how many, time all were)."""
    first_at, first_count = 0.0, 0
    deadline = time.monotonic() + CONSUME_LIMIT_SECONDS
    while time.monotonic() < deadline:
        consumed = _consumed(base_url, admin_key)
        now = time.time()
        if consumed and not first_at:
            first_at, first_count = now, consumed
        if consumed >= total:
            return first_at, first_count, now
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"only {consumed} of {total} messages consumed in time")


def run_broker(ctx: RunContext, scenario: Scenario) -> dict[str, Any]:
    """orderhooks serve on SQLite consuming a NATS or RabbitMQ source filled beforehand."""
    folder = ctx.scenario_dir(scenario.name)
    name = f"ohbench_{uuid.uuid4().hex[:10]}"
    total = max(MIN_MESSAGES, int(ctx.duration * MESSAGES_PER_SECOND_OF_DURATION))
    messages = _messages(total, ctx.run_id)
    publish: Callable[[], Coroutine[Any, Any, None]]
    delete: Callable[[], Coroutine[Any, Any, None]]
    if scenario.kind == "nats":
        stream = name.upper()
        source = f"{NATS_URL}/{stream}?subject={name}.>&durable=orderhooks"
        publish = lambda: _publish_nats(stream, name, messages)  # noqa: E731
        delete = lambda: _delete_nats(stream)  # noqa: E731
    else:
        source = f"{AMQP_URL}?queue={name}"
        publish = lambda: _publish_amqp(name, messages)  # noqa: E731
        delete = lambda: _delete_amqp(name)  # noqa: E731
    receiver = start_receiver(folder / "receiver", free_port(), ctx.receiver_kind)
    orderhooks: service.Orderhooks | None = None
    try:
        setup = service.start_serve(folder)
        setup.create_webhook(receiver.url("/wh/0"))
        setup.stop()
        published_at = time.monotonic()
        asyncio.run(publish())
        publish_seconds = time.monotonic() - published_at
        started = time.time()
        orderhooks = service.start_serve(
            folder, {"ORDERHOOKS_SOURCES": source}, profile=ctx.profile
        )
        window = Window(orderhooks.pids, [])
        first_at, first_count, all_at = _wait_consumed(
            orderhooks.base_url, orderhooks.admin_key, total
        )
        wait_for_arrivals(receiver, total, ctx.stall_seconds, ctx.drain_limit_seconds)
        window.close()
        receiver.stop()
        figures = delivery_figures({}, receiver.log.read())
        consumed_rate = (total - first_count) / (all_at - first_at) if all_at > first_at else None
        result: dict[str, Any] = {
            "description": scenario.description,
            "scenario": {"name": scenario.name, "kind": scenario.kind},
            "messages": total,
            "publish_seconds": publish_seconds,
            "messages_per_s_consumed": consumed_rate,
            "ingest_events_per_s": consumed_rate,  # one item per message
            "events_acknowledged": total,
            **figures.counts(total, started),
            "latency_ms_p50": None,
            "note": "messages filled beforehand; deliveries/s from the serve start",
        }
        result.update(window.figures(figures.deliveries))
        return result
    finally:
        if orderhooks is not None:
            orderhooks.stop()
        receiver.stop()
        with contextlib.suppress(Exception):
            asyncio.run(delete())
