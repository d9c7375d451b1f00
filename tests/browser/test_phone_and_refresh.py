"""Reading on a phone, reading without JavaScript, and the auto-refresh that JavaScript adds."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page
from playwright.sync_api import Error as PlaywrightError

from tests.browser.conftest import World
from tests.browser.helpers import PHONE, deliveries_of, shoot, sign_in, wait_until
from tests.support.data import unique

pytestmark = pytest.mark.browser

PAGES = ("", "/webhooks", "/deliveries", "/orders", "/usage")


def _horizontal_overflow(page: Page) -> int:
    overflow: int = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return overflow


def test_pages_fit_a_phone_screen(world: World, browser: Browser) -> None:
    """At 390 px wide no page scrolls sideways (wide tables scroll inside their box or
    turn into cards)."""
    context = browser.new_context(viewport=PHONE, is_mobile=True)  # type: ignore[arg-type]
    page = context.new_page()
    sign_in(page, world.base_url, world.admin_key)
    paths = [
        *PAGES,
        f"/webhooks/{world.hook_a['id']}",
        f"/orders/{world.order_a}",
        f"/deliveries/{deliveries_of(world.api, world.hook_a['id'])[0]['id']}",
    ]
    for index, path in enumerate(paths):
        page.goto(f"{world.base_url}/ui{path}")
        assert _horizontal_overflow(page) <= 0, path
        shoot(page, f"20-phone-{index:02d}{path.replace('/', '-')[:40]}")
    context.close()


def test_every_page_reads_without_javascript(world: World, browser: Browser) -> None:
    """Sign-in and reading work with JavaScript off; the refresh switch stays hidden."""
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    sign_in(page, world.base_url, world.admin_key)
    assert not page.get_by_label("Auto-refresh").is_visible()
    for path in (*PAGES, f"/webhooks/{world.hook_a['id']}", f"/orders/{world.order_a}"):
        response = page.goto(f"{world.base_url}/ui{path}")
        assert response is not None and response.status == 200, path
        assert page.locator("svg.chart").count() in (0, 2), path
    context.close()


def test_auto_refresh_brings_new_deliveries_in(world: World, page: Page) -> None:
    """With JavaScript, the live parts of a page refresh on their own."""
    account = unique("acct-live")
    webhook = world.create_webhook(account, description="Live")
    page.clock.install()
    sign_in(page, world.base_url, world.admin_key)
    page.goto(f"{world.base_url}/ui/deliveries?webhook={webhook['id']}")
    assert page.get_by_label("Auto-refresh").is_checked()
    assert page.get_by_text("No deliveries.").is_visible()
    world.new_order(account)
    (delivery,) = world.settled(webhook["id"], 1)

    def refreshed() -> bool:
        page.clock.run_for(16_000)
        return page.get_by_role("link", name=delivery["id"]).count() == 1

    wait_until(refreshed, "the new delivery to appear without reloading")
    assert page.url.endswith(f"?webhook={webhook['id']}")


def test_auto_refresh_leads_to_sign_in_once_the_session_ends(world: World, page: Page) -> None:
    """When the session behind an auto-refreshing page ends (here its key is revoked),
    the next refresh leads to the sign-in page, which then leads back to the page; the
    page kept showing its last figures as if they were live, for ever."""
    created = world.api.post(
        "/v1/keys", json={"role": "partner", "accounts": [world.account_a], "name": "Wall"}
    )
    assert created.status_code == 201
    page.clock.install()
    sign_in(page, world.base_url, created.json()["key"])
    page.goto(f"{world.base_url}/ui/webhooks")
    assert page.get_by_label("Auto-refresh").is_checked()
    assert world.api.delete(f"/v1/keys/{created.json()['id']}").status_code == 204

    def on_sign_in_page() -> bool:
        # The reload may be navigating while the clock runs or the page is read: then
        # the page's context is gone for a moment, and the next look tells.
        try:
            page.clock.run_for(16_000)
            return page.get_by_label("API key").count() == 1
        except PlaywrightError:
            return False

    wait_until(on_sign_in_page, "the sign-in page after the session ended")
    assert page.url == f"{world.base_url}/ui?next=%2Fui%2Fwebhooks"
