"""Signing in and out of the dashboard in a real browser."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page

from orderhooks.testing.server import ServerProcess
from tests.browser.conftest import World
from tests.browser.helpers import labelled_controls_missing, shoot, sign_in

pytestmark = pytest.mark.browser

SESSION_COOKIE = "orderhooks_session"


def test_ui_without_session_is_the_sign_in_page(world: World) -> None:
    """GET /ui without a session answers 200 with the sign-in form (docs/api.md)."""
    response = httpx.get(f"{world.base_url}/ui")
    assert response.status_code == 200
    assert 'name="api_key"' in response.text
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_sign_in_refuses_bad_keys_then_signs_in_and_out(
    world: World, page: Page, context: BrowserContext
) -> None:
    """A wrong key and an ingest key are refused; an admin key gets a session cookie that
    does not contain the key; signing out ends the session."""
    page.goto(f"{world.base_url}/ui")
    assert labelled_controls_missing(page) == []
    shoot(page, "01-sign-in")

    page.get_by_label("API key").fill("ohk_not_a_real_key")
    with page.expect_response(f"{world.base_url}/ui/signin") as refused:
        page.get_by_role("button", name="Sign in").click()
    assert refused.value.status == 401
    assert page.get_by_role("alert").inner_text().startswith("That key was not recognised")
    shoot(page, "02-sign-in-refused")

    page.get_by_label("API key").fill(world.ingest_key)
    with page.expect_response(f"{world.base_url}/ui/signin") as ingest:
        page.get_by_role("button", name="Sign in").click()
    assert ingest.value.status == 403
    assert "ingest key cannot open the dashboard" in page.get_by_role("alert").inner_text()
    assert not [c for c in context.cookies() if c["name"] == SESSION_COOKIE]

    sign_in(page, world.base_url, world.admin_key)
    (cookie,) = [c for c in context.cookies() if c["name"] == SESSION_COOKIE]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui"
    assert world.admin_key not in cookie["value"]
    # The cookie is a signed token naming the key's id, never the key itself.
    assert cookie["value"].startswith("v1.key_")
    assert page.evaluate("document.cookie") == ""  # HttpOnly: invisible to scripts

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{world.base_url}/ui")
    assert page.get_by_label("API key").is_visible()
    assert not [c for c in context.cookies() if c["name"] == SESSION_COOKIE]

    # The old token is dead even if someone kept a copy of it.
    stolen = httpx.get(
        f"{world.base_url}/ui/webhooks",
        cookies={SESSION_COOKIE: cookie["value"]},
        follow_redirects=False,
    )
    assert stolen.status_code == 303
    assert stolen.headers["location"].startswith("/ui?next=")


def test_a_page_without_session_leads_back_to_it_after_sign_in(world: World, page: Page) -> None:
    """Deep links survive the sign-in detour."""
    target = f"{world.base_url}/ui/webhooks/{world.hook_a['id']}"
    page.goto(target)
    assert page.get_by_label("API key").is_visible()
    page.get_by_label("API key").fill(world.admin_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(target)
    assert page.get_by_role("heading", name="Kitchen display A", level=1).is_visible()


def test_revoking_the_key_ends_its_sessions(world: World, page: Page) -> None:
    """The key behind a session is checked again on every request."""
    created = world.api.post(
        "/v1/keys", json={"role": "partner", "accounts": [world.account_a], "name": "Temp"}
    )
    assert created.status_code == 201
    sign_in(page, world.base_url, created.json()["key"])
    assert world.api.delete(f"/v1/keys/{created.json()['id']}").status_code == 204
    page.goto(f"{world.base_url}/ui/webhooks")
    assert page.get_by_label("API key").is_visible()


def test_a_long_admin_key_signs_in_as_it_authenticates_the_api(tmp_path: Path, page: Page) -> None:
    """ORDERHOOKS_ADMIN_KEY is any non-empty string, used verbatim: one longer than 512
    characters (a generated secret of 1,024) opens the API, so it opens the dashboard."""
    long_key = "ohk_" + "k7" * 510
    with ServerProcess(tmp_path / "data", admin_key=long_key) as server:
        assert httpx.get(f"{server.base_url}/v1/keys", headers=server.headers()).status_code == 200
        page.goto(f"{server.base_url}/ui")
        page.get_by_label("API key").fill(long_key)
        with page.expect_response(f"{server.base_url}/ui/signin") as answer:
            page.get_by_role("button", name="Sign in").click()
        assert answer.value.status == 303
        page.wait_for_url(f"{server.base_url}/ui")
        assert page.get_by_role("heading", name="Overview", level=1).is_visible()
