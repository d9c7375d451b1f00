"""Issue 4, "done when": one `api` and three `worker` processes on one PostgreSQL
database deliver 2,000 events across 200 orders to three webhooks, while one worker is
killed with SIGKILL mid-run, and every guarantee of docs/guarantees.md holds cluster-wide.

Run with `pytest -s tests/cluster/test_scale_out.py` to see the figures.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderhooks.testing.server import ServerProcess
from tests.cluster.checks import (
    TimedReceiver,
    duplicates,
    out_of_order_first_arrivals,
    received_ids,
    sent_before_predecessor_answered,
)
from tests.cluster.cluster import (
    Cluster,
    attempts_timed_out,
    cluster_env,
    deliveries_leased_by_pid,
    leases_by_pid,
    run_migrate,
)
from tests.support.api import Api, admin_api, expect, poll
from tests.support.data import courier_body, iso_now, new_order, unique

pytestmark = pytest.mark.postgres

ORDERS = 200
BATCH_ITEMS = 100
WORKERS = 3
WEBHOOK_TIMEOUT_SECONDS = 1
# An attempt in flight when its worker died is made again once its lease expires.
LEASE_SECONDS = WEBHOOK_TIMEOUT_SECONDS + 30
DELIVERY_DEADLINE_SECONDS = LEASE_SECONDS + 60
PROGRESS_BEFORE_KILL = 600  # requests received in all before a worker is killed
LEASES_BEFORE_KILL = 4  # attempts the killed worker holds, at least, when it dies
FLAKY_FAILURE_RATE = 0.2
FLAKY_SEED = 20261128
METRIC_DELIVERED = re.compile(r'^orderhooks_delivery_attempts_total\{outcome="delivered"\} (\S+)$')

# The life of every order: ten events, one per round of batches.
STEPS: tuple[tuple[str, int | None], ...] = (
    ("order.new", None),
    ("order.status_update", 20),
    ("order.status_update", 40),
    ("order.status_update", 50),
    ("order.courier_update", 83),
    ("order.status_update", 60),
    ("order.status_update", 70),
    ("order.courier_update", 87),
    ("order.status_update", 80),
    ("order.status_update", 90),
)
FILTERED_STATUSES = (20, 60, 90)


@dataclass
class Hook:
    """One webhook of the run, its receiver and the events it wants."""

    name: str
    receiver: TimedReceiver
    fields: dict[str, Any]
    wants: Callable[[str, int | None], bool]
    max_concurrency: int
    webhook_id: str = ""
    secret: str = ""
    expected: set[str] = field(default_factory=set)


def make_hooks() -> list[Hook]:
    """A steady webhook limited to 4 in flight, a flaky one failing 20 % of requests, and
    one filtered to new orders and three statuses."""
    steady, flaky, filtered = TimedReceiver(), TimedReceiver(), TimedReceiver()
    steady.slow(0.02)
    flaky.slow(0.01)
    flaky.fail_randomly(FLAKY_FAILURE_RATE, seed=FLAKY_SEED)
    filtered.slow(0.02)
    return [
        Hook("steady", steady, {"maxConcurrency": 4}, lambda _t, _s: True, 4),
        Hook("flaky", flaky, {}, lambda _t, _s: True, 8),
        Hook(
            "filtered",
            filtered,
            {
                "eventTypes": ["order.new", "order.status_update"],
                "statusFilter": list(FILTERED_STATUSES),
            },
            lambda t, s: t == "order.new" or s in FILTERED_STATUSES,
            8,
        ),
    ]


@contextlib.contextmanager
def receivers_running(hooks: list[Hook]) -> Iterator[None]:
    """Every receiver listening for the duration of the block."""
    with contextlib.ExitStack() as stack:
        for hook in hooks:
            stack.enter_context(hook.receiver)
        yield


def batch_item(order_id: str, account: str, step: int) -> dict[str, Any]:
    """The batch item of one step of an order's life."""
    event_type, status = STEPS[step]
    if event_type == "order.new":
        return {"type": event_type, "data": new_order(account, order_id=order_id)}
    if event_type == "order.courier_update":
        return {"type": event_type, "orderId": order_id, "data": courier_body(status or 83)}
    return {
        "type": event_type,
        "orderId": order_id,
        "data": {"status": status, "timeStamp": iso_now()},
    }


def plan_batches(accounts: list[str]) -> list[list[tuple[str, int, dict[str, Any]]]]:
    """Round r carries step r of every order, so each order's events go in order."""
    orders = [(uuid.uuid4().hex[:24], accounts[i % len(accounts)]) for i in range(ORDERS)]
    batches = []
    for step in range(len(STEPS)):
        items = [(order_id, step, batch_item(order_id, acct, step)) for order_id, acct in orders]
        batches += [items[i : i + BATCH_ITEMS] for i in range(0, len(items), BATCH_ITEMS)]
    return batches


async def post_batch(
    api: Api, batch: list[tuple[str, int, dict[str, Any]]], hooks: list[Hook]
) -> int:
    """Post one batch and note which webhook expects which of its events."""
    response = await api.client.post("/v1/events", json=[item for _, _, item in batch])
    event_ids = expect(response, 202)["eventIds"]
    assert len(event_ids) == len(batch), "one event per item (no triggers in this run)"
    for event_id, (_order_id, step, _item) in zip(event_ids, batch, strict=True):
        for hook in hooks:
            if hook.wants(*STEPS[step]):
                hook.expected.add(event_id)
    return len(event_ids)


def total_requests(hooks: list[Hook]) -> int:
    """Requests received by every receiver so far."""
    return sum(len(hook.receiver.requests) for hook in hooks)


async def wait_all_recorded(api: Api, hook: Hook) -> dict[str, Any]:
    """Poll the webhook's stats until every expected delivery is recorded `delivered`."""

    async def fetch() -> dict[str, Any]:
        stats: dict[str, Any] = expect(
            await api.client.get(f"/v1/webhooks/{hook.webhook_id}/stats"), 200
        )
        return stats

    return await poll(
        fetch,
        lambda s: (
            s["counts"]["delivered"] == len(hook.expected)
            and sum(s["counts"].values()) == len(hook.expected)
        ),
        30.0,
        f"{hook.name}: every delivery recorded as delivered",
    )


async def busiest_worker(database_url: str, workers: list[ServerProcess]) -> ServerProcess:
    """The worker holding the most leases, once one holds at least `LEASES_BEFORE_KILL`:
    killing it strands attempts in flight, the case the lease must recover."""
    by_pid = {w.pid: w for w in workers}
    counts = await poll(
        lambda: leases_by_pid(database_url),
        lambda c: (
            max((n for pid, n in c.items() if pid in by_pid), default=0) >= LEASES_BEFORE_KILL
        ),
        30.0,
        f"a worker holding {LEASES_BEFORE_KILL} leases",
    )
    pid = max((p for p in counts if p in by_pid), key=lambda p: counts[p])
    return by_pid[pid]


def delivered_attempts(worker: ServerProcess) -> float:
    """The `delivered` attempt counter of a live worker's /metrics."""
    text = httpx.get(f"{worker.base_url}/metrics", timeout=10).text
    for line in text.splitlines():
        if match := METRIC_DELIVERED.match(line):
            return float(match.group(1))
    return 0.0


async def create_webhooks(api: Api, hooks: list[Hook], accounts: list[str]) -> None:
    """Create each webhook on its receiver; note its id and secret."""
    for hook in hooks:
        created = await api.create_webhook(
            hook.receiver.url, accounts, timeoutSeconds=WEBHOOK_TIMEOUT_SECONDS, **hook.fields
        )
        hook.webhook_id, hook.secret = created["id"], created["secret"]


async def ingest_killing_a_worker(
    api: Api,
    hooks: list[Hook],
    batches: list[list[tuple[str, int, dict[str, Any]]]],
    database_url: str,
    workers: list[ServerProcess],
) -> tuple[int, ServerProcess, int]:
    """Post half the batches, SIGKILL the busiest worker once delivery is well under way,
    post the rest; (events ingested, the killed worker, deliveries it held)."""
    ingested = 0
    for batch in batches[: len(batches) // 2]:
        ingested += await post_batch(api, batch, hooks)
    await hooks[0].receiver.wait_for(
        lambda: total_requests(hooks) >= PROGRESS_BEFORE_KILL,
        timeout=60,
        what=f"{PROGRESS_BEFORE_KILL} requests before the kill",
    )
    victim = await busiest_worker(database_url, workers)
    victim_pid = victim.pid
    assert victim_pid is not None
    victim.kill()
    stranded = await deliveries_leased_by_pid(database_url, victim_pid)
    for batch in batches[len(batches) // 2 :]:
        ingested += await post_batch(api, batch, hooks)
    return ingested, victim, stranded


@pytest.mark.slow
async def test_three_workers_one_killed_keep_every_guarantee(
    pg_url: str, cluster: Cluster, tmp_path: Path
) -> None:
    env = cluster_env(pg_url)
    migrated = run_migrate(env, tmp_path / "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "0001_initial" in migrated.stdout

    api_process = cluster.add("api", "api", env)
    workers = [cluster.add(f"worker-{n}", "worker", env) for n in range(WORKERS)]
    await cluster.start([api_process, *workers])
    hooks = make_hooks()
    accounts = [unique("acct"), unique("acct")]

    with receivers_running(hooks):
        async with admin_api(api_process) as api:
            await create_webhooks(api, hooks, accounts)
            started = time.monotonic()
            ingested, victim, stranded = await ingest_killing_a_worker(
                api, hooks, plan_batches(accounts), pg_url, workers
            )
            for hook in hooks:
                await hook.receiver.wait_for_delivered(
                    hook.expected, timeout=DELIVERY_DEADLINE_SECONDS
                )
            elapsed = time.monotonic() - started
            for hook in hooks:
                await wait_all_recorded(api, hook)
        timed_out = await attempts_timed_out(pg_url, [hook.webhook_id for hook in hooks])
        figures = check_guarantees(hooks, stranded, timed_out)

    survivors = [w for w in workers if w is not victim]
    per_worker = [delivered_attempts(w) for w in survivors]
    print(
        f"\nscale-out: {ingested} events, {len(hooks)} webhooks, {WORKERS} workers "
        f"(one SIGKILLed), elapsed {elapsed:.1f} s\n"
        f"  stranded at kill: {stranded}; attempts timed out: {timed_out}; "
        f"delivered attempts per surviving worker: {per_worker}"
    )
    for line in figures:
        print("  " + line)

    assert ingested == ORDERS * len(STEPS)
    again = run_migrate(env, tmp_path / "migrate")  # while every process runs
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == ""
    for process in [*survivors, api_process]:
        assert process.terminate() == 0, process.log_tail()


def check_guarantees(hooks: list[Hook], stranded: int, timed_out: int) -> list[str]:
    """Assert delivery, order, concurrency and duplicates per webhook; the figures."""
    figures = []
    total_duplicates = 0
    for hook in hooks:
        rx = hook.receiver
        requests = rx.requests
        assert hook.expected <= rx.delivered_ids(), f"{hook.name}: events missing"
        unexpected = received_ids(rx) - hook.expected
        assert not unexpected, f"{hook.name}: got {len(unexpected)} unwanted events"
        assert not out_of_order_first_arrivals(requests), out_of_order_first_arrivals(requests)[:5]
        early = sent_before_predecessor_answered(rx)
        assert not early, f"{hook.name}: " + "\n".join(early[:5])
        assert rx.max_in_flight <= hook.max_concurrency, (
            f"{hook.name}: {rx.max_in_flight} in flight, maxConcurrency {hook.max_concurrency}"
        )
        repeated = duplicates(requests)
        total_duplicates += repeated
        assert rx.verify_all(hook.secret) == len(requests)
        failures = sum(1 for r in requests if not r.reply.startswith("2"))
        figures.append(
            f"{hook.name}: delivered {len(hook.expected)}, requests {len(requests)}, "
            f"failure answers {failures}, duplicates {repeated}, "
            f"max concurrency seen {rx.max_in_flight}/{hook.max_concurrency}"
        )
    # Only what the killed worker held (sent, or answered but not yet recorded) may
    # arrive twice, and an attempt recorded as a timeout (the receiver's 2xx came after
    # the 1 s timeout: on a loaded machine, a live worker retries it); live workers never
    # send a delivery that another one holds. The lease snapshot is read just after the
    # kill and can race the victim's last commits (seen once on a clean-clone CI run: 11
    # duplicates for 10 leases in the snapshot), so one delivery per webhook is allowed
    # beyond it, as docs/guarantees.md allows re-sending what finished within the last
    # commit interval.
    assert total_duplicates <= stranded + timed_out + len(hooks), (
        f"{total_duplicates} duplicates, but the killed worker held only {stranded} "
        f"deliveries and {timed_out} attempts timed out"
    )
    # What the killed worker held counted against maxConcurrency like any attempt.
    assert stranded <= sum(hook.max_concurrency for hook in hooks)
    return figures
