"""`orderhooks simulate --to` publishes its stream to a broker source, which a running
server consumes and delivers (the quickstart's broker path, docs/operations.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from orderhooks.simulate.brokers import open_publisher
from orderhooks.simulate.posting import SimulationStats
from orderhooks.testing.receiver import Receiver
from tests.e2e.brokers import Broker, consuming, rabbit_queue, wait_consumed, wait_delivered
from tests.e2e.support import assert_per_order


def _simulate(to: str, account: str) -> str:
    command = [
        sys.executable, "-m", "orderhooks", "simulate", "--to", to, "--rate", "10",
        "--duration", "1", "--speed", "20", "--accounts-list", account,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def test_simulated_stream_through_a_broker_is_delivered(
    tmp_path: Path, rx: Receiver, account: str, broker: Broker
) -> None:
    url = broker.source_url()
    async with consuming(tmp_path, url, rx, account) as (_, client, webhook):
        output = _simulate(url, account)
        assert "guest:guest" not in output
        published = int(output.split("events posted")[1].split()[1])
        assert published > 0
        await wait_consumed(client, published)
        await wait_delivered(rx, published)
        rx.verify_all(webhook["secret"])
        assert_per_order(rx.accepted())


async def test_a_message_the_queue_no_longer_takes_is_counted_as_failed() -> None:
    # Its queue deleted during the run, a message published to it came back from
    # RabbitMQ as unroutable, and the simulator counted it as accepted.
    async with rabbit_queue() as queue:
        stats = SimulationStats()
        publisher = await open_publisher(queue.source_url(), stats)
        try:
            assert await publisher.send("order.new", "o1", {"_id": "o1"})
            await queue.channel.queue_delete(queue.name)
            assert not await publisher.send("order.new", "o2", {"_id": "o2"})
        finally:
            await publisher.close()
    assert stats.requests_failed == 1 and "unroutable" in stats.last_error
