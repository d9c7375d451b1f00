"""The orderhooks API as every test calls it: one client class over an `httpx.AsyncClient`
(a real server process or the app in this process), the status check of an answer, and
polling until something holds."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import httpx

from orderhooks.testing.server import ServerProcess
from tests.support.data import ALL_TYPES, PRICING, courier_body, iso_now, new_order, unique

T = TypeVar("T")


def bearer(key: str | None) -> dict[str, str]:
    """The Authorization header of a key (none for None)."""
    return {} if key is None else {"Authorization": f"Bearer {key}"}


def expect(response: httpx.Response, *statuses: int) -> Any:
    """The JSON of `response` (its text when it is not JSON, None when empty), after
    checking its status (the message includes the body)."""
    assert response.status_code in statuses, (
        f"{response.request.method} {response.request.url} -> {response.status_code}, "
        f"expected {statuses}: {response.text[:2000]}"
    )
    if not response.content:
        return None
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return response.text


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


class Api:
    """The orderhooks API as the tests call it. Requests carry the admin key unless told
    otherwise; the helpers check the status of every answer."""

    def __init__(self, client: httpx.AsyncClient, admin_key: str) -> None:
        self.client = client
        self.admin_key = admin_key
        self.key_ids: dict[str, str] = {}  # plaintext -> id, of the keys made by make_key

    async def call(
        self,
        method: str,
        path: str,
        key: str | None = "admin",
        json_body: Any = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """A request with `key` (a plaintext, or "admin" for the admin key, or None)."""
        plaintext = self.admin_key if key == "admin" else key
        headers = {**bearer(plaintext), **kwargs.pop("headers", {})}
        if json_body is not None:
            kwargs["json"] = json_body
        return await self.client.request(method, path, headers=headers, **kwargs)

    # ------------------------------------------------------------ keys and agreements

    async def make_key(self, role: str, accounts: Iterable[str] = ()) -> str:
        """A new key made through `POST /v1/keys`; returns its plaintext."""
        body = {"role": role, "accounts": list(accounts), "name": unique("key")}
        response = await self.call("POST", "/v1/keys", json_body=body)
        assert response.status_code == 201, response.text
        self.key_ids[response.json()["key"]] = response.json()["id"]
        return str(response.json()["key"])

    async def agree(self, account: str) -> None:
        """Record an agreement for `account`."""
        body = {"signedBy": "Ops", "signedAt": "2026-11-01T09:00:00Z", "pricing": PRICING}
        response = await self.call("PUT", f"/v1/accounts/{account}/agreement", json_body=body)
        assert response.status_code == 200, response.text

    # ------------------------------------------------------------ webhooks

    async def make_webhook(
        self, account: str, key: str | None = "admin", **fields: Any
    ) -> dict[str, Any]:
        """A webhook on `account` for every type, to a receiver that is never called; its
        JSON."""
        body = {
            "url": "https://receiver.example.com/hook",
            "accounts": [account],
            "eventTypes": ALL_TYPES,
            **fields,
        }
        response = await self.call("POST", "/v1/webhooks", key, json_body=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def create_webhook(
        self, url: str, accounts: list[str], *, expect_status: int = 201, **fields: Any
    ) -> dict[str, Any]:
        """Create a webhook for all event types unless `eventTypes` is given."""
        body = {"url": url, "accounts": accounts, "eventTypes": ALL_TYPES, **fields}
        webhook: dict[str, Any] = expect(
            await self.call("POST", "/v1/webhooks", json_body=body), expect_status
        )
        return webhook

    async def webhook(self, webhook_id: str) -> dict[str, Any]:
        """GET one webhook."""
        result: dict[str, Any] = expect(await self.call("GET", f"/v1/webhooks/{webhook_id}"), 200)
        return result

    # ------------------------------------------------------------ ingest

    async def post_order(self, account: str, **overrides: Any) -> dict[str, Any]:
        """Ingest a new order of `account`; the answer's JSON."""
        response = await self.call("POST", "/v1/orders", json_body=new_order(account, **overrides))
        assert response.status_code == 202, response.text
        return dict(response.json())

    async def new_order(self, order: dict[str, Any]) -> list[str]:
        """POST an order; its event ids (202)."""
        body = expect(await self.call("POST", "/v1/orders", json_body=order), 202)
        assert body["orderId"] == order["_id"]
        return list(body["eventIds"])

    async def new_orders(self, account: str, count: int) -> list[str]:
        """POST `count` new orders of `account`, one after the other; their event ids."""
        ids: list[str] = []
        for _ in range(count):
            ids += await self.new_order(new_order(account))
        return ids

    async def status(self, order_id: str, status: int, **extra: Any) -> list[str]:
        """POST a status update; its event ids (202)."""
        body = {"status": status, "timeStamp": iso_now(), **extra}
        path = f"/v1/orders/{order_id}/status"
        return list(expect(await self.call("POST", path, json_body=body), 202)["eventIds"])

    async def courier(self, order_id: str, status: int = 83) -> list[str]:
        """POST a courier update; its event ids (202)."""
        path = f"/v1/orders/{order_id}/courier"
        response = await self.call("POST", path, json_body=courier_body(status))
        return list(expect(response, 202)["eventIds"])

    # ------------------------------------------------------------ reads

    async def list_all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a list endpoint, following `nextCursor`."""
        items: list[dict[str, Any]] = []
        query = {"limit": 500, **params}
        while True:
            page = expect(await self.call("GET", path, params=query), 200)
            items.extend(page["data"])
            if not page.get("nextCursor"):
                return items
            query["cursor"] = page["nextCursor"]

    async def deliveries(self, webhook_id: str, **params: Any) -> list[dict[str, Any]]:
        """All deliveries of a webhook."""
        return await self.list_all("/v1/deliveries", webhookId=webhook_id, **params)

    async def delivery(self, delivery_id: str) -> dict[str, Any]:
        """One delivery with its event and attempts."""
        response = await self.call("GET", f"/v1/deliveries/{delivery_id}")
        result: dict[str, Any] = expect(response, 200)
        return result

    async def usage(self, account: str, **params: Any) -> list[dict[str, Any]]:
        """The usage rows of an account (JSON)."""
        response = await self.call("GET", "/v1/usage", params={"account": account, **params})
        return list(expect(response, 200)["data"])

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


@contextlib.asynccontextmanager
async def admin_api(server: ServerProcess) -> AsyncIterator[Api]:
    """The API of a running server process as its admin calls it; the client is closed
    on leaving."""
    async with server.async_client() as client:
        yield Api(client, server.admin_key)
