"""NATS JetStream sources, end to end: a real orderhooks process consuming a real stream
and delivering to a real receiver (docs/operations.md). What RabbitMQ sources do alike is
in test_sources_brokers.py."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import orjson
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy

from orderhooks.sources.config import parse_source
from orderhooks.sources.consumer import BrokerLost
from orderhooks.sources.nats import NatsBroker
from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import LOOPBACK, free_port
from tests.e2e.brokers import (
    WAIT_SECONDS,
    consuming,
    nats_stream,
    order_life,
    sources_of,
    wait_delivered,
    wait_until,
)
from tests.e2e.support import assert_per_order
from tests.support.api import expect
from tests.support.data import new_order as make_order
from tests.support.data import unique

NATS_SERVER = "/usr/sbin/nats-server"


@pytest.fixture()
def nats_server_dir(tmp_path: Path) -> Iterator[Path]:
    """Where a test's own nats-server keeps its JetStream store; removed afterwards."""
    assert Path(NATS_SERVER).exists(), f"{NATS_SERVER} is not installed"
    yield tmp_path / "nats"
    shutil.rmtree(tmp_path / "nats", ignore_errors=True)


def _start_nats(*options: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [NATS_SERVER, *options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _jetstream_on(port: int, store_dir: Path) -> tuple[str, ...]:
    """The options of a nats-server with JetStream on loopback `port`."""
    return ("-a", LOOPBACK, "-p", str(port), "-js", "-sd", str(store_dir))


def _stop_nats(broker: subprocess.Popen[bytes] | None) -> None:
    if broker is not None:
        broker.terminate()
        broker.wait(10)


async def _publish_life(url: str, stream_name: str, life: list[dict[str, Any]]) -> None:
    """Publish on the test's own server, creating the stream the first time."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while True:
        try:
            connection = await nats.connect(servers=[url], connect_timeout=2)
            break
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
    js = connection.jetstream()
    try:
        await js.stream_info(stream_name)
    except nats.js.errors.NotFoundError:
        await js.add_stream(name=stream_name, subjects=["ohdown.>"])
    for item in life:
        await js.publish("ohdown.orders", orjson.dumps(item))
    await connection.close()


async def test_connecting_to_a_server_that_is_not_there_fails() -> None:
    # The consumer loop owns reconnecting: a connect that retried by itself forever kept
    # the loop from logging "source unreachable", held a stopping process for the
    # sources' stop timeout, and hung `simulate --to` (the bound below only guards that).
    port = free_port()
    source = parse_source(f"nats://{LOOPBACK}:{port}/NOBODY?subject=nobody.>&durable=d")
    with pytest.raises(Exception) as caught:
        await asyncio.wait_for(NatsBroker(source).connect(), WAIT_SECONDS)
    assert not isinstance(caught.value, TimeoutError)


@pytest.mark.parametrize(
    ("filter_part", "ack_policy"),
    [("new", AckPolicy.EXPLICIT), (">", AckPolicy.NONE), (">", AckPolicy.ALL)],
)
async def test_an_existing_durable_that_does_not_match_the_source_is_refused(
    filter_part: str, ack_policy: AckPolicy
) -> None:
    # An existing durable was used as it was: one filtering another subject (the URL's
    # `subject` changed since it was made) silently consumed other messages, and one
    # acknowledging on delivery (none) or cumulatively (all) let messages go before they
    # were stored, or when an earlier one was handed back.
    async with nats_stream() as stream:
        config = ConsumerConfig(
            durable_name="taken",
            filter_subject=f"{stream.prefix}.{filter_part}",
            ack_policy=ack_policy,
        )
        await stream.connection.jetstream().add_consumer(stream.name, config=config)
        source = parse_source(stream.source_url(durable="taken"))
        with pytest.raises(BrokerLost, match="taken"):
            await NatsBroker(source).connect()


async def test_an_existing_durable_that_matches_the_source_is_used() -> None:
    async with nats_stream() as stream:
        config = ConsumerConfig(
            durable_name="kept", filter_subject=f"{stream.prefix}.>", ack_policy=AckPolicy.EXPLICIT
        )
        await stream.connection.jetstream().add_consumer(stream.name, config=config)
        session = await NatsBroker(parse_source(stream.source_url(durable="kept"))).connect()
        await session.close()


async def test_a_work_queue_stream_handing_the_source_its_own_dead_letters_is_refused() -> None:
    # Skipping a dead letter acknowledges it, and a work queue deletes what is
    # acknowledged (no other consumer may read it there): with a filter matching
    # `<subject>.dead`, every dead letter was stored, then deleted by its own source.
    async with nats_stream(retention=RetentionPolicy.WORK_QUEUE) as stream:
        source = parse_source(stream.source_url())
        with pytest.raises(BrokerLost, match="work queue"):
            await NatsBroker(source).connect()


RESTRICTED_CONFIG = """
listen: {host}:{port}
jetstream {{ store_dir: "{store}" }}
accounts {{
  A {{
    jetstream: enabled
    users: [
      {{user: admin, password: admin}}
      {{user: consumer, password: pw,
        permissions: {{publish: {{allow: [">"], deny: ["$JS.API.STREAM.INFO.>"]}}}}}}
    ]
  }}
}}
"""


async def test_a_user_not_allowed_to_read_the_stream_configuration_still_consumes(
    tmp_path: Path, rx: Receiver, nats_server_dir: Path
) -> None:
    # The work-queue check reads the stream's configuration, which a user may not be
    # allowed to: the source then consumes unchecked, as it did before the check.
    port = free_port()
    config = tmp_path / "nats.conf"
    store = nats_server_dir / "js"
    config.write_text(RESTRICTED_CONFIG.format(host=LOOPBACK, port=port, store=store))
    broker = _start_nats("-c", str(config))
    account = unique("acct")
    try:
        await _publish_life(f"nats://admin:admin@{LOOPBACK}:{port}", "OHDOWN", [])
        source = f"nats://consumer:pw@{LOOPBACK}:{port}/OHDOWN?subject=ohdown.>&durable=oh"
        async with consuming(tmp_path, source, rx, account):
            await _publish_life(
                f"nats://admin:admin@{LOOPBACK}:{port}", "OHDOWN", order_life(account)
            )
            await wait_delivered(rx, 5)
    finally:
        _stop_nats(broker)


async def test_dead_letters_stay_in_a_work_queue_stream_filtered_without_them(
    tmp_path: Path, rx: Receiver
) -> None:
    account = unique("acct")
    async with (
        nats_stream(retention=RetentionPolicy.WORK_QUEUE) as stream,
        consuming(tmp_path, stream.source_url(wildcard="*"), rx, account) as run,
    ):
        await stream.publish(b"this is not JSON")
        await stream.publish({"type": "order.new", "data": make_order(account)})
        await wait_delivered(rx, 1)
        [(body, headers)] = await stream.dead_letters(1)
        assert body == b"this is not JSON"
        assert headers["orderhooks-error"] == "bad_request"
        [source] = await sources_of(run.client)
        assert (source["state"], source["deadLettered"]) == ("connected", 1)


STREAM_MAX_MESSAGE_BYTES = 1000


@pytest.mark.parametrize("limit", ["max_payload", "max_msg_size"])
async def test_a_body_too_large_to_dead_letter_with_its_headers_is_dead_lettered_empty(
    tmp_path: Path, rx: Receiver, limit: str
) -> None:
    # Republished unchanged with the two headers, a body this close to the server's
    # max_payload (or to the stream's max_msg_size) went over it: the dead letter was
    # refused each time, so the message, and the others of its round, were delivered
    # again every 30 s, for good.
    account = unique("acct")
    size_limit = STREAM_MAX_MESSAGE_BYTES if limit == "max_msg_size" else None
    async with (
        nats_stream(max_msg_size=size_limit) as stream,
        consuming(tmp_path, stream.source_url(), rx, account) as run,
    ):
        big = b"x" * ((size_limit or stream.connection.max_payload) - 40)
        await stream.publish(big)
        await stream.publish({"type": "order.new", "data": make_order(account)})

        async def all_acknowledged() -> bool:
            [source] = await sources_of(run.client)
            return bool(source["consumed"] >= 2 and source["deadLettered"] == 1)

        # Sooner than JetStream's 30 s before it delivers an unacknowledged message again
        # (the dead letter, stored in the stream and skipped, counts as consumed too).
        await wait_until(all_acknowledged, "both messages acknowledged", timeout=20)
        [(body, headers)] = await stream.dead_letters(1)
        assert body == b""
        assert headers["orderhooks-error"] == "bad_request"
        where = headers["orderhooks-error-message"]
        assert f"the body ({len(big)} bytes) does not fit" in where, where
        assert f"message 1 of stream {stream.name}" in where, where
        await wait_delivered(rx, 1)


async def test_broker_down_at_start_and_gone_midway_comes_back(
    tmp_path: Path, rx: Receiver, nats_server_dir: Path
) -> None:
    port = free_port()
    url = f"nats://{LOOPBACK}:{port}"
    stream_name = "OHDOWN"
    source = f"{url}/{stream_name}?subject=ohdown.>&durable=orderhooks"
    account = unique("acct")
    broker: subprocess.Popen[bytes] | None = None
    async with consuming(tmp_path, source, rx, account) as (_, client, webhook):

        async def state_is(state: str) -> bool:
            [s] = await sources_of(client)
            return bool(s["state"] == state)

        # The API serves while the broker is away.
        [state] = await sources_of(client)
        assert state["state"] == "reconnecting"
        assert state["url"] == source
        try:
            broker = _start_nats(*_jetstream_on(port, nats_server_dir))
            await _publish_life(url, stream_name, order_life(account))
            await wait_until(lambda: state_is("connected"), "the source connected")
            await wait_delivered(rx, 5)
            # Gone midway: the API keeps serving, the consumer reconnects by itself.
            _stop_nats(broker)
            await wait_until(lambda: state_is("reconnecting"), "the source reconnecting")
            expect(await client.get("/v1/webhooks"), 200)
            broker = _start_nats(*_jetstream_on(port, nats_server_dir))  # same store
            await _publish_life(url, stream_name, order_life(account))
            await wait_delivered(rx, 10)
            await wait_until(lambda: state_is("connected"), "the source connected again")
            rx.verify_all(webhook["secret"])
            assert_per_order(rx.accepted())
        finally:
            _stop_nats(broker)


async def test_an_update_before_its_order_is_delivered_again_then_applied(
    tmp_path: Path, rx: Receiver
) -> None:
    account = unique("acct")
    async with (
        nats_stream() as stream,
        consuming(tmp_path, stream.source_url(), rx, account) as run,
    ):
        order = make_order(account)
        update = {"status": 20, "timeStamp": "2026-12-04T10:00:00Z"}
        await stream.publish(
            {"type": "order.status_update", "orderId": order["_id"], "data": update}
        )

        async def handed_back() -> bool:
            metrics = expect(await run.client.get("/metrics"), 200)
            return 'outcome="retried"' in metrics

        # Another process sharing the durable could be storing the order right now:
        # the update is handed back to JetStream, not dead-lettered at once.
        await wait_until(handed_back, "the update handed back")
        await stream.publish({"type": "order.new", "data": order})
        await wait_delivered(rx, 2)
        assert [e["type"] for e in rx.events(accepted_only=True)] == [
            "order.new",
            "order.status_update",
        ]
        [source] = await sources_of(run.client)
        assert source["deadLettered"] == 0
