"""Webhooks that disable themselves (docs/guarantees.md, retries): 410 Gone, and `failing` after
`ORDERHOOKS_DISABLE_AFTER` seconds without a success (3 s on this module's server)."""

from __future__ import annotations

import asyncio

import pytest

from orderhooks.testing.receiver import Receiver
from tests.e2e.support import states
from tests.support.api import Api, expect
from tests.support.data import new_order

SERVER_ENV = {"ORDERHOOKS_DISABLE_AFTER": "3"}
DISABLE_AFTER_SECONDS = 3
SETTLE_SECONDS = 1.5


async def test_410_disables_the_webhook_and_fails_the_delivery(
    api: Api, account: str, rx: Receiver
) -> None:
    rx.gone()
    hook = await api.create_webhook(rx.url, [account])
    ids = await api.new_order(new_order(account))
    disabled = await api.wait_webhook(
        hook["id"], lambda w: w["state"] == "disabled", what="disabled"
    )
    assert disabled["disabledReason"] == "gone"
    assert disabled["disabledAt"]
    [delivery] = await api.wait_deliveries(
        hook["id"], lambda ds: states(ds) == {"failed": 1}, what="failed"
    )
    assert delivery["eventId"] == ids[0]
    assert delivery["attemptCount"] == 1
    assert (await api.delivery(delivery["id"]))["attempts"][0]["statusCode"] == 410

    rx.healthy()
    await api.new_order(new_order(account))
    await asyncio.sleep(SETTLE_SECONDS)
    assert len(rx.requests) == 1, "a disabled webhook gets nothing"
    assert len(await api.deliveries(hook["id"])) == 1, "nor new deliveries"
    rx.verify_all(hook["secret"])


async def test_disabling_a_webhook_disabled_as_gone_keeps_why_and_when(
    api: Api, account: str, rx: Receiver
) -> None:
    """Disabling a disabled webhook changes nothing (docs/guarantees.md): the reason the
    receiver gave (410 Gone) and when it was disabled stay what partners were told."""
    rx.gone()
    hook = await api.create_webhook(rx.url, [account])
    await api.new_order(new_order(account))
    gone = await api.wait_webhook(hook["id"], lambda w: w["state"] == "disabled", what="gone")
    assert gone["disabledReason"] == "gone"
    again = expect(await api.call("POST", f"/v1/webhooks/{hook['id']}/disable"), 200)
    assert (again["state"], again["disabledReason"], again["disabledAt"]) == (
        "disabled",
        "gone",
        gone["disabledAt"],
    )
    stored = await api.webhook(hook["id"])
    assert (stored["disabledReason"], stored["disabledAt"]) == ("gone", gone["disabledAt"])


@pytest.mark.slow
async def test_failing_webhook_is_disabled(api: Api, account: str, rx: Receiver) -> None:
    rx.answer(500)
    hook = await api.create_webhook(rx.url, [account], retrySchedule=[1] * 20)
    await api.new_order(new_order(account))
    await api.new_order(new_order(account))
    disabled = await api.wait_webhook(
        hook["id"],
        lambda w: w["state"] == "disabled",
        timeout=DISABLE_AFTER_SECONDS + 12,
        what="disabled as failing",
    )
    assert disabled["disabledReason"] == "failing"
    # An attempt claimed before the webhook was disabled may still be in flight, or
    # answered with its outcome not yet recorded: once no delivery is `delivering`, every
    # request it will ever get has arrived (nothing is claimed for a disabled webhook).
    await api.wait_deliveries(
        hook["id"], lambda ds: states(ds) == {"pending": 2}, what="its deliveries wait"
    )
    seen = len(rx.requests)
    await asyncio.sleep(SETTLE_SECONDS + 1)
    assert len(rx.requests) == seen, "a disabled webhook is not attempted"
    deliveries = await api.deliveries(hook["id"])
    assert states(deliveries) == {"pending": 2}, "its deliveries wait"
    rx.verify_all(hook["secret"])


@pytest.mark.slow
async def test_a_recovering_webhook_stays_active(api: Api, account: str, rx: Receiver) -> None:
    rx.fail_first(1, per_delivery=True)
    hook = await api.create_webhook(rx.url, [account])
    ids: list[str] = []
    for _ in range(3):
        ids += await api.new_order(new_order(account))
        await asyncio.sleep(1)
    await rx.wait_for_delivered(set(ids), timeout=20)
    # The last outcome (a success) is recorded a moment after the receiver answered.
    await api.wait_deliveries(hook["id"], lambda ds: states(ds) == {"delivered": 3})
    await asyncio.sleep(DISABLE_AFTER_SECONDS)
    assert (await api.webhook(hook["id"]))["state"] == "active"
    rx.verify_all(hook["secret"])
