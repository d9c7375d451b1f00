"""The dashboard's pages and forms on the real app and a real SQLite store, signed in
through the sign-in form as a browser is: what a browser can send never answers 500, and
the figures and filters agree with the API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import structlog
from starlette.types import Message

from orderhooks.config import Settings
from orderhooks.domain.model import Scope, UsageRow
from orderhooks.store.sqlite import SQLiteStore, sqlite_path
from orderhooks.web.dashboard.session import SESSION_COOKIE
from tests.integration.api_support import (
    LocalApi,
    finish_deliveries,
    finish_delivery,
    running_api,
)
from tests.support.api import expect
from tests.support.data import unique


def visitor(api: LocalApi) -> httpx.AsyncClient:
    """A browser-like client of the same app, without a session (it keeps cookies)."""
    base_url = str(api.client.base_url)
    if isinstance(api.client._transport, httpx.ASGITransport):
        return httpx.AsyncClient(transport=api.client._transport, base_url=base_url)
    return httpx.AsyncClient(base_url=base_url)  # a real server: a connection pool of its own


@asynccontextmanager
async def signed_in(api: LocalApi, key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client of the same app, signed in to the dashboard with `key`."""
    async with visitor(api) as client:
        form = await client.get("/ui")
        token = re.search(r'name="signin_token" value="([^"]+)"', form.text)
        assert form.status_code == 200 and token is not None, form.text
        data = {"signin_token": token[1], "api_key": key}
        answer = await client.post("/ui/signin", data=data)
        assert answer.status_code == 303, answer.text
        yield client


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token of a dashboard page's forms."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found[1]


async def test_a_non_ascii_form_token_is_refused_not_an_error(api: LocalApi) -> None:
    """A form posted with a CSRF token of non-ASCII characters is refused (403) like any
    other wrong token; comparing it must not fail (it answered 500)."""
    account = unique("acct")
    await api.agree(account)
    webhook = await api.make_webhook(account)
    async with signed_in(api, api.admin_key) as browser:
        url = f"/ui/webhooks/{webhook['id']}/disable"
        answer = await browser.post(url, data={"csrf_token": "jéton"})
        assert answer.status_code == 403, answer.text
        answer = await browser.post("/ui/signout", data={"csrf_token": "jéton"})
        assert answer.status_code == 403, answer.text
    assert (await api.webhook(webhook["id"]))["state"] == "active"

    # The sign-in form's token is compared the same way.
    async with visitor(api) as anonymous:
        await anonymous.get("/ui")  # the nonce cookie
        answer = await anonymous.post(
            "/ui/signin", data={"signin_token": "jéton", "api_key": api.admin_key}
        )
        assert answer.status_code == 403, answer.text
        assert "orderhooks_session" not in answer.headers.get("set-cookie", "")


async def test_digits_that_are_not_decimal_are_ignored_not_an_error(api: LocalApi) -> None:
    """Query values and form fields made of characters Python calls digits but cannot
    read as a number (such as superscript two) are treated as any other bad value."""
    account = unique("acct")
    await api.agree(account)
    webhook = await api.make_webhook(account)
    async with signed_in(api, api.admin_key) as browser:
        page = await browser.get(
            f"/ui/webhooks/{webhook['id']}", params={"notice": "recovered", "count": "²"}
        )
        assert page.status_code == 200, page.text
        assert "0 failed deliveries went back to pending." in page.text

        usage = await browser.get("/ui/usage", params={"month": "2026-0²"})
        assert usage.status_code == 200, usage.text

        rotate = await browser.post(
            f"/ui/webhooks/{webhook['id']}/rotate",
            data={"csrf_token": csrf_of(page), "grace_seconds": "²"},
        )
        assert rotate.status_code == 422, rotate.text
    assert len((await api.store.get_webhook(webhook["id"], Scope())).secrets) == 1


async def test_numbers_too_long_to_read_are_ignored_not_an_error(api: LocalApi) -> None:
    """A `count` in a page's address, or a rotation's `grace_seconds`, of more digits than
    Python reads into an int (4,300) is a bad value like any other: the page shows a count
    of 0 and the rotation is refused with 422 (both answered 500)."""
    account = unique("acct")
    await api.agree(account)
    webhook = await api.make_webhook(account)
    digits = "9" * 5000
    async with signed_in(api, api.admin_key) as browser:
        page = await browser.get(
            f"/ui/webhooks/{webhook['id']}", params={"notice": "replayed", "count": digits}
        )
        assert page.status_code == 200, page.text
        assert "0 events queued for replay." in page.text

        rotate = await browser.post(
            f"/ui/webhooks/{webhook['id']}/rotate",
            data={"csrf_token": csrf_of(page), "grace_seconds": digits},
        )
        assert rotate.status_code == 422 and is_dashboard_page(rotate), rotate.text
    assert len((await api.store.get_webhook(webhook["id"], Scope())).secrets) == 1


def delivery_ids(page: httpx.Response) -> set[str]:
    """The delivery ids a page links to."""
    return set(re.findall(r'href="/ui/deliveries/(dlv_[0-9A-Za-z]+)"', page.text))


async def test_deliveries_filter_by_an_operational_event_type(api: LocalApi) -> None:
    """`/ui/deliveries?type=delivery.failed` lists the deliveries of that type, as
    `GET /v1/deliveries?eventType=delivery.failed` does; the filter was dropped (the page
    listed every delivery) and the form offered the order types only."""
    account = unique("acct")
    await api.agree(account)
    orders_hook = await api.make_webhook(account)
    alerts_hook = await api.make_webhook(account, eventTypes=["delivery.failed"])
    await api.post_order(account)
    [failing] = await api.deliveries(orders_hook["id"])
    await finish_delivery(api, failing["id"], 500)
    alerts = await api.deliveries(alerts_hook["id"])
    assert [d["eventType"] for d in alerts] == ["delivery.failed"]
    listed = await api.list_all("/v1/deliveries", eventType="delivery.failed")
    assert {d["id"] for d in listed} == {alerts[0]["id"]}

    async with signed_in(api, api.admin_key) as browser:
        page = await browser.get("/ui/deliveries", params={"type": "delivery.failed"})
        assert page.status_code == 200, page.text
        assert delivery_ids(page) == {alerts[0]["id"]}
        assert '<option value="delivery.failed" selected>' in page.text


async def test_overview_shows_a_partners_failures_on_a_webhook_it_shares(api: LocalApi) -> None:
    """A partner's failed delivery to a webhook installed on its account and another one
    (so not on its webhook list) is among the overview's recent failures, as
    `GET /v1/deliveries?state=failed` lists it for that key; the overview said none."""
    mine, theirs = unique("acct-a"), unique("acct-b")
    for account in (mine, theirs):
        await api.agree(account)
    shared = await api.create_webhook("https://receiver.example.com/hook", [mine, theirs])
    partner = await api.make_key("partner", [mine])
    await api.post_order(mine)
    [failing] = await api.deliveries(shared["id"])
    await finish_delivery(api, failing["id"], 500)
    answer = await api.call("GET", "/v1/deliveries", partner, params={"state": "failed"})
    assert [d["id"] for d in expect(answer, 200)["data"]] == [failing["id"]]

    async with signed_in(api, partner) as browser:
        overview = await browser.get("/ui")
        assert overview.status_code == 200, overview.text
        assert delivery_ids(overview) == {failing["id"]}


async def test_an_order_with_times_utc_cannot_hold_shows_them_as_unknown(api: LocalApi) -> None:
    """An order page whose status history or courier updates carry a valid ISO 8601 time
    that falls outside the years 1-9999 in UTC (ingest accepts it) answered 500: showing
    the time converted it to UTC."""
    account = unique("acct")
    order = await api.post_order(
        account,
        statusHistory=[
            {"timeStamp": "0001-01-01T00:00:00+01:00", "status": 1},
            {"timeStamp": "2026-11-28T12:00:00Z", "status": 10},
        ],
    )
    order_id = order["orderId"]
    await api.status(order_id, 20, timeStamp="9999-12-31T23:59:59-01:00")
    courier = {"status": 83, "received": "9999-12-31T23:00:00-02:00"}
    path = f"/v1/orders/{order_id}/courier"
    expect(await api.call("POST", path, json_body=courier), 202)
    async with signed_in(api, api.admin_key) as browser:
        page = await browser.get(f"/ui/orders/{order_id}")
        assert page.status_code == 200, page.text
        assert "Accepted (20)" in page.text
        assert "En route to pickup (83)" in page.text


def is_dashboard_page(answer: httpx.Response) -> bool:
    """Whether an answer is an HTML page of the dashboard, with its security headers."""
    return answer.headers.get("content-type", "").startswith("text/html") and (
        "frame-ancestors" in answer.headers.get("content-security-policy", "")
    )


async def test_errors_under_ui_are_html_pages_not_api_json(api: LocalApi) -> None:
    """An unknown address under /ui, a method a page does not take, and a form the server
    cannot read answer a dashboard error page, not the API's error JSON; the API keeps
    its JSON (they all answered `{"error": …}` in the browser)."""
    account = unique("acct")
    await api.agree(account)
    webhook = await api.make_webhook(account)
    async with signed_in(api, api.admin_key) as browser:
        page = await browser.get(f"/ui/webhooks/{webhook['id']}")
        csrf = csrf_of(page)

        unknown = await browser.get("/ui/no-such-page")
        assert unknown.status_code == 404 and is_dashboard_page(unknown), unknown.text
        # An order id with a slash, looked up through the search form, is such an address.
        search = await browser.get("/ui/orders", params={"order_id": "a/b"}, follow_redirects=True)
        assert search.status_code == 404 and is_dashboard_page(search), search.text

        wrong_method = await browser.post("/ui/webhooks", data={"csrf_token": csrf})
        assert wrong_method.status_code == 405 and is_dashboard_page(wrong_method)
        assert "GET" in wrong_method.headers["allow"]

        crowded = {"csrf_token": csrf, **{f"field{i}": "x" for i in range(60)}}
        answer = await browser.post(f"/ui/webhooks/{webhook['id']}/disable", data=crowded)
        assert answer.status_code == 400 and is_dashboard_page(answer), answer.text
        upload = await browser.post(
            f"/ui/webhooks/{webhook['id']}/disable",
            data={"csrf_token": csrf},
            files={"file": ("a.txt", b"x")},
        )
        assert upload.status_code == 400 and is_dashboard_page(upload), upload.text
    assert (await api.webhook(webhook["id"]))["state"] == "active"

    async with visitor(api) as anonymous:
        crowded_signin = await anonymous.post(
            "/ui/signin", data={f"field{i}": "x" for i in range(20)}
        )
        assert crowded_signin.status_code == 400 and is_dashboard_page(crowded_signin)
        api_answer = await anonymous.get("/v1/no-such-endpoint")
        assert api_answer.status_code == 404
        assert api_answer.json()["error"]["code"] == "not_found"


def queue_depth(overview: httpx.Response) -> int:
    """The overview's "Queue depth" figure."""
    found = re.search(r'Queue depth</span><span class="card-value">([0-9,]+)<', overview.text)
    assert found is not None, overview.text
    return int(found[1].replace(",", ""))


async def test_a_partners_queue_depth_counts_the_pending_deliveries_it_may_list(
    api: LocalApi,
) -> None:
    """The overview's queue depth for a partner is the number of its pending deliveries,
    as `GET /v1/deliveries?state=pending` lists them for that key: those to a webhook it
    shares with another account count (the other account's do not). It counted only the
    webhooks on the partner's list, so the shared webhook's delivery was missing."""
    mine, theirs = unique("acct-a"), unique("acct-b")
    for account in (mine, theirs):
        await api.agree(account)
    await api.make_webhook(mine)
    await api.make_webhook(theirs)
    await api.create_webhook("https://receiver.example.com/hook", [mine, theirs])
    partner = await api.make_key("partner", [mine])
    await api.post_order(mine)
    await api.post_order(theirs)
    answer = await api.call("GET", "/v1/deliveries", partner, params={"state": "pending"})
    pending = expect(answer, 200)["data"]
    assert len(pending) == 2  # to its own webhook and to the shared one
    everything = await api.list_all("/v1/deliveries", state="pending")

    async with signed_in(api, partner) as browser:
        assert queue_depth(await browser.get("/ui")) == len(pending)
    async with signed_in(api, api.admin_key) as browser:
        assert queue_depth(await browser.get("/ui")) == len(everything) == 4


async def test_sign_out_from_another_site_is_refused(api: LocalApi) -> None:
    """Sign-out is a form like the others: with an `Origin` of another site it is refused
    (403) and the session stays, even with the right token (it signed the user out)."""
    async with signed_in(api, api.admin_key) as browser:
        csrf = csrf_of(await browser.get("/ui"))
        foreign = await browser.post(
            "/ui/signout", data={"csrf_token": csrf}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403 and is_dashboard_page(foreign), foreign.text
        assert (await browser.get("/ui/webhooks")).status_code == 200  # still signed in
        own = await browser.post(
            "/ui/signout", data={"csrf_token": csrf}, headers={"Origin": "http://orderhooks.test"}
        )
        assert own.status_code == 303
        assert (await browser.get("/ui/webhooks")).status_code == 303  # to the sign-in page


async def test_an_origin_that_is_not_a_url_is_refused_not_an_error(api: LocalApi) -> None:
    """A form whose `Origin` cannot be parsed (an unbalanced IPv6 bracket, as in
    `http://[`) did not come from a page of this site: sign-in, the portal form and a
    signed-in action answer 403 and do nothing (parsing it answered 500)."""
    account = unique("acct")
    await api.agree(account)
    webhook = await api.make_webhook(account)
    link = await api.call("POST", "/v1/portal-links", json_body={"accounts": [account]})
    token = expect(link, 201)["url"].rsplit("/", 1)[1]
    for origin in ("http://[", "http://[::1", "http://a]b"):
        headers = {"Origin": origin}
        async with visitor(api) as anonymous:
            form = await anonymous.get("/ui")
            signin_token = re.search(r'name="signin_token" value="([^"]+)"', form.text)
            assert signin_token is not None, form.text
            data = {"signin_token": signin_token[1], "api_key": api.admin_key}
            signin = await anonymous.post("/ui/signin", data=data, headers=headers)
            assert signin.status_code == 403 and is_dashboard_page(signin), signin.text
            assert SESSION_COOKIE not in signin.headers.get("set-cookie", "")
            portal = await anonymous.post(
                "/ui/portal", data={"portal_token": token}, headers=headers
            )
            assert portal.status_code == 403 and is_dashboard_page(portal), portal.text
        async with signed_in(api, api.admin_key) as browser:
            page = await browser.get(f"/ui/webhooks/{webhook['id']}")
            disable = await browser.post(
                f"/ui/webhooks/{webhook['id']}/disable",
                data={"csrf_token": csrf_of(page)},
                headers=headers,
            )
            assert disable.status_code == 403 and is_dashboard_page(disable), disable.text
    assert (await api.webhook(webhook["id"]))["state"] == "active"
    async with visitor(api) as anonymous:  # the link was not used up
        assert (await anonymous.post("/ui/portal", data={"portal_token": token})).status_code == 303


async def test_a_form_whose_client_went_away_is_a_plain_refusal(api: LocalApi) -> None:
    """A browser that disconnects before it has sent the whole form (sign-in, the portal
    form, an action) gets a 400 page, as the API's bodies do, not a 500 logged as an
    unexpected error with its traceback (a closed tab is not a bug of the server)."""
    app = api.client._transport.app  # type: ignore[attr-defined]
    for path in ("/ui/signin", "/ui/portal"):
        sent: list[Message] = []
        received = iter(
            [
                {"type": "http.request", "body": b"api_key=ohk_", "more_body": True},
                {"type": "http.disconnect"},
            ]
        )

        async def receive() -> Message:
            return next(received)  # noqa: B023

        async def send(message: Message) -> None:
            sent.append(message)  # noqa: B023

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"orderhooks.test"),
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"content-length", b"100"),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("orderhooks.test", 80),
        }
        await app(scope, receive, send)
        assert sent[0]["type"] == "http.response.start"
        assert sent[0]["status"] == 400, sent


async def test_a_form_posted_after_the_session_ended_leads_back_to_its_page(
    api: LocalApi,
) -> None:
    """A form posted once the session has ended (here its key was revoked) goes to the
    sign-in page, which then leads back to the page of the form, not to the form's
    address (a POST-only address: the browser landed on an error page) and without
    acting."""
    account = unique("acct")
    await api.agree(account)
    webhook = await api.make_webhook(account)
    partner = await api.make_key("partner", [account])
    page_path = f"/ui/webhooks/{webhook['id']}"
    async with signed_in(api, partner) as browser:
        csrf = csrf_of(await browser.get(page_path))
        await api.call("DELETE", f"/v1/keys/{api.key_ids[partner]}")
        ended = await browser.post(f"{page_path}/disable", data={"csrf_token": csrf})
        assert ended.status_code == 303
        assert ended.headers["location"] == f"/ui?next={page_path.replace('/', '%2F')}"
        signin = await browser.get(ended.headers["location"])
        assert f'name="next" value="{page_path}"' in signin.text, signin.text
    assert (await api.webhook(webhook["id"]))["state"] == "active"


async def test_overview_shows_failures_of_a_deleted_webhook_to_an_admin(api: LocalApi) -> None:
    """A failed delivery stays failed, and listed by `GET /v1/deliveries?state=failed`,
    after its webhook is deleted; the admin's overview lists it among the recent failures
    too (it said none: it looked at the stats of the live webhooks only)."""
    account = unique("acct")
    await api.agree(account)
    webhook = await api.make_webhook(account)
    await api.make_webhook(account)  # a live webhook without failures
    await api.post_order(account)
    deliveries = {d["webhookId"]: d for d in await api.list_all("/v1/deliveries")}
    failing = deliveries[webhook["id"]]
    others = {d["id"]: 200 for d in deliveries.values() if d["id"] != failing["id"]}
    await finish_deliveries(api, {failing["id"]: 500, **others})
    assert (await api.call("DELETE", f"/v1/webhooks/{webhook['id']}")).status_code == 204
    listed = await api.list_all("/v1/deliveries", state="failed")
    assert [d["id"] for d in listed] == [failing["id"]]

    async with signed_in(api, api.admin_key) as browser:
        overview = await browser.get("/ui")
        assert overview.status_code == 200, overview.text
        assert delivery_ids(overview) == {failing["id"]}


async def test_a_form_larger_than_any_dashboard_form_is_refused_unread(api: LocalApi) -> None:
    """A form body larger than any form of the dashboard is refused (413, an HTML page)
    on every form, the sign-in form (open to anyone) included: it was read whole into
    memory, however large, then judged."""
    account = unique("acct")
    await api.agree(account)
    webhook = await api.make_webhook(account)
    padding = "x" * (1024 * 1024)
    async with visitor(api) as anonymous:
        await anonymous.get("/ui")  # the sign-in form's nonce cookie
        for path in ("/ui/signin", "/ui/portal"):
            answer = await anonymous.post(path, data={"api_key": api.admin_key, "pad": padding})
            assert answer.status_code == 413 and is_dashboard_page(answer), (path, answer.text)
            assert "orderhooks_session" not in answer.headers.get("set-cookie", "")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read up to the limit
            for _ in range(64):
                yield b"pad=" + b"x" * 16 * 1024 + b"&"

        streamed = await anonymous.post(
            "/ui/signin",
            content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert streamed.status_code == 413 and is_dashboard_page(streamed), streamed.text
    async with signed_in(api, api.admin_key) as browser:
        csrf = csrf_of(await browser.get(f"/ui/webhooks/{webhook['id']}"))
        for path in (f"/ui/webhooks/{webhook['id']}/disable", "/ui/signout"):
            answer = await browser.post(path, data={"csrf_token": csrf, "pad": padding})
            assert answer.status_code == 413 and is_dashboard_page(answer), (path, answer.text)
        assert (await browser.get("/ui/webhooks")).status_code == 200  # still signed in
    assert (await api.webhook(webhook["id"]))["state"] == "active"


async def test_a_failed_delivery_of_a_deleted_webhook_offers_no_retry(api: LocalApi) -> None:
    """A failed delivery whose webhook was deleted cannot be retried (the API answers
    409), so its page offers no "Retry now" button (it did, and the button led to an
    error page); the form posted anyway is refused with a 409 page."""
    account = unique("acct")
    await api.agree(account)
    webhook = await api.make_webhook(account)
    await api.post_order(account)
    [failing] = await api.deliveries(webhook["id"])
    await finish_delivery(api, failing["id"], 500)
    assert (await api.call("DELETE", f"/v1/webhooks/{webhook['id']}")).status_code == 204
    retried = await api.call("POST", f"/v1/deliveries/{failing['id']}/retry")
    assert retried.status_code == 409, retried.text

    async with signed_in(api, api.admin_key) as browser:
        page = await browser.get(f"/ui/deliveries/{failing['id']}")
        assert page.status_code == 200, page.text
        assert "Retry now" not in page.text
        answer = await browser.post(
            f"/ui/deliveries/{failing['id']}/retry", data={"csrf_token": csrf_of(page)}
        )
        assert answer.status_code == 409 and is_dashboard_page(answer), answer.text


async def test_pages_answer_an_html_page_while_the_database_is_unreachable(
    api: LocalApi,
) -> None:
    """With the database out of reach, a dashboard page (whose session cannot be looked
    up) and the sign-in form answer a 503 page of the dashboard; they answered the API's
    error JSON. The API itself keeps its JSON."""
    async with signed_in(api, api.admin_key) as browser, visitor(api) as anonymous:
        form = await anonymous.get("/ui")
        token = re.search(r'name="signin_token" value="([^"]+)"', form.text)
        assert token is not None
        await api.store.close()  # the store now answers StoreUnavailable, as when unreachable
        for path in ("/ui", "/ui/webhooks"):
            page = await browser.get(path)
            assert page.status_code == 503 and is_dashboard_page(page), (path, page.text)
        signin = await anonymous.post(
            "/ui/signin", data={"signin_token": token[1], "api_key": api.admin_key}
        )
        assert signin.status_code == 503 and is_dashboard_page(signin), signin.text
        answer = await api.call("GET", "/v1/webhooks")
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "unavailable"


async def test_the_usage_page_names_the_month_it_shows(api: LocalApi) -> None:
    """A month in the address older than the twelve the form offers is the one shown, and
    the form says so; it showed that month's usage (or "Nothing delivered") under a form
    naming the current month."""
    async with signed_in(api, api.admin_key) as browser:
        page = await browser.get("/ui/usage", params={"month": "2020-01"})
        assert page.status_code == 200, page.text
        assert '<option value="2020-01" selected>' in page.text
        assert page.text.count(" selected>") == 1


async def test_delivery_lists_link_only_to_webhooks_the_viewer_may_open(api: LocalApi) -> None:
    """A partner's deliveries to a webhook it shares with another account are listed (as
    the API lists them), but that webhook's page is not the partner's (404), nor is a
    deleted webhook's anyone's: the lists name such a webhook without linking to it (the
    link led to an error page); its own webhook stays a link."""
    mine, theirs = unique("acct-a"), unique("acct-b")
    for account in (mine, theirs):
        await api.agree(account)
    own = await api.make_webhook(mine)
    shared = await api.create_webhook("https://receiver.example.com/hook", [mine, theirs])
    partner = await api.make_key("partner", [mine])
    await api.post_order(mine)
    async with signed_in(api, partner) as browser:
        page = await browser.get("/ui/deliveries")
        assert page.status_code == 200, page.text
        assert f'href="/ui/webhooks/{own["id"]}"' in page.text
        assert shared["id"] in page.text
        assert f'href="/ui/webhooks/{shared["id"]}"' not in page.text
        assert (await browser.get(f"/ui/webhooks/{shared['id']}")).status_code == 404
    assert (await api.call("DELETE", f"/v1/webhooks/{own['id']}")).status_code == 204
    async with signed_in(api, api.admin_key) as browser:
        page = await browser.get("/ui/deliveries")
        assert own["id"] in page.text
        assert f'href="/ui/webhooks/{own["id"]}"' not in page.text
        assert f'href="/ui/webhooks/{shared["id"]}"' in page.text


class UsageReadFails(SQLiteStore):
    """A store whose usage read fails with an error no handler knows: a bug."""

    async def usage(self, accounts: Sequence[str] | None, months: Sequence[str]) -> list[UsageRow]:
        raise RuntimeError("the usage read is broken")


def usage_read_fails(settings: Settings) -> SQLiteStore:
    """`UsageReadFails` on the settings' SQLite file."""
    return UsageReadFails(
        sqlite_path(settings.effective_database_url),
        require_agreement=settings.require_agreement,
        disable_after_seconds=settings.disable_after_seconds,
    )


async def test_an_unexpected_failure_under_ui_is_the_dashboards_500_page(tmp_path: Path) -> None:
    """A page that fails in a way nothing expected answers the dashboard's HTML error page
    (500, with the pages' headers), not the API's error JSON; the failure is logged. The
    API's answer to the same failure stays the error JSON."""
    async with running_api(tmp_path, make_store=usage_read_fails, served=True) as api:
        async with signed_in(api, api.admin_key) as browser:
            with structlog.testing.capture_logs() as logs:
                page = await browser.get("/ui/usage")
        assert page.status_code == 500, page.text
        assert page.headers["content-type"].startswith("text/html"), page.text
        assert "Something went wrong on the server; it was logged." in page.text
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        [entry] = [e for e in logs if e["event"] == "unexpected_error"]
        assert entry["path"] == "/ui/usage" and entry["log_level"] == "error"
        assert isinstance(entry["exc_info"], RuntimeError)

        answer = await api.call("GET", "/v1/usage")
        assert answer.status_code == 500
        assert answer.json()["error"]["code"] == "internal_error"


async def test_static_files_are_served_with_nosniff(api: LocalApi) -> None:
    """The dashboard's stylesheet and scripts carry `X-Content-Type-Options: nosniff`
    as its pages do (a browser then runs a script only when it is served as one), on a
    full answer and on a 304 to a conditional request alike; they had no such header."""
    for name, media_type in (
        ("dashboard.css", "text/css"),
        ("refresh.js", "text/javascript"),
        ("portal.js", "text/javascript"),
    ):
        answer = await api.client.get(f"/ui/static/{name}")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith(media_type)
        assert answer.headers["x-content-type-options"] == "nosniff"
        again = await api.client.get(
            f"/ui/static/{name}", headers={"if-none-match": answer.headers["etag"]}
        )
        assert again.status_code == 304
        assert again.headers["x-content-type-options"] == "nosniff"
    missing = await api.client.get("/ui/static/missing.js")
    assert missing.status_code == 404
    assert missing.headers["x-content-type-options"] == "nosniff"
