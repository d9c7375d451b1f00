"""Batched delivery through a real server and a real receiver: on SQLite (`serve`), and on
PostgreSQL with the API and two worker processes claiming from one database.

What a receiver of batches relies on (docs/events.md, docs/guarantees.md): every event
arrives; no event is in two different batches answered 2xx; a batch id always names the
same events; within a batch and across batches, one order's events come in sequence
order; the signature covers the whole body; usage counts each event once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from orderhooks.testing import ReceivedRequest, Receiver
from orderhooks.testing.server import ServerProcess
from tests.e2e.shaping_support import dashboard_payload
from tests.e2e.support import ingest_flow, units
from tests.support.api import Api, admin_api
from tests.support.data import new_order

BATCH = {"maxEvents": 4, "maxWaitMs": 200}


def body_of(request: ReceivedRequest) -> dict[str, Any]:
    """The parsed batch body, checked against its headers."""
    body: dict[str, Any] = orjson.loads(request.body)
    assert body["type"] == "batch" and body["id"] == request.webhook_id
    assert body["id"].startswith("bat_")
    events = body["events"]
    assert request.headers["orderhooks-batch-size"] == str(len(events))
    assert len(request.headers["orderhooks-delivery-id"].split(",")) == len(events)
    assert request.headers["orderhooks-event-type"] == "batch"
    return body


def delivered_event_ids(rx: Receiver) -> set[str]:
    """The ids of the events in batches answered 2xx."""
    return {event["id"] for request in rx.accepted() for event in body_of(request)["events"]}


def check_batches(rx: Receiver, event_ids: list[str]) -> None:
    """Every event delivered, in one batch id only; a batch id always the same events;
    per-order order within and across batches."""
    requests = rx.requests
    events_of_batch: dict[str, list[str]] = {}
    for request in requests:
        body = body_of(request)
        ids = [event["id"] for event in body["events"]]
        # Stable identity: every attempt of a batch carries the same events.
        assert events_of_batch.setdefault(body["id"], ids) == ids, body["id"]
    batches_of_event: dict[str, set[str]] = defaultdict(set)
    accepted = rx.accepted()
    for request in accepted:
        for event in body_of(request)["events"]:
            batches_of_event[event["id"]].add(request.webhook_id or "")
    assert set(batches_of_event) == set(event_ids)
    twice = {event: ids for event, ids in batches_of_event.items() if len(ids) > 1}
    assert not twice, f"events in two successful batches: {twice}"
    check_order(requests)


def check_order(requests: list[ReceivedRequest]) -> None:
    """One order's events arrive in sequence order, 1..n, and an event is never sent
    before the batch with the previous event of its order was answered 2xx."""
    accepted_at: dict[tuple[str, int], float] = {}
    sequences: dict[str, list[int]] = defaultdict(list)
    seen_batches: set[str | None] = set()
    for request in requests:
        if request.accepted and request.webhook_id not in seen_batches:
            seen_batches.add(request.webhook_id)
            for event in body_of(request)["events"]:
                sequences[event["orderId"]].append(event["sequence"])
                accepted_at[(event["orderId"], event["sequence"])] = request.arrived_monotonic
    for order_id, seen in sequences.items():
        assert seen == list(range(1, len(seen) + 1)), f"order {order_id} arrived as {seen}"
    for request in requests:
        for event in body_of(request)["events"]:
            previous = accepted_at.get((event["orderId"], event["sequence"] - 1))
            if previous is not None:
                assert previous <= request.arrived_monotonic, (
                    f"order {event['orderId']}: sequence {event['sequence']} was sent before "
                    "the previous one was delivered"
                )


async def run_flow(api: Api, rx: Receiver, account: str, orders: int) -> None:
    """A batching webhook, a flaky receiver, a flow of orders: all checks."""
    rx.fail_randomly(0.25, seed=7)
    hook = await api.create_webhook(rx.url, [account], retrySchedule=[1] * 10, batch=BATCH)
    assert hook["batch"] == BATCH
    ids = await ingest_flow(api, account, orders)
    await rx.wait_for(lambda: set(ids) <= delivered_event_ids(rx), 60, "every event delivered")
    check_batches(rx, ids)
    assert any(len(body_of(r)["events"]) > 1 for r in rx.requests)
    assert any(not r.accepted for r in rx.requests)  # some batches were retried
    rx.verify_all(hook["secret"])  # with the standardwebhooks package, over the whole body
    usage = await api.wait_usage(
        account, lambda rows: units(rows, "order.status_update") == 2 * orders
    )
    assert units(usage, "order.new") == orders
    assert units(usage, "order.courier_update") == orders


async def test_batches_on_sqlite(api: Api, rx: Receiver, account: str) -> None:
    await run_flow(api, rx, account, orders=6)


@pytest.fixture()
def pg_cluster(pg_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """`orderhooks api` and two `orderhooks worker` processes on one PostgreSQL database."""
    env = {"ORDERHOOKS_DATABASE_URL": pg_url}
    api_process = ServerProcess(
        tmp_path / "data", log_path=tmp_path / "api.log", env=env, command=("api",)
    )
    with api_process:
        workers = [
            ServerProcess(
                tmp_path / "data",
                log_path=tmp_path / f"worker{n}.log",
                env=env,
                command=("worker",),
            )
            for n in (1, 2)
        ]
        with workers[0], workers[1]:
            yield api_process


@pytest.mark.postgres
async def test_batches_on_postgres_with_two_workers(
    pg_cluster: ServerProcess, rx: Receiver, account: str
) -> None:
    async with admin_api(pg_cluster) as api:
        await run_flow(api, rx, account, orders=8)


async def test_the_dashboard_shows_the_batch_body_that_was_sent(
    server: ServerProcess, api: Api, rx: Receiver, account: str
) -> None:
    """The delivery page shows the bytes sent (docs/dashboard.md): for an event sent in a
    batch, the batch body, shaped, whose signatures the receiver checked."""
    hook = await api.create_webhook(
        rx.url, [account], batch={"maxEvents": 2, "maxWaitMs": 60_000}, fields=["items[].plu"]
    )
    ids = [event_id for _ in range(2) for event_id in await api.new_order(new_order(account))]
    await rx.wait_for(lambda: set(ids) <= delivered_event_ids(rx), 30, "the batch delivered")
    [sent] = rx.accepted()
    delivery_ids = sent.headers["orderhooks-delivery-id"].split(",")
    assert len(delivery_ids) == 2
    rx.verify_all(hook["secret"])
    for delivery_id in delivery_ids:
        shown = await dashboard_payload(server.base_url, server.admin_key, delivery_id)
        assert shown.encode() == sent.body
