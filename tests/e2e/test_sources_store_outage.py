"""A broker source while PostgreSQL is unreachable: consuming pauses (nothing is
acknowledged or dead-lettered), then resumes by itself and every message is stored and
delivered. A proxy of the test's own plays the outage; the shared server is never
stopped (docs/operations.md)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from orderhooks.testing.receiver import Receiver
from tests.cluster.pgproxy import LOOPBACK, PgProxy
from tests.e2e.brokers import (
    NatsStream,
    SourceRun,
    consuming,
    nats_stream,
    order_life,
    sources_of,
    wait_consumed,
    wait_delivered,
)
from tests.e2e.support import assert_per_order
from tests.support.data import unique

pytestmark = pytest.mark.postgres

OUTAGE_SECONDS = 4.0


def _through(proxy: PgProxy, pg_url: str) -> str:
    parts = urlsplit(pg_url)
    netloc = parts.netloc.rsplit("@", 1)
    user = f"{netloc[0]}@" if len(netloc) == 2 else ""
    return urlunsplit(parts._replace(netloc=f"{user}{LOOPBACK}:{proxy.port}"))


@contextlib.asynccontextmanager
async def consuming_through_a_proxy(
    tmp_path: Path, rx: Receiver, pg_url: str, account: str
) -> AsyncIterator[tuple[NatsStream, PgProxy, SourceRun]]:
    """A fresh stream, and a server consuming it whose PostgreSQL connections go through
    a proxy the test can cut: (stream, proxy, the running server)."""
    pg = urlsplit(pg_url)
    async with nats_stream() as stream:
        with PgProxy(pg.hostname or LOOPBACK, pg.port or 5432) as proxy:
            env = {"ORDERHOOKS_DATABASE_URL": _through(proxy, pg_url)}
            async with consuming(tmp_path, stream.source_url(), rx, account, **env) as run:
                yield stream, proxy, run


async def publish_while_cut(stream: NatsStream, proxy: PgProxy, messages: Sequence[Any]) -> Any:
    """Cut the database off, publish `messages`, give the source time to take them; what
    the broker then knows of the source's consumer."""
    proxy.cut()
    for message in messages:
        await stream.publish(message)
    await asyncio.sleep(OUTAGE_SECONDS)
    return await stream.connection.jetstream().consumer_info(stream.name, "orderhooks")


async def test_consuming_pauses_while_the_store_is_away(
    tmp_path: Path, rx: Receiver, pg_url: str
) -> None:
    account = unique("acct")
    async with consuming_through_a_proxy(tmp_path, rx, pg_url, account) as (stream, proxy, run):
        lives = [order_life(account) for _ in range(5)]
        consumer = await publish_while_cut(stream, proxy, lives)
        # Taken from the broker, held, and not acknowledged while it lasts.
        assert consumer.num_ack_pending + consumer.num_pending == len(lives)
        assert consumer.ack_floor.stream_seq == 0
        info = await stream.connection.jetstream().stream_info(stream.name)
        assert info.state.messages == len(lives)  # no dead letter published
        assert rx.requests == []
        proxy.restore()
        expected = sum(len(life) for life in lives)
        await wait_delivered(rx, expected)
        assert_per_order(rx.accepted())
        # A round is counted consumed after its commit and acknowledgement, which
        # may come after the receiver already has its events.
        await wait_consumed(run.client, len(lives))
        [source] = await sources_of(run.client)
        assert source["deadLettered"] == 0
        assert source["consumed"] == len(lives)


async def test_a_round_of_bad_messages_waits_for_the_store_too(
    tmp_path: Path, rx: Receiver, pg_url: str
) -> None:
    # A round with nothing to store never touched the store: its messages were
    # dead-lettered and acknowledged while the database was away.
    account = unique("acct")
    bad = [b"this is not JSON", b"{"]
    async with consuming_through_a_proxy(tmp_path, rx, pg_url, account) as (stream, proxy, run):
        consumer = await publish_while_cut(stream, proxy, bad)
        assert consumer.ack_floor.stream_seq == 0
        info = await stream.connection.jetstream().stream_info(stream.name)
        assert info.state.messages == len(bad)  # no dead letter published
        proxy.restore()
        dead = await stream.dead_letters(len(bad))
        assert sorted(body for body, _ in dead) == sorted(bad)
        await wait_consumed(run.client, len(bad))
        [source] = await sources_of(run.client)
        assert source["deadLettered"] == len(bad)
