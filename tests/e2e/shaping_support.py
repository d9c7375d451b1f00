"""Orders carrying every kind of personal data, and what a receiver may see of them once
it is removed (docs/events.md, "Payload shaping"), for the shaping and erasure suites."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx

from tests.support.data import courier_body, new_order

PERSONAL_FIELDS = {"customer", "deliveryAddress", "note"}
PERSONAL_COURIER_FIELDS = {"firstName", "lastName", "phoneNumber"}
PERSONAL_COURIER_UPDATE_FIELDS = {"trackingURL", "coordinates"}
# Strings only the personal data holds: none may appear in a body without it.
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


def without_personal_data(data: dict[str, Any], event_type: str) -> dict[str, Any]:
    """What `personalData: exclude` leaves of `data`, written out independently."""
    removed = set(PERSONAL_FIELDS)
    if event_type == "order.courier_update":
        removed |= PERSONAL_COURIER_UPDATE_FIELDS
    out = {name: value for name, value in data.items() if name not in removed}
    courier = out.get("courier")
    if isinstance(courier, dict):
        rest = {k: v for k, v in courier.items() if k not in PERSONAL_COURIER_FIELDS}
        if rest:
            out["courier"] = rest
        else:
            del out["courier"]
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


async def dashboard_payload(base_url: str, key: str, delivery_id: str) -> str:
    """The exact body the dashboard's delivery page shows, signed in with `key` like a
    browser (a client of its own keeps the session cookie)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        form = await client.get("/ui")
        assert form.status_code == 200, form.text[:500]
        token = _hidden(form.text, "signin_token")
        signed = await client.post(
            "/ui/signin", data={"api_key": key, "signin_token": token, "next": "/ui"}
        )
        assert signed.status_code == 303, signed.text[:500]
        page = await client.get(f"/ui/deliveries/{delivery_id}")
    assert page.status_code == 200, page.text[:500]
    found = re.search(r'<pre[^>]*id="payload-exact"[^>]*>(.*?)</pre>', page.text, re.S)
    assert found is not None, "no exact payload on the delivery page"
    return html.unescape(found.group(1))
