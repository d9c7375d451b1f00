"""Broker sources without a broker: URL parsing, message checks, and the consumer loop
driven through a scripted session (the brokers themselves are in tests/e2e)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from orderhooks.config import load_settings
from orderhooks.domain.model import Scope
from orderhooks.exceptions import ConfigError, StoreUnavailable, UnknownOrder
from orderhooks.metrics import Metrics
from orderhooks.sources.config import parse_source, parse_sources
from orderhooks.sources.consumer import (
    BrokerLost,
    SourceConsumer,
    SourceMessage,
    SourceStatus,
    backoff_delay,
    describe_error,
)
from orderhooks.sources.messages import MessageRejected, message_items
from orderhooks.sources.nats import takes_own_dead_letters
from orderhooks.store.base import (
    IngestItem,
    IngestResult,
    MessageKey,
    NewOrderItem,
    StatusItem,
)
from orderhooks.store.sqlite import SQLiteStore
from tests.support.data import courier_body
from tests.support.data import new_order as make_order

NATS = "nats://127.0.0.1:4222/ORDERS?subject=orders.>&durable=orderhooks"
AMQP = "amqp://user:s3cret-pw@127.0.0.1:5672/shop?queue=orders"


def test_both_kinds_parse_and_never_show_the_password() -> None:
    nats, amqp = parse_sources(f"{NATS}  {AMQP}")
    assert (nats.kind, nats.stream, nats.subject, nats.durable) == (
        "nats", "ORDERS", "orders.>", "orderhooks",
    )  # fmt: skip
    assert nats.id == "nats:ORDERS:orderhooks"
    assert (amqp.kind, amqp.queue, amqp.id) == ("amqp", "orders", "amqp:shop:orders")
    assert amqp.display_url == "amqp://user@127.0.0.1:5672/shop?queue=orders"
    assert "s3cret-pw" in amqp.connect_url and "queue" not in amqp.connect_url
    assert "s3cret-pw" not in repr(amqp)
    token = parse_source("nats://tok3n@127.0.0.1/S?subject=a&durable=d")
    assert "tok3n" not in token.display_url


@pytest.mark.parametrize(
    "raw",
    [
        "kafka://127.0.0.1:9092/orders",
        "127.0.0.1:4222",
        "nats://127.0.0.1:4222/ORDERS?subject=orders.>",
        "nats://127.0.0.1:4222/?subject=orders.>&durable=d",
        "nats://127.0.0.1:4222/S?subject=a&durable=d&colour=red",
        "amqp://guest:guest@127.0.0.1:5672/",
        "amqp://guest:guest@127.0.0.1:5672/?queue=",
        "amqp://guest:guest@127.0.0.1:notaport/?queue=q",
        f"{AMQP} {AMQP}",
    ],
)
def test_a_bad_source_is_a_start_up_error_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"ORDERHOOKS_SOURCES": raw})
    assert str(caught.value).startswith("ORDERHOOKS_SOURCES")
    assert "s3cret-pw" not in str(caught.value)
    assert "guest:guest" not in str(caught.value)


def test_no_sources_by_default() -> None:
    assert load_settings({}).sources == ()


def _rejected(body: bytes, max_bytes: int = 1_000_000) -> str:
    with pytest.raises(MessageRejected) as caught:
        message_items(body, max_bytes)
    assert caught.value.message and "\n" not in caught.value.message
    return caught.value.code


def test_messages_are_checked_like_a_batch() -> None:
    order = make_order("acct")
    items, single = message_items(orjson.dumps({"type": "order.new", "data": order}), 10**6)
    assert single and isinstance(items[0], NewOrderItem)
    update = {"type": "order.status_update", "orderId": order["_id"], "data": {"status": 20}}
    items, single = message_items(
        orjson.dumps([{"type": "order.new", "data": order}, update]), 10**6
    )
    assert not single and isinstance(items[1], StatusItem)
    assert _rejected(b"nope") == "bad_request"
    assert _rejected(b"") == "bad_request"
    assert _rejected(b"\x00") == "bad_request"
    assert _rejected(b"[]") == "validation_error"
    assert _rejected(b"12") == "validation_error"
    assert _rejected(orjson.dumps([{"type": "order.new", "data": {}}] * 1001)) == "validation_error"
    assert _rejected(orjson.dumps({"type": "order.new", "data": {"_id": "a\x00"}})) == (
        "validation_error"
    )
    assert _rejected(b"[" + b" " * 100 + b"]", max_bytes=50) == "payload_too_large"


@pytest.mark.parametrize(
    ("filter_subject", "stream_subjects", "takes"),
    [
        ("orders.>", ["orders.>"], True),
        ("orders.>", [">"], True),
        ("orders.>", ["*.>"], True),
        ("orders.>", ["orders.new", "orders.new.dead"], True),
        ("orders.*", ["orders.>"], False),  # orders.new.dead has a token more
        ("orders.new", ["orders.>"], False),
        ("orders.>", ["orders.new", "orders.status"], False),  # dead letters not stored
        ("orders.>", ["orders.*.dead"], False),  # their messages not stored
        ("orders.>", ["orders.new", "orders.old.dead"], False),
        ("orders.>", ["shop.>"], False),
    ],
)
def test_which_filters_take_their_own_dead_letters(
    filter_subject: str, stream_subjects: list[str], takes: bool
) -> None:
    assert takes_own_dead_letters(filter_subject, stream_subjects) is takes


def test_backoff_doubles_up_to_its_ceiling() -> None:
    assert backoff_delay(0, 0.5, 5.0, jitter=0) == 0.5
    assert backoff_delay(2, 0.5, 5.0, jitter=0) == 2.0
    assert backoff_delay(50, 0.5, 5.0, jitter=0) == 5.0


def test_errors_are_logged_without_the_secret() -> None:
    source = parse_source(AMQP)
    text = describe_error(RuntimeError("login s3cret-pw refused"), source.secrets)
    assert "s3cret-pw" not in text and "***" in text


class ScriptedSession:
    """A broker session that hands out given rounds and records what was done."""

    def __init__(self, rounds: list[list[SourceMessage]], retries: int = 0) -> None:
        self.rounds = rounds
        self.retries = retries  # how many unknown-order messages the broker takes back
        self.retried: list[bytes] = []
        self.acked: list[bytes] = []
        self.dead: list[tuple[bytes, str]] = []

    async def fetch(self) -> list[SourceMessage]:
        if self.rounds:
            return self.rounds.pop(0)
        await asyncio.sleep(0.01)
        return []

    async def dead_letter(self, message: SourceMessage, code: str, text: str) -> None:
        self.dead.append((message.body, code))

    async def ack(self, messages: Sequence[SourceMessage]) -> None:
        self.acked.extend(m.body for m in messages)

    async def retry_later(self, message: SourceMessage) -> bool:
        self.retried.append(message.body)
        return len(self.retried) <= self.retries

    async def lag(self) -> int | None:
        return 0

    async def close(self) -> None:
        pass


class ScriptedBroker:
    def __init__(self, session: ScriptedSession) -> None:
        self.session = session

    async def connect(self) -> ScriptedSession:
        return self.session


def _message(item: Any, subject: str = "orders.x") -> SourceMessage:
    return SourceMessage(orjson.dumps(item), handle=None, subject=subject)


def _consumer(session: ScriptedSession, ingest: Any) -> SourceConsumer:
    status = SourceStatus(parse_source(NATS))
    return SourceConsumer(ScriptedBroker(session), status, ingest, Metrics(), 1_000_000)


async def test_a_round_is_one_ingest_call_and_bad_messages_are_dead_lettered() -> None:
    order = make_order("acct")
    new = {"type": "order.new", "data": order}
    unknown = {"type": "order.status_update", "orderId": "ghost", "data": {"status": 20}}
    update = {"type": "order.status_update", "orderId": order["_id"], "data": {"status": 20}}
    dead_again = SourceMessage(b"x", handle=None, subject="orders.x.dead", skip=True)
    messages = [_message(new), _message(unknown), SourceMessage(b"{", None, "orders.x"),
                _message(update), dead_again]  # fmt: skip
    calls: list[int] = []

    async def ingest(items: Sequence[IngestItem], keys: Sequence[MessageKey]) -> list[IngestResult]:
        calls.append(len(items))
        for index, item in enumerate(items):
            if isinstance(item, StatusItem) and item.order_id == "ghost":
                raise UnknownOrder("ghost", index)
        return []

    session = ScriptedSession([])
    consumer = _consumer(session, ingest)
    assert await consumer.handle_round(session, messages)
    assert calls == [3, 2]  # all valid messages at once; again without the unknown order
    assert sorted(code for _, code in session.dead) == ["bad_request", "unknown_order"]
    assert session.acked == [m.body for m in messages]
    assert consumer.status.consumed == 5 and consumer.status.dead_lettered == 2

    # A broker that counts deliveries takes the unknown order back instead, unacknowledged.
    session = ScriptedSession([], retries=1)
    consumer = _consumer(session, ingest)
    assert await consumer.handle_round(session, messages)
    assert [code for _, code in session.dead] == ["bad_request"]
    assert session.acked == [m.body for m in messages if m is not messages[1]]
    assert consumer.status.consumed == 4


async def test_a_message_ingested_before_is_acknowledged_as_a_duplicate() -> None:
    order = make_order("acct")
    courier = {"type": "order.courier_update", "orderId": order["_id"], "data": courier_body()}
    new, again = _message({"type": "order.new", "data": order}), _message(courier)
    messages = [new, again, _message(courier)]  # the courier update twice in one round
    calls: list[list[MessageKey]] = []

    async def ingest(items: Sequence[IngestItem], keys: Sequence[MessageKey]) -> list[IngestResult]:
        calls.append(list(keys))
        # The store knows the new order's message already: its items create nothing.
        return [
            IngestResult(order["_id"], (), repeat=True, duplicate=key.digest == keys[0].digest)
            for key in keys
        ]

    session = ScriptedSession([])
    consumer = _consumer(session, ingest)
    assert await consumer.handle_round(session, messages)
    [keys] = calls
    assert [key.digest for key in keys] == [
        hashlib.sha256(m.body).hexdigest() for m in messages[:2]
    ]
    assert {key.source_id for key in keys} == {consumer.source_id}
    assert session.acked == [m.body for m in messages] and session.dead == []
    assert _counted(consumer, "duplicate") == 2 and _counted(consumer, "ingested") == 1


def _counted(consumer: SourceConsumer, outcome: str) -> float | None:
    return consumer.metrics.registry.get_sample_value(
        "orderhooks_source_messages_total", {"source": consumer.source_id, "outcome": outcome}
    )


async def test_consuming_pauses_while_the_store_is_unavailable_then_resumes() -> None:
    order = make_order("acct")
    session = ScriptedSession([[_message({"type": "order.new", "data": order})]])
    outage = asyncio.Event()
    outage.set()
    attempts = 0

    async def ingest(items: Sequence[IngestItem], keys: Sequence[MessageKey]) -> list[IngestResult]:
        nonlocal attempts
        attempts += 1
        if outage.is_set():
            raise StoreUnavailable("down")
        return []

    consumer = _consumer(session, ingest)
    task = asyncio.create_task(consumer.run())
    while attempts < 2:
        await asyncio.sleep(0.01)
    assert session.acked == [] and session.dead == []  # nothing acknowledged meanwhile
    outage.clear()
    while not session.acked:
        await asyncio.sleep(0.01)
    assert session.dead == [] and consumer.status.state == "connected"
    consumer.stop()
    await asyncio.wait_for(task, 5)


async def test_an_unexpected_ingest_error_pauses_with_backoff_then_resumes() -> None:
    order = make_order("acct")
    session = ScriptedSession([[_message({"type": "order.new", "data": order})]])
    failures = 2
    attempts = 0

    async def ingest(items: Sequence[IngestItem], keys: Sequence[MessageKey]) -> list[IngestResult]:
        nonlocal attempts
        attempts += 1
        if attempts <= failures:
            raise RuntimeError("a bug after the commit")
        return []

    consumer = _consumer(session, ingest)
    task = asyncio.create_task(consumer.run())
    while not session.acked:
        await asyncio.sleep(0.01)
    # The same round was tried again on the same session: no reconnect, nothing dropped.
    assert attempts == failures + 1
    assert session.dead == [] and consumer.status.state == "connected"
    consumer.stop()
    await asyncio.wait_for(task, 5)


class LostAtOnceBroker:
    """A broker that accepts every connection and loses each session at its first fetch
    (a connection dropped at once, or a round that fails the same way every time)."""

    def __init__(self) -> None:
        self.connects = 0

    async def connect(self) -> ScriptedSession:
        self.connects += 1
        await asyncio.sleep(0)  # as a real connect does, lets the loop run others
        session = ScriptedSession([])

        async def fetch() -> list[SourceMessage]:
            raise BrokerLost("gone again")

        session.fetch = fetch  # type: ignore[method-assign]
        return session


async def test_a_session_lost_at_once_is_opened_again_with_backoff() -> None:
    # Only a failed connect waited: a session lost right after it connected was opened
    # again at once, so a message that failed its round the same way every time had the
    # consumer reconnect (and log) as fast as the broker answered.
    broker = LostAtOnceBroker()
    consumer = SourceConsumer(
        broker, SourceStatus(parse_source(NATS)), _never_called, Metrics(), 1_000_000
    )
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(1.2)  # 0.5 s, then 1 s (+-20 %): three connects at most
    consumer.stop()
    await asyncio.wait_for(task, 5)
    assert 2 <= broker.connects <= 3, broker.connects


async def _never_called(
    items: Sequence[IngestItem], keys: Sequence[MessageKey]
) -> list[IngestResult]:
    raise AssertionError("nothing to ingest")


async def test_stopping_during_an_outage_acknowledges_nothing() -> None:
    session = ScriptedSession([[_message({"type": "order.new", "data": make_order("a")})]])

    async def ingest(items: Sequence[IngestItem], keys: Sequence[MessageKey]) -> list[IngestResult]:
        raise StoreUnavailable("down")

    consumer = _consumer(session, ingest)
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0.2)
    consumer.stop()
    await asyncio.wait_for(task, 10)
    assert session.acked == [] and session.dead == []


async def test_a_message_moving_an_order_to_another_account_is_dead_lettered(
    tmp_path: Path,
) -> None:
    """A newer version naming another account can never be accepted: its message goes to
    the dead letters (not retried forever, not stored), the rest of the round is stored."""
    store = SQLiteStore(
        tmp_path / "orderhooks.db", require_agreement=False, disable_after_seconds=86_400
    )
    await store.open()
    await store.migrate()
    try:

        async def ingest(
            items: Sequence[IngestItem], keys: Sequence[MessageKey]
        ) -> list[IngestResult]:
            return await store.ingest(items, datetime.now(UTC), message_keys=keys)

        order = make_order("acct-1")
        moved = make_order("acct-2", order_id=order["_id"], status=20)
        update = {"type": "order.status_update", "orderId": order["_id"], "data": {"status": 30}}
        session = ScriptedSession([])
        consumer = _consumer(session, ingest)
        assert await consumer.handle_round(
            session, [_message({"type": "order.new", "data": order})]
        )
        messages = [_message({"type": "order.new", "data": moved}), _message(update)]
        assert await consumer.handle_round(session, messages)
        assert session.dead == [(messages[0].body, "validation_error")]
        assert len(session.acked) == 3
        view = await store.get_order(order["_id"], Scope())
        assert (view.order.account, view.order.status) == ("acct-1", 30)
    finally:
        await store.close()


async def test_nothing_is_dead_lettered_in_a_round_the_store_did_not_take() -> None:
    # A bad message beside a good one, while the store is away: its dead letter would be
    # published again when the round, never acknowledged, is delivered again.
    good = _message({"type": "order.new", "data": make_order("a")})
    session = ScriptedSession([[SourceMessage(b"{", None, "orders.x"), good]])
    attempts = 0

    async def ingest(items: Sequence[IngestItem], keys: Sequence[MessageKey]) -> list[IngestResult]:
        nonlocal attempts
        attempts += 1
        raise StoreUnavailable("down")

    consumer = _consumer(session, ingest)
    task = asyncio.create_task(consumer.run())
    while attempts < 2:
        await asyncio.sleep(0.01)
    assert session.dead == []
    consumer.stop()
    await asyncio.wait_for(task, 10)
    assert session.acked == [] and session.dead == []
    assert consumer.status.dead_lettered == 0
