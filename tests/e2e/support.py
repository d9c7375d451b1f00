"""Helpers of the end-to-end suites: an API wrapper, order factories, ordering checks."""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from orderhooks.testing.receiver import ReceivedRequest

ALL_TYPES = ["order.new", "order.status_update", "order.courier_update"]
ENVELOPE_KEYS = {
    "id",
    "type",
    "timestamp",
    "account",
    "location",
    "orderId",
    "sequence",
    "test",
    "data",
}
VERSION = importlib.metadata.version("orderhooks")

T = TypeVar("T")


def unique(prefix: str) -> str:
    """A fresh identifier, so tests sharing a server never see each other's data."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def iso_now() -> str:
    """Now, RFC 3339 UTC with microseconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_order(
    account: str,
    *,
    order_id: str | None = None,
    status: int = 10,
    location: str = "loc-1",
    channel_link: str = "cl-1",
    channel: int = 7,
    **extra: Any,
) -> dict[str, Any]:
    """A valid new-order body (Deliverect order model) with an unknown field kept."""
    order: dict[str, Any] = {
        "_id": order_id or uuid.uuid4().hex[:24],
        "account": account,
        "location": location,
        "channelLink": channel_link,
        "channel": channel,
        "status": status,
        "orderType": 2,
        "channelOrderId": "UE-7781-40392",
        "channelOrderDisplayId": "40392",
        "decimalDigits": 2,
        "payment": {"amount": 2650, "type": 0, "due": 0, "rebate": 0},
        "items": [
            {
                "plu": "BRG-01",
                "name": "Classic Burger",
                "price": 1150,
                "quantity": 2,
                "productType": 1,
                "subItems": [
                    {
                        "plu": "MOD-CHS",
                        "name": "Extra cheese",
                        "price": 100,
                        "quantity": 1,
                        "productType": 2,
                        "subItems": [],
                    }
                ],
            },
            {
                "plu": "DRN-03",
                "name": "Sparkling water",
                "price": 250,
                "quantity": 1,
                "productType": 1,
                "subItems": [],
            },
        ],
        "packaging": {"includeCutlery": False},  # unknown to orderhooks: passed through
    }
    order.update(extra)
    return order


def courier_body(status: int = 83) -> dict[str, Any]:
    """A valid courier update body."""
    return {
        "status": status,
        "received": iso_now(),
        "courier": {
            "firstName": "Jonas",
            "lastName": "P.",
            "phoneNumber": "+32471111111",
            "deliveryBy": "channel",
            "status": status,
        },
        "trackingURL": "https://track.example.com/t/8f2c",
    }


def expect(response: httpx.Response, *statuses: int) -> Any:
    """The JSON of `response`, after checking its status (message includes the body)."""
    assert response.status_code in statuses, (
        f"{response.request.method} {response.request.url} -> {response.status_code}, "
        f"expected {statuses}: {response.text[:2000]}"
    )
    if not response.content:
        return None
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return response.text


class Api:
    """The orderhooks API as the tests call it; every call checks its status code."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def create_webhook(
        self, url: str, accounts: list[str], *, expect_status: int = 201, **fields: Any
    ) -> dict[str, Any]:
        """Create a webhook for all event types unless `eventTypes` is given."""
        body = {"url": url, "accounts": accounts, "eventTypes": ALL_TYPES, **fields}
        webhook: dict[str, Any] = expect(
            await self.client.post("/v1/webhooks", json=body), expect_status
        )
        return webhook

    async def webhook(self, webhook_id: str) -> dict[str, Any]:
        """GET one webhook."""
        result: dict[str, Any] = expect(await self.client.get(f"/v1/webhooks/{webhook_id}"), 200)
        return result

    async def new_order(self, order: dict[str, Any]) -> list[str]:
        """POST an order; its event ids (202)."""
        body = expect(await self.client.post("/v1/orders", json=order), 202)
        assert body["orderId"] == order["_id"]
        return list(body["eventIds"])

    async def status(self, order_id: str, status: int, **extra: Any) -> list[str]:
        """POST a status update; its event ids (202)."""
        body = {"status": status, "timeStamp": iso_now(), **extra}
        result = expect(await self.client.post(f"/v1/orders/{order_id}/status", json=body), 202)
        return list(result["eventIds"])

    async def courier(self, order_id: str, status: int = 83) -> list[str]:
        """POST a courier update; its event ids (202)."""
        response = await self.client.post(
            f"/v1/orders/{order_id}/courier", json=courier_body(status)
        )
        return list(expect(response, 202)["eventIds"])

    async def list_all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a list endpoint, following `nextCursor`."""
        items: list[dict[str, Any]] = []
        query = {"limit": 500, **params}
        while True:
            page = expect(await self.client.get(path, params=query), 200)
            items.extend(page["data"])
            if not page.get("nextCursor"):
                return items
            query["cursor"] = page["nextCursor"]

    async def deliveries(self, webhook_id: str, **params: Any) -> list[dict[str, Any]]:
        """All deliveries of a webhook."""
        return await self.list_all("/v1/deliveries", webhookId=webhook_id, **params)

    async def delivery(self, delivery_id: str) -> dict[str, Any]:
        """One delivery with its event and attempts."""
        result: dict[str, Any] = expect(await self.client.get(f"/v1/deliveries/{delivery_id}"), 200)
        return result

    async def usage(self, account: str, **params: Any) -> list[dict[str, Any]]:
        """The usage rows of an account (JSON)."""
        body = expect(
            await self.client.get("/v1/usage", params={"account": account, **params}), 200
        )
        return list(body["data"])

    async def wait_usage(
        self,
        account: str,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 15.0,
    ) -> list[dict[str, Any]]:
        """Poll an account's usage until `predicate` holds (a delivery is counted within a
        few seconds)."""
        return await poll(lambda: self.usage(account), predicate, timeout, f"usage of {account}")

    async def wait_deliveries(
        self,
        webhook_id: str,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 15.0,
        what: str = "",
    ) -> list[dict[str, Any]]:
        """Poll a webhook's deliveries until `predicate` holds; the last list seen."""
        return await poll(
            lambda: self.deliveries(webhook_id), predicate, timeout, what or "deliveries"
        )

    async def wait_webhook(
        self,
        webhook_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 15.0,
        what: str = "",
    ) -> dict[str, Any]:
        """Poll a webhook until `predicate` holds."""
        return await poll(lambda: self.webhook(webhook_id), predicate, timeout, what or "webhook")


async def poll(
    fetch: Callable[[], Awaitable[T]],
    predicate: Callable[[T], bool],
    timeout: float,
    what: str,
) -> T:
    """Call `fetch` until `predicate(result)`; AssertionError with the last result after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if predicate(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}: {value!r}"[:4000]
            )
        await asyncio.sleep(0.1)


def states(deliveries: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Count deliveries by state."""
    counts: dict[str, int] = defaultdict(int)
    for delivery in deliveries:
        counts[delivery["state"]] += 1
    return dict(counts)


def units(rows: Iterable[dict[str, Any]], event_type: str, column: str = "delivered") -> int:
    """The `delivered` (or `replayed`) units of one event type in usage rows."""
    return sum(int(row[column]) for row in rows if row["eventType"] == event_type)


def first_acceptances(requests: Iterable[ReceivedRequest]) -> list[ReceivedRequest]:
    """The first 2xx-answered request of each webhook-id, in arrival order."""
    seen: set[str | None] = set()
    out = []
    for request in requests:
        if request.accepted and request.webhook_id not in seen:
            seen.add(request.webhook_id)
            out.append(request)
    return out


def sequences_by_order(requests: Iterable[ReceivedRequest]) -> dict[str, list[int]]:
    """Envelope sequences per orderId, in the order of the given requests."""
    by_order: dict[str, list[int]] = defaultdict(list)
    for request in requests:
        by_order[request.json["orderId"]].append(request.json["sequence"])
    return dict(by_order)


def assert_per_order(requests: list[ReceivedRequest], *, contiguous: bool = True) -> None:
    """Check per-order order as a receiver sees it.

    Each event's first acceptance comes after the previous event's, per order; with
    `contiguous`, the sequences are 1..n without gaps; and no attempt of an event arrived
    before the previous event of its order had been accepted.
    """
    accepted = first_acceptances(requests)
    for order_id, sequences in sequences_by_order(accepted).items():
        assert sequences == sorted(sequences), f"order {order_id} arrived as {sequences}"
        if contiguous:
            assert sequences == list(range(1, len(sequences) + 1)), (
                f"order {order_id} has gaps: {sequences}"
            )
    accepted_at = {(r.json["orderId"], r.json["sequence"]): r.arrived_monotonic for r in accepted}
    for request in requests:
        key = (request.json["orderId"], request.json["sequence"] - 1)
        previous = accepted_at.get(key)
        if previous is not None:
            assert previous <= request.arrived_monotonic, (
                f"order {key[0]}: sequence {key[1] + 1} (attempt {request.attempt}) was sent "
                f"before sequence {key[1]} was delivered"
            )
