"""Flooding limits on a real server (issue 5, item 3): the per-key rate limit, the cap of
webhooks per account and the batch limit.

The server runs with `ORDERHOOKS_RATE_LIMIT_PER_KEY=5` (a bucket of 5 requests, refilled at
5 per second) and `ORDERHOOKS_MAX_WEBHOOKS_PER_ACCOUNT=3`. Set-up calls wait out their own
429s; only the burst itself is meant to hit the limit.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from orderhooks.testing.server import ServerProcess
from tests.security.support import assert_error
from tests.support.data import ALL_TYPES, new_order, unique

RATE_PER_SECOND = 5
WEBHOOK_CAP = 3
BURST_REQUESTS = 30
MAX_BATCH_ITEMS = 1000
SETUP_ATTEMPTS = 30
LIST_LIMIT = 500


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real server with the limits above; killed by pid at the end."""
    base = tmp_path_factory.mktemp("rate-limit")
    env = {
        "ORDERHOOKS_RATE_LIMIT_PER_KEY": str(RATE_PER_SECOND),
        "ORDERHOOKS_MAX_WEBHOOKS_PER_ACCOUNT": str(WEBHOOK_CAP),
    }
    with ServerProcess(base / "data", log_path=base / "server.log", env=env) as process:
        yield process


def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A set-up call that waits out the rate limit (as a well-behaved client does)."""
    for _ in range(SETUP_ATTEMPTS):
        response = client.request(method, path, **kwargs)
        if response.status_code != 429:
            return response
        time.sleep(int(response.headers["Retry-After"]))
    raise AssertionError(f"{method} {path} was rate limited {SETUP_ATTEMPTS} times in a row")


def create_key(server: ServerProcess, role: str, accounts: list[str] | None = None) -> str:
    """A new API key's plaintext."""
    body: dict[str, Any] = {"role": role, "name": unique(role)}
    if accounts:
        body["accounts"] = accounts
    with server.client() as admin:
        response = call(admin, "POST", "/v1/keys", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def assert_retry_after(response: httpx.Response) -> int:
    """A 429 in the error shape with an integer `Retry-After` of seconds; its value."""
    assert_error(response, 429)
    value = response.headers.get("Retry-After", "")
    assert re.fullmatch(r"[0-9]+", value), f"Retry-After must be whole seconds, got {value!r}"
    seconds = int(value)
    assert 1 <= seconds <= 60, seconds
    return seconds


async def test_burst_from_one_key_gets_429_and_other_keys_are_unaffected(
    server: ServerProcess,
) -> None:
    """A burst over the per-key rate gets 429 with Retry-After; another key is served."""
    account = unique("acct")
    flooding = create_key(server, "partner", [account])
    bystander = create_key(server, "partner", [account])
    limits = httpx.Limits(max_connections=BURST_REQUESTS)
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=server.headers(flooding), limits=limits, timeout=30
    ) as client:
        started = time.monotonic()
        burst = await asyncio.gather(*(client.get("/v1/webhooks") for _ in range(BURST_REQUESTS)))
        elapsed = time.monotonic() - started
        statuses = [r.status_code for r in burst]
        assert set(statuses) <= {200, 429}, statuses
        limited = [r for r in burst if r.status_code == 429]
        assert limited, f"no 429 among {BURST_REQUESTS} requests in {elapsed:.2f} s"
        # A bucket of RATE tokens refilled at RATE per second admits no more than this.
        admitted = statuses.count(200)
        assert admitted <= RATE_PER_SECOND * (1 + elapsed) + 1, (admitted, elapsed)
        waits = [assert_retry_after(r) for r in limited]

        async with httpx.AsyncClient(
            base_url=server.base_url, headers=server.headers(bystander), timeout=30
        ) as other:
            assert (await other.get("/v1/webhooks")).status_code == 200

        await asyncio.sleep(max(waits))
        after_wait = await client.get("/v1/webhooks")
        assert after_wait.status_code == 200, "Retry-After was not long enough"


def test_fourth_webhook_of_an_account_is_refused(server: ServerProcess) -> None:
    """With a cap of 3 webhooks per account, the 4th is refused (4xx) and not created."""
    account, other_account = unique("acct"), unique("acct")
    hook = {"url": "http://127.0.0.1:9/hook", "eventTypes": ALL_TYPES}
    with server.client() as admin:
        created = []
        for _ in range(WEBHOOK_CAP):
            response = call(admin, "POST", "/v1/webhooks", json={**hook, "accounts": [account]})
            assert response.status_code == 201, response.text
            created.append(response.json()["id"])
        refused = call(admin, "POST", "/v1/webhooks", json={**hook, "accounts": [account]})
        error = assert_error(refused, 409, 422)
        assert "secret" not in refused.json(), "a refused webhook must not get a secret"
        assert error["code"], error
        both = {**hook, "accounts": [other_account, account]}
        assert_error(call(admin, "POST", "/v1/webhooks", json=both), 409, 422)
        listed = call(admin, "GET", "/v1/webhooks", params={"account": account})
        assert sorted(w["id"] for w in listed.json()["data"]) == sorted(created)
        elsewhere = call(admin, "POST", "/v1/webhooks", json={**hook, "accounts": [other_account]})
        assert elsewhere.status_code == 201, "the cap of one account limits no other"
        deleted = call(admin, "DELETE", f"/v1/webhooks/{created[0]}")
        assert deleted.status_code == 204
        again = call(admin, "POST", "/v1/webhooks", json={**hook, "accounts": [account]})
        assert again.status_code == 201, "a deleted webhook frees its place under the cap"


def _events_of(admin: httpx.Client, account: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"account": account, "limit": LIST_LIMIT}
    while True:
        page = call(admin, "GET", "/v1/events", params=params).json()
        events.extend(page["data"])
        if not page["nextCursor"]:
            return events
        params["cursor"] = page["nextCursor"]


def test_batch_over_1000_items_is_refused_and_1000_accepted(server: ServerProcess) -> None:
    """A batch of 1,001 items is refused whole (422, nothing stored); 1,000 is accepted."""
    account = unique("acct")
    ingest_key = create_key(server, "ingest")
    items = [
        {"type": "order.new", "data": new_order(account, order_id=f"batch-{n}")}
        for n in range(MAX_BATCH_ITEMS + 1)
    ]
    with server.client(ingest_key) as ingest, server.client() as admin:
        refused = call(ingest, "POST", "/v1/events", json=items)
        error = assert_error(refused, 422)
        assert "body" in [d.get("field") for d in error["details"]], error
        assert _events_of(admin, account) == []
        accepted = call(ingest, "POST", "/v1/events", json=items[:MAX_BATCH_ITEMS])
        assert accepted.status_code == 202, accepted.text[:1000]
        assert len(accepted.json()["eventIds"]) == MAX_BATCH_ITEMS
        assert len(_events_of(admin, account)) == MAX_BATCH_ITEMS
