"""PostgreSQL going away under a running cluster: every connection cut (what a restart
does to its clients), then a real outage played by a proxy. Ingest answers 503, never
500, while the database is unreachable; `/readyz` says so; delivery resumes by itself
and every acknowledged event arrives. The shared PostgreSQL server itself is never
stopped: other tests use it.

Run with `pytest -s tests/cluster/test_pg_restart.py` to see the figures.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from orderhooks.testing.server import ServerProcess
from tests.cluster.checks import (
    TimedReceiver,
    duplicates,
    out_of_order_first_arrivals,
    sent_before_predecessor_answered,
)
from tests.cluster.cluster import Cluster, cluster_env, terminate_backends, with_address
from tests.cluster.pgproxy import LOOPBACK, PgProxy
from tests.e2e.brokers import nats_stream
from tests.support.api import Api, admin_api, expect, poll
from tests.support.data import courier_body, iso_now, new_order, unique

pytestmark = pytest.mark.postgres

WEBHOOK_TIMEOUT_SECONDS = 1
LEASE_SECONDS = WEBHOOK_TIMEOUT_SECONDS + 30
DELIVERY_DEADLINE_SECONDS = LEASE_SECONDS + 30
STORE_RETRY_DEADLINE_SECONDS = 30.0
STORE_RETRY_PAUSE_SECONDS = 0.2
TERMINATE_ROUNDS = 6
TERMINATE_EVERY_SECONDS = 0.5  # six rounds over three seconds
OUTAGE_SECONDS = 3.0
READY_DEADLINE_SECONDS = 30.0
SECOND_SIGNAL_AFTER_SECONDS = 1.0
# Cut short: the claim in flight gives up within its pool's timeouts, then the process
# drops its connections instead of closing them with a server that does not answer.
FORCED_EXIT_SECONDS = 20.0
SOURCE_INGEST_STARTED_SECONDS = 2.0
# Below the 10 s a source's round is given at a graceful stop: the second signal ends it.
SOURCE_FORCED_EXIT_SECONDS = 8.0


@dataclass
class IngestLog:
    """What ingest answered while the database was disturbed."""

    unavailable: int = 0  # 503 answers, each retried with the same body


def order_steps(order_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The updates of one order after it is created: (path, body)."""
    status = f"/v1/orders/{order_id}/status"
    return [
        (status, {"status": 20, "timeStamp": iso_now()}),
        (f"/v1/orders/{order_id}/courier", courier_body(83)),
        (status, {"status": 40, "timeStamp": iso_now()}),
        (status, {"status": 90, "timeStamp": iso_now()}),
    ]


async def events_stored(client: httpx.AsyncClient, order_id: str) -> int:
    """How many events the order has, or 0 when it is unknown or cannot be read now."""
    response = await client.get(f"/v1/orders/{order_id}")
    if response.status_code != 200:
        return 0
    return len(response.json()["events"])


async def post_until_stored(
    client: httpx.AsyncClient,
    path: str,
    body: dict[str, Any],
    log: IngestLog,
    *,
    order_id: str,
    sequence: int,
) -> None:
    """POST until the event of `sequence` is stored. A 503 may come after a commit whose
    answer was lost, and a repeated courier update is a new event, so the order is read
    back before the same body is posted again. Anything but 2xx or 503 fails the test."""
    deadline = time.monotonic() + STORE_RETRY_DEADLINE_SECONDS
    while True:
        response = await client.post(path, json=body)
        if response.status_code in (200, 202):
            return
        assert response.status_code == 503, (
            f"POST {path} -> {response.status_code} while the database was disturbed, "
            f"expected 202 or 503: {response.text[:500]}"
        )
        log.unavailable += 1
        assert time.monotonic() < deadline, f"POST {path} still 503 after the disturbance"
        await asyncio.sleep(STORE_RETRY_PAUSE_SECONDS)
        if await events_stored(client, order_id) >= sequence:
            return


async def ingest_order(
    client: httpx.AsyncClient, account: str, log: IngestLog, start_after: float = 0.0
) -> str:
    """Create one order and post its updates one by one; its id."""
    await asyncio.sleep(start_after)
    order_id = uuid.uuid4().hex[:24]
    order = new_order(account, order_id=order_id)
    await post_until_stored(client, "/v1/orders", order, log, order_id=order_id, sequence=1)
    await post_updates(client, order_id, log)
    return order_id


async def post_updates(client: httpx.AsyncClient, order_id: str, log: IngestLog) -> None:
    """Post the updates of a created order, in order (events 2 to 5)."""
    for sequence, (path, body) in enumerate(order_steps(order_id), start=2):
        await asyncio.sleep(0.1)
        await post_until_stored(client, path, body, log, order_id=order_id, sequence=sequence)


async def stored_event_ids(api: Api, order_ids: list[str]) -> set[str]:
    """Every event of the orders, read back; each order has exactly its five events
    (nothing lost, nothing created twice by a retried request)."""
    ids: set[str] = set()
    for order_id in order_ids:
        order = expect(await api.client.get(f"/v1/orders/{order_id}"), 200)
        sequences = [event["sequence"] for event in order["events"]]
        assert sorted(sequences) == [1, 2, 3, 4, 5], f"order {order_id}: {sequences}"
        ids |= {event["id"] for event in order["events"]}
    return ids


def check_receiver(rx: TimedReceiver, expected: set[str], secret: str) -> None:
    """Per-order order, nothing unexpected, signatures valid."""
    requests = rx.requests
    assert {r.webhook_id for r in requests} == expected
    assert not out_of_order_first_arrivals(requests), out_of_order_first_arrivals(requests)[:5]
    early = sent_before_predecessor_answered(rx)
    assert not early, "\n".join(early[:5])
    rx.verify_all(secret)


async def wait_readiness(process: ServerProcess, status: int, what: str) -> float:
    """Poll `/readyz` until it answers `status`; the seconds it took."""
    started = time.monotonic()

    async def fetch() -> int:
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                return (await client.get(f"{process.base_url}/readyz")).status_code
        except httpx.HTTPError:
            return 0

    await poll(fetch, lambda code: code == status, READY_DEADLINE_SECONDS, what)
    return time.monotonic() - started


@pytest.mark.slow
async def test_serve_rides_out_terminated_connections(pg_url: str, cluster: Cluster) -> None:
    serve = cluster.add("serve", "serve", cluster_env(pg_url))
    await cluster.start([serve])
    account, log = unique("acct"), IngestLog()
    with TimedReceiver() as rx:
        rx.slow(0.01)
        async with admin_api(serve) as api:
            client = api.client
            hook = await api.create_webhook(
                rx.url, [account], timeoutSeconds=WEBHOOK_TIMEOUT_SECONDS
            )
            started = time.monotonic()
            orders = [
                asyncio.create_task(ingest_order(client, account, log, n * 0.1)) for n in range(30)
            ]
            cut = 0
            for _ in range(TERMINATE_ROUNDS):
                await asyncio.sleep(TERMINATE_EVERY_SECONDS)
                cut += await terminate_backends(pg_url)
            order_ids = list(await asyncio.gather(*orders))
            expected = await stored_event_ids(api, order_ids)
            await rx.wait_for_delivered(expected, timeout=DELIVERY_DEADLINE_SECONDS)
            elapsed = time.monotonic() - started
            assert (await client.get("/readyz")).status_code == 200
        check_receiver(rx, expected, hook["secret"])
        print(
            f"\nterminated connections: {cut} over {TERMINATE_ROUNDS} rounds; "
            f"{len(expected)} events delivered in {elapsed:.1f} s; ingest 503 answers "
            f"(retried): {log.unavailable}; duplicates {duplicates(rx.requests)}"
        )
    # Each round cut at least the pool's connection and the LISTEN connection.
    assert cut >= TERMINATE_ROUNDS
    assert serve.terminate() == 0, serve.log_tail()


@pytest.mark.slow
async def test_outage_answers_503_and_delivery_resumes(pg_url: str, cluster: Cluster) -> None:
    target = urlsplit(pg_url)
    with PgProxy(target.hostname or LOOPBACK, target.port or 5432) as proxy:
        env = cluster_env(with_address(pg_url, LOOPBACK, proxy.port))
        api_process = cluster.add("api", "api", env)
        worker = cluster.add("worker", "worker", env)
        await cluster.start([api_process, worker])
        account, log = unique("acct"), IngestLog()
        with TimedReceiver() as rx:
            async with admin_api(api_process) as api:
                client = api.client
                hook = await api.create_webhook(
                    rx.url, [account], timeoutSeconds=WEBHOOK_TIMEOUT_SECONDS
                )
                before = [await ingest_order(client, account, log) for _ in range(3)]
                held = new_order(account, order_id=uuid.uuid4().hex[:24])

                proxy.cut()
                cut_at = time.monotonic()
                await wait_readiness(api_process, 503, "api /readyz 503 during the outage")
                await wait_readiness(worker, 503, "worker /readyz 503 during the outage")
                refused = await client.post("/v1/orders", json=held)
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"]["code"] == "unavailable"
                update = await client.post(
                    f"/v1/orders/{before[0]}/status", json={"status": 50, "timeStamp": iso_now()}
                )
                assert update.status_code == 503, update.text
                await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - cut_at)))

                proxy.restore()
                restored_at = time.monotonic()
                api_ready = await wait_readiness(api_process, 200, "api ready again")
                worker_ready = await wait_readiness(worker, 200, "worker ready again")
                # Refused during the outage, so nothing of it was stored: now it is new.
                accepted = expect(await client.post("/v1/orders", json=held), 202)
                assert len(accepted["eventIds"]) == 1
                await post_updates(client, held["_id"], log)
                after = [await ingest_order(client, account, log) for _ in range(3)]

                expected = await stored_event_ids(api, [*before, held["_id"], *after])
                await rx.wait_for_delivered(expected, timeout=DELIVERY_DEADLINE_SECONDS)
                resumed = time.monotonic() - restored_at
            check_receiver(rx, expected, hook["secret"])
        print(
            f"\noutage of {OUTAGE_SECONDS:.0f} s: api ready {api_ready:.1f} s and worker ready "
            f"{worker_ready:.1f} s after the database came back; all {len(expected)} events "
            f"delivered {resumed:.1f} s after it; proxy connections {proxy.connections}"
        )
        for process in (worker, api_process):
            assert process.terminate() == 0, process.log_tail()


async def test_a_second_sigterm_does_not_wait_on_a_frozen_database(
    pg_url: str, cluster: Cluster
) -> None:
    # A database host that stops answering (no reset, no refusal): closing the pool
    # gracefully would wait up to the query timeout. The second signal stops at once.
    target = urlsplit(pg_url)
    with PgProxy(target.hostname or LOOPBACK, target.port or 5432) as proxy:
        worker = cluster.add(
            "worker", "worker", cluster_env(with_address(pg_url, LOOPBACK, proxy.port))
        )
        await cluster.start([worker])
        proxy.freeze()
        await wait_readiness(worker, 503, "worker /readyz 503 once the database is frozen")
        assert worker.pid is not None and worker.process is not None
        os.kill(worker.pid, signal.SIGTERM)

        async def log() -> str:
            return worker.run_log_text()

        # Taken before the second is sent: a signal still pending when the same one comes
        # again merges with it (signals do not queue), and one SIGTERM is a graceful stop.
        await poll(log, lambda text: "shutting down" in text, READY_DEADLINE_SECONDS, "the stop")
        await asyncio.sleep(SECOND_SIGNAL_AFTER_SECONDS)  # well into the waits it must cut
        signalled = time.monotonic()
        os.kill(worker.pid, signal.SIGTERM)
        try:
            code = await asyncio.to_thread(worker.process.wait, FORCED_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {FORCED_EXIT_SECONDS} s after the second SIGTERM")
        print(f"\nexited {time.monotonic() - signalled:.1f} s after the second SIGTERM")
        assert code == 0, worker.log_tail()


async def test_a_second_sigterm_does_not_wait_on_a_source_ingest_to_a_frozen_database(
    pg_url: str, cluster: Cluster
) -> None:
    # A broker source's round is stored while the database host stops answering: its
    # ingest waits on the frozen connection. The first SIGTERM gives the round its bounded
    # wait, then cancels it, and a cancelled query on a frozen host waits for good; the
    # second signal must cut that wait short too, as it does the delivery workers'.
    target = urlsplit(pg_url)
    with PgProxy(target.hostname or LOOPBACK, target.port or 5432) as proxy:
        async with nats_stream() as stream:
            env = cluster_env(
                with_address(pg_url, LOOPBACK, proxy.port),
                ORDERHOOKS_SOURCES=stream.source_url(),
            )
            worker = cluster.add("worker", "worker", env)
            await cluster.start([worker])
            await wait_source_connected(worker)
            proxy.freeze()
            await stream.publish({"type": "order.new", "data": new_order(unique("acct"))})

            async def log() -> str:
                return worker.run_log_text()

            await asyncio.sleep(SOURCE_INGEST_STARTED_SECONDS)  # the round's ingest waits
            assert worker.pid is not None and worker.process is not None
            os.kill(worker.pid, signal.SIGTERM)
            await poll(log, lambda text: "shutting down" in text, READY_DEADLINE_SECONDS, "stop")
            await asyncio.sleep(SECOND_SIGNAL_AFTER_SECONDS)
            signalled = time.monotonic()
            os.kill(worker.pid, signal.SIGTERM)
            try:
                code = await asyncio.to_thread(worker.process.wait, SOURCE_FORCED_EXIT_SECONDS)
            except subprocess.TimeoutExpired:
                bound = SOURCE_FORCED_EXIT_SECONDS
                pytest.fail(f"still running {bound} s after the second SIGTERM")
            print(f"\nexited {time.monotonic() - signalled:.1f} s after the second SIGTERM")
            assert code == 0, worker.log_tail()


async def wait_source_connected(process: ServerProcess) -> None:
    """Wait until the log of `process` says its source connected (a worker has no
    `GET /v1/sources`)."""

    async def log() -> str:
        return process.run_log_text()

    await poll(log, lambda text: "source connected" in text, READY_DEADLINE_SECONDS, "source")
