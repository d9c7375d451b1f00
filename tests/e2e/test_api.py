"""Every endpoint of docs/api.md once, happy path, against the real server process."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.e2e.support import states, units
from tests.support.api import Api, expect
from tests.support.data import iso_now, new_order, unique


async def test_public_endpoints(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await anonymous.get("/readyz")).status_code == 200
        metrics = await anonymous.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "orderhooks_" in metrics.text
        openapi = expect(await anonymous.get("/openapi.json"), 200)
        for path in ("/v1/orders", "/v1/webhooks", "/v1/deliveries", "/v1/usage"):
            assert path in openapi["paths"], path
        assert (await anonymous.get("/ui")).status_code == 200
        assert (await anonymous.get("/v1/webhooks")).status_code == 401


async def test_keys(api: Api, server: ServerProcess, account: str) -> None:
    created = expect(
        await api.client.post("/v1/keys", json={"role": "ingest", "name": "platform"}), 201
    )
    assert created["id"].startswith("key_")
    assert (created["role"], created["name"]) == ("ingest", "platform")
    listed = await api.list_all("/v1/keys")
    mine = [k for k in listed if k["id"] == created["id"]]
    assert len(mine) == 1
    assert all("key" not in k for k in listed), "list items never carry the key"

    async with server.async_client(created["key"]) as ingest:
        order = new_order(account)
        expect(await ingest.post("/v1/orders", json=order), 202)
        assert (await ingest.get("/v1/webhooks")).status_code == 403
    assert (await api.client.delete(f"/v1/keys/{created['id']}")).status_code == 204
    async with server.async_client(created["key"]) as revoked:
        assert (await revoked.post("/v1/orders", json=new_order(account))).status_code == 401


async def test_orders_and_events(api: Api, account: str) -> None:
    order = new_order(account)
    ids = await api.new_order(order)
    ids += await api.status(order["_id"], 20)
    ids += await api.courier(order["_id"], 83)

    got = expect(await api.client.get(f"/v1/orders/{order['_id']}"), 200)
    assert (got["orderId"], got["account"], got["location"]) == (order["_id"], account, "loc-1")
    assert got["status"] == 20
    assert got["document"]["status"] == 20
    assert got["document"]["packaging"] == order["packaging"], "unknown fields kept"
    assert [h["status"] for h in got["statusHistory"]][-1] == 20
    assert got["courier"]["firstName"] == "Jonas"
    assert [(e["id"], e["sequence"]) for e in got["events"]] == list(
        zip(ids, [1, 2, 3], strict=True)
    )

    listed = await api.list_all("/v1/events", orderId=order["_id"])
    assert [e["id"] for e in listed] == ids
    by_type = await api.list_all("/v1/events", account=account, type="order.courier_update")
    assert [e["id"] for e in by_type] == ids[2:]
    one = expect(await api.client.get(f"/v1/events/{ids[1]}"), 200)
    assert (one["type"], one["sequence"], one["data"]["status"]) == ("order.status_update", 2, 20)

    page = expect(await api.client.get("/v1/events", params={"account": account, "limit": 2}), 200)
    assert len(page["data"]) == 2 and page["nextCursor"]
    rest = expect(
        await api.client.get(
            "/v1/events", params={"account": account, "limit": 2, "cursor": page["nextCursor"]}
        ),
        200,
    )
    assert [e["id"] for e in page["data"] + rest["data"]] == ids
    assert rest["nextCursor"] is None


async def test_webhook_lifecycle(api: Api, account: str, rx: Receiver) -> None:
    created = await api.create_webhook(rx.url, [account], description="bi")
    hook_id = created["id"]
    assert hook_id.startswith("wh_")
    assert created["secret"].startswith("whsec_")
    assert created["state"] == "active"
    defaults: dict[str, Any] = {
        "locations": [],
        "channelLinks": [],
        "channels": [],
        "newOrderTrigger": None,
        "statusFilter": [],
        "courierStatusFilter": [],
        "payloadFormat": "envelope",
        "headers": {},
        "maxConcurrency": 8,
        "ordering": "per_order",
    }
    for field, default in defaults.items():
        assert created[field] == default, field
    read = await api.webhook(hook_id)
    assert "secret" not in read
    assert read["description"] == "bi"

    listed = await api.list_all("/v1/webhooks", account=account)
    assert [w["id"] for w in listed] == [hook_id]
    assert [w["id"] for w in await api.list_all("/v1/webhooks", account=account, state="active")]
    patched = expect(
        await api.client.patch(f"/v1/webhooks/{hook_id}", json={"description": "stock"}), 200
    )
    assert patched["description"] == "stock"
    secret = expect(await api.client.get(f"/v1/webhooks/{hook_id}/secret"), 200)["secret"]
    assert secret == created["secret"]
    rotated = expect(await api.client.post(f"/v1/webhooks/{hook_id}/secret/rotate", json={}), 200)
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != secret

    disabled = expect(await api.client.post(f"/v1/webhooks/{hook_id}/disable"), 200)
    assert (disabled["state"], disabled["disabledReason"]) == ("disabled", "manual")
    assert disabled["disabledAt"]
    enabled = expect(await api.client.post(f"/v1/webhooks/{hook_id}/enable"), 200)
    assert enabled["state"] == "active"

    assert rx.requests == [], "creating or changing a webhook sends nothing"
    ids = await api.new_order(new_order(account))
    await rx.wait_for_delivered(set(ids))
    await api.wait_deliveries(hook_id, lambda ds: states(ds) == {"delivered": 1})
    stats = expect(await api.client.get(f"/v1/webhooks/{hook_id}/stats"), 200)
    assert isinstance(stats, dict) and stats
    assert len(rx.requests) == 1

    assert (await api.client.delete(f"/v1/webhooks/{hook_id}")).status_code == 204
    assert (await api.client.get(f"/v1/webhooks/{hook_id}")).status_code == 404
    deliveries = await api.deliveries(hook_id)
    assert states(deliveries) == {"delivered": 1}, "deliveries stay readable after delete"
    rx.verify_all(rotated["secret"])  # old and new sign during the grace; hex uses the new


async def test_deliveries_retry_recover_replay_test(api: Api, account: str, rx: Receiver) -> None:
    rx.answer(500)
    since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    hook = await api.create_webhook(rx.url, [account], retrySchedule=[])
    order = new_order(account)
    ids = await api.new_order(order)
    ids += await api.status(order["_id"], 20)
    failed = await api.wait_deliveries(
        hook["id"], lambda ds: states(ds) == {"failed": 2}, what="2 failed"
    )
    for params in (
        {"state": "failed"},
        {"orderId": order["_id"]},
        {"eventType": "order.new"},
        {"since": since},
        {"since": since, "until": iso_now()},
    ):
        listed = await api.deliveries(hook["id"], **params)
        assert listed, params
    first = next(d for d in failed if d["eventType"] == "order.new")
    one = await api.delivery(first["id"])
    assert one["event"]["id"] == first["eventId"]
    assert one["attempts"][0]["statusCode"] == 500
    for field in ("id", "webhookId", "eventId", "eventType", "orderId", "state", "replay"):
        assert field in one, field

    rx.healthy()
    expect(await api.client.post(f"/v1/deliveries/{first['id']}/retry"), 202)
    await rx.wait_for(lambda: len(rx.accepted()) == 1, what="the retried delivery")
    recovered = expect(
        await api.client.post(f"/v1/webhooks/{hook['id']}/recover", json={"since": since}), 200
    )
    assert recovered["requeued"] == 1
    await rx.wait_for_delivered(set(ids))

    replayed = expect(
        await api.client.post(f"/v1/webhooks/{hook['id']}/replay", json={"since": since}), 200
    )
    assert replayed["queued"] == 2
    await rx.wait_for(lambda: len(rx.accepted()) == 4, what="the replays")
    test = expect(
        await api.client.post(f"/v1/webhooks/{hook['id']}/test", json={"type": "order.new"}), 202
    )
    await rx.wait_for(lambda: len(rx.accepted()) == 5, what="the test delivery")
    assert (await api.delivery(test["deliveryId"]))["test"] is True
    rx.verify_all(hook["secret"])


async def test_agreement_and_usage(api: Api, account: str, rx: Receiver) -> None:
    assert (await api.client.get(f"/v1/accounts/{account}/agreement")).status_code == 404
    agreement = {
        "signedBy": "Ana Silva",
        "signedAt": "2026-01-05T10:00:00Z",
        "pricing": {
            "currency": "EUR",
            "perThousand": {
                "order.new": 700,
                "order.status_update": 100,
                "order.courier_update": 100,
            },
        },
    }
    put = expect(await api.client.put(f"/v1/accounts/{account}/agreement", json=agreement), 200)
    assert put["signedBy"] == "Ana Silva"
    assert put["pricing"] == agreement["pricing"]
    got = expect(await api.client.get(f"/v1/accounts/{account}/agreement"), 200)
    assert got["pricing"] == agreement["pricing"]

    hook = await api.create_webhook(rx.url, [account])
    ids = await api.new_order(new_order(account))
    await rx.wait_for_delivered(set(ids))
    rx.verify_all(hook["secret"])
    usage = await api.wait_usage(account, lambda rows: units(rows, "order.new") == 1)
    row = next(r for r in usage if r["eventType"] == "order.new")
    assert row["month"] == datetime.now(UTC).strftime("%Y-%m")
    assert (row["charge"], row["currency"]) == (1, "EUR")  # 1 x 700 / 1000 = 0.7 -> 1

    text = await api.client.get("/v1/usage", params={"account": account, "format": "csv"})
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert {"account", "month", "eventType", "delivered", "replayed", "charge"} <= set(rows[0])
    assert any(r["eventType"] == "order.new" and int(r["delivered"]) == 1 for r in rows)


async def test_partner_key_is_scoped(api: Api, server: ServerProcess, rx: Receiver) -> None:
    mine, theirs = unique("acct-p"), unique("acct-q")
    key = expect(
        await api.client.post(
            "/v1/keys", json={"role": "partner", "accounts": [mine], "name": "partner"}
        ),
        201,
    )
    other = await api.create_webhook(rx.url, [theirs])
    async with server.async_client(key["key"]) as partner:
        body = {"url": rx.url, "accounts": [mine], "eventTypes": ["order.new"]}
        created = expect(await partner.post("/v1/webhooks", json=body), 201)
        listed = expect(await partner.get("/v1/webhooks"), 200)["data"]
        assert [w["id"] for w in listed] == [created["id"]]
        assert (await partner.get(f"/v1/webhooks/{other['id']}")).status_code == 404
        refused = await partner.post("/v1/webhooks", json=dict(body, accounts=[theirs]))
        assert refused.status_code == 403
        expect(await partner.get("/v1/usage", params={"account": mine}), 200)
        assert (await partner.get("/v1/keys")).status_code == 403


async def test_a_wrong_method_names_every_method_of_the_path(api: Api, account: str) -> None:
    """405 carries `Allow` with every method the path takes (docs/api.md, errors), not only
    those of the first endpoint that matched it."""
    hook = await api.make_webhook(account)
    cases = {
        "/v1/webhooks": {"GET", "HEAD", "POST"},
        f"/v1/webhooks/{hook['id']}": {"GET", "HEAD", "PATCH", "DELETE"},
        f"/v1/accounts/{account}/agreement": {"GET", "HEAD", "PUT"},
        "/v1/keys": {"GET", "HEAD", "POST"},
        f"/v1/webhooks/{hook['id']}/enable": {"POST"},
    }
    for path, allowed in cases.items():
        wrong = await api.call("OPTIONS", path)
        assert wrong.status_code == 405, (path, wrong.text)
        assert wrong.json()["error"]["code"] == "method_not_allowed"
        assert set(wrong.headers["allow"].split(", ")) == allowed, path


async def test_head_answers_as_get_without_the_body(api: Api, server: ServerProcess) -> None:
    """Load balancers probe with HEAD: every path that takes GET takes HEAD, with GET's
    status and headers (RFC 9110; that no body is sent: tests/unit/test_head.py)."""
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        for path in ("/healthz", "/readyz", "/openapi.json"):
            got = await client.get(path)
            head = await client.head(path)
            assert head.status_code == got.status_code == 200, path
            assert head.headers["content-length"] == got.headers["content-length"], path
            assert head.headers["content-type"] == got.headers["content-type"], path
        assert (await client.head("/v1/webhooks")).status_code == 401  # no key: as GET
    keyed = await api.call("HEAD", "/v1/webhooks")
    assert keyed.status_code == 200
    assert (
        keyed.headers["content-length"]
        == (await api.call("GET", "/v1/webhooks")).headers["content-length"]
    )
    assert (await api.call("HEAD", "/v1/no-such-path")).status_code == 404
