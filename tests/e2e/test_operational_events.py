"""Operational events through the real server and real receivers, on SQLite and
PostgreSQL (docs/events.md): a failing receiver W, an operations receiver S that lists
the four types; S hears W start failing, a delivery of W fail for good, W recover and
W disabled by hand, every request signed; W never hears about itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.e2e.support import states
from tests.support.api import admin_api, expect
from tests.support.data import new_order, unique

OPS = ["webhook.failing", "webhook.recovered", "webhook.disabled", "delivery.failed"]
ORDER_TYPES = ["order.new", "order.status_update", "order.courier_update"]
# Three attempts per delivery, a second apart: a delivery fails for good within seconds.
SERVER_ENV = {"ORDERHOOKS_RETRY_SCHEDULE": "1,1", "ORDERHOOKS_RETRY_JITTER": "0"}
WAIT_SECONDS = 30.0


@pytest.fixture()
def ops_server(tmp_path: Path, database_env: dict[str, str]) -> Iterator[ServerProcess]:
    """`orderhooks serve` with the short retry schedule, on the engine under test."""
    env = {**SERVER_ENV, **database_env}
    with ServerProcess(tmp_path / "data", log_path=tmp_path / "serve.log", env=env) as server:
        yield server


def of_type(rx: Receiver, event_type: str) -> list[dict[str, Any]]:
    """The distinct events of `event_type` the receiver got (retries counted once)."""
    seen: dict[str, dict[str, Any]] = {}
    for body in rx.events():
        if isinstance(body, dict) and body.get("type") == event_type:
            seen.setdefault(body["id"], body)
    return list(seen.values())


async def test_an_operations_webhook_hears_what_happens_to_another(
    ops_server: ServerProcess, rx: Receiver
) -> None:
    account = unique("acct")
    async with admin_api(ops_server) as api, Receiver() as ops:
        rx.answer(500)
        w = await api.create_webhook(rx.url, [account], eventTypes=ORDER_TYPES + OPS)
        s = await api.create_webhook(ops.url, [account], eventTypes=OPS)
        orders = [new_order(account) for _ in range(3)]
        for order in orders:
            await api.new_order(order)

        # Three failed attempts: W is probed, S is told once.
        await ops.wait_for(lambda: of_type(ops, "webhook.failing"), WAIT_SECONDS, "failing")
        [failing] = of_type(ops, "webhook.failing")
        assert failing["data"]["webhookId"] == w["id"]
        assert failing["data"]["url"] == rx.url
        assert failing["data"]["accounts"] == [account]
        assert failing["data"]["consecutiveFailures"] == 3
        assert failing["data"]["lastStatusCode"] == 500
        assert failing["data"]["lastError"] == "http_status"

        # A delivery of W that used its three attempts: `delivery.failed`, with its order.
        await ops.wait_for(lambda: of_type(ops, "delivery.failed"), WAIT_SECONDS, "failed")
        first_failed = of_type(ops, "delivery.failed")[0]
        assert first_failed["orderId"] in {o["_id"] for o in orders}
        assert first_failed["data"]["orderId"] == first_failed["orderId"]
        assert first_failed["data"]["attempts"] == 3
        assert first_failed["data"]["webhookId"] == w["id"]

        # W answers again: the next probe succeeds and S hears that W recovered. (Its
        # first three deliveries may all have failed by now: a new order is the probe.)
        rx.healthy()
        await api.new_order(new_order(account))
        await ops.wait_for(lambda: of_type(ops, "webhook.recovered"), WAIT_SECONDS, "recovered")
        [recovered] = of_type(ops, "webhook.recovered")
        assert recovered["data"]["webhookId"] == w["id"]
        assert recovered["data"]["failingSince"] == failing["data"]["since"]
        assert recovered["data"]["failedAttempts"] >= 3
        settled = await api.wait_deliveries(
            w["id"],
            lambda ds: "pending" not in states(ds) and "delivering" not in states(ds),
            WAIT_SECONDS,
            "W's deliveries settled",
        )

        # Disabled by hand through the API: `webhook.disabled`, reason manual.
        expect(await api.call("POST", f"/v1/webhooks/{w['id']}/disable"), 200)
        await ops.wait_for(lambda: of_type(ops, "webhook.disabled"), WAIT_SECONDS, "disabled")
        [disabled] = of_type(ops, "webhook.disabled")
        assert disabled["data"] == {
            "webhookId": w["id"],
            "url": rx.url,
            "accounts": [account],
            "reason": "manual",
        }

        # Exactly one event per transition, one `delivery.failed` per failed delivery.
        # Operational events have no order, so `webhook.disabled` may reach S before an
        # earlier `delivery.failed`; and S's answer comes before its outcome is recorded.
        # So wait until the store has recorded every event for S as delivered (each was
        # answered by then): at least one per failed delivery of W, and the three
        # transitions.
        failed_ids = {d["id"] for d in settled if d["state"] == "failed"}
        to_s = await api.wait_deliveries(
            s["id"],
            lambda ds: len(ds) >= len(failed_ids) + 3 and states(ds) == {"delivered": len(ds)},
            WAIT_SECONDS,
            "every delivery to S recorded as delivered",
        )
        await ops.wait_for(
            lambda: all(r.accepted for r in ops.requests), WAIT_SECONDS, "all accepted"
        )
        reported = of_type(ops, "delivery.failed")
        assert {e["data"]["deliveryId"] for e in reported} == failed_ids
        assert len(reported) == len(failed_ids)
        assert len(of_type(ops, "webhook.failing")) == 1
        assert len(of_type(ops, "webhook.recovered")) == 1
        bodies = [b for b in ops.events() if isinstance(b, dict)]
        assert {b["type"] for b in bodies} <= set(OPS)
        for body in bodies:
            assert body["account"] == account
            assert body["location"] is None and body["sequence"] is None
            assert body["test"] is False
            if body["type"] != "delivery.failed":
                assert body["orderId"] is None
        assert all(r.webhook_id == r.json["id"] for r in ops.requests)
        # Each body validates against the event catalog's schema of its type.
        catalog = expect(await api.call("GET", "/v1/event-types"), 200)["data"]
        schemas = {entry["type"]: entry["schema"] for entry in catalog}
        for body in bodies:
            validator = jsonschema.Draft202012Validator(schemas[body["type"]])
            assert [e.message for e in validator.iter_errors(body)] == [], body
        assert ops.verify_all(s["secret"]) == len(ops.requests)

        # W never heard about itself.
        assert {b["type"] for b in rx.events() if isinstance(b, dict)} <= set(ORDER_TYPES)
        rx.verify_all(w["secret"])

        # The stored events are listed by type; the deliveries to S are never billed.
        listed = await api.list_all("/v1/events", type="webhook.disabled", account=account)
        assert [e["id"] for e in listed] == [disabled["id"]]
        assert states(to_s) == {"delivered": len(to_s)}
        assert {d["orderId"] for d in to_s if d["eventType"] != "delivery.failed"} == {None}
        rows = await api.usage(account)
        assert {r["eventType"] for r in rows} <= set(ORDER_TYPES)


async def test_a_failing_webhook_disabled_and_enabled_again_is_told_recovered(
    ops_server: ServerProcess, rx: Receiver
) -> None:
    """`webhook.recovered` is the first success after `webhook.failing`, also when the
    webhook was disabled and enabled in between (enable starts its failure count afresh,
    but the failing it was announced as is still open until a success closes it)."""
    account = unique("acct")
    async with admin_api(ops_server) as api, Receiver() as ops:
        rx.answer(500)
        w = await api.create_webhook(rx.url, [account], eventTypes=ORDER_TYPES)
        await api.create_webhook(ops.url, [account], eventTypes=OPS)
        await api.new_order(new_order(account))
        await ops.wait_for(lambda: of_type(ops, "webhook.failing"), WAIT_SECONDS, "failing")
        [failing] = of_type(ops, "webhook.failing")

        # The partner disables W, fixes its receiver and enables it again.
        expect(await api.call("POST", f"/v1/webhooks/{w['id']}/disable"), 200)
        await ops.wait_for(lambda: of_type(ops, "webhook.disabled"), WAIT_SECONDS, "disabled")
        rx.healthy()
        expect(await api.call("POST", f"/v1/webhooks/{w['id']}/enable"), 200)
        [order_id] = [(await api.post_order(account))["orderId"]]
        await rx.wait_for(
            lambda: any(r.accepted and r.json["orderId"] == order_id for r in rx.requests),
            WAIT_SECONDS,
            "the new order delivered to W",
        )

        await ops.wait_for(lambda: of_type(ops, "webhook.recovered"), WAIT_SECONDS, "recovered")
        [recovered] = of_type(ops, "webhook.recovered")
        assert recovered["data"]["webhookId"] == w["id"]
        assert recovered["data"]["failingSince"] == failing["data"]["since"]
        assert recovered["data"]["failedAttempts"] == 0
        assert len(of_type(ops, "webhook.failing")) == 1


async def test_delivery_failed_events_are_listed_by_their_order(
    ops_server: ServerProcess, rx: Receiver
) -> None:
    """`GET /v1/events?type=delivery.failed&orderId=…` finds the `delivery.failed` events
    whose envelope carries that `orderId` (docs/api.md), and only those."""
    account = unique("acct")
    async with admin_api(ops_server) as api, Receiver() as ops:
        rx.answer(500)
        await api.create_webhook(rx.url, [account], eventTypes=ORDER_TYPES, retrySchedule=[])
        await api.create_webhook(ops.url, [account], eventTypes=OPS)
        orders = [new_order(account) for _ in range(2)]
        for order in orders:
            await api.new_order(order)
        await ops.wait_for(
            lambda: len(of_type(ops, "delivery.failed")) == 2, WAIT_SECONDS, "two failed"
        )
        sent = {e["orderId"]: e["id"] for e in of_type(ops, "delivery.failed")}
        for order in orders:
            listed = await api.list_all(
                "/v1/events", type="delivery.failed", orderId=order["_id"], account=account
            )
            assert [(e["id"], e["orderId"]) for e in listed] == [(sent[order["_id"]], order["_id"])]
        assert await api.list_all("/v1/events", type="delivery.failed", orderId="nope") == []
        assert (
            await api.list_all("/v1/events", type="webhook.failing", orderId=orders[0]["_id"]) == []
        )
