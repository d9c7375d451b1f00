"""Portal links on the real app and a real SQLite store: `POST /v1/portal-links` (its
answer, who may ask for which accounts, what is refused), and opening the link in the
dashboard: once, for exactly those accounts, until it expires."""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from orderhooks.domain.model import Scope
from orderhooks.domain.portal import hash_portal_token
from orderhooks.web.dashboard.session import SESSION_COOKIE
from tests.integration.api_support import LocalApi
from tests.support.api import expect
from tests.support.data import unique

LINKS = "/v1/portal-links"
URL = re.compile(r"^http://orderhooks\.test/ui/portal/(ohp_[A-Za-z0-9_-]{43})$")


async def _link(api: LocalApi, accounts: list[str], key: str = "admin", **more: object) -> str:
    """A new link's token (from its URL)."""
    body = expect(await api.call("POST", LINKS, key, json_body={"accounts": accounts, **more}), 201)
    match = URL.match(body["url"])
    assert match is not None, body
    return match.group(1)


def _browser(api: LocalApi) -> httpx.AsyncClient:
    """A client of the same app with its own cookie jar, as a second browser would be."""
    return httpx.AsyncClient(transport=api.client._transport, base_url="http://orderhooks.test")


async def _open(browser: httpx.AsyncClient, token: str) -> httpx.Response:
    """Use the link as the page's form does."""
    return await browser.post("/ui/portal", data={"portal_token": token})


async def test_create_answers_the_url_and_expiry_and_stores_only_a_hash(api: LocalApi) -> None:
    account = unique("acct")
    before = datetime.now(UTC)
    response = await api.call("POST", LINKS, json_body={"accounts": [account]})
    body = expect(response, 201)
    assert set(body) == {"id", "url", "expiresAt"}
    token = URL.match(body["url"]).group(1)  # type: ignore[union-attr]
    expires_at = datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00"))
    assert before + timedelta(seconds=3600) <= expires_at <= datetime.now(UTC) + timedelta(hours=1)

    link = await api.store.portal_link_by_token(hashlib.sha256(token.encode()).hexdigest())
    assert link is not None and link.accounts == (account,) and link.used_at is None
    assert link.expires_at == expires_at and link.id == body["id"]
    audit = (await api.store.list_audit(10, None)).items[0]
    assert (audit.action, audit.target_id) == ("portal_link.created", link.id)
    assert audit.details["accounts"] == [account]
    assert token not in repr(audit) and token not in repr(link)

    short = expect(
        await api.call("POST", LINKS, json_body={"accounts": [account], "expiresInSeconds": 60}),
        201,
    )
    short_expiry = datetime.fromisoformat(short["expiresAt"].replace("Z", "+00:00"))
    assert short_expiry <= datetime.now(UTC) + timedelta(seconds=60)
    assert short["url"] != body["url"]


async def test_a_partner_links_only_its_own_accounts(api: LocalApi) -> None:
    mine, also_mine, other = unique("acct"), unique("acct"), unique("acct")
    partner = await api.make_key("partner", [mine, also_mine])
    await _link(api, [mine, also_mine], partner, expiresInSeconds=86_400)
    for accounts in ([other], [mine, other], ["*"]):
        response = await api.call("POST", LINKS, partner, json_body={"accounts": accounts})
        assert response.status_code == 403, response.text
    # Scope before the body: a foreign account is 403 even when the rest is invalid.
    body = {"accounts": [other], "expiresInSeconds": 5}
    assert (await api.call("POST", LINKS, partner, json_body=body)).status_code == 403
    ingest = await api.make_key("ingest")
    assert (
        await api.call("POST", LINKS, ingest, json_body={"accounts": [mine]})
    ).status_code == 403
    assert (await api.call("POST", LINKS, None, json_body={"accounts": [mine]})).status_code == 401
    created = [
        e
        for e in (await api.store.list_audit(100, None)).items
        if e.action == "portal_link.created"
    ]
    assert len(created) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"accounts": [], "expiresInSeconds": 3600}, "accounts"),
        ({"expiresInSeconds": 3600}, "accounts"),
        ({"accounts": ["*"]}, "accounts"),
        ({"accounts": ["acct"], "expiresInSeconds": 59}, "expiresInSeconds"),
        ({"accounts": ["acct"], "expiresInSeconds": 86_401}, "expiresInSeconds"),
        ({"accounts": ["acct"], "expiresInSeconds": "600"}, "expiresInSeconds"),
        ({"accounts": ["acct"], "expiresInSeconds": 600.0}, "expiresInSeconds"),
        ({"accounts": ["acct"], "ttl": 600}, "ttl"),
    ],
)
async def test_bad_bodies_are_422_naming_the_field_and_store_nothing(
    api: LocalApi, body: dict[str, object], field: str
) -> None:
    response = await api.call("POST", LINKS, json_body=body)
    error = expect(response, 422)["error"]
    assert field in [d["field"] for d in error["details"]], error
    assert (await api.store.list_audit(10, None)).items == []


async def test_the_link_opens_once_a_session_of_exactly_its_accounts(api: LocalApi) -> None:
    shown, hidden = unique("acct"), unique("acct")
    await api.agree(shown)
    await api.agree(hidden)
    hook_shown = await api.make_webhook(shown, description="Shown hook")
    hook_hidden = await api.make_webhook(hidden, description="Hidden hook")
    token = await _link(api, [shown])

    async with _browser(api) as browser:
        page = await browser.get(f"/ui/portal/{token}")
        assert page.status_code == 200
        assert 'name="portal_token"' in page.text and "/ui/static/portal.js" in page.text
        assert (await api.store.portal_link_by_token(hash_portal_token(token))).used_at is None  # type: ignore[union-attr]

        opened = await _open(browser, token)
        assert opened.status_code == 303 and opened.headers["location"] == "/ui"
        cookie = opened.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
        assert 3500 < int(re.search(r"Max-Age=(\d+)", cookie).group(1)) <= 3600  # type: ignore[union-attr]

        webhooks = await browser.get("/ui/webhooks")
        assert webhooks.status_code == 200
        assert "Shown hook" in webhooks.text and "Hidden hook" not in webhooks.text
        assert "Portal link" in webhooks.text
        assert (await browser.get(f"/ui/webhooks/{hook_shown['id']}")).status_code == 200
        assert (await browser.get(f"/ui/webhooks/{hook_hidden['id']}")).status_code == 404

        # The same link again, in this browser or another: refused, no new session.
        assert (await _open(browser, token)).status_code == 410
        async with _browser(api) as second:
            assert (await second.get(f"/ui/portal/{token}")).status_code == 410
            again = await _open(second, token)
            assert again.status_code == 410 and "already used" in again.text
            assert "set-cookie" not in again.headers
            assert "Sign in to orderhooks" in (await second.get("/ui")).text
    opened_audit = [
        e for e in (await api.store.list_audit(10, None)).items if e.action == "portal_link.opened"
    ]
    assert len(opened_audit) == 1


async def test_unknown_and_malformed_links_are_refused(api: LocalApi) -> None:
    async with _browser(api) as browser:
        for token in ("ohp_" + "x" * 43, "x" * 500, "%00", "' OR 1=1 --"):
            response = await browser.get(f"/ui/portal/{token}")
            assert response.status_code == 404, token
            assert "not valid" in response.text
            posted = await _open(browser, token)
            assert posted.status_code == 404 and "set-cookie" not in posted.headers
        assert (await browser.post("/ui/portal", data={})).status_code == 404
        cross_site = await browser.post(
            "/ui/portal",
            data={"portal_token": await _link(api, [unique("acct")])},
            headers={"Origin": "https://evil.example.com"},
        )
        assert cross_site.status_code == 403 and "set-cookie" not in cross_site.headers


async def test_expiry_ends_the_session_and_refuses_the_link(api: LocalApi) -> None:
    account = unique("acct")
    token = await _link(api, [account], expiresInSeconds=60)
    async with _browser(api) as browser:
        assert (await _open(browser, token)).status_code == 303
        assert "Overview" in (await browser.get("/ui")).text
        link = await api.store.portal_link_by_token(hash_portal_token(token))
        assert link is not None
        await api.store.expire_portal_link(link.id, datetime.now(UTC), Scope())
        after = await browser.get("/ui")
        assert after.status_code == 200 and "Sign in to orderhooks" in after.text
        assert (await browser.get("/ui/webhooks")).status_code == 303

    unused = await _link(api, [account], expiresInSeconds=60)
    unused_link = await api.store.portal_link_by_token(hash_portal_token(unused))
    assert unused_link is not None
    await api.store.expire_portal_link(
        unused_link.id, datetime.now(UTC) - timedelta(seconds=1), Scope()
    )
    async with _browser(api) as browser:
        assert (await browser.get(f"/ui/portal/{unused}")).status_code == 410
        refused = await _open(browser, unused)
        assert refused.status_code == 410 and SESSION_COOKIE not in browser.cookies


async def test_revoking_the_key_that_made_the_link_ends_its_session(api: LocalApi) -> None:
    account = unique("acct")
    partner = await api.make_key("partner", [account])
    token = await _link(api, [account], partner)
    async with _browser(api) as browser:
        assert (await _open(browser, token)).status_code == 303
        assert "Overview" in (await browser.get("/ui")).text
        await api.call("DELETE", f"/v1/keys/{api.key_ids[partner]}")
        assert "Sign in to orderhooks" in (await browser.get("/ui")).text


async def test_concurrent_opens_of_one_link_sign_in_one_browser(api: LocalApi) -> None:
    token = await _link(api, [unique("acct")])
    browsers = [_browser(api) for _ in range(8)]
    try:
        answers = await asyncio.gather(*(_open(b, token) for b in browsers))
    finally:
        for b in browsers:
            await b.aclose()
    assert sorted(a.status_code for a in answers) == [303] + [410] * 7


async def test_revoking_a_link_ends_its_session_and_refuses_it(api: LocalApi) -> None:
    """docs/api.md, "Portal links": DELETE ends a link now, opened or not."""
    account = unique("acct")
    opened = expect(await api.call("POST", LINKS, json_body={"accounts": [account]}), 201)
    async with _browser(api) as browser:
        assert (await _open(browser, opened["url"].rsplit("/", 1)[1])).status_code == 303
        assert "Overview" in (await browser.get("/ui")).text
        assert (await api.call("DELETE", f"{LINKS}/{opened['id']}")).status_code == 204
        after = await browser.get("/ui")
        assert after.status_code == 200 and "Sign in to orderhooks" in after.text
    audit = (await api.store.list_audit(10, None)).items[0]
    assert (audit.action, audit.target_id) == ("portal_link.revoked", opened["id"])

    unused = expect(await api.call("POST", LINKS, json_body={"accounts": [account]}), 201)
    assert (await api.call("DELETE", f"{LINKS}/{unused['id']}")).status_code == 204
    async with _browser(api) as browser:
        refused = await _open(browser, unused["url"].rsplit("/", 1)[1])
        assert refused.status_code == 410 and SESSION_COOKIE not in browser.cookies
    # Again: still ended, still 204; an unknown id is 404.
    assert (await api.call("DELETE", f"{LINKS}/{unused['id']}")).status_code == 204
    assert (await api.call("DELETE", f"{LINKS}/plk_missing")).status_code == 404


async def test_a_partner_revokes_only_the_links_of_its_own_accounts(api: LocalApi) -> None:
    account = unique("acct")
    link = expect(await api.call("POST", LINKS, json_body={"accounts": [account]}), 201)
    stranger = await api.make_key("partner", [unique("acct")])
    owner = await api.make_key("partner", [account])
    ingest = await api.make_key("ingest")
    assert (await api.call("DELETE", f"{LINKS}/{link['id']}", stranger)).status_code == 404
    assert (await api.call("DELETE", f"{LINKS}/{link['id']}", ingest)).status_code == 403
    stored = await api.store.portal_link_by_id(link["id"])
    assert stored is not None and stored.usable(datetime.now(UTC)), "refused: nothing ended"
    assert (await api.call("DELETE", f"{LINKS}/{link['id']}", owner)).status_code == 204
    ended = await api.store.portal_link_by_id(link["id"])
    assert ended is not None and not ended.usable(datetime.now(UTC))
