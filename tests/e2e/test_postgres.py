"""The same delivery path on PostgreSQL: a `serve` process, a crash, a restart, and the
`api` and `worker` halves run apart on one database."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from orderhooks.domain.model import ALL_ACCOUNTS
from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.e2e.support import assert_per_order, ingest_flow
from tests.support.api import admin_api, expect, poll
from tests.support.data import new_order

pytestmark = pytest.mark.postgres

# An attempt in flight at the crash is made again at most timeoutSeconds + 30 s later.
LEASE_SECONDS = 2 + 30


@pytest.mark.slow
async def test_delivery_and_crash_on_postgres(
    pg_server: ServerProcess, account: str, rx: Receiver
) -> None:
    rx.fail_randomly(0.2, seed=3)
    async with admin_api(pg_server) as api:
        hook = await api.create_webhook(rx.url, [account], retrySchedule=[1] * 10)
        before = await ingest_flow(api, account, 3)
    pg_server.kill()
    pg_server.start()
    async with admin_api(pg_server) as api:
        after = await ingest_flow(api, account, 3)
    await rx.wait_for_delivered(set(before + after), timeout=LEASE_SECONDS + 20)
    assert_per_order(rx.requests, contiguous=True)
    rx.verify_all(hook["secret"])


async def test_api_and_worker_apart_on_postgres(
    pg_url: str, tmp_path: Path, account: str, rx: Receiver
) -> None:
    env = {"ORDERHOOKS_DATABASE_URL": pg_url}
    api_process = ServerProcess(
        tmp_path / "data", log_path=tmp_path / "api.log", env=env, command=("api",)
    )
    with api_process:
        worker = ServerProcess(
            tmp_path / "data", log_path=tmp_path / "worker.log", env=env, command=("worker",)
        )
        with worker:
            async with admin_api(api_process) as api:
                hook = await api.create_webhook(rx.url, [account])
                ids = await ingest_flow(api, account, 2)
                await rx.wait_for_delivered(set(ids))
            assert_per_order(rx.requests, contiguous=True)
            rx.verify_all(hook["secret"])
            async with worker.async_client() as worker_client:
                assert (await worker_client.get("/healthz")).status_code == 200
                assert (await worker_client.get("/v1/webhooks")).status_code == 404


async def test_an_account_too_long_to_index_cannot_stall_recording(
    pg_server: ServerProcess, account: str, rx: Receiver
) -> None:
    # Usage is keyed by account, and a PostgreSQL index entry holds at most 2,704 bytes: a
    # delivered event of an order whose account was 5,000 characters failed the outcome's
    # transaction, and with it every outcome recorded after it, again and again (other
    # webhooks' deliveries stayed `delivering`, were sent again, and were never counted).
    async with admin_api(pg_server) as api:
        hook = await api.create_webhook(rx.url, [ALL_ACCOUNTS], eventTypes=["order.new"])
        long_order = new_order(secrets.token_hex(2500))
        refused = await api.call("POST", "/v1/orders", json_body=long_order)
        await api.agree(account)
        [event_id] = (await api.post_order(account))["eventIds"]

        async def delivery() -> dict[str, Any]:
            page = expect(await api.call("GET", f"/v1/deliveries?webhookId={hook['id']}"), 200)
            return {d["eventId"]: d for d in page["data"]}.get(event_id, {})

        await poll(delivery, lambda d: d.get("state") == "delivered", 15, "the delivery")
        usage = expect(await api.call("GET", f"/v1/usage?account={account}"), 200)
        assert [(row["eventType"], row["delivered"]) for row in usage["data"]] == [("order.new", 1)]
        assert refused.status_code == 422, refused.text
        assert [d["field"] for d in refused.json()["error"]["details"]] == ["account"]
