"""Paging of every list endpoint on both engines (docs/api.md, "Lists and pagination"): a
`cursor` is the `nextCursor` of a page of the same list, and anything else is 422 naming
`cursor`; the dashboard's lists show their first page for a cursor they cannot use."""

from __future__ import annotations

import pytest

from orderhooks.domain.ids import new_id
from tests.integration.api_support import LocalApi
from tests.integration.test_dashboard_pages import delivery_ids, signed_in
from tests.support.api import expect
from tests.support.data import unique

# Each list and the id prefix of its items.
LISTS = {
    "/v1/webhooks": "wh",
    "/v1/events": "evt",
    "/v1/keys": "key",
    "/v1/deliveries": "dlv",
    "/v1/audit": "aud",
}
NOT_CURSORS = [
    "zzz",  # sorted after every id: newest-first lists answered everything
    "~",
    "0",  # sorted before every id: oldest-first lists answered everything
    "wh_",
    "wh_01JD",
    new_id("other"),
    new_id("wh").lower(),
    new_id("wh") + "X",
    new_id("wh").replace("_", "_U", 1)[:-1],  # U is not in the Crockford alphabet
]


async def two_of_each(api: LocalApi) -> None:
    """At least two items in every list (each write also adds to the audit)."""
    account = unique("acct")
    await api.agree(account)
    for _ in range(2):
        await api.make_webhook(account)
        await api.post_order(account)
        await api.make_key("ingest")


@pytest.mark.parametrize("path", LISTS)
async def test_a_list_pages_through_its_next_cursors(
    api_on_each_engine: LocalApi, path: str
) -> None:
    api = api_on_each_engine
    await two_of_each(api)
    first = expect(await api.call("GET", path, params={"limit": 1}), 200)
    assert first["nextCursor"] is not None
    assert first["nextCursor"].startswith(LISTS[path] + "_")
    cursor = {"limit": 1, "cursor": first["nextCursor"]}
    second = expect(await api.call("GET", path, params=cursor), 200)
    assert [item["id"] for item in second["data"]] != [item["id"] for item in first["data"]]


@pytest.mark.parametrize("path", LISTS)
async def test_an_empty_cursor_is_the_first_page(api_on_each_engine: LocalApi, path: str) -> None:
    """A client that sends `cursor=` while it has no nextCursor yet gets the first page."""
    api = api_on_each_engine
    await two_of_each(api)
    first = expect(await api.call("GET", path, params={"limit": 2}), 200)
    empty = expect(await api.call("GET", path, params={"limit": 2, "cursor": ""}), 200)
    assert [item["id"] for item in empty["data"]] == [item["id"] for item in first["data"]]


@pytest.mark.parametrize("path", LISTS)
async def test_a_cursor_that_is_not_a_next_cursor_of_the_list_is_422(
    api_on_each_engine: LocalApi, path: str
) -> None:
    """Any string was taken as a position: `cursor=zzz` answered everything on a
    newest-first list and nothing on an oldest-first one."""
    api = api_on_each_engine
    await two_of_each(api)
    others = [new_id(prefix) for prefix in LISTS.values() if prefix != LISTS[path]]
    for cursor in [*NOT_CURSORS, *others]:
        answer = await api.call("GET", path, params={"cursor": cursor})
        body = expect(answer, 422)
        assert [d["field"] for d in body["error"]["details"]] == ["cursor"], cursor


async def test_the_dashboards_lists_show_their_first_page_for_a_bad_cursor(
    api: LocalApi,
) -> None:
    account = unique("acct")
    await api.agree(account)
    webhook = await api.make_webhook(account)
    await api.post_order(account)
    [delivery] = await api.deliveries(webhook["id"])
    async with signed_in(api, api.admin_key) as browser:
        for cursor in ["zzz", "0", "~", new_id("dlv").lower(), "a" * 300, "a\x00b"]:
            page = await browser.get("/ui/webhooks", params={"cursor": cursor})
            assert page.status_code == 200, page.text
            assert f'href="/ui/webhooks/{webhook["id"]}"' in page.text, cursor
            page = await browser.get("/ui/deliveries", params={"cursor": cursor})
            assert page.status_code == 200, page.text
            assert delivery_ids(page) == {delivery["id"]}, cursor
            page = await browser.get(f"/ui/webhooks/{webhook['id']}", params={"cursor": cursor})
            assert page.status_code == 200, page.text
            assert delivery_ids(page) == {delivery["id"]}, cursor
