"""The API and the dashboard run the same operations: their audit entries and their
usage agree.

The real app on a real SQLite file, driven in-process: the API with its bearer key, the
dashboard through its sign-in form, session cookie and CSRF token, like a browser.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orderhooks.domain.apikeys import hash_api_key
from tests.integration.api_support import LocalApi as Api
from tests.integration.api_support import finish_delivery, running_api
from tests.support.data import unique

SINCE_FORM, UNTIL_FORM = "2020-01-01T00:00", "2099-01-01T00:00"
SINCE_API, UNTIL_API = "2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z"


@pytest.fixture()
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(tmp_path, require_agreement=False) as app:
        yield app


def _hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found is not None, f"no {name} in the page"
    return found.group(1)


class Dashboard:
    """The dashboard of the app under test, signed in with the admin key."""

    def __init__(self, api: Api) -> None:
        self.api = api

    async def sign_in(self) -> None:
        form = await self.api.client.get("/ui", headers={})
        assert form.status_code == 200, form.text
        signed = await self.api.client.post(
            "/ui/signin",
            data={
                "api_key": self.api.admin_key,
                "signin_token": _hidden(form.text, "signin_token"),
                "next": "/ui",
            },
        )
        assert signed.status_code == 303, signed.text

    async def act(self, page: str, action: str, **fields: str | list[str]) -> None:
        """Press a button of `page`: post its form with the page's CSRF token."""
        shown = await self.api.client.get(page)
        assert shown.status_code == 200, shown.text
        data = {**fields, "csrf_token": _hidden(shown.text, "csrf_token")}
        answer = await self.api.client.post(f"{page}/{action}", data=data)
        assert answer.status_code in (200, 303), answer.text


@pytest.fixture()
async def dashboard(api: Api) -> Dashboard:
    dash = Dashboard(api)
    await dash.sign_in()
    return dash


async def _entries(api: Api, action: str, target_id: str) -> list[dict[str, Any]]:
    """The audit entries of one action on one target, oldest first."""
    answer = await api.call("GET", "/v1/audit?limit=500")
    assert answer.status_code == 200, answer.text
    found = [
        entry
        for entry in answer.json()["data"]
        if entry["action"] == action and entry["targetId"] == target_id
    ]
    return list(reversed(found))


async def _admin_id(api: Api) -> str:
    key = await api.store.key_by_hash(hash_api_key(api.admin_key))
    assert key is not None
    return key.id


def _without_via(details: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in details.items() if name != "via"}


@dataclass(frozen=True)
class Pending:
    """An account of the test's own, a webhook of it, and one pending delivery."""

    account: str
    webhook: dict[str, Any]
    delivery_id: str


@pytest.fixture()
async def pending(api: Api) -> Pending:
    """A fresh account and webhook, and the pending delivery of one new order to it."""
    account = unique("acct")
    webhook = await api.make_webhook(account)
    await api.post_order(account)
    answer = await api.call("GET", f"/v1/deliveries?webhookId={webhook['id']}&state=pending")
    [delivery] = answer.json()["data"]
    return Pending(account, webhook, str(delivery["id"]))


async def test_a_test_event_is_audited_alike_from_the_api_and_the_dashboard(
    api: Api, dashboard: Dashboard
) -> None:
    webhook = await api.make_webhook(unique("acct"))
    sent = await api.call("POST", f"/v1/webhooks/{webhook['id']}/test", json_body={})
    assert sent.status_code == 202, sent.text
    await dashboard.act(f"/ui/webhooks/{webhook['id']}", "test", type="order.new")

    from_api, from_dashboard = await _entries(api, "webhook.tested", webhook["id"])
    admin = await _admin_id(api)
    assert (from_api["actor"], from_dashboard["actor"]) == (admin, admin)
    assert from_api["details"] == {"type": "order.new"}
    assert from_dashboard["details"] == {"via": "dashboard", "type": "order.new"}


async def test_a_retry_is_audited_alike_from_the_api_and_the_dashboard(
    api: Api, dashboard: Dashboard, pending: Pending
) -> None:
    delivery_id = pending.delivery_id
    retried = await api.call("POST", f"/v1/deliveries/{delivery_id}/retry")
    assert retried.status_code == 202, retried.text
    await dashboard.act(f"/ui/deliveries/{delivery_id}", "retry")

    from_api, from_dashboard = await _entries(api, "delivery.retried", delivery_id)
    assert from_api["targetType"] == from_dashboard["targetType"] == "delivery"
    assert from_api["details"] == {}
    assert from_dashboard["details"] == {"via": "dashboard"}


async def test_recover_and_replay_details_are_the_same_from_the_api_and_the_dashboard(
    api: Api, dashboard: Dashboard, pending: Pending
) -> None:
    webhook, delivery_id = pending.webhook, pending.delivery_id
    page = f"/ui/webhooks/{webhook['id']}"
    await finish_delivery(api, delivery_id, 500)  # failed: the schedule is not used here
    recovered = await api.call(
        "POST",
        f"/v1/webhooks/{webhook['id']}/recover",
        json_body={"since": SINCE_API, "until": UNTIL_API},
    )
    assert recovered.json() == {"requeued": 1}
    await finish_delivery(api, delivery_id, 500)
    await dashboard.act(page, "recover", since=SINCE_FORM, until=UNTIL_FORM)

    from_api, from_dashboard = await _entries(api, "webhook.recovered", webhook["id"])
    expected = {
        "requeued": 1,
        "since": "2020-01-01T00:00:00.000000Z",
        "until": "2099-01-01T00:00:00.000000Z",
    }
    assert from_api["details"] == expected
    assert _without_via(from_dashboard["details"]) == expected

    replayed = await api.call(
        "POST",
        f"/v1/webhooks/{webhook['id']}/replay",
        json_body={"since": SINCE_API, "eventTypes": ["order.new"]},
    )
    assert replayed.status_code == 200, replayed.text
    await dashboard.act(page, "replay", since=SINCE_FORM, event_types=["order.new"])
    from_api, from_dashboard = await _entries(api, "webhook.replayed", webhook["id"])
    assert from_api["details"] == _without_via(from_dashboard["details"])
    assert from_api["details"]["eventTypes"] == ["order.new"]
    assert from_api["details"]["until"] is None


async def test_usage_without_an_agreement_is_not_charged_in_the_api_nor_the_dashboard(
    api: Api, dashboard: Dashboard, pending: Pending
) -> None:
    account = pending.account
    await finish_delivery(api, pending.delivery_id, 200)

    answer = await api.call("GET", f"/v1/usage?account={account}")
    [row] = answer.json()["data"]
    assert (row["delivered"], row["charge"], row["currency"]) == (1, 0, None)
    page = await api.client.get(f"/ui/usage?account={account}")
    assert page.status_code == 200, page.text
    charges = re.findall(r'<td data-label="Charge" class="num">([^<]*)</td>', page.text)
    assert charges == ["0"]
    assert f"No agreement recorded for {account}" in page.text


async def test_disabling_from_the_dashboard_emits_webhook_disabled(
    api: Api, dashboard: Dashboard
) -> None:
    """The dashboard's disable is the service's: one `webhook.disabled` (manual) to the
    webhook listening for it, whose delivery pages show it without an order."""
    account = unique("acct")
    webhook = await api.make_webhook(account)
    ops = await api.make_webhook(account, eventTypes=["webhook.disabled"])
    await dashboard.act(f"/ui/webhooks/{webhook['id']}", "disable")
    await dashboard.act(f"/ui/webhooks/{webhook['id']}", "disable")  # already disabled

    answer = await api.call("GET", f"/v1/deliveries?webhookId={ops['id']}")
    [delivery] = answer.json()["data"]
    assert delivery["eventType"] == "webhook.disabled" and delivery["orderId"] is None
    event = (await api.call("GET", f"/v1/events/{delivery['eventId']}")).json()
    assert event["data"] == {
        "webhookId": webhook["id"],
        "url": webhook["url"],
        "accounts": [account],
        "reason": "manual",
    }
    for page in (f"/ui/deliveries/{delivery['id']}", f"/ui/deliveries?webhook={ops['id']}"):
        shown = await api.client.get(page)
        assert shown.status_code == 200, shown.text
        assert "webhook.disabled" in shown.text
