"""Fixtures of the browser tests: one real server, one receiver and one Chromium for the
whole run, and a small world of accounts, keys, webhooks and orders made through the API.

Tests that change things (actions, CSRF) use webhooks and accounts of their own, so the
order in which tests run does not matter.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.browser.helpers import DESKTOP, deliveries_of, launch, wait_until
from tests.support.api import expect
from tests.support.data import ALL_TYPES, PRICING, courier_body, new_order, stamp, unique

SERVER_ENV = {
    # Deliveries fail for good after one failed attempt unless a webhook says otherwise,
    # so that recover and retry-now have failed deliveries to work on without waiting.
    "ORDERHOOKS_RETRY_SCHEDULE": "1",
    "ORDERHOOKS_RETRY_JITTER": "0",
    "ORDERHOOKS_DELIVERY_TIMEOUT": "2",
    "ORDERHOOKS_REQUIRE_AGREEMENT": "false",
    "ORDERHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
}


def order_body(account: str, order_id: str, placed: datetime) -> dict[str, Any]:
    """A valid new order (status 10) placed at `placed`, in Gent."""
    history = [{"timeStamp": stamp(placed), "status": 10, "response": "", "source": 1}]
    return new_order(account, order_id, location="loc-gent", statusHistory=history)


@dataclass
class World:
    """What the API was told before the browser opened."""

    server: ServerProcess
    api: httpx.Client
    receiver: Receiver
    partner_key: str
    ingest_key: str
    account_a: str
    account_b: str
    hook_a: dict[str, Any]
    hook_b: dict[str, Any]
    order_a: str
    order_b: str
    placed: datetime

    @property
    def base_url(self) -> str:
        """The server's base URL."""
        return self.server.base_url

    @property
    def admin_key(self) -> str:
        """The admin key the server was started with."""
        return self.server.admin_key

    def create_webhook(self, account: str, **fields: Any) -> dict[str, Any]:
        """A webhook on the receiver for `account` (all event types unless told)."""
        body = {
            "url": self.receiver.url_for(f"/{account}"),
            "accounts": [account],
            "eventTypes": ALL_TYPES,
            **fields,
        }
        result: dict[str, Any] = expect(self.api.post("/v1/webhooks", json=body), 201)
        return result

    def new_order(self, account: str, placed: datetime | None = None) -> str:
        """Ingest a new order; its id."""
        order_id = uuid.uuid4().hex[:24]
        body = order_body(account, order_id, placed or datetime.now(UTC))
        expect(self.api.post("/v1/orders", json=body), 202)
        return order_id

    def settled(self, webhook_id: str, count: int) -> list[dict[str, Any]]:
        """Wait until the webhook has `count` deliveries, none pending or in flight."""

        def check() -> list[dict[str, Any]] | None:
            found = deliveries_of(self.api, webhook_id)
            busy = [d for d in found if d["state"] in ("pending", "delivering")]
            return found if len(found) >= count and not busy else None

        return wait_until(check, f"{count} settled deliveries of {webhook_id}")


def _seed_order_a(api: httpx.Client, account: str, placed: datetime) -> str:
    """An order that went the whole way: accepted, prepared, picked up, delivered."""
    order_id = uuid.uuid4().hex[:24]
    expect(api.post("/v1/orders", json=order_body(account, order_id, placed)), 202)
    steps: list[tuple[str, dict[str, Any]]] = [
        ("status", {"status": 20, "timeStamp": stamp(placed + timedelta(minutes=1))}),
        ("status", {"status": 60, "timeStamp": stamp(placed + timedelta(minutes=13))}),
        ("courier", courier_body(83, stamp(placed + timedelta(minutes=15)))),
        ("status", {"status": 80, "timeStamp": stamp(placed + timedelta(minutes=21))}),
        ("courier", courier_body(87, stamp(placed + timedelta(minutes=21)))),
        ("status", {"status": 90, "timeStamp": stamp(placed + timedelta(minutes=40))}),
    ]
    for kind, body in steps:
        expect(api.post(f"/v1/orders/{order_id}/{kind}", json=body), 202)
    return order_id


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The server, the receiver and the data every browser test reads."""
    base: Path = tmp_path_factory.mktemp("browser")
    with (
        ServerProcess(base / "data", log_path=base / "server.log", env=SERVER_ENV) as server,
        Receiver() as receiver,
        server.client() as api,
    ):
        account_a, account_b = unique("acct-a"), unique("acct-b")
        partner = expect(
            api.post(
                "/v1/keys", json={"role": "partner", "accounts": [account_a], "name": "Partner A"}
            ),
            201,
        )
        ingest = expect(api.post("/v1/keys", json={"role": "ingest", "name": "POS"}), 201)
        agreement = {
            "signedBy": "Ana Silva",
            "signedAt": stamp(datetime.now(UTC)),
            "pricing": PRICING,
        }
        expect(api.put(f"/v1/accounts/{account_a}/agreement", json=agreement), 200)
        placed = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        world = World(
            server=server,
            api=api,
            receiver=receiver,
            partner_key=partner["key"],
            ingest_key=ingest["key"],
            account_a=account_a,
            account_b=account_b,
            hook_a={},
            hook_b={},
            order_a="",
            order_b="",
            placed=placed,
        )
        world.hook_a = world.create_webhook(account_a, description="Kitchen display A")
        world.hook_b = world.create_webhook(account_b, description="BI platform B")
        world.order_a = _seed_order_a(api, account_a, placed)
        world.order_b = world.new_order(account_b)
        world.settled(world.hook_a["id"], 7)
        world.settled(world.hook_b["id"], 1)
        yield world


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the whole run."""
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture()
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) for one test."""
    ctx = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    yield ctx
    ctx.close()


@pytest.fixture()
def page(context: BrowserContext) -> Page:
    """A tab of the test's own profile."""
    return context.new_page()
