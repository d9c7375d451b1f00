"""What a receiver gets (docs/events.md, signatures and the envelope; docs/api.md): bodies, headers,
repeats, batches, tests, and per-order order when the receiver fails some requests."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
import pytest

from orderhooks.testing.receiver import Receiver
from tests.e2e.support import VERSION, assert_per_order, states
from tests.support.api import Api, expect
from tests.support.data import ENVELOPE_KEYS, iso_now, new_order

TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SETTLE_SECONDS = 1.0


async def test_envelope_body_shape(api: Api, account: str, rx: Receiver) -> None:
    hook = await api.create_webhook(rx.url, [account])
    order = new_order(account, status=10)
    ids = await api.new_order(order)
    ids += await api.status(order["_id"], 20, reason="accepted by POS")
    ids += await api.courier(order["_id"], 83)
    await rx.wait_for_delivered(set(ids))

    bodies = rx.events()
    assert [b["id"] for b in bodies] == ids
    for request, body in zip(rx.requests, bodies, strict=True):
        assert set(body) == set(ENVELOPE_KEYS), f"envelope keys: {sorted(body)}"
        assert body["id"] == request.webhook_id
        assert body["id"].startswith("evt_")
        assert TIMESTAMP_RE.match(body["timestamp"]), body["timestamp"]
        assert (body["account"], body["location"], body["orderId"]) == (
            account,
            "loc-1",
            order["_id"],
        )
        assert body["test"] is False
        assert request.headers["orderhooks-event-type"] == body["type"]
        stored = expect(await api.client.get(f"/v1/events/{body['id']}"), 200)
        assert stored == body, "GET /v1/events/{id} answers the envelope that was sent"
    assert [b["sequence"] for b in bodies] == [1, 2, 3]
    assert [b["type"] for b in bodies] == [
        "order.new",
        "order.status_update",
        "order.courier_update",
    ]
    assert bodies[0]["data"] == order, "order.new carries the document as posted"
    update = bodies[1]["data"]
    assert update["orderId"] == order["_id"]
    assert (update["status"], update["previousStatus"]) == (20, 10)
    assert update["reason"] == "accepted by POS"
    assert (update["account"], update["location"]) == (account, "loc-1")
    assert update["channelOrderId"] == order["channelOrderId"]
    courier = bodies[2]["data"]
    assert (courier["orderId"], courier["status"]) == (order["_id"], 83)
    assert courier["courier"]["firstName"] == "Jonas"
    rx.verify_all(hook["secret"])


async def test_raw_body_is_data_alone(api: Api, account: str) -> None:
    async with Receiver() as envelope_rx, Receiver() as raw_rx:
        envelope_hook = await api.create_webhook(envelope_rx.url, [account])
        raw_hook = await api.create_webhook(raw_rx.url, [account], payloadFormat="raw")
        assert raw_hook["payloadFormat"] == "raw"
        order = new_order(account)
        ids = await api.new_order(order)
        ids += await api.status(order["_id"], 20)
        ids += await api.courier(order["_id"], 85)
        await raw_rx.wait_for_delivered(set(ids))
        await envelope_rx.wait_for_delivered(set(ids))

        envelopes = {r.webhook_id: r.json for r in envelope_rx.requests}
        raw = raw_rx.requests
        assert [r.webhook_id for r in raw] == ids
        for request in raw:
            assert request.json == envelopes[request.webhook_id]["data"]
            assert (
                request.headers["orderhooks-event-type"] == (envelopes[request.webhook_id]["type"])
            )
        assert raw[0].json == order, "raw order.new is the order document alone"
        assert raw[1].json["status"] == 20
        raw_rx.verify_all(raw_hook["secret"])
        envelope_rx.verify_all(envelope_hook["secret"])


async def test_request_headers(api: Api, account: str) -> None:
    async with Receiver() as flaky, Receiver() as steady:
        flaky.fail_first(2, per_delivery=True)
        flaky_hook = await api.create_webhook(
            flaky.url, [account], headers={"X-Partner-Token": "t0k3n", "X-Env": "e2e"}
        )
        steady_hook = await api.create_webhook(steady.url, [account])
        order = new_order(account)
        ids = await api.new_order(order)
        await flaky.wait_for_delivered(set(ids), timeout=20)
        await steady.wait_for_delivered(set(ids))

        attempts = flaky.requests
        assert [r.attempt for r in attempts] == [1, 2, 3]
        assert {r.webhook_id for r in attempts} == {ids[0]}, "webhook-id same across retries"
        assert len({r.delivery_id for r in attempts}) == 1
        assert steady.requests[0].webhook_id == ids[0], "webhook-id same across webhooks"
        assert steady.requests[0].delivery_id != attempts[0].delivery_id
        assert attempts[0].body == attempts[2].body, "the same bytes on every attempt"
        for request in [*attempts, *steady.requests]:
            headers = request.headers
            assert headers["content-type"].startswith("application/json")
            assert headers["user-agent"] == f"orderhooks/{VERSION}"
            assert headers["orderhooks-event-type"] == "order.new"
            assert headers["orderhooks-delivery-id"].startswith("dlv_")
            assert abs(int(headers["webhook-timestamp"]) - request.arrived_wall) < 5
        for request in attempts:
            assert request.headers["x-partner-token"] == "t0k3n"
            assert request.headers["x-env"] == "e2e"
        assert "x-partner-token" not in steady.requests[0].headers

        await api.wait_deliveries(flaky_hook["id"], lambda ds: states(ds) == {"delivered": 1})
        delivery = await api.delivery(attempts[0].delivery_id or "")
        assert delivery["attemptCount"] == 3
        assert delivery["state"] == "delivered"
        assert [a["attempt"] for a in delivery["attempts"]] == [1, 2, 3]
        assert [a["statusCode"] for a in delivery["attempts"]] == [500, 500, 200]
        assert delivery["attempts"][0]["error"] == "http_status"
        flaky.verify_all(flaky_hook["secret"])
        steady.verify_all(steady_hook["secret"])


async def test_idempotent_repeats(api: Api, account: str, rx: Receiver) -> None:
    hook = await api.create_webhook(rx.url, [account])
    order = new_order(account)
    raw = orjson.dumps(order)
    json_headers = {"content-type": "application/json"}
    first = expect(await api.client.post("/v1/orders", content=raw, headers=json_headers), 202)
    repeat = expect(await api.client.post("/v1/orders", content=raw, headers=json_headers), 200)
    assert len(first["eventIds"]) == 1
    assert repeat["eventIds"] == []

    update = {"status": 20, "timeStamp": iso_now()}
    path = f"/v1/orders/{order['_id']}/status"
    assert len(expect(await api.client.post(path, json=update), 202)["eventIds"]) == 1
    assert expect(await api.client.post(path, json=update), 200)["eventIds"] == []
    last = await api.courier(order["_id"], 83)

    await rx.wait_for_delivered(set(last))
    assert [e["sequence"] for e in rx.events()] == [1, 2, 3]
    events = await api.list_all("/v1/events", orderId=order["_id"])
    assert len(events) == 3
    rx.verify_all(hook["secret"])


async def test_batch_is_atomic(api: Api, account: str, rx: Receiver) -> None:
    hook = await api.create_webhook(rx.url, [account])
    first, second = new_order(account), new_order(account)
    bad = dict(second, status="20")
    items: list[dict[str, Any]] = [
        {"type": "order.new", "data": first},
        {
            "type": "order.status_update",
            "orderId": first["_id"],
            "data": {"status": 20, "timeStamp": iso_now()},
        },
        {"type": "order.new", "data": bad},
    ]
    refused = expect(await api.client.post("/v1/events", json=items), 422)
    details = refused["error"]["details"]
    assert any(d.get("index") == 2 for d in details), details
    assert all(d.get("index") == 2 for d in details), details
    assert any("status" in d.get("field", "") for d in details), details
    assert (
        expect(await api.client.get("/v1/events", params={"orderId": first["_id"]}), 200)["data"]
        == []
    )
    assert (await api.client.get(f"/v1/orders/{first['_id']}")).status_code == 404

    items[2] = {"type": "order.new", "data": second}
    accepted = expect(await api.client.post("/v1/events", json=items), 202)
    ids = accepted["eventIds"]
    assert len(ids) == 3
    stored = [expect(await api.client.get(f"/v1/events/{i}"), 200) for i in ids]
    assert [(e["type"], e["orderId"]) for e in stored] == [
        ("order.new", first["_id"]),
        ("order.status_update", first["_id"]),
        ("order.new", second["_id"]),
    ], "events in item order"
    await rx.wait_for_delivered(set(ids))
    await asyncio.sleep(SETTLE_SECONDS)
    assert sorted(r.webhook_id or "" for r in rx.requests) == sorted(ids), (
        "the refused batch sent nothing"
    )
    again = expect(await api.client.post("/v1/events", json=items), 202, 200)
    assert again["eventIds"] == [], "a repeated batch adds no events"
    rx.verify_all(hook["secret"])


async def test_test_delivery(api: Api, account: str, rx: Receiver) -> None:
    hook = await api.create_webhook(rx.url, [account])
    for event_type in ("order.new", "order.status_update", "order.courier_update"):
        response = await api.client.post(
            f"/v1/webhooks/{hook['id']}/test", json={"type": event_type}
        )
        delivery_id: str = expect(response, 202)["deliveryId"]

        def delivered(delivery_id: str = delivery_id) -> bool:
            return any(r.delivery_id == delivery_id for r in rx.accepted())

        await rx.wait_for(delivered, what=f"test {event_type}")
        request = next(r for r in rx.requests if r.delivery_id == delivery_id)
        assert request.json["test"] is True
        assert request.json["type"] == event_type
        assert request.headers["orderhooks-event-type"] == event_type
        delivery = await api.delivery(delivery_id)
        assert delivery["test"] is True
        assert delivery["webhookId"] == hook["id"]
    rx.verify_all(hook["secret"])


@pytest.mark.slow
async def test_per_order_order_when_the_receiver_fails_some_requests(
    api: Api, account: str, rx: Receiver
) -> None:
    rx.fail_randomly(0.25, seed=7)
    hook = await api.create_webhook(rx.url, [account], retrySchedule=[1] * 10, maxConcurrency=8)
    orders = [new_order(account) for _ in range(4)]
    ids: list[str] = []
    for order in orders:
        ids += await api.new_order(order)
    for step in (20, 83, 40, 60, 90):
        for order in orders:
            if step == 83:
                ids += await api.courier(order["_id"], 83)
            else:
                ids += await api.status(order["_id"], step)

    await rx.wait_for_delivered(set(ids), timeout=90)
    assert any(not r.accepted for r in rx.requests), "the receiver failed some requests"
    assert_per_order(rx.requests, contiguous=True)
    assert sorted(len(s) for s in _per_order(rx).values()) == [6, 6, 6, 6]
    assert rx.max_in_flight <= 8
    deliveries = await api.wait_deliveries(
        hook["id"],
        lambda ds: len(ds) == len(ids) and all(d["state"] == "delivered" for d in ds),
        what="all delivered",
    )
    assert len(deliveries) == 24
    rx.verify_all(hook["secret"])


def _per_order(rx: Receiver) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for body in rx.events(accepted_only=True):
        out.setdefault(body["orderId"], set()).add(body["sequence"])
    return out
