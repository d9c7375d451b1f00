"""RabbitMQ sources, end to end: a real orderhooks process consuming a real queue and
delivering to a real receiver (docs/operations.md)."""

from __future__ import annotations

from pathlib import Path

from orderhooks.testing.receiver import Receiver
from tests.cluster.pgproxy import PgProxy
from tests.e2e.brokers import (
    RabbitQueue,
    bad_messages,
    consuming,
    dashboard_overview,
    dead_letter_all,
    order_life,
    rabbit_queue,
    redelivery_creates_nothing,
    sigkill_mid_stream,
    sources_of,
    wait_until,
)
from tests.e2e.support import assert_per_order
from tests.support.api import expect
from tests.support.data import unique

WAIT_SECONDS = 60.0
RABBIT_PORT = 5672


async def test_delivered_in_order_and_redelivery_creates_nothing(
    tmp_path: Path, rx: Receiver
) -> None:
    account = unique("acct")
    async with (
        rabbit_queue() as queue,
        consuming(tmp_path, queue.source_url(), rx, account) as run,
    ):
        await redelivery_creates_nothing(queue, run, rx, account)
        [source] = await sources_of(run.client)
        assert source["url"] == queue.source_url().replace("guest:guest@", "guest@")
        assert "guest:guest" not in run.server.log_text()
        # The dashboard's overview shows the source to the operator.
        page = await dashboard_overview(run.server.base_url, run.server.admin_key)
        assert "Broker sources" in page and source["id"] in page
        assert "guest:guest" not in page


async def test_bad_messages_are_dead_lettered_and_nothing_is_stored(
    tmp_path: Path, rx: Receiver
) -> None:
    account = unique("acct")
    async with (
        rabbit_queue() as queue,
        consuming(tmp_path, queue.source_url(), rx, account) as run,
    ):
        bad = bad_messages(account, 10 * 1024 * 1024)
        await dead_letter_all(queue, run.client, rx, account, bad)
        metrics = expect(await run.client.get("/metrics"), 200)
        assert 'outcome="dead_lettered"' in metrics


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

        await rx.wait_for(lambda: len(rx.delivered_ids()) >= 5, WAIT_SECONDS)
        assert await state_is("connected")
        proxy.cut()  # gone midway: the API keeps serving
        await wait_until(lambda: state_is("reconnecting"), "the source reconnecting")
        expect(await client.get("/v1/webhooks"), 200)
        await queue.publish(second)
        proxy.restore()
        await rx.wait_for(lambda: len(rx.delivered_ids()) >= 10, WAIT_SECONDS)
        await wait_until(lambda: state_is("connected"), "the source connected again")
        assert_per_order(rx.accepted())
        # Connection errors and reconnects are logged without the password.
        assert "guest:guest" not in server.log_text()


async def test_sigkill_mid_stream_delivers_every_order_after_restart(
    tmp_path: Path, rx: Receiver
) -> None:
    async with rabbit_queue() as queue:
        await sigkill_mid_stream(tmp_path, rx, queue)
