"""What a partner may see, and forms that did not come from the dashboard."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page

from tests.browser.conftest import World
from tests.browser.helpers import deliveries_of, shoot, sign_in
from tests.support.api import expect
from tests.support.data import unique

pytestmark = pytest.mark.browser


def test_partner_sees_only_its_accounts(world: World, page: Page) -> None:
    """A partner key sees its account's webhooks, deliveries, orders and usage, and gets a
    404 page for anything of another account, as the API answers."""
    sign_in(page, world.base_url, world.partner_key)
    assert page.get_by_text("Partner A").is_visible()
    page.get_by_role("link", name="Webhooks", exact=True).click()
    listed = page.get_by_role("table").inner_text()
    assert "Kitchen display A" in listed
    assert "BI platform B" not in listed
    shoot(page, "16-partner-webhooks")

    delivery_b = deliveries_of(world.api, world.hook_b["id"])[0]
    for path in (
        f"/ui/webhooks/{world.hook_b['id']}",
        f"/ui/deliveries/{delivery_b['id']}",
        f"/ui/orders/{world.order_b}",
    ):
        response = page.goto(world.base_url + path)
        assert response is not None and response.status == 404, path
        assert "nothing this key may see" in page.get_by_role("alert").inner_text()
    partner_api = world.server.client(world.partner_key)
    assert partner_api.get(f"/v1/webhooks/{world.hook_b['id']}").status_code == 404

    page.goto(f"{world.base_url}/ui/deliveries")
    shown = set(re.findall(r"dlv_[0-9A-Z]{26}", page.get_by_role("table").inner_text()))
    assert delivery_b["id"] not in shown
    visible_to_partner = expect(partner_api.get("/v1/deliveries", params={"limit": 500}), 200)
    assert shown
    assert shown <= {d["id"] for d in visible_to_partner["data"]}

    response = page.goto(f"{world.base_url}/ui/orders/{world.order_a}")
    assert response is not None and response.status == 200
    page.goto(f"{world.base_url}/ui/usage?account={world.account_b}")
    usage = page.get_by_role("table").inner_text()
    assert world.account_b not in usage
    assert page.get_by_label("Account", exact=True).locator("option").all_inner_texts() == [
        "all mine",
        world.account_a,
    ]
    shoot(page, "17-partner-usage")
    partner_api.close()


def _csrf_token(page: Page) -> str:
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    return token


def test_forms_without_the_csrf_token_are_refused(world: World, page: Page) -> None:
    """A POST without the session's CSRF token, or from another origin, changes nothing."""
    webhook = world.create_webhook(unique("acct-csrf"), description="Guarded")
    sign_in(page, world.base_url, world.admin_key)
    page.goto(f"{world.base_url}/ui/webhooks/{webhook['id']}")
    token = _csrf_token(page)
    url = f"{world.base_url}/ui/webhooks/{webhook['id']}/disable"

    # The browser's own cookies go along: only the token is missing or wrong.
    assert page.request.post(url, form={}).status == 403
    assert page.request.post(url, form={"csrf_token": "forged"}).status == 403
    foreign = page.request.post(
        url, form={"csrf_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status == 403
    assert expect(world.api.get(f"/v1/webhooks/{webhook['id']}"), 200)["state"] == "active"

    # With the token, from the page's own origin, the same request works.
    allowed = page.request.post(url, form={"csrf_token": token}, max_redirects=0)
    assert allowed.status == 303
    assert expect(world.api.get(f"/v1/webhooks/{webhook['id']}"), 200)["state"] == "disabled"


def test_a_token_of_another_session_is_refused(
    world: World, page: Page, context: BrowserContext
) -> None:
    """CSRF tokens are per session: one signed-in user's token is useless in another's."""
    webhook = world.create_webhook(unique("acct-csrf2"), description="Guarded too")
    sign_in(page, world.base_url, world.admin_key)
    page.goto(f"{world.base_url}/ui/webhooks/{webhook['id']}")
    other = context.browser.new_context() if context.browser else None
    assert other is not None
    other_page = other.new_page()
    sign_in(other_page, world.base_url, world.admin_key)
    other_page.goto(f"{world.base_url}/ui/webhooks/{webhook['id']}")
    foreign_token = _csrf_token(other_page)
    other.close()
    assert _csrf_token(page) != foreign_token
    url = f"{world.base_url}/ui/webhooks/{webhook['id']}/disable"
    assert page.request.post(url, form={"csrf_token": foreign_token}).status == 403
    assert expect(world.api.get(f"/v1/webhooks/{webhook['id']}"), 200)["state"] == "active"


def test_sign_in_form_needs_its_own_token(world: World) -> None:
    """A sign-in posted from elsewhere (no nonce cookie, no form token) starts no session."""
    response = httpx.post(
        f"{world.base_url}/ui/signin",
        data={"api_key": world.admin_key, "next": "/ui"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "orderhooks_session" not in response.headers.get("set-cookie", "")
