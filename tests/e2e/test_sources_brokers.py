"""What every broker source does, on NATS JetStream and on RabbitMQ alike, end to end: a
real orderhooks process consuming a stream or queue of the test's own and delivering to a
real receiver (docs/operations.md). `broker` is the e2e conftest's fixture."""

from __future__ import annotations

from pathlib import Path

from orderhooks.testing.receiver import Receiver
from tests.e2e.brokers import (
    Broker,
    NatsStream,
    bad_messages,
    consuming,
    dashboard_overview,
    dead_letter_all,
    redelivery_creates_nothing,
    sigkill_mid_stream,
    sources_of,
    wait_consumed,
)
from tests.support.api import expect


async def test_delivered_in_order_and_redelivery_creates_nothing(
    tmp_path: Path, rx: Receiver, account: str, broker: Broker
) -> None:
    async with consuming(tmp_path, broker.source_url(), rx, account) as run:
        await redelivery_creates_nothing(broker, run, rx, account)
        # The source is shown and logged without its password (RabbitMQ's guest:guest).
        [source] = await sources_of(run.client)
        assert source["url"] == broker.source_url().replace("guest:guest@", "guest@")
        assert "guest:guest" not in run.server.log_text()
        # The dashboard's overview shows the source to the operator.
        page = await dashboard_overview(run.server.base_url, run.server.admin_key)
        assert "Broker sources" in page and source["id"] in page
        assert "guest:guest" not in page


async def test_bad_messages_are_dead_lettered_and_nothing_is_stored(
    tmp_path: Path, rx: Receiver, account: str, broker: Broker
) -> None:
    if isinstance(broker, NatsStream):
        # NATS refuses messages over 1 MiB: a lower limit, so that a body over it can be sent.
        env, oversized = {"ORDERHOOKS_MAX_BODY_BYTES": "500000"}, 600_000
    else:
        # RabbitMQ takes a 10 MiB message, over the default limit.
        env, oversized = {}, 10 * 1024 * 1024
    async with consuming(tmp_path, broker.source_url(), rx, account, **env) as run:
        bad = bad_messages(account, oversized)
        await dead_letter_all(broker, run.client, rx, account, bad)
        if isinstance(broker, NatsStream):
            # Dead letters are in the stream the source reads, and are never consumed.
            await wait_consumed(run.client, 2 * len(bad) + 1)
        [source] = await sources_of(run.client)
        assert source["deadLettered"] == len(bad)
        metrics = expect(await run.client.get("/metrics"), 200)
        assert 'outcome="dead_lettered"' in metrics


async def test_sigkill_mid_stream_delivers_every_order_after_restart(
    tmp_path: Path, rx: Receiver, broker: Broker
) -> None:
    await sigkill_mid_stream(tmp_path, rx, broker)
