"""Every dashboard page, read by an admin in a real browser, checked against the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from orderhooks.testing.server import ServerProcess
from tests.browser.conftest import SERVER_ENV, World
from tests.browser.helpers import (
    deliveries_of,
    labelled_controls_missing,
    shoot,
    sign_in,
    wait_until,
)
from tests.support.api import expect
from tests.support.data import PER_THOUSAND, new_order, unique

pytestmark = pytest.mark.browser


def _check_page(page: Page, name: str) -> None:
    """What every page owes its readers: labelled controls, no console errors, a screenshot."""
    assert labelled_controls_missing(page) == [], name
    shoot(page, name)


def test_overview_shows_activity_queue_and_failures(world: World, page: Page) -> None:
    """Overview: rates of the last hour, queue depth, charts with accessible names."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, world.base_url, world.admin_key)
    assert page.get_by_text("Deliveries per minute").is_visible()
    assert page.get_by_text("Queue depth").is_visible()
    outcomes = page.get_by_role("img", name="Attempt outcomes, last hour, per minute")
    assert outcomes.is_visible()
    assert page.get_by_role("img", name="Attempt latency percentiles, last hour, per minute")
    # At least the seeded deliveries were attempted within the hour: bars were drawn.
    assert outcomes.locator("rect.series-ok").count() >= 1
    _check_page(page, "03-overview")
    assert errors == []


def test_overview_names_a_failing_webhook_beyond_the_first_hundred(
    tmp_path: Path, page: Page
) -> None:
    """The overview's webhooks that need attention are found among every webhook: with
    more than 100 (the cap is per account), a failing one created last is named, and the
    overview does not say that every webhook is healthy."""
    with ServerProcess(tmp_path / "data", env=SERVER_ENV) as server, server.client() as api:
        quiet = unique("acct-quiet")
        for number in range(100):
            url = f"http://127.0.0.1:9/{number}"
            body = {"url": url, "accounts": [quiet], "eventTypes": ["order.new"]}
            expect(api.post("/v1/webhooks", json=body), 201)
        loud = unique("acct-loud")
        body = {
            "url": "http://127.0.0.1:9/down",
            "accounts": [loud],
            "eventTypes": ["order.new"],
            "description": "Endpoint that is down",
        }
        failing = expect(api.post("/v1/webhooks", json=body), 201)
        expect(api.post("/v1/orders", json=new_order(loud)), 202)

        def failed_once() -> bool:
            stats = expect(api.get(f"/v1/webhooks/{failing['id']}/stats"), 200)
            return stats["lastFailureAt"] is not None

        wait_until(failed_once, "the failing webhook's first failed attempt")
        sign_in(page, server.base_url, server.admin_key)
        attention = page.get_by_role("table", name="Webhooks in trouble, worst first")
        assert attention.get_by_role("link", name="Endpoint that is down").is_visible()
        assert page.get_by_text("Every webhook is healthy").count() == 0


def test_webhooks_list_and_detail(world: World, page: Page) -> None:
    """The list shows health; the detail shows configuration, charts and deliveries."""
    sign_in(page, world.base_url, world.admin_key)
    page.get_by_role("link", name="Webhooks", exact=True).click()
    row = page.get_by_role("row").filter(has_text="Kitchen display A")
    assert row.get_by_text("Healthy").is_visible()
    assert page.get_by_role("row").filter(has_text="BI platform B").count() == 1
    _check_page(page, "04-webhooks")

    row.get_by_role("link", name="Kitchen display A").click()
    hook = world.hook_a
    page.wait_for_url(f"{world.base_url}/ui/webhooks/{hook['id']}")
    config = page.locator("dl.config")
    assert hook["url"] in config.inner_text()
    assert world.account_a in config.inner_text()
    table = page.get_by_role("table", name="Deliveries to this webhook, newest first")
    api_deliveries = deliveries_of(world.api, hook["id"])
    for delivery in api_deliveries[:7]:
        assert table.get_by_role("link", name=delivery["id"]).is_visible()
    _check_page(page, "05-webhook")

    page.get_by_role("link", name="last 7 days, per 6 hours").click()
    assert page.get_by_role("img", name="Attempt outcomes, last 7 days, per 6 hours").is_visible()
    page.get_by_role("link", name="delivered", exact=True).click()
    assert "state=delivered" in page.url


def test_webhook_page_shows_how_a_webhook_batches(world: World, page: Page) -> None:
    """The configuration is whole: a batched webhook shows its batch settings (they
    decide what a receiver gets per request), an unbatched one says so."""
    batched = world.create_webhook(
        unique("acct-batch"), description="Batched BI", batch={"maxEvents": 50, "maxWaitMs": 2000}
    )
    sign_in(page, world.base_url, world.admin_key)
    page.goto(f"{world.base_url}/ui/webhooks/{batched['id']}")
    config = page.locator("dl.config").inner_text()
    assert "Batching\nup to 50 events per request, sent once the oldest has waited 2,000 ms" in (
        config
    )
    page.goto(f"{world.base_url}/ui/webhooks/{world.hook_a['id']}")
    assert "Batching\nnone: one event per request" in page.locator("dl.config").inner_text()


def test_delivery_page_shows_the_exact_bytes_the_receiver_got(world: World, page: Page) -> None:
    """Delivery: the payload is byte for byte what was posted; attempts are listed."""
    delivery: dict[str, Any] = deliveries_of(world.api, world.hook_a["id"])[0]
    received = [r for r in world.receiver.requests if r.delivery_id == delivery["id"]]
    assert received, "the receiver got the delivery"
    sign_in(page, world.base_url, world.admin_key)
    page.goto(f"{world.base_url}/ui/deliveries/{delivery['id']}")
    assert page.locator("#payload-exact").inner_text() == received[-1].body.decode()
    attempts = page.get_by_role("table", name="Every attempt, oldest first")
    assert attempts.get_by_role("row").count() == 1 + delivery["attemptCount"]
    assert attempts.get_by_text("200").first.is_visible()
    assert page.get_by_role("button", name="Retry now").count() == 0  # delivered: no retry
    _check_page(page, "06-delivery")

    page.get_by_role("link", name="Deliveries", exact=True).first.click()
    page.get_by_label("Webhook id", exact=True).fill(world.hook_a["id"])
    page.get_by_label("State", exact=True).select_option("delivered")
    page.get_by_role("button", name="Filter").click()
    assert page.get_by_role("link", name=delivery["id"]).is_visible()
    _check_page(page, "07-deliveries")


def test_order_page_shows_timeline_courier_and_who_got_what(world: World, page: Page) -> None:
    """Order: statuses with the time between them, milestones, courier, deliveries."""
    sign_in(page, world.base_url, world.admin_key)
    page.get_by_role("link", name="Orders", exact=True).click()
    _check_page(page, "08-orders")
    page.get_by_label("Order id", exact=True).fill(world.order_a)
    page.get_by_role("button", name="Open order").click()
    page.wait_for_url(f"{world.base_url}/ui/orders/{world.order_a}")

    spans = page.locator("ol.spans").inner_text()
    assert "Received → accepted\n1 min" in spans
    assert "Accepted → prepared\n12 min" in spans
    assert "Prepared → picked up\n8 min" in spans
    assert "Picked up → delivered\n19 min" in spans
    timeline = page.get_by_role("region", name="Status timeline").inner_text()
    for label in ("New (10)", "Accepted (20)", "Prepared (60)", "In delivery (80)"):
        assert label in timeline
    assert "+12 min" in timeline
    courier = page.get_by_role("region", name="Courier").inner_text()
    assert "En route to pickup (83)" in courier
    assert "En route to dropoff (87)" in courier
    assert "+6 min" in courier

    events = page.get_by_role(
        "table", name="Each event of the order and its delivery to each webhook"
    )
    assert events.get_by_role("row").count() == 1 + 7
    view = expect(world.api.get(f"/v1/orders/{world.order_a}"), 200)
    for event in view["events"]:
        assert event["id"] in events.inner_text()
    for delivery in deliveries_of(world.api, world.hook_a["id"]):
        assert events.get_by_role("link", name=f"Delivery {delivery['id']}").is_visible()
    _check_page(page, "09-order")


def test_usage_page_matches_the_api_and_prices_by_agreement(world: World, page: Page) -> None:
    """Usage: the units and charges of the API, per account and month."""

    def usage_rows() -> list[dict[str, Any]] | None:
        rows = expect(world.api.get("/v1/usage", params={"account": world.account_a}), 200)
        delivered = sum(r["delivered"] for r in rows["data"])
        return rows["data"] if delivered >= 7 else None

    rows = wait_until(usage_rows, "usage of the seeded order")
    sign_in(page, world.base_url, world.admin_key)
    page.get_by_role("link", name="Usage", exact=True).click()
    page.get_by_label("Account", exact=True).fill(world.account_a)
    page.get_by_role("button", name="Show").click()
    table = page.get_by_role("table", name="Units delivered").first
    for row in rows:
        line = table.get_by_role("row").filter(has_text=row["eventType"])
        cells = line.get_by_role("cell").all_inner_texts()
        assert cells[0] == world.account_a
        assert cells[3] == f"{row['delivered']:,}"
        price = PER_THOUSAND[row["eventType"]]
        assert cells[5] == f"{price // 100}.{price % 100:02d} EUR"
        assert cells[6] == f"{row['charge'] // 100}.{row['charge'] % 100:02d} EUR"
    _check_page(page, "10-usage")
