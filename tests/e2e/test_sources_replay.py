"""The dead-letter replay scripts of docs/operations.md ("Replaying dead letters"), run as
printed (only the stream, subject and queue names changed) against a real orderhooks
process consuming a stream or queue of the test's own: the letter whose cause was fixed
is delivered, and the script ends although a letter whose cause was not fixed is
dead-lettered again while it runs (the script replays only what it found)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import httpx

from orderhooks.testing.receiver import Receiver
from tests.e2e.brokers import (
    Broker,
    NatsStream,
    RabbitQueue,
    consuming,
    source_messages,
    wait_consumed,
    wait_delivered,
    wait_until,
)
from tests.support.api import expect
from tests.support.data import new_order

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
SCRIPT_SECONDS = 60


def replay_script(first_line: str) -> str:
    """The Python block of operations.md whose first line is `first_line`."""
    blocks = re.findall(r"```python\n(.*?)```", OPERATIONS.read_text(encoding="utf-8"), re.S)
    [script] = [block for block in blocks if block.startswith(first_line)]
    return script


def with_names(script: str, printed: str, ours: str) -> str:
    """The script with the parameters it prints replaced by this test's names."""
    assert printed in script, printed
    return script.replace(printed, ours)


async def test_replay_script_delivers_the_fixed_and_ends_despite_the_unfixable(
    tmp_path: Path, rx: Receiver, account: str, broker: Broker
) -> None:
    if isinstance(broker, NatsStream):
        script = with_names(
            replay_script("# NATS:"),
            'stream="ORDERS", dead="orders.*.dead"',
            f'stream="{broker.name}", dead="{broker.prefix}.*.dead"',
        )
    else:
        assert isinstance(broker, RabbitQueue)
        script = with_names(
            replay_script("# RabbitMQ:"), 'queue="orders"', f'queue="{broker.name}"'
        )
    async with consuming(tmp_path, broker.source_url(), rx, account) as run:
        order = new_order(account)
        await broker.publish(
            {"type": "order.status_update", "orderId": order["_id"], "data": {"status": 20}}
        )
        await broker.publish(b"not JSON, and never will be")
        dead_before = 2
        await wait_until(
            lambda: _at_least(run.client, "dead_lettered", dead_before), "two dead letters"
        )
        # The cause of the first is fixed: its order now exists.
        expect(await run.client.post("/v1/orders", json=order), 202)
        await wait_delivered(rx, 1)

        # In a process of its own, as an operator runs it; this loop keeps serving the
        # receiver meanwhile.
        script_run = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, cwd=tmp_path
        )
        try:
            assert await asyncio.wait_for(script_run.wait(), SCRIPT_SECONDS) == 0
        except TimeoutError as exc:
            script_run.kill()
            await script_run.wait()
            raise AssertionError(
                f"the replay script of operations.md still ran after {SCRIPT_SECONDS} s"
            ) from exc

        await wait_delivered(rx, 2)
        statuses = [e["data"].get("status") for e in rx.events(accepted_only=True)]
        assert statuses == [10, 20]
        # The unfixable letter was replayed once and dead-lettered once more.
        await wait_until(
            lambda: _at_least(run.client, "dead_lettered", dead_before + 1), "a third dead letter"
        )
        await wait_consumed(run.client, 1)
        assert await source_messages(run.client, "dead_lettered") == dead_before + 1


async def _at_least(client: httpx.AsyncClient, outcome: str, count: int) -> bool:
    return await source_messages(client, outcome) >= count
