"""Every dashboard action, clicked in a real browser, its effect checked through the API."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import World
from tests.browser.helpers import deliveries_of, shoot, sign_in, wait_until
from tests.support.api import expect
from tests.support.data import unique

pytestmark = pytest.mark.browser


def _open_webhook(page: Page, world: World, webhook: dict[str, Any]) -> None:
    page.goto(f"{world.base_url}/ui/webhooks/{webhook['id']}")
    assert page.get_by_role("heading", level=1).inner_text() == webhook["description"]


def _state(world: World, webhook_id: str) -> str:
    state: str = expect(world.api.get(f"/v1/webhooks/{webhook_id}"), 200)["state"]
    return state


def _delivery_in_state(world: World, delivery_id: str, state: str) -> dict[str, Any]:
    """Wait until the API reports the delivery in `state`; the delivery with its attempts."""

    def check() -> dict[str, Any] | None:
        found: dict[str, Any] = expect(world.api.get(f"/v1/deliveries/{delivery_id}"), 200)
        return found if found["state"] == state else None

    return wait_until(check, f"delivery {delivery_id} {state}")


def _failed(world: World, webhook_id: str, count: int) -> list[dict[str, Any]]:
    """Wait until the webhook has `count` failed deliveries."""

    def check() -> list[dict[str, Any]] | None:
        found = [d for d in deliveries_of(world.api, webhook_id) if d["state"] == "failed"]
        return found if len(found) == count else None

    return wait_until(check, f"{count} failed deliveries of {webhook_id}")


def test_send_test_event(world: World, page: Page) -> None:
    """Send test: a synthetic event of the chosen type reaches the receiver, marked test."""
    account = unique("acct-test")
    webhook = world.create_webhook(account, description="Test target")
    sign_in(page, world.base_url, world.admin_key)
    _open_webhook(page, world, webhook)
    page.get_by_label("Event type").select_option("order.courier_update")
    page.get_by_role("button", name="Send test").click()
    page.wait_for_url("**/ui/deliveries/dlv_*?notice=test-sent")
    assert page.get_by_role("status").inner_text() == "Test event queued."
    delivery_id = page.url.split("/ui/deliveries/")[1].split("?")[0]

    delivered = _delivery_in_state(world, delivery_id, "delivered")
    assert delivered["test"] is True
    assert delivered["event"]["type"] == "order.courier_update"
    (request,) = [r for r in world.receiver.requests if r.delivery_id == delivery_id]
    assert request.json["test"] is True
    page.reload()
    assert page.locator("#payload-exact").inner_text() == request.body.decode()
    shoot(page, "11-test-delivery")


def test_disable_and_enable(world: World, page: Page) -> None:
    """Disable and enable change the webhook's state as the API reports it."""
    webhook = world.create_webhook(unique("acct-toggle"), description="Toggle me")
    sign_in(page, world.base_url, world.admin_key)
    _open_webhook(page, world, webhook)
    page.get_by_role("button", name="Disable webhook").click()
    assert page.get_by_role("status").inner_text().startswith("Webhook disabled")
    assert _state(world, webhook["id"]) == "disabled"
    assert expect(world.api.get(f"/v1/webhooks/{webhook['id']}"), 200)["disabledReason"] == "manual"
    shoot(page, "12-webhook-disabled")
    page.get_by_role("button", name="Enable webhook").click()
    assert page.get_by_role("status").inner_text() == "Webhook enabled."
    assert _state(world, webhook["id"]) == "active"


def test_rotate_secret_shows_the_new_secret_once(world: World, page: Page) -> None:
    """Rotate: the page shows the secret the API now signs with; the old one keeps a grace."""
    webhook = world.create_webhook(unique("acct-rotate"), description="Rotate me")
    sign_in(page, world.base_url, world.admin_key)
    _open_webhook(page, world, webhook)
    page.get_by_label("Old secret keeps signing for").select_option("3600")
    page.get_by_role("button", name="Rotate secret").click()
    shown = page.get_by_label("New secret").input_value()
    assert shown.startswith("whsec_")
    assert shown != webhook["secret"]
    assert expect(world.api.get(f"/v1/webhooks/{webhook['id']}/secret"), 200)["secret"] == shown
    shoot(page, "13-secret-rotated")
    _open_webhook(page, world, webhook)
    assert shown not in page.content()  # shown once: not on the webhook page
    assert "2 (current, one until" in page.locator("dl.config").inner_text()


def test_retry_now_and_recover_bring_failed_deliveries_back(world: World, page: Page) -> None:
    """Retry now (one delivery) and recover (a time range) requeue failed deliveries, which
    are then delivered."""
    account = unique("acct-fail")
    # The receiver's answer is global; every other delivery has settled by now.
    webhook = world.create_webhook(account, description="Flaky receiver", retrySchedule=[])
    world.receiver.answer(500)
    try:
        first_order, second_order = world.new_order(account), world.new_order(account)
        failed = _failed(world, webhook["id"], 2)
    finally:
        world.receiver.healthy()
    by_order = {d["orderId"]: d for d in failed}

    sign_in(page, world.base_url, world.admin_key)
    page.goto(f"{world.base_url}/ui/deliveries/{by_order[first_order]['id']}")
    attempts = page.get_by_role("table", name="Every attempt, oldest first")
    assert attempts.get_by_text("500").is_visible()
    assert attempts.get_by_text("http status").is_visible()
    shoot(page, "14-delivery-failed")
    page.get_by_role("button", name="Retry now").click()
    assert page.get_by_role("status").inner_text() == "Delivery is due now."
    retried = _delivery_in_state(world, by_order[first_order]["id"], "delivered")
    assert [a["statusCode"] for a in retried["attempts"]] == [500, 200]

    _open_webhook(page, world, webhook)
    page.get_by_role("button", name="Recover").click()
    assert page.get_by_role("status").inner_text() == "1 failed delivery went back to pending."
    recovered = _delivery_in_state(world, by_order[second_order]["id"], "delivered")
    assert [a["statusCode"] for a in recovered["attempts"]] == [500, 200]


def test_replay_sends_stored_events_again(world: World, page: Page) -> None:
    """Replay: every event of the range the webhook takes is queued again, marked replay."""
    account = unique("acct-replay")
    webhook = world.create_webhook(account, description="Replay me")
    order_id = world.new_order(account)
    world.settled(webhook["id"], 1)
    sign_in(page, world.base_url, world.admin_key)
    _open_webhook(page, world, webhook)
    replay = page.get_by_role("region", name="Actions").locator("form", has_text="Replay events")
    replay.get_by_label("order.new").check()
    replay.get_by_role("button", name="Replay").click()
    assert page.get_by_role("status").inner_text() == "1 event queued for replay."
    replays = wait_until(
        lambda: [
            d
            for d in deliveries_of(world.api, webhook["id"])
            if d["replay"] and d["state"] == "delivered"
        ],
        "the replayed delivery",
    )
    assert [d["orderId"] for d in replays] == [order_id]
    event_ids = {d["eventId"] for d in deliveries_of(world.api, webhook["id"])}
    assert len(event_ids) == 1  # the same event (same webhook-id), delivered again
    shoot(page, "15-replayed")
