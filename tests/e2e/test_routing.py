"""Which webhook gets which event (docs/api.md, webhooks): types, scope, status filters, triggers.

Negative checks lean on per-order ordering where they can: when a later event of the
same order has arrived, an earlier one that was (wrongly) routed would have arrived
first. Across orders and accounts, a short settle time follows the last arrival.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orderhooks.testing.receiver import Receiver
from tests.support.api import Api
from tests.support.data import ALL_TYPES, new_order, unique

SETTLE_SECONDS = 1.0


def of_type(rx: Receiver, event_type: str) -> list[dict[str, Any]]:
    """Accepted envelopes of one type, in arrival order."""
    return [e for e in rx.events(accepted_only=True) if e["type"] == event_type]


def statuses(rx: Receiver, event_type: str) -> list[int]:
    """The `data.status` of each accepted envelope of one type."""
    return [e["data"]["status"] for e in of_type(rx, event_type)]


async def test_event_types_filter(api: Api, account: str) -> None:
    async with Receiver() as only_status, Receiver() as everything:
        status_hook = await api.create_webhook(
            only_status.url, [account], eventTypes=["order.status_update"]
        )
        everything_hook = await api.create_webhook(everything.url, [account])
        order = new_order(account)
        await api.new_order(order)
        await api.status(order["_id"], 20)
        await api.courier(order["_id"], 83)
        last = await api.status(order["_id"], 40)

        await only_status.wait_for_delivered(set(last))
        await everything.wait_for(lambda: len(everything.accepted()) == 4, what="4 events")
        assert [e["type"] for e in only_status.events()] == ["order.status_update"] * 2
        assert [e["sequence"] for e in only_status.events()] == [2, 4]
        assert [e["type"] for e in everything.events()] == [
            "order.new",
            "order.status_update",
            "order.courier_update",
            "order.status_update",
        ]
        only_status.verify_all(status_hook["secret"])
        everything.verify_all(everything_hook["secret"])


async def test_scope_filters_accounts_locations_channel_links_channels(api: Api) -> None:
    account_a, account_b = unique("acct-a"), unique("acct-b")
    base = new_order(account_a)
    other_account = new_order(account_b)
    other_location = new_order(account_a, location="loc-2")
    other_link = new_order(account_a, channelLink="cl-2")
    other_channel = new_order(account_a, channel=9)
    expected = {
        "accounts": [base, other_location, other_link, other_channel],
        "locations": [base, other_link, other_channel],
        "channelLinks": [base, other_location, other_channel],
        "channels": [base, other_location, other_link],
        "star": [base, other_account, other_location, other_link, other_channel],
    }
    scopes: dict[str, dict[str, Any]] = {
        "accounts": {},
        "locations": {"locations": ["loc-1"]},
        "channelLinks": {"channelLinks": ["cl-1"]},
        "channels": {"channels": [7]},
    }
    receivers = {name: Receiver().start() for name in expected}
    try:
        hooks = {
            name: await api.create_webhook(
                receivers[name].url, [account_a], eventTypes=["order.new"], **fields
            )
            for name, fields in scopes.items()
        }
        hooks["star"] = await api.create_webhook(
            receivers["star"].url, ["*"], eventTypes=["order.new"]
        )
        for order in (base, other_account, other_location, other_link, other_channel):
            await api.new_order(order)

        for name, orders in expected.items():
            want = {o["_id"] for o in orders}
            rx = receivers[name]

            def arrived(rx: Receiver = rx, want: set[str] = want) -> bool:
                return want <= {e["orderId"] for e in rx.events()}

            await rx.wait_for(arrived, what=f"{name}: {len(want)} orders")
        await asyncio.sleep(SETTLE_SECONDS)
        ours = {o["_id"] for o in expected["star"]}
        for name, orders in expected.items():
            got = [e["orderId"] for e in receivers[name].events() if e["orderId"] in ours]
            assert sorted(got) == sorted(o["_id"] for o in orders), name
            receivers[name].verify_all(hooks[name]["secret"])
        # The `*` webhook would get every later test's orders: remove it now.
        assert (await api.client.delete(f"/v1/webhooks/{hooks['star']['id']}")).status_code == 204
    finally:
        for rx in receivers.values():
            rx.stop()


@pytest.mark.parametrize(
    ("event_type", "filter_field", "sent", "kept"),
    [
        pytest.param(
            "order.status_update", "statusFilter", (20, 40, 60, 90), [20, 90], id="status"
        ),
        pytest.param(
            "order.courier_update",
            "courierStatusFilter",
            (81, 83, 87, 90),
            [83, 90],
            id="courier-status",
        ),
    ],
)
async def test_status_filter(
    api: Api,
    account: str,
    rx: Receiver,
    event_type: str,
    filter_field: str,
    sent: tuple[int, ...],
    kept: list[int],
) -> None:
    """A filter of the statuses `kept`: of the updates `sent`, only those are delivered."""
    hook = await api.create_webhook(
        rx.url, [account], eventTypes=[event_type], **{filter_field: kept}
    )
    send = api.status if event_type == "order.status_update" else api.courier
    order = new_order(account)
    await api.new_order(order)
    last: list[str] = []
    for status in sent:
        last = await send(order["_id"], status)
    await rx.wait_for_delivered(set(last))
    assert statuses(rx, event_type) == kept
    assert len(rx.requests) == 2
    rx.verify_all(hook["secret"])


async def test_new_order_trigger_fires_once_at_its_status(
    api: Api, account: str, rx: Receiver
) -> None:
    hook = await api.create_webhook(
        rx.url, [account], eventTypes=["order.new", "order.status_update"], newOrderTrigger=20
    )
    order = new_order(account, status=10)
    await api.new_order(order)
    triggered = await api.status(order["_id"], 20)
    assert len(triggered) == 2, "the trigger's order.new and the status update"
    last = await api.status(order["_id"], 40)
    await rx.wait_for_delivered(set(last))

    events = rx.events(accepted_only=True)
    assert [e["type"] for e in events] == [
        "order.new",
        "order.status_update",
        "order.status_update",
    ]
    new, update = events[0], events[1]
    assert new["sequence"] + 1 == update["sequence"], "order.new is numbered just before"
    assert new["data"]["status"] == 20, "data is the document at the triggering status"
    assert new["data"]["items"] == order["items"]
    assert new["data"]["_id"] == order["_id"]
    assert update["data"]["status"] == 20
    assert [e["id"] for e in events] == [r.webhook_id for r in rx.accepted()]
    rx.verify_all(hook["secret"])


@pytest.mark.parametrize(
    ("arrival", "updates", "expected"),
    [
        pytest.param(
            10,
            [60, 90],
            [("order.new", 60), ("order.status_update", 60), ("order.status_update", 90)],
            id="on-a-jump-past-it",
        ),
        pytest.param(
            40, [50], [("order.new", 40), ("order.status_update", 50)], id="met-on-arrival"
        ),
        pytest.param(
            10,
            [110, 120],
            [("order.status_update", 110), ("order.status_update", 120)],
            id="problem-statuses-never-trigger",
        ),
    ],
)
async def test_new_order_trigger(
    api: Api,
    account: str,
    rx: Receiver,
    arrival: int,
    updates: list[int],
    expected: list[tuple[str, int]],
) -> None:
    """A trigger of 20: the order arrives at `arrival`, then moves through `updates`."""
    hook = await api.create_webhook(
        rx.url, [account], eventTypes=["order.new", "order.status_update"], newOrderTrigger=20
    )
    order = new_order(account, status=arrival)
    await api.new_order(order)
    last: list[str] = []
    for status in updates:
        last = await api.status(order["_id"], status)
    await rx.wait_for_delivered(set(last))
    assert [(e["type"], e["data"]["status"]) for e in rx.events()] == expected
    rx.verify_all(hook["secret"])


async def test_trigger_webhook_beside_a_plain_one(api: Api, account: str) -> None:
    """A plain webhook sees the arrival's order.new and the trigger's order.new is not sent
    to it; the trigger webhook does not get the arrival's."""
    async with Receiver() as plain, Receiver() as triggered:
        plain_hook = await api.create_webhook(plain.url, [account], eventTypes=ALL_TYPES)
        triggered_hook = await api.create_webhook(
            triggered.url, [account], eventTypes=["order.new"], newOrderTrigger=20
        )
        order = new_order(account, status=10)
        arrival = await api.new_order(order)
        await api.status(order["_id"], 20)
        last = await api.status(order["_id"], 40)
        await plain.wait_for_delivered(set(last))
        await triggered.wait_for(lambda: len(triggered.accepted()) == 1, what="order.new")
        await asyncio.sleep(SETTLE_SECONDS)
        plain_new = of_type(plain, "order.new")
        assert [e["id"] for e in plain_new] == arrival
        assert [e["data"]["status"] for e in plain_new] == [10]
        assert [(e["type"], e["data"]["status"]) for e in triggered.events()] == [("order.new", 20)]
        plain.verify_all(plain_hook["secret"])
        triggered.verify_all(triggered_hook["secret"])
