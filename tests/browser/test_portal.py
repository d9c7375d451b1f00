"""Portal links in a real Chromium against the real server: the link signs the browser in
with a view of exactly its accounts, works once, and its session ends when the link
expires. And the Event types page.

Expiry is not waited for (links live at least 60 s): the test ends the link early through
a `Store` on the server's own database, which is what the server reads on every request.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from orderhooks.config import Settings
from orderhooks.domain.model import Scope
from orderhooks.domain.portal import hash_portal_token
from orderhooks.store import open_store
from tests.browser.conftest import World
from tests.browser.helpers import DESKTOP, deliveries_of, shoot, sign_in
from tests.support.api import expect
from tests.support.data import EVENT_TYPES

pytestmark = pytest.mark.browser


def _portal_link(world: World, accounts: list[str], **more: Any) -> str:
    body = {"accounts": accounts, **more}
    url: str = expect(world.api.post("/v1/portal-links", json=body), 201)["url"]
    assert url.startswith(f"{world.base_url}/ui/portal/ohp_")
    return url


def _end_link_now(world: World, url: str) -> None:
    """End the link (and its session) now, in the server's database."""

    async def end() -> None:
        store = open_store(Settings(data_dir=world.server.data_dir))
        await store.open()
        try:
            link = await store.portal_link_by_token(hash_portal_token(url.rsplit("/", 1)[1]))
            assert link is not None
            await store.expire_portal_link(link.id, datetime.now(UTC), Scope())
        finally:
            await store.close()

    # Playwright's sync API keeps an event loop in this thread: run the store in another.
    with ThreadPoolExecutor(max_workers=1) as apart:
        apart.submit(asyncio.run, end()).result()


def _open_link(page: Page, world: World, url: str) -> None:
    """Open the link as a partner would: its page submits itself and lands on the overview."""
    page.goto(url)
    page.wait_for_url(f"{world.base_url}/ui")
    assert page.get_by_role("heading", name="Overview", level=1).is_visible()


def test_a_link_shows_only_its_accounts_and_works_once(world: World, browser: Browser) -> None:
    url = _portal_link(world, [world.account_a])
    first = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    page = first.new_page()
    _open_link(page, world, url)
    assert "Portal link" in page.locator(".who").inner_text()
    assert "/ui/portal" not in page.url  # the token does not stay in the address bar
    shoot(page, "30-portal-overview")

    page.get_by_role("link", name="Webhooks", exact=True).click()
    listed = page.get_by_role("table").inner_text()
    assert "Kitchen display A" in listed and "BI platform B" not in listed
    page.goto(f"{world.base_url}/ui/deliveries")
    shown = set(re.findall(r"dlv_[0-9A-Z]{26}", page.get_by_role("table").inner_text()))
    of_a = {d["id"] for d in deliveries_of(world.api, world.hook_a["id"])}
    of_b = {d["id"] for d in deliveries_of(world.api, world.hook_b["id"])}
    assert shown and shown <= of_a and not shown & of_b
    for path in (f"/ui/webhooks/{world.hook_b['id']}", f"/ui/orders/{world.order_b}"):
        response = page.goto(world.base_url + path)
        assert response is not None and response.status == 404, path
    shoot(page, "31-portal-deliveries")

    # The same link in another browser: refused, and that browser has no session.
    second = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    other = second.new_page()
    response = other.goto(url)
    assert response is not None and response.status == 410
    assert "already used" in other.get_by_role("alert").inner_text()
    shoot(other, "32-portal-link-used")
    other.goto(f"{world.base_url}/ui")
    assert other.get_by_role("heading", name="Sign in to orderhooks").is_visible()
    # ... nor again in the first one, which keeps its session.
    response = page.goto(url)
    assert response is not None and response.status == 410
    page.goto(f"{world.base_url}/ui")
    assert page.get_by_role("heading", name="Overview", level=1).is_visible()
    second.close()
    first.close()


def test_expiry_ends_the_session(world: World, page: Page) -> None:
    url = _portal_link(world, [world.account_a], expiresInSeconds=60)
    _open_link(page, world, url)
    _end_link_now(world, url)
    page.reload()
    assert page.get_by_role("heading", name="Sign in to orderhooks").is_visible()
    response = page.goto(f"{world.base_url}/ui/webhooks/{world.hook_a['id']}")
    assert response is not None
    assert page.get_by_role("heading", name="Sign in to orderhooks").is_visible()


def test_an_expired_or_unknown_link_signs_nobody_in(world: World, page: Page) -> None:
    url = _portal_link(world, [world.account_a])
    _end_link_now(world, url)
    response = page.goto(url)
    assert response is not None and response.status == 410
    assert "expired" in page.get_by_role("alert").inner_text()
    response = page.goto(f"{world.base_url}/ui/portal/ohp_{'A' * 43}")
    assert response is not None and response.status == 404
    page.goto(f"{world.base_url}/ui")
    assert page.get_by_role("heading", name="Sign in to orderhooks").is_visible()


def test_the_event_types_page_lists_every_type_with_its_schema(world: World, page: Page) -> None:
    sign_in(page, world.base_url, world.partner_key)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Event types").click()
    page.wait_for_url(f"{world.base_url}/ui/event-types")
    assert page.get_by_role("heading", name="Event types", level=1).is_visible()
    for event_type in EVENT_TYPES:
        section = page.locator(f'section[id="type-{event_type}"]')
        assert section.get_by_role("heading", level=2).inner_text() == event_type
        schema = section.locator("pre.schema").inner_text()
        assert '"$schema": "https://json-schema.org/draft/2020-12/schema"' in schema
        assert f'"const": "{event_type}"' in schema
    assert "batch" in page.locator("section#type-batch h2").inner_text()
    shoot(page, "33-event-types")
