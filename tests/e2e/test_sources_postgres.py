"""Several processes on one PostgreSQL database sharing one broker source: each message is
taken by one of them, and nothing is created or delivered twice (docs/operations.md)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.e2e.brokers import events_of, nats_stream, order_life, rabbit_queue, wait_delivered
from tests.e2e.support import assert_per_order
from tests.support.api import admin_api, poll
from tests.support.data import unique

pytestmark = pytest.mark.postgres
Publish = Callable[[Any], Awaitable[None]]

WAIT_SECONDS = 90.0
ORDERS = 120


def _messages(process: ServerProcess, outcome: str) -> int:
    """This process's `orderhooks_source_messages_total` of one outcome."""
    text = httpx.get(f"{process.base_url}/metrics", timeout=10).text
    pattern = rf'^orderhooks_source_messages_total\{{[^}}]*outcome="{outcome}"[^}}]*\}} (\S+)$'
    return int(sum(float(v) for v in re.findall(pattern, text, re.M)))


async def _ingested(*processes: ServerProcess) -> int:
    """The `ingested` messages of every process, summed."""
    return sum(_messages(process, "ingested") for process in processes)


async def _two_processes_share(
    tmp_path: Path,
    rx: Receiver,
    pg_url: str,
    source: str,
    publish: Publish,
    *,
    item_per_message: bool = False,
) -> None:
    env = {"ORDERHOOKS_DATABASE_URL": pg_url, "ORDERHOOKS_SOURCES": source}
    account = unique("acct")
    serve = ServerProcess(tmp_path / "data", log_path=tmp_path / "serve.log", env=env)
    worker = ServerProcess(
        tmp_path / "data", log_path=tmp_path / "worker.log", env=env, command=("worker",)
    )
    with serve, worker:
        async with admin_api(serve) as api:
            webhook = await api.create_webhook(rx.url, [account])
            lives = [order_life(account) for _ in range(ORDERS)]
            if item_per_message:
                # One event per message: an update may reach one process while the other
                # is still storing its order; JetStream delivers it again a little later.
                for step in range(len(lives[0])):
                    for life in lives:
                        await publish(life[step])
            else:
                # One message per order, its whole life: whichever process takes it applies it.
                for life in lives:
                    await publish(life)
            messages = sum(len(life) for life in lives) if item_per_message else len(lives)
            expected = sum(len(life) for life in lives)
            await wait_delivered(rx, expected, WAIT_SECONDS)
            rx.verify_all(webhook["secret"])
            if not item_per_message:
                assert_per_order(rx.accepted())
            event_ids = [e["id"] for e in rx.events(accepted_only=True)]
            assert len(set(event_ids)) == expected
            assert len(await events_of(api.client, account)) == expected
            # A round is counted after its commit and acknowledgement, which may come
            # after the receiver already has its events.
            await poll(
                lambda: _ingested(serve, worker),
                lambda ingested: ingested >= messages,
                WAIT_SECONDS,
                f"{messages} messages counted as ingested",
            )
        assert _messages(serve, "ingested") + _messages(worker, "ingested") == messages
        assert _messages(serve, "dead_lettered") + _messages(worker, "dead_lettered") == 0


async def test_serve_and_worker_share_a_jetstream_durable(
    tmp_path: Path, rx: Receiver, pg_url: str
) -> None:
    async with nats_stream() as stream:
        await _two_processes_share(tmp_path, rx, pg_url, stream.source_url(), stream.publish)


async def test_serve_and_worker_share_a_jetstream_durable_one_event_per_message(
    tmp_path: Path, rx: Receiver, pg_url: str
) -> None:
    async with nats_stream() as stream:
        await _two_processes_share(
            tmp_path, rx, pg_url, stream.source_url(), stream.publish, item_per_message=True
        )


async def test_serve_and_worker_share_a_rabbitmq_queue(
    tmp_path: Path, rx: Receiver, pg_url: str
) -> None:
    async with rabbit_queue() as queue:
        await _two_processes_share(tmp_path, rx, pg_url, queue.source_url(), queue.publish)
