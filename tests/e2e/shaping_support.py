"""Orders carrying every kind of personal data, what a receiver may see of them once it
is removed (docs/events.md, "Payload shaping"), and the erasure scenario, for the shaping
and erasure suites on both engines."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx

from orderhooks.testing.receiver import Receiver
from tests.support.api import Api, expect
from tests.support.data import courier_body, new_order

PERSONAL_FIELDS = {"customer", "deliveryAddress", "note"}
PERSONAL_COURIER_FIELDS = {"firstName", "lastName", "phoneNumber"}
PERSONAL_COURIER_UPDATE_FIELDS = {"trackingURL", "coordinates"}
# Strings only the personal data holds: none may appear in a body without it.
SINCE = "2020-01-01T00:00:00Z"
ERASURE_RETRIES = [1] * 20
ERASURE_WAIT_SECONDS = 30.0
PERSONAL_MARKERS = ("Ana Silva", "+32470000000", "Rue Haute", "Ring twice", "Jonas", "track.")


def personal_order(account: str) -> dict[str, Any]:
    """A new order with a customer, a delivery address, a note and a courier."""
    return new_order(
        account,
        deliveryAddress={
            "street": "Rue Haute",
            "streetNumber": "12",
            "postalCode": "1000",
            "city": "Bruxelles",
            "country": "BE",
            "coordinates": {"latitude": 50.84, "longitude": 4.35},
        },
        note="Ring twice",
        courier={
            "firstName": "Jonas",
            "lastName": "P.",
            "phoneNumber": "+32471111111",
            "deliveryBy": "channel",
            "status": 73,
        },
    )


def personal_courier_update() -> dict[str, Any]:
    """A courier update body with the courier's name, phone, tracking link and position."""
    return {**courier_body(83), "coordinates": {"latitude": 50.85, "longitude": 4.36}}


def always_kept(order: dict[str, Any]) -> dict[str, Any]:
    """The fields of an order's data that shaping keeps whatever it is asked: its ids and
    its status."""
    return {
        "_id": order["_id"],
        "account": order["account"],
        "location": order["location"],
        "status": order["status"],
    }


def without_personal_data(data: dict[str, Any], event_type: str) -> dict[str, Any]:
    """What `personalData: exclude` leaves of the data of `personal_order` or
    `personal_courier_update`, written out independently. Their couriers keep `deliveryBy`
    and `status`; a courier left empty (dropped) is a case of the unit tests."""
    removed = set(PERSONAL_FIELDS)
    if event_type == "order.courier_update":
        removed |= PERSONAL_COURIER_UPDATE_FIELDS
    out = {name: value for name, value in data.items() if name not in removed}
    courier = out.get("courier")
    if isinstance(courier, dict):
        out["courier"] = {k: v for k, v in courier.items() if k not in PERSONAL_COURIER_FIELDS}
        assert out["courier"], "a test order's courier keeps more than personal data"
    return out


def assert_no_personal_data(body: bytes) -> None:
    """No personal value of `personal_order` / `personal_courier_update` is in `body`."""
    text = body.decode()
    found = [marker for marker in PERSONAL_MARKERS if marker in text]
    assert not found, f"personal data in a body: {found}: {text[:1000]}"


def _hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert found is not None, f"no {name} in the page"
    return found.group(1)


async def dashboard_page(base_url: str, key: str, path: str) -> str:
    """A dashboard page's HTML, signed in with `key` like a browser (a client of its own
    keeps the session cookie)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        form = await client.get("/ui")
        assert form.status_code == 200, form.text[:500]
        token = _hidden(form.text, "signin_token")
        signed = await client.post(
            "/ui/signin", data={"api_key": key, "signin_token": token, "next": "/ui"}
        )
        assert signed.status_code == 303, signed.text[:500]
        page = await client.get(path)
    assert page.status_code == 200, page.text[:500]
    return page.text


async def dashboard_payload(base_url: str, key: str, delivery_id: str) -> str:
    """The exact body the dashboard's delivery page shows."""
    page = await dashboard_page(base_url, key, f"/ui/deliveries/{delivery_id}")
    found = re.search(r'<pre[^>]*id="payload-exact"[^>]*>(.*?)</pre>', page, re.S)
    assert found is not None, "no exact payload on the delivery page"
    return html.unescape(found.group(1))


async def erase_while_failing(api: Api, account: str, rx: Receiver) -> dict[str, Any]:
    """The scenario on any server: a webhook whose receiver answers 500, a personal order
    and its courier update, erasure, recovery; checks what was sent after the erasure.
    Returns the webhook."""
    rx.answer(500)
    hook = await api.create_webhook(rx.url, [account], retrySchedule=ERASURE_RETRIES)
    order = personal_order(account)
    ids = await api.new_order(order)
    path = f"/v1/orders/{order['_id']}/courier"
    ids += expect(await api.call("POST", path, json_body=personal_courier_update()), 202)[
        "eventIds"
    ]
    await rx.wait_for(lambda: len(rx.requests) >= 1, what="a failed attempt")
    assert "Ana Silva" in rx.requests[0].body.decode(), "sent with personal data before"

    erased = expect(await api.call("POST", f"/v1/orders/{order['_id']}/erase"), 200)
    # order.new and the courier update held personal data.
    assert erased == {"orderId": order["_id"], "events": 2}
    # A failed retry built after the erasure, then the receiver recovers.
    erased_at = len(rx.requests)
    await rx.wait_for(
        lambda: any("Ana Silva" not in r.body.decode() for r in rx.requests[erased_at:]),
        timeout=ERASURE_WAIT_SECONDS,
        what="a retry after the erasure",
    )
    rx.healthy()
    await rx.wait_for_delivered(set(ids), timeout=ERASURE_WAIT_SECONDS)

    accepted = {r.webhook_id: r for r in rx.accepted()}
    for event_id in ids:
        assert_no_personal_data(accepted[event_id].body)
    new = accepted[ids[0]].json["data"]
    assert new == without_personal_data(order, "order.new")
    assert new["items"] == order["items"], "only the personal data is gone"
    courier = accepted[ids[1]].json["data"]
    assert courier["courier"] == {"deliveryBy": "channel", "status": 83}
    assert courier["status"] == 83

    # The stored order and events lost it too.
    stored = expect(await api.call("GET", f"/v1/orders/{order['_id']}"), 200)
    assert not PERSONAL_FIELDS & set(stored["document"])
    assert not PERSONAL_COURIER_FIELDS & set(stored["courier"] or {})
    delivery = await api.delivery(accepted[ids[0]].delivery_id or "")
    assert delivery["event"]["data"] == new

    # A replay after the erasure sends the erased data.
    replay_path = f"/v1/webhooks/{hook['id']}/replay"
    before = len(rx.accepted())
    queued = expect(await api.call("POST", replay_path, json_body={"since": SINCE}), 200)
    assert queued == {"queued": 2}
    await rx.wait_for(lambda: len(rx.accepted()) == before + 2, what="the replays")
    for request in rx.accepted()[before:]:
        assert_no_personal_data(request.body)
    assert rx.accepted()[before].json["data"] == new
    rx.verify_all(hook["secret"])

    # Audited; a second erasure changes nothing; an unknown order is 404.
    audit = await api.list_all("/v1/audit")
    entries = [e for e in audit if e["action"] == "order.erased" and e["targetId"] == order["_id"]]
    assert len(entries) == 1, audit[:5]
    assert entries[0]["targetType"] == "order" and entries[0]["details"]["events"] == 2
    again = expect(await api.call("POST", f"/v1/orders/{order['_id']}/erase"), 200)
    assert again == {"orderId": order["_id"], "events": 0}
    expect(await api.call("POST", "/v1/orders/no-such-order/erase"), 404)
    return hook
