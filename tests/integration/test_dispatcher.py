"""The dispatcher with a FakeTransport and a real SQLite store in tmp_path."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from standardwebhooks import Webhook as StandardWebhook

from orderhooks.config import Settings
from orderhooks.delivery import dispatcher as dispatcher_module
from orderhooks.delivery.claims import Outcome
from orderhooks.delivery.dispatcher import Dispatcher
from orderhooks.delivery.outbound import user_agent
from orderhooks.delivery.signing import generate_secret, verify
from orderhooks.delivery.transport import (
    AttemptAbandoned,
    FakeTransport,
    OutboundRequest,
    fake_result,
)
from orderhooks.domain.batches import BatchSettings
from orderhooks.domain.ids import new_id
from orderhooks.domain.model import (
    Attempt,
    AttemptError,
    DeliveryState,
    DisabledReason,
    PayloadFormat,
    Scope,
    SigningSecret,
    Webhook,
    WebhookState,
)
from orderhooks.domain.orders import validate_order, validate_status_update
from orderhooks.exceptions import StoreUnavailable
from orderhooks.metrics import Metrics
from orderhooks.store import Store, open_store
from orderhooks.store.base import DeliveryFilter, NewOrderItem, StatusItem
from tests.support.data import sample
from tests.support.factories import ALL_TYPES

ACCOUNT = "acc1"
EVERYONE = Scope()


def _now() -> datetime:
    return datetime.now(UTC)


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "require_agreement": False,
        "retry_schedule": (0, 1),
        "retry_jitter": 0.0,
        "worker_concurrency": 64,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return _settings(tmp_path)


@pytest.fixture()
async def store(settings: Settings) -> AsyncIterator[Store]:
    opened = open_store(settings)
    await opened.open()
    await opened.migrate()
    yield opened
    await opened.close()


@pytest.fixture()
def transport() -> FakeTransport:
    return FakeTransport()


@pytest.fixture()
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture()
async def dispatcher(
    store: Store, transport: FakeTransport, settings: Settings, metrics: Metrics
) -> AsyncIterator[Dispatcher]:
    worker = Dispatcher(store, transport, settings, metrics=metrics, worker_id="test-worker")
    async with _running(worker):
        yield worker


@contextlib.asynccontextmanager
async def _running(worker: Dispatcher) -> AsyncIterator[None]:
    """`worker` started for the block, and stopped after it (draining for up to 2 s)."""
    await worker.start()
    try:
        yield
    finally:
        await worker.stop(drain_timeout=2)


def _fail_twice(monkeypatch: pytest.MonkeyPatch, store: Store, method: str) -> list[Any]:
    """Make the store's `method` raise StoreUnavailable on its first two calls; the list
    gets the arguments of each failed call."""
    real = getattr(store, method)
    failures: list[Any] = []

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        if len(failures) < 2:
            failures.append(args)
            raise StoreUnavailable("database is down")
        return await real(*args, **kwargs)

    monkeypatch.setattr(store, method, flaky)
    return failures


async def _webhook(store: Store, url: str, **overrides: Any) -> tuple[Webhook, str]:
    secret = generate_secret()
    now = _now()
    values: dict[str, Any] = {
        "id": new_id("wh"),
        "url": url,
        "accounts": (ACCOUNT,),
        "event_types": ALL_TYPES,
        "secrets": (SigningSecret(secret),),
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    created = await store.create_webhook(Webhook(**values))
    assert created.state is WebhookState.ACTIVE
    return created, secret


def _order(order_id: str, account: str = ACCOUNT) -> NewOrderItem:
    document = sample("new_order")
    document.update({"_id": order_id, "account": account})
    raw = orjson.dumps(document)
    return NewOrderItem(validate_order(document), hashlib.sha256(raw).hexdigest())


def _status(order_id: str, status: int) -> StatusItem:
    return StatusItem(order_id, validate_status_update({"status": status}))


async def _ingest_orders(store: Store, count: int, prefix: str = "order") -> list[str]:
    results = await store.ingest([_order(f"{prefix}-{i}") for i in range(count)], _now())
    return [event_id for result in results for event_id in result.event_ids]


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


async def _states(store: Store, webhook_id: str) -> list[DeliveryState]:
    page = await store.list_deliveries(DeliveryFilter(webhook_id=webhook_id), 500, None)
    return [d.state for d in page.items]


def _all_in(
    states: set[DeliveryState], store: Store, webhook_id: str, count: int
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        current = await _states(store, webhook_id)
        return len(current) == count and all(state in states for state in current)

    return check


def _event_ids(requests: list[OutboundRequest]) -> list[str]:
    return [request.headers["webhook-id"] for request in requests]


def _counter(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "orderhooks_delivery_attempts_total", {"outcome": outcome}
    )
    return value or 0.0


# ---------------------------------------------------------------- the request


async def test_each_delivery_is_sent_signed_with_its_headers(
    store: Store, transport: FakeTransport, dispatcher: Dispatcher
) -> None:
    url = "https://receiver.example/hook"
    # Stored directly, as a webhook saved before a name was reserved would be.
    static = {
        "X-Team": "bi",
        "Content-Type": "text/plain",
        "Webhook-Signature": "v1,forged",
        "Expect": "100-continue",
        "Orderhooks-Custom": "reserved prefix",
    }
    webhook, secret = await _webhook(store, url, headers=static)
    [event_id] = await _ingest_orders(store, 1)

    await _eventually(_all_in({DeliveryState.DELIVERED}, store, webhook.id, 1))

    [request] = transport.sent_to(url)
    headers = request.headers
    assert headers["webhook-id"] == event_id
    assert abs(int(headers["webhook-timestamp"]) - _now().timestamp()) < 60
    StandardWebhook(secret).verify(request.body, dict(headers))
    assert verify(secret, dict(headers), request.body)
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == user_agent() == f"orderhooks/{version('orderhooks')}"
    assert headers["orderhooks-event-type"] == "order.new"
    assert headers["orderhooks-attempt"] == "1"
    page = await store.list_deliveries(DeliveryFilter(webhook_id=webhook.id), 10, None)
    assert headers["orderhooks-delivery-id"] == page.items[0].id
    assert headers["X-Team"] == "bi"
    # Static headers never replace the ones orderhooks sets.
    assert "Content-Type" not in headers
    assert "Webhook-Signature" not in headers
    assert "forged" not in headers["webhook-signature"]
    assert "Expect" not in headers
    assert "Orderhooks-Custom" not in headers
    assert request.timeout_seconds == webhook.timeout_seconds

    envelope = orjson.loads(request.body)
    assert envelope["id"] == event_id
    assert envelope["type"] == "order.new"
    assert envelope["sequence"] == 1
    assert envelope["data"]["_id"] == "order-0"


async def test_raw_payload_is_the_data_alone_and_bodies_are_shared(
    store: Store, transport: FakeTransport, dispatcher: Dispatcher
) -> None:
    raw, _ = await _webhook(store, "https://raw.example/", payload_format=PayloadFormat.RAW)
    first, _ = await _webhook(store, "https://one.example/")
    second, _ = await _webhook(store, "https://two.example/")
    await _ingest_orders(store, 1)

    for webhook in (raw, first, second):
        await _eventually(_all_in({DeliveryState.DELIVERED}, store, webhook.id, 1))
    [raw_request] = transport.sent_to("https://raw.example/")
    assert orjson.loads(raw_request.body)["_id"] == "order-0"
    [one] = transport.sent_to("https://one.example/")
    [two] = transport.sent_to("https://two.example/")
    assert one.body == two.body
    assert (
        one.headers["webhook-id"] == two.headers["webhook-id"] == raw_request.headers["webhook-id"]
    )


# ---------------------------------------------------------------- outcomes and retries


async def test_retries_follow_the_schedule_then_fail(
    store: Store, transport: FakeTransport, dispatcher: Dispatcher, metrics: Metrics
) -> None:
    url = "https://failing.example/"
    webhook, _ = await _webhook(store, url)
    transport.script(url, [fake_result(500, excerpt="boom")] * 3)
    await _ingest_orders(store, 1)

    await _eventually(_all_in({DeliveryState.FAILED}, store, webhook.id, 1))

    requests = transport.sent_to(url)
    assert [r.headers["orderhooks-attempt"] for r in requests] == ["1", "2", "3"]
    assert len(set(_event_ids(requests))) == 1
    page = await store.list_deliveries(DeliveryFilter(webhook_id=webhook.id), 10, None)
    view = await store.get_delivery(page.items[0].id, EVERYONE)
    attempts = view.attempts
    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert all(a.status_code == 500 and a.error is AttemptError.HTTP_STATUS for a in attempts)
    assert attempts[0].response_body == "boom"
    # Schedule (0, 1): the third attempt waits for the second entry, one second.
    assert (attempts[2].started_at - attempts[1].started_at).total_seconds() >= 0.95
    assert _counter(metrics, "retry") == 2
    assert _counter(metrics, "failed") == 1


async def test_a_fresh_event_keeps_its_schedule_beside_one_on_its_last_attempt(
    store: Store, transport: FakeTransport, settings: Settings, metrics: Metrics
) -> None:
    """An event that failed twice before its webhook started batching has one attempt
    left; an event posted then, to the same failing receiver, still gets all three of
    its own (docs/events.md, batches: retried by the schedule)."""
    url = "https://batching-late.example/"
    webhook, _ = await _webhook(store, url, retry_schedule=(0, 0))
    await _ingest_orders(store, 1, prefix="old")
    for number in (1, 2):
        now = _now()
        [claim] = await store.claim(now, 10, "setup")
        attempt = Attempt(claim.delivery.id, number, now, 5, 500, "", AttemptError.HTTP_STATUS)
        outcome = Outcome(
            claim.delivery.id, webhook.id, attempt, DeliveryState.PENDING, now, number
        )
        await store.record([outcome], now)
    stored = await store.get_webhook(webhook.id, EVERYONE)
    await store.update_webhook(replace(stored, batch=BatchSettings(10, 0)))
    await _ingest_orders(store, 1, prefix="new")
    transport.script(url, [fake_result(500)] * 10)

    worker = Dispatcher(store, transport, settings, metrics=metrics, worker_id="test-worker")
    async with _running(worker):
        await _eventually(_all_in({DeliveryState.FAILED}, store, webhook.id, 2))

    page = await store.list_deliveries(DeliveryFilter(webhook_id=webhook.id), 10, None)
    by_order = {d.order_id: d.attempt_count for d in page.items}
    assert by_order == {"old-0": 3, "new-0": 3}


async def test_a_retry_that_succeeds_delivers(
    store: Store, transport: FakeTransport, dispatcher: Dispatcher, metrics: Metrics
) -> None:
    url = "https://flaky.example/"
    webhook, _ = await _webhook(store, url)
    transport.script(url, [fake_result(None, error=AttemptError.TIMEOUT)])
    await _ingest_orders(store, 1)

    await _eventually(_all_in({DeliveryState.DELIVERED}, store, webhook.id, 1))

    page = await store.list_deliveries(DeliveryFilter(webhook_id=webhook.id), 10, None)
    delivery = page.items[0]
    assert delivery.attempt_count == 2
    view = await store.get_delivery(delivery.id, EVERYONE)
    assert [(a.status_code, a.error) for a in view.attempts] == [
        (None, AttemptError.TIMEOUT),
        (200, None),
    ]
    assert _counter(metrics, "delivered") == 1
    assert _counter(metrics, "retry") == 1


async def test_410_fails_the_delivery_and_disables_the_webhook(
    store: Store, transport: FakeTransport, dispatcher: Dispatcher
) -> None:
    url = "https://gone.example/"
    webhook, _ = await _webhook(store, url)
    transport.script(url, [fake_result(410)])
    await _ingest_orders(store, 1)

    await _eventually(_all_in({DeliveryState.FAILED}, store, webhook.id, 1))

    stored = await store.get_webhook(webhook.id, EVERYONE)
    assert stored.state is WebhookState.DISABLED
    assert stored.disabled_reason is DisabledReason.GONE
    assert len(transport.sent_to(url)) == 1


# ---------------------------------------------------------------- ordering and limits


async def test_an_order_waits_for_its_failing_first_event(
    store: Store, transport: FakeTransport, dispatcher: Dispatcher
) -> None:
    url = "https://ordered.example/"
    # The webhook's own schedule wins over the server's: one retry, at once. Two failures
    # stay below the probing threshold, so only the order's queue holds the next events.
    webhook, _ = await _webhook(store, url, retry_schedule=(0,))
    transport.script(url, [fake_result(500), fake_result(503)])
    created = await store.ingest([_order("o-1"), _status("o-1", 20), _status("o-1", 50)], _now())
    event_ids = [event_id for result in created for event_id in result.event_ids]
    assert len(event_ids) == 3

    await _eventually(
        _all_in({DeliveryState.DELIVERED, DeliveryState.FAILED}, store, webhook.id, 3)
    )

    sent = _event_ids(transport.sent_to(url))
    first, second, third = event_ids
    assert sent == [first, first, second, third]
    states = {d.event_id: d.state for d in (await _deliveries(store, webhook.id))}
    assert states == {
        first: DeliveryState.FAILED,
        second: DeliveryState.DELIVERED,
        third: DeliveryState.DELIVERED,
    }


async def _deliveries(store: Store, webhook_id: str) -> list[Any]:
    page = await store.list_deliveries(DeliveryFilter(webhook_id=webhook_id), 500, None)
    return list(page.items)


class Gate:
    """A responder that holds every request until released, counting those in flight."""

    def __init__(self, delay: float = 0.0) -> None:
        self.release = asyncio.Event()
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        self.started = asyncio.Event()

    async def __call__(self, request: OutboundRequest) -> Any:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.started.set()
        try:
            await self.hold(request)
            return fake_result(200)
        finally:
            self.in_flight -= 1

    async def hold(self, request: OutboundRequest) -> None:
        """Keep the request until its answer is due: `delay`, else until released."""
        if self.delay:
            await asyncio.sleep(self.delay)
        else:
            await self.release.wait()


async def test_max_concurrency_of_each_webhook_is_never_exceeded(
    store: Store, transport: FakeTransport, dispatcher: Dispatcher
) -> None:
    gate = Gate(delay=0.03)
    transport.responder = gate
    narrow, _ = await _webhook(store, "https://narrow.example/", max_concurrency=2)
    wide, _ = await _webhook(store, "https://wide.example/", max_concurrency=5)
    await _ingest_orders(store, 20)

    for webhook in (narrow, wide):
        await _eventually(_all_in({DeliveryState.DELIVERED}, store, webhook.id, 20))
    assert transport.max_in_flight["https://narrow.example/"] == 2
    assert transport.max_in_flight["https://wide.example/"] == 5


async def test_worker_concurrency_bounds_the_attempts_of_one_webhook(
    tmp_path: Path, store: Store, transport: FakeTransport
) -> None:
    """A webhook with attempts in flight takes further ones from the shared capacity
    only: its own slot is for when it has none."""
    gate = Gate(delay=0.03)
    transport.responder = gate
    await _webhook(store, "https://a.example/", max_concurrency=20)
    await _ingest_orders(store, 30)
    worker = Dispatcher(store, transport, _settings(tmp_path, worker_concurrency=4))
    async with _running(worker):
        await _eventually(lambda: _count_requests(transport, 30))
    assert gate.max_in_flight == 4


async def _count_requests(transport: FakeTransport, count: int) -> bool:
    return len(transport.requests) >= count


class SlowHosts(Gate):
    """A responder that holds the requests to `slow.example` hosts until released and
    answers the others at once, counting every request in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.held = 0

    async def hold(self, request: OutboundRequest) -> None:
        if "slow.example" in request.url:
            self.held += 1
            await self.release.wait()
        else:
            await asyncio.sleep(0)


async def test_a_full_worker_still_sends_to_a_webhook_with_nothing_in_flight(
    tmp_path: Path, store: Store, transport: FakeTransport
) -> None:
    hosts = SlowHosts()
    transport.responder = hosts
    await _webhook(store, "https://slow.example/", max_concurrency=2)
    await _ingest_orders(store, 4, prefix="slow")
    worker = Dispatcher(store, transport, _settings(tmp_path, worker_concurrency=2))
    async with _running(worker):
        await _eventually(lambda: _is(hosts.held == 2))  # every shared slot held
        healthy, _ = await _webhook(store, "https://healthy.example/", accounts=("acc2",))
        for round_number in range(3):  # its own slot, again once each attempt ended
            await store.ingest([_order(f"healthy-{round_number}", "acc2")], _now())
            delivered = _all_in({DeliveryState.DELIVERED}, store, healthy.id, round_number + 1)
            await _eventually(delivered)
        assert hosts.held == 2 and worker.in_flight == 2
        hosts.release.set()
    assert hosts.max_in_flight == 3


async def test_own_slots_stop_at_twice_the_worker_concurrency(
    tmp_path: Path, store: Store, transport: FakeTransport
) -> None:
    hosts = SlowHosts()
    transport.responder = hosts
    for number in range(6):
        await _webhook(store, f"https://slow.example/{number}", max_concurrency=2)
    await _ingest_orders(store, 2)
    worker = Dispatcher(store, transport, _settings(tmp_path, worker_concurrency=2))
    async with _running(worker):
        await _eventually(lambda: _is(hosts.held == 4))
        await asyncio.sleep(0.3)  # time enough for a claim that would pass the bound
        assert hosts.held == 4 and worker.in_flight == 4
        hosts.release.set()
        await _eventually(lambda: _count_requests(transport, 12))
    assert hosts.max_in_flight == 4


class HeldHosts:
    """A responder that holds the requests to each host until that host is released,
    counting each host's requests in flight."""

    def __init__(self) -> None:
        self.released: dict[str, asyncio.Event] = {}
        self.in_flight: dict[str, int] = {}

    def release(self, host: str) -> None:
        self._gate(host).set()

    def release_all(self) -> None:
        for gate in self.released.values():
            gate.set()

    def _gate(self, host: str) -> asyncio.Event:
        return self.released.setdefault(host, asyncio.Event())

    async def __call__(self, request: OutboundRequest) -> Any:
        host = str(urlsplit(request.url).hostname)
        self.in_flight[host] = self.in_flight.get(host, 0) + 1
        try:
            await self._gate(host).wait()
            return fake_result(200)
        finally:
            self.in_flight[host] -= 1


@contextlib.asynccontextmanager
async def _full_worker(
    tmp_path: Path, store: Store, transport: FakeTransport, hosts: HeldHosts, capacity: int
) -> AsyncIterator[Dispatcher]:
    """A running worker of `capacity` whose shared slots all hold requests to
    `first.example` (its webhook, and as many orders), which `hosts` keeps waiting."""
    await _webhook(store, "https://first.example/", max_concurrency=capacity)
    await _ingest_orders(store, capacity)
    worker = Dispatcher(store, transport, _settings(tmp_path, worker_concurrency=capacity))
    async with _running(worker):
        await _eventually(lambda: _is(hosts.in_flight.get("first.example") == capacity))
        yield worker


async def test_attempts_in_own_slots_do_not_take_the_shared_capacity(
    tmp_path: Path, store: Store, transport: FakeTransport
) -> None:
    """The own slots are beside the shared capacity: once the attempts that filled it
    end, all of it is free again for any webhook, while an attempt that went out in an
    own slot still runs (it held a shared slot, and `next` got one request only)."""
    hosts = HeldHosts()
    transport.responder = hosts
    async with _full_worker(tmp_path, store, transport, hosts, 2) as worker:
        await _webhook(store, "https://own.example/", accounts=("acc2",))
        await store.ingest([_order("own-0", "acc2")], _now())
        await _eventually(lambda: _is(hosts.in_flight.get("own.example") == 1))
        hosts.release("first.example")
        await _eventually(lambda: _is(hosts.in_flight["first.example"] == 0))
        await _webhook(store, "https://next.example/", accounts=("acc3",), max_concurrency=2)
        await store.ingest([_order(f"next-{i}", "acc3") for i in range(2)], _now())
        await _eventually(lambda: _is(hosts.in_flight.get("next.example") == 2))
        assert hosts.in_flight["own.example"] == 1 and worker.in_flight == 3
        hosts.release_all()


@pytest.mark.parametrize(
    "failure", [AttemptAbandoned("the sender died"), RuntimeError("a bug in the send")]
)
async def test_an_attempt_ending_without_an_outcome_gives_its_own_slot_back(
    tmp_path: Path, store: Store, transport: FakeTransport, failure: Exception
) -> None:
    """The count of a webhook's attempts in flight, which decides its own slot, drops
    however an attempt ends: one abandoned, or one whose send raised, records nothing
    (its lease brings the delivery back), and a count left behind would keep the
    webhook out of its own slot for good while the shared capacity stays full."""
    hosts = HeldHosts()
    failed: list[str] = []

    async def respond(request: OutboundRequest) -> Any:
        if "own.example" in request.url and not failed:
            failed.append(request.url)
            raise failure
        return await hosts(request)

    transport.responder = respond
    async with _full_worker(tmp_path, store, transport, hosts, 1) as worker:
        await _webhook(store, "https://own.example/", accounts=("acc2",))
        await store.ingest([_order(f"own-{i}", "acc2") for i in range(2)], _now())
        # The first went in the own slot and failed; the second takes the slot again.
        await _eventually(lambda: _is(hosts.in_flight.get("own.example") == 1))
        assert len(failed) == 1 and worker.in_flight == 2
        hosts.release_all()


async def test_own_slots_past_one_claim_batch_are_claimed_at_once(
    tmp_path: Path, store: Store, transport: FakeTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An own-slot claim cut short by MAX_CLAIM_BATCH (own slots are as many as the
    worker's concurrency, 512 by default) claims again at once, as a shared claim does,
    instead of sleeping until a wake-up that may not come (here: none within the test)."""
    monkeypatch.setattr(dispatcher_module, "MAX_CLAIM_BATCH", 1)
    monkeypatch.setattr(dispatcher_module, "IDLE_WAIT_CAP_SECONDS", 60.0)
    hosts = HeldHosts()
    transport.responder = hosts
    async with _full_worker(tmp_path, store, transport, hosts, 2) as worker:
        for name in ("a", "b"):
            await _webhook(store, f"https://{name}.example/", accounts=(f"acc-{name}",))
        await store.ingest([_order("a-0", "acc-a"), _order("b-0", "acc-b")], _now())
        # Each request reaches the receiver a moment after its task starts: wait for both.
        await _eventually(
            lambda: _is(
                hosts.in_flight.get("a.example") == 1 and hosts.in_flight.get("b.example") == 1
            )
        )
        assert worker.in_flight == 4
        hosts.release_all()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Store, Settings]]:
    """A migrated store on SQLite in tmp_path, or on a fresh PostgreSQL database, and the
    settings it was opened with (a worker concurrency of 1)."""
    url = "" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    settings = _settings(tmp_path, database_url=url, worker_concurrency=1)
    opened = open_store(settings)
    await opened.open()
    await opened.migrate()
    yield opened, settings
    await opened.close()


async def test_a_full_worker_claims_its_own_slots_at_most_once_an_interval(
    engine: tuple[Store, Settings], transport: FakeTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ingest wakes a full worker; with a webhook in the catalog that could take an
    own slot (the usual case), each wake-up made a whole own-slot claim (on PostgreSQL
    under the cluster's claim lock). Now a burst of wake-ups costs one claim per
    OWN_SLOTS_CLAIM_INTERVAL_SECONDS, and a healthy webhook still gets its events while
    the slow one holds the shared capacity."""
    store, settings = engine
    interval = 0.5
    monkeypatch.setattr(dispatcher_module, "OWN_SLOTS_CLAIM_INTERVAL_SECONDS", interval)
    own_slot_claims: list[float] = []
    real_record_and_claim = store.record_and_claim

    async def counting(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("one_each_except") is not None:
            own_slot_claims.append(time.monotonic())
        return await real_record_and_claim(*args, **kwargs)

    monkeypatch.setattr(store, "record_and_claim", counting)
    hosts = SlowHosts()
    transport.responder = hosts
    await _webhook(store, "https://slow.example/", max_concurrency=1)
    healthy, _ = await _webhook(store, "https://healthy.example/", accounts=("acc2",))
    await _ingest_orders(store, 1, prefix="slow")
    worker = Dispatcher(store, transport, settings)
    async with _running(worker):
        await _eventually(lambda: _is(hosts.held == 1))
        await _eventually(lambda: _is(len(own_slot_claims) >= 1))  # found healthy idle
        burst = 40
        before = len(own_slot_claims)
        started = time.monotonic()
        for number in range(burst):  # each ingest wakes the worker
            await _ingest_orders(store, 1, prefix=f"burst-{number}")
            await asyncio.sleep(0.005)
        elapsed = time.monotonic() - started
        during = len(own_slot_claims) - before
        # One when the burst began (the interval since the last may be over), one per
        # interval after it: however many wake-ups there were.
        assert during <= elapsed / interval + 2, (during, elapsed)
        await store.ingest([_order("healthy-0", "acc2")], _now())
        await _eventually(_all_in({DeliveryState.DELIVERED}, store, healthy.id, 1))
        assert hosts.held == 1 and worker.in_flight == 1
        hosts.release.set()


async def _is(value: bool) -> bool:
    return value


# ---------------------------------------------------------------- recording and stopping


@pytest.mark.parametrize(
    ("method", "orders", "in_turn"),
    [("record_and_claim", 3, True), ("record", 3, False), ("claim", 1, True)],
)
async def test_delivery_survives_a_store_call_failing_twice(
    store: Store,
    transport: FakeTransport,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    orders: int,
    in_turn: bool,
) -> None:
    """Outcomes that could not be recorded are recorded late, a claim that failed is
    tried again: every order is delivered, once, and the loop keeps running. Outcomes
    are written with the next claim where the store writes in turn (SQLite), by the
    recorder alone elsewhere (PostgreSQL's way, here on SQLite)."""
    assert store.writes_in_turn
    if not in_turn:
        monkeypatch.setattr(Store, "writes_in_turn", property(lambda _store: False))
    webhook, _ = await _webhook(store, "https://receiver.example/")
    await _ingest_orders(store, orders)
    failures = _fail_twice(monkeypatch, store, method)
    worker = Dispatcher(store, transport, settings)
    async with _running(worker):
        await _eventually(_all_in({DeliveryState.DELIVERED}, store, webhook.id, orders))
        assert worker.running
    assert len(failures) == 2
    assert len(transport.requests) == orders  # never sent twice


async def test_stop_lets_attempts_in_flight_finish_and_records_them(
    store: Store, transport: FakeTransport, settings: Settings
) -> None:
    gate = Gate()
    transport.responder = gate
    webhook, _ = await _webhook(store, "https://receiver.example/")
    await _ingest_orders(store, 2)
    worker = Dispatcher(store, transport, settings)
    await worker.start()
    assert worker.running
    await _eventually(lambda: _count_requests(transport, 2))

    stopping = asyncio.create_task(worker.stop(drain_timeout=10))
    await asyncio.sleep(0.1)
    assert not stopping.done()  # waiting for the two attempts
    assert not worker.running
    await _ingest_orders(store, 1, prefix="late")  # claimed by nobody: the worker is stopping
    gate.release.set()
    await stopping

    assert len(transport.requests) == 2
    states = await _states(store, webhook.id)
    assert sorted(states) == sorted(
        [DeliveryState.DELIVERED, DeliveryState.DELIVERED, DeliveryState.PENDING]
    )


async def _one_attempt_in_flight(
    store: Store, transport: FakeTransport, settings: Settings
) -> tuple[Webhook, Dispatcher]:
    """A started worker whose one attempt (one order, one webhook) the transport holds."""
    webhook, _ = await _webhook(store, "https://receiver.example/")
    await _ingest_orders(store, 1)
    worker = Dispatcher(store, transport, settings)
    await worker.start()
    await _eventually(lambda: _count_requests(transport, 1))
    return webhook, worker


async def test_stop_abandons_attempts_at_the_bound(
    store: Store, transport: FakeTransport, settings: Settings
) -> None:
    gate = Gate()  # never released
    transport.responder = gate
    webhook, worker = await _one_attempt_in_flight(store, transport, settings)

    await asyncio.wait_for(worker.stop(drain_timeout=0.2), timeout=10)

    assert gate.in_flight == 0  # the attempt was cancelled
    # Nothing was recorded: the delivery stays leased until its lease expires.
    assert await _states(store, webhook.id) == [DeliveryState.DELIVERING]


async def test_a_claim_cut_short_at_stop_writes_its_outcomes_once(
    tmp_path: Path, store: Store, transport: FakeTransport, settings: Settings
) -> None:
    """Where outcomes are written with the next claim: a claim still waiting for the
    writer when the drain ends is cut short, but its write goes on; the recorder, which
    writes the rest, must not write its outcomes a second time (one failed attempt is
    one failure for the webhook's health)."""
    answer = asyncio.Event()

    async def fail_when_told(_request: OutboundRequest) -> Any:
        await answer.wait()
        return fake_result(500)

    transport.responder = fail_when_told
    webhook, worker = await _one_attempt_in_flight(store, transport, settings)
    writer_held = threading.Event()

    async def hold_the_writer(_tx: Any) -> None:
        writer_held.set()
        time.sleep(1.0)  # a long group, a VACUUM: the claim's write waits behind it

    holding = asyncio.create_task(store._write(hold_the_writer))
    await asyncio.to_thread(writer_held.wait)
    answer.set()  # the 500's outcome goes to the claim loop, whose write now waits
    await asyncio.sleep(0.1)
    await asyncio.wait_for(worker.stop(drain_timeout=0.2), timeout=10)
    await holding

    async def nothing(_tx: Any) -> None:
        return None

    await store._write(nothing)  # queued after every write above: they are committed
    with closing(sqlite3.connect(tmp_path / "orderhooks.db")) as conn:
        (failures,) = conn.execute(
            "SELECT consecutive_failures FROM webhook_runtime WHERE webhook_id = ?",
            (webhook.id,),
        ).fetchone()
    assert failures == 1
    assert len(transport.requests) == 1


async def test_notify_and_idle_wait_pick_up_new_work(
    store: Store, transport: FakeTransport, dispatcher: Dispatcher
) -> None:
    webhook, _ = await _webhook(store, "https://receiver.example/")
    for round_number in range(3):
        await _ingest_orders(store, 1, prefix=f"round{round_number}")
        dispatcher.notify()
        await _eventually(_all_in({DeliveryState.DELIVERED}, store, webhook.id, round_number + 1))
    assert len(transport.requests) == 3
    assert dispatcher.running


@pytest.mark.postgres
async def test_on_postgresql_orders_are_delivered_in_order_with_retries(
    tmp_path: Path, pg_url: str, transport: FakeTransport
) -> None:
    settings = _settings(tmp_path, database_url=pg_url)
    store = open_store(settings)
    await store.open()
    await store.migrate()
    worker = Dispatcher(store, transport, settings)
    try:
        url = "https://pg.example/"
        webhook, secret = await _webhook(store, url)
        transport.script(url, [fake_result(503)])
        created = await store.ingest([_order("pg-1"), _status("pg-1", 20)], _now())
        event_ids = [event_id for result in created for event_id in result.event_ids]
        await worker.start()
        await _eventually(_all_in({DeliveryState.DELIVERED}, store, webhook.id, 2))
    finally:
        await worker.stop(drain_timeout=2)
        await store.close()
    requests = transport.sent_to(url)
    assert _event_ids(requests) == [event_ids[0], event_ids[0], event_ids[1]]
    assert [r.headers["orderhooks-attempt"] for r in requests] == ["1", "2", "1"]
    assert all(verify(secret, dict(r.headers), r.body) for r in requests)


@pytest.mark.parametrize("wake_up_channel", ["working", "broken"])
async def test_an_idle_worker_does_not_spin(
    store: Store,
    transport: FakeTransport,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    wake_up_channel: str,
) -> None:
    claims: list[int] = []
    real_claim = store.claim

    async def counting_claim(now: datetime, limit: int, worker_id: str, **kwargs: Any) -> Any:
        claims.append(limit)
        return await real_claim(now, limit, worker_id, **kwargs)

    async def broken_wait(timeout: float) -> None:
        raise StoreUnavailable("the notification channel is down")

    monkeypatch.setattr(store, "claim", counting_claim)
    if wake_up_channel == "broken":
        monkeypatch.setattr(store, "wait_for_work", broken_wait)
    worker = Dispatcher(store, transport, settings)
    await worker.start()
    await asyncio.sleep(1.5)
    await worker.stop(drain_timeout=1)
    # Nothing to do: one claim at start, then about one per idle second.
    assert 1 <= len(claims) <= 4
