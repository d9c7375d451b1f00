"""Reading deliveries, events and orders through the API on a real SQLite store:
shapes (docs/api.md), filters, paging, retry, and query validation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api_support import (
    LocalApi,
    finish_deliveries,
    finish_delivery,
    running_api,
)
from tests.support.api import Api
from tests.support.data import ENVELOPE_KEYS, unique

DELIVERY_FIELDS = {
    "id",
    "webhookId",
    "eventId",
    "eventType",
    "orderId",
    "state",
    "replay",
    "test",
    "createdAt",
    "nextAttemptAt",
    "deliveredAt",
    "attemptCount",
}


@dataclass
class Traffic:
    api: Api
    account: str
    other_account: str
    webhook: str
    orders: list[str]


@pytest.fixture()
async def traffic(tmp_path: Path) -> AsyncIterator[Traffic]:
    """Two accounts; three orders of the first, with a status update on the first order."""
    async with running_api(tmp_path) as api:
        account, other = unique("acct"), unique("acct")
        for name in (account, other):
            await api.agree(name)
        webhook = await api.make_webhook(account)
        await api.make_webhook(other)
        orders = [(await api.post_order(account))["orderId"] for _ in range(3)]
        await api.post_order(other)
        await api.call("POST", f"/v1/orders/{orders[0]}/status", json_body={"status": 20})
        yield Traffic(api, account, other, webhook["id"], orders)


async def pages(api: Api, path: str, limit: int, key: str | None = "admin") -> list[dict[str, Any]]:
    """Every item of a list, walking `nextCursor`."""
    items: list[dict[str, Any]] = []
    cursor = None
    sep = "&" if "?" in path else "?"
    while True:
        url = f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        body = (await api.call("GET", url, key)).json()
        assert len(body["data"]) <= limit
        items.extend(body["data"])
        cursor = body["nextCursor"]
        if cursor is None:
            return items


async def test_deliveries_list_shape_order_and_paging(traffic: Traffic) -> None:
    api = traffic.api
    everything = (await api.call("GET", f"/v1/deliveries?webhookId={traffic.webhook}")).json()
    assert everything["nextCursor"] is None
    data = everything["data"]
    assert len(data) == 4
    assert all(set(d) >= DELIVERY_FIELDS for d in data)
    assert all(d["webhookId"] == traffic.webhook and d["state"] == "pending" for d in data)
    assert [d["id"] for d in data] == sorted((d["id"] for d in data), reverse=True)  # newest first
    paged = await pages(api, f"/v1/deliveries?webhookId={traffic.webhook}", limit=1)
    assert [d["id"] for d in paged] == [d["id"] for d in data]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("eventType=order.status_update", 1),
        ("eventType=order.new", 3),
        ("state=pending", 4),
        ("state=delivered", 0),
        ("since=2000-01-01T00:00:00Z", 4),
        ("until=2000-01-01T00:00:00Z", 0),
        ("since=2999-01-01T00:00:00%2B02:00", 0),
    ],
)
async def test_deliveries_filters(traffic: Traffic, query: str, expected: int) -> None:
    url = f"/v1/deliveries?webhookId={traffic.webhook}&{query}"
    response = await traffic.api.call("GET", url)
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == expected


async def test_deliveries_by_order(traffic: Traffic) -> None:
    url = f"/v1/deliveries?orderId={traffic.orders[0]}"
    data = (await traffic.api.call("GET", url)).json()["data"]
    assert {d["eventType"] for d in data} == {"order.new", "order.status_update"}
    assert all(d["orderId"] == traffic.orders[0] for d in data)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("state=lost", "state"),
        ("eventType=order.old", "eventType"),
        ("since=yesterday", "since"),
        ("until=2026-11-28", "until"),
        ("since=2026-11-28T00:00:00Z&until=2026-11-27T00:00:00Z", "until"),
    ],
)
async def test_bad_query_parameters_are_422_naming_them(
    traffic: Traffic, query: str, field: str
) -> None:
    response = await traffic.api.call("GET", f"/v1/deliveries?{query}")
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]


async def test_one_delivery_with_its_event_and_attempts(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        account = unique("acct")
        await api.agree(account)
        webhook = await api.make_webhook(account)
        order = await api.post_order(account)
        [target] = (await api.call("GET", f"/v1/deliveries?webhookId={webhook['id']}")).json()[
            "data"
        ]
        await finish_delivery(api, target["id"], 503)
        response = await api.call("GET", f"/v1/deliveries/{target['id']}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= DELIVERY_FIELDS | {"event", "attempts"}
    assert body["state"] == "failed"
    assert body["attemptCount"] == 1
    assert set(body["event"]) == set(ENVELOPE_KEYS)
    assert body["event"]["id"] == body["eventId"]
    assert body["event"]["data"]["_id"] == order["orderId"]
    [attempt] = body["attempts"]
    assert attempt == {
        "attempt": 1,
        "startedAt": attempt["startedAt"],
        "durationMs": 42,
        "statusCode": 503,
        "responseBody": "nope",
        "error": "http_status",
    }
    assert attempt["startedAt"].endswith("Z")


async def test_retry_now(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        account = unique("acct")
        await api.agree(account)
        webhook = await api.make_webhook(account)
        for _ in range(2):
            await api.post_order(account)
        listed = (await api.call("GET", f"/v1/deliveries?webhookId={webhook['id']}")).json()
        failed, delivered = (d["id"] for d in listed["data"])
        await finish_deliveries(api, {failed: 500, delivered: 200})
        response = await api.call("POST", f"/v1/deliveries/{failed}/retry")
        assert response.status_code == 202
        assert response.json()["state"] == "pending"
        assert response.json()["id"] == failed
        assert set(response.json()) >= DELIVERY_FIELDS
        conflict = await api.call("POST", f"/v1/deliveries/{delivered}/retry")
        assert conflict.status_code == 409
        assert conflict.json()["error"]["code"] == "conflict"
        assert (await api.call("POST", "/v1/deliveries/dlv_nope/retry")).status_code == 404


async def test_a_delivery_failed_event_can_be_read_and_retried(
    api_on_each_engine: LocalApi,
) -> None:
    # `delivery.failed` is about webhook W like the other operational events, but its data
    # names W by id only, without W's accounts: it is read as the others are.
    api, account, other = api_on_each_engine, unique("acct"), unique("acct")
    await api.agree(account)
    w = await api.make_webhook(account, eventTypes=["order.new"])
    s = await api.make_webhook(account, eventTypes=["delivery.failed"])
    order = await api.post_order(account)
    [failing] = await api.deliveries(w["id"])
    await finish_delivery(api, failing["id"], 500)
    [told] = await api.deliveries(s["id"])
    assert told["eventType"] == "delivery.failed"
    mine, foreign = await api.make_key("partner", [account]), await api.make_key("partner", [other])
    for key in ("admin", mine):
        one = await api.call("GET", f"/v1/deliveries/{told['id']}", key)
        assert one.status_code == 200, one.text
        event = one.json()["event"]
        assert event["type"] == "delivery.failed"
        assert event["orderId"] == order["orderId"]
        assert event["data"]["deliveryId"] == failing["id"]
        read = await api.call("GET", f"/v1/events/{told['eventId']}", key)
        assert read.status_code == 200, read.text
        assert read.json() == event
    for path in (f"/v1/deliveries/{told['id']}", f"/v1/events/{told['eventId']}"):
        assert (await api.call("GET", path, foreign)).status_code == 404
    retried = await api.call("POST", f"/v1/deliveries/{told['id']}/retry", mine)
    assert retried.status_code == 202, retried.text


async def test_events_list_filters_and_scope(traffic: Traffic) -> None:
    api = traffic.api
    mine = await api.make_key("partner", [traffic.account])
    events = await pages(api, "/v1/events", limit=2, key=mine)
    assert len(events) == 4  # three new orders and one status update
    assert all(set(e) == set(ENVELOPE_KEYS) and e["account"] == traffic.account for e in events)
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)  # oldest first
    by_order = (await api.call("GET", f"/v1/events?orderId={traffic.orders[0]}", mine)).json()
    assert [(e["type"], e["sequence"]) for e in by_order["data"]] == [
        ("order.new", 1),
        ("order.status_update", 2),
    ]
    by_type = (await api.call("GET", "/v1/events?type=order.status_update", mine)).json()
    assert len(by_type["data"]) == 1
    admin_other = (await api.call("GET", f"/v1/events?account={traffic.other_account}")).json()
    assert {e["account"] for e in admin_other["data"]} == {traffic.other_account}
    future = (await api.call("GET", "/v1/events?since=2999-01-01T00:00:00Z")).json()
    assert future["data"] == []
    one = await api.call("GET", f"/v1/events/{events[0]['id']}", mine)
    assert one.json() == events[0]
    assert (await api.call("GET", "/v1/events/evt_nope")).status_code == 404


async def test_an_order_with_its_history_and_events(traffic: Traffic) -> None:
    response = await traffic.api.call("GET", f"/v1/orders/{traffic.orders[0]}")
    assert response.status_code == 200
    body = response.json()
    assert body["orderId"] == traffic.orders[0]
    assert body["account"] == traffic.account
    assert body["status"] == 20
    assert body["document"]["_id"] == traffic.orders[0]
    assert body["document"]["status"] == 20
    assert all(set(h) == {"status", "timeStamp"} for h in body["statusHistory"])
    assert [h["status"] for h in body["statusHistory"]][-1] == 20
    assert body["courier"] is None or isinstance(body["courier"], dict)
    assert [set(e) for e in body["events"]] == [{"id", "type", "sequence", "timestamp"}] * 2
    assert (await traffic.api.call("GET", "/v1/orders/nope")).status_code == 404
