"""Agreements gate delivery; usage counts delivered units and prices them (docs/guarantees.md,
agreements and usage)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.e2e.support import units
from tests.support.api import Api, admin_api, expect, poll
from tests.support.data import new_order

SERVER_ENV = {"ORDERHOOKS_REQUIRE_AGREEMENT": "true"}
QUIET_SECONDS = 1.5


def agreement(per_thousand: dict[str, int]) -> dict[str, Any]:
    """An agreement body with the given prices."""
    return {
        "signedBy": "Ana Silva",
        "signedAt": "2026-01-05T10:00:00.000000Z",
        "pricing": {"currency": "EUR", "perThousand": per_thousand},
    }


PRICES = {"order.new": 700, "order.status_update": 900, "order.courier_update": 100}


async def test_webhook_waits_for_the_agreement(api: Api, account: str, rx: Receiver) -> None:
    hook = await api.create_webhook(rx.url, [account])
    assert hook["state"] == "awaiting_agreement"
    before = new_order(account)
    await api.new_order(before)
    await api.status(before["_id"], 20)
    await asyncio.sleep(QUIET_SECONDS)
    assert rx.requests == [], "nothing is sent before the agreement"
    assert await api.deliveries(hook["id"]) == []

    path = f"/v1/accounts/{account}/agreement"
    expect(await api.client.put(path, json=agreement(PRICES)), 200)
    await api.wait_webhook(hook["id"], lambda w: w["state"] == "active", what="active")
    after = new_order(account)
    ids = await api.new_order(after)
    ids += await api.status(before["_id"], 40)
    await rx.wait_for_delivered(set(ids))
    await asyncio.sleep(QUIET_SECONDS)
    assert sorted(r.webhook_id or "" for r in rx.requests) == sorted(ids), (
        "only events created after the agreement are sent"
    )
    assert [e["sequence"] for e in rx.events() if e["orderId"] == before["_id"]] == [3]
    rx.verify_all(hook["secret"])


async def test_an_account_with_a_slash_can_agree(api: Api, account: str, rx: Receiver) -> None:
    """An account is any string an order names (docs/events.md), so its agreement can be
    recorded and read with the account percent-encoded in the path, `/` included."""
    named = f"{account}/eu"
    hook = await api.create_webhook(rx.url, [named])
    assert hook["state"] == "awaiting_agreement"
    path = f"/v1/accounts/{quote(named, safe='')}/agreement"
    recorded = expect(await api.client.put(path, json=agreement(PRICES)), 200)
    assert recorded["account"] == named
    assert expect(await api.client.get(path), 200) == recorded
    await api.wait_webhook(hook["id"], lambda w: w["state"] == "active", what="active")
    ids = await api.new_order(new_order(named))
    await rx.wait_for_delivered(set(ids))
    partner = await api.make_key("partner", [named])
    assert expect(await api.call("GET", path, partner), 200) == recorded
    # Any text: a line break too (the fuzzer found that a `path` parameter stops at one).
    broken = f"{account}\nline"
    path = f"/v1/accounts/{quote(broken, safe='')}/agreement"
    assert expect(await api.client.put(path, json=agreement(PRICES)), 200)["account"] == broken
    assert expect(await api.client.get(path), 200)["account"] == broken


@pytest.mark.slow
async def test_usage_counts_units_once_and_prices_them(api: Api, account: str) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    expect(await api.client.put(f"/v1/accounts/{account}/agreement", json=agreement(PRICES)), 200)
    async with Receiver() as flaky, Receiver() as steady:
        flaky.fail_first(2, per_delivery=True)
        flaky_hook = await api.create_webhook(flaky.url, [account])
        steady_hook = await api.create_webhook(
            steady.url, [account], eventTypes=["order.new", "order.status_update"]
        )
        ids: list[str] = []
        for _ in range(3):
            order = new_order(account)
            ids += await api.new_order(order)
        ids += await api.status(order["_id"], 20)
        ids += await api.status(order["_id"], 40)
        await flaky.wait_for_delivered(set(ids), timeout=30)
        await steady.wait_for_delivered(set(ids))

        # 2 webhooks x (3 order.new, 2 status updates), however many attempts it took.
        rows = await api.wait_usage(
            account,
            lambda r: units(r, "order.new") == 6 and units(r, "order.status_update") == 4,
        )
        charges = {row["eventType"]: (row["charge"], row["currency"]) for row in rows}
        assert charges["order.new"] == (4, "EUR")  # 6 x 700 / 1000 = 4.2
        assert charges["order.status_update"] == (4, "EUR")  # 4 x 900 / 1000 = 3.6
        assert units(rows, "order.new", "replayed") == 0

        flaky.healthy()
        test = await api.client.post(
            f"/v1/webhooks/{flaky_hook['id']}/test", json={"type": "order.new"}
        )
        test_id = expect(test, 202)["deliveryId"]
        await flaky.wait_for(
            lambda: any(r.delivery_id == test_id and r.accepted for r in flaky.requests),
            timeout=20,
            what="the test delivery",
        )
        replay = await api.client.post(
            f"/v1/webhooks/{flaky_hook['id']}/replay", json={"since": since}
        )
        assert expect(replay, 200)["queued"] == 5
        rows = await api.wait_usage(
            account,
            lambda r: (
                units(r, "order.new", "replayed") == 3
                and units(r, "order.status_update", "replayed") == 2
            ),
            timeout=30,
        )
        # The test delivery's outcome (recorded a moment after the receiver answered) is
        # in the usage it could wrongly count in once the delivery reads `delivered`.
        await poll(
            lambda: api.delivery(test_id),
            lambda delivery: delivery["state"] == "delivered",
            15.0,
            "the test delivery recorded",
        )
        rows = await api.usage(account)
        assert units(rows, "order.new") == 6, "test events and replays are not delivered units"
        assert units(rows, "order.status_update") == 4
        assert units(rows, "order.new", "replayed") == 3
        flaky.verify_all(flaky_hook["secret"])
        steady.verify_all(steady_hook["secret"])


async def test_the_agreement_requirement_applies_to_existing_webhooks_at_start(
    tmp_path: Path, account: str, rx: Receiver
) -> None:
    # Webhooks made while agreements were required kept `awaiting_agreement` after a
    # restart with ORDERHOOKS_REQUIRE_AGREEMENT=false, and got nothing; ones made without
    # the requirement stayed `active` without an agreement once it was turned on.
    data = tmp_path / "data"

    def server(required: str) -> ServerProcess:
        env = {"ORDERHOOKS_REQUIRE_AGREEMENT": required}
        return ServerProcess(data, log_path=tmp_path / f"serve-{required}.log", env=env)

    with server("true") as first:
        async with admin_api(first) as api:
            hook = await api.create_webhook(rx.url, [account])
    assert hook["state"] == "awaiting_agreement"
    with server("false") as second:
        async with admin_api(second) as api:
            assert (await api.webhook(hook["id"]))["state"] == "active"
            ids = await api.new_order(new_order(account))
            await rx.wait_for_delivered(set(ids))
    with server("true") as third:
        async with admin_api(third) as api:
            assert (await api.webhook(hook["id"]))["state"] == "awaiting_agreement"
            assert await api.new_order(new_order(account))
            await asyncio.sleep(QUIET_SECONDS)
            assert len(rx.requests) == 1, "nothing is sent without the agreement"
