"""Payload shaping through the real server and real receivers (docs/events.md, "Payload
shaping"): `personalData` and `fields` shape envelope and raw bodies before signing, for
deliveries, replays and test events, by the webhook's current settings; the stored
event never changes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.e2e.shaping_support import (
    PERSONAL_COURIER_FIELDS,
    PERSONAL_FIELDS,
    SINCE,
    always_kept,
    assert_no_personal_data,
    dashboard_page,
    dashboard_payload,
    personal_courier_update,
    personal_order,
    without_personal_data,
)
from tests.support.api import Api, expect
from tests.support.data import ALL_TYPES, new_order


async def _send_personal_flow(api: Api, account: str) -> tuple[dict[str, Any], list[str]]:
    """A personal order, a status update and a courier update; the order and event ids."""
    order = personal_order(account)
    ids = await api.new_order(order)
    ids += await api.status(order["_id"], 20, reason="accepted by POS")
    path = f"/v1/orders/{order['_id']}/courier"
    ids += expect(await api.call("POST", path, json_body=personal_courier_update()), 202)[
        "eventIds"
    ]
    return order, ids


def _by_event(rx: Receiver) -> dict[str, Any]:
    """The first accepted body of each event, by event id."""
    out: dict[str, Any] = {}
    for request in rx.accepted():
        out.setdefault(request.webhook_id, request)
    return out


async def test_personal_data_exclude_shapes_envelope_and_raw_bodies(
    api: Api, server: ServerProcess, account: str
) -> None:
    async with Receiver() as full_rx, Receiver() as env_rx, Receiver() as raw_rx:
        full = await api.create_webhook(full_rx.url, [account])
        env = await api.create_webhook(env_rx.url, [account], personalData="exclude")
        raw = await api.create_webhook(
            raw_rx.url, [account], personalData="exclude", payloadFormat="raw"
        )
        assert (full["personalData"], full["fields"]) == ("include", None)
        assert (env["personalData"], env["fields"]) == ("exclude", None)
        assert (await api.webhook(raw["id"]))["personalData"] == "exclude"
        order, ids = await _send_personal_flow(api, account)
        for rx in (full_rx, env_rx, raw_rx):
            await rx.wait_for_delivered(set(ids))

        full_bodies, env_bodies, raw_bodies = (_by_event(rx) for rx in (full_rx, env_rx, raw_rx))
        assert full_bodies[ids[0]].json["data"] == order, "the default sends everything"
        assert full_bodies[ids[2]].json["data"]["courier"]["firstName"] == "Jonas"
        for event_id in ids:
            stored = full_bodies[event_id].json
            shaped = env_bodies[event_id]
            assert_no_personal_data(shaped.body)
            assert_no_personal_data(raw_bodies[event_id].body)
            expected = without_personal_data(stored["data"], stored["type"])
            assert shaped.json == {**stored, "data": expected}, "only data is shaped"
            assert raw_bodies[event_id].json == expected
            # The raw body is the shaped data's bytes, as the envelope carries them.
            assert raw_bodies[event_id].body == orjson.dumps(shaped.json["data"])
        new_data = env_bodies[ids[0]].json["data"]
        assert not PERSONAL_FIELDS & set(new_data)
        assert not PERSONAL_COURIER_FIELDS & set(new_data["courier"])
        assert new_data["items"] == order["items"] and new_data["payment"] == order["payment"]
        courier_data = env_bodies[ids[2]].json["data"]
        assert courier_data["courier"] == {"deliveryBy": "channel", "status": 83}
        assert not {"trackingURL", "coordinates"} & set(courier_data)
        # The signatures (Standard Webhooks and the hex header) cover the shaped bytes.
        env_rx.verify_all(env["secret"])
        raw_rx.verify_all(raw["secret"])
        full_rx.verify_all(full["secret"])

        # The stored event never changes; the dashboard shows the bytes that were sent.
        delivery_id = env_bodies[ids[0]].delivery_id
        delivery = await api.delivery(delivery_id)
        assert delivery["event"]["data"] == order
        event = expect(await api.call("GET", f"/v1/events/{ids[0]}"), 200)
        assert event["data"]["customer"] == order["customer"]
        shown = await dashboard_payload(server.base_url, server.admin_key, delivery_id)
        assert shown.encode() == env_bodies[ids[0]].body
        raw_shown = await dashboard_payload(
            server.base_url, server.admin_key, raw_bodies[ids[0]].delivery_id
        )
        assert raw_shown.encode() == raw_bodies[ids[0]].body
        config = await dashboard_page(
            server.base_url, server.admin_key, f"/ui/webhooks/{raw['id']}"
        )
        assert "<dt>Personal data</dt><dd>excluded</dd>" in config


async def test_fields_projection_on_new_orders_and_status_updates(api: Api, account: str) -> None:
    paths = ["items[].plu", "items[].subItems[].plu", "payment.amount", "reason"]
    async with Receiver() as rx, Receiver() as private_rx:
        hook = await api.create_webhook(rx.url, [account], fields=paths)
        assert hook["fields"] == paths and hook["personalData"] == "include"
        # A listed personal path is still removed by personalData: exclude.
        private = await api.create_webhook(
            private_rx.url,
            [account],
            fields=["customer.name", "note", "items[].plu"],
            personalData="exclude",
        )
        order = personal_order(account)
        ids = await api.new_order(order)
        ids += await api.status(order["_id"], 20, reason="accepted by POS")
        await rx.wait_for_delivered(set(ids))
        await private_rx.wait_for_delivered(set(ids))

        bodies = _by_event(rx)
        new = bodies[ids[0]].json["data"]
        assert new == {
            **always_kept(order),
            "payment": {"amount": 2650},
            "items": [{"plu": "BRG-01", "subItems": [{"plu": "MOD-CHS"}]}, {"plu": "DRN-03"}],
        }
        assert list(new) == ["_id", "account", "location", "status", "payment", "items"], (
            "keys keep the stored order"
        )
        update = bodies[ids[1]].json["data"]
        assert update == {
            "orderId": order["_id"],
            "location": "loc-1",
            "account": account,
            "status": 20,
            "reason": "accepted by POS",
        }
        private_bodies = _by_event(private_rx)
        private_new = private_bodies[ids[0]].json["data"]
        assert private_new == {
            **always_kept(order),
            "items": [{"plu": "BRG-01"}, {"plu": "DRN-03"}],
        }
        for request in private_bodies.values():
            assert_no_personal_data(request.body)
        rx.verify_all(hook["secret"])
        private_rx.verify_all(private["secret"])


async def test_replay_and_test_events_are_shaped_by_the_current_settings(
    api: Api, account: str, rx: Receiver
) -> None:
    hook = await api.create_webhook(
        rx.url, [account], personalData="exclude", fields=["items[].plu"]
    )
    order = personal_order(account)
    ids = await api.new_order(order)
    await rx.wait_for_delivered(set(ids))
    first = rx.accepted()[0].json["data"]
    assert first == {
        **always_kept(order),
        "items": [{"plu": "BRG-01"}, {"plu": "DRN-03"}],
    }

    # The projection is dropped; personal data stays excluded. A replay of the same
    # event is sent with the settings of now.
    patched = expect(
        await api.call("PATCH", f"/v1/webhooks/{hook['id']}", json_body={"fields": None}), 200
    )
    assert (patched["fields"], patched["personalData"]) == (None, "exclude")
    assert expect(
        await api.call("POST", f"/v1/webhooks/{hook['id']}/replay", json_body={"since": SINCE}),
        200,
    ) == {"queued": 1}
    await rx.wait_for(lambda: len(rx.accepted()) == 2, what="the replay")
    replayed = rx.accepted()[1]
    assert replayed.webhook_id == ids[0]
    assert replayed.json["data"] == without_personal_data(order, "order.new")
    assert_no_personal_data(replayed.body)

    # Test events: synthetic data with a customer and a courier, shaped alike.
    sent = 2
    for event_type in ALL_TYPES:
        path = f"/v1/webhooks/{hook['id']}/test"
        expect(await api.call("POST", path, json_body={"type": event_type}), 202)
        sent += 1
        await rx.wait_for(lambda n=sent: len(rx.accepted()) == n, what=f"test {event_type}")
        body = rx.accepted()[-1].json
        assert body["test"] is True and body["type"] == event_type
        data = body["data"]
        assert not PERSONAL_FIELDS & set(data), data
        assert not PERSONAL_COURIER_FIELDS & set(data.get("courier") or {}), data
        if event_type == "order.courier_update":
            assert not {"trackingURL", "coordinates"} & set(data), data
    rx.verify_all(hook["secret"])


async def test_patch_changes_the_shaping_of_later_sends(
    api: Api, account: str, rx: Receiver
) -> None:
    hook = await api.create_webhook(rx.url, [account], eventTypes=["order.new"])
    path = f"/v1/webhooks/{hook['id']}"

    async def send() -> dict[str, Any]:
        order = personal_order(account)
        ids = await api.new_order(order)
        await rx.wait_for_delivered(set(ids))
        data: dict[str, Any] = next(r for r in rx.accepted() if r.webhook_id == ids[0]).json["data"]
        assert data["_id"] == order["_id"]
        return data

    assert "customer" in await send()
    shaped = {"personalData": "exclude", "fields": ["items[].plu", "customer"]}
    patched = expect(await api.call("PATCH", path, json_body=shaped), 200)
    assert (patched["personalData"], patched["fields"]) == ("exclude", shaped["fields"])
    assert (await api.webhook(hook["id"]))["fields"] == shaped["fields"]
    assert set(await send()) == {"_id", "account", "location", "status", "items"}
    back = expect(
        await api.call("PATCH", path, json_body={"personalData": "include", "fields": None}), 200
    )
    assert (back["personalData"], back["fields"]) == ("include", None)
    data = await send()
    assert data["customer"]["name"] == "Ana Silva" and data["note"] == "Ring twice"
    rx.verify_all(hook["secret"])


async def test_the_dashboard_shows_the_bytes_sent_after_a_patch_of_the_shaping(
    api: Api, server: ServerProcess, account: str, rx: Receiver
) -> None:
    """docs/dashboard.md: the delivery page shows the body its last attempt sent, shaped
    as it was then, not as the webhook's settings would shape it now."""
    hook = await api.create_webhook(rx.url, [account], eventTypes=["order.new"])
    first = await api.new_order(personal_order(account))
    await rx.wait_for_delivered(set(first))
    sent = next(r for r in rx.accepted() if r.webhook_id == first[0])
    reshaped = {"personalData": "exclude", "fields": ["items[].plu"], "payloadFormat": "raw"}
    expect(await api.call("PATCH", f"/v1/webhooks/{hook['id']}", json_body=reshaped), 200)
    shown = await dashboard_payload(server.base_url, server.admin_key, sent.delivery_id)
    assert shown.encode() == sent.body
    # A delivery sent after the PATCH shows its own, reshaped bytes.
    later = await api.new_order(personal_order(account))
    await rx.wait_for_delivered(set(later))
    resent = next(r for r in rx.accepted() if r.webhook_id == later[0])
    assert "customer" not in resent.json
    shown = await dashboard_payload(server.base_url, server.admin_key, resent.delivery_id)
    assert shown.encode() == resent.body


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("personalData", "none"),
        ("personalData", None),
        ("fields", "items[].plu"),
        ("fields", ["items..plu"]),
        ("fields", ["items[0].plu"]),
        ("fields", ["a" * 201]),
        ("fields", [f"f{n}" for n in range(101)]),
        ("fields", [7]),
    ],
)
async def test_invalid_shaping_is_refused_naming_the_field_and_stores_nothing(
    api: Api, account: str, name: str, value: Any
) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "accounts": [account], "eventTypes": ALL_TYPES}
    refused = expect(await api.call("POST", "/v1/webhooks", json_body={**body, name: value}), 422)
    assert [d["field"] for d in refused["error"]["details"]] == [name]
    assert await api.list_all("/v1/webhooks", account=account) == []

    hook = await api.create_webhook("http://127.0.0.1:9/hook", [account])
    before = await api.webhook(hook["id"])
    patch = {"description": "changed", name: value}
    refused = expect(await api.call("PATCH", f"/v1/webhooks/{hook['id']}", json_body=patch), 422)
    assert [d["field"] for d in refused["error"]["details"]] == [name]
    assert await api.webhook(hook["id"]) == before


async def test_shaping_leaves_other_orders_and_webhooks_alone(
    api: Api, account: str, rx: Receiver
) -> None:
    """An order without personal data and a projection of nothing: the ids alone."""
    hook = await api.create_webhook(rx.url, [account], fields=[], personalData="exclude")
    order = new_order(account)
    del order["customer"]
    ids = await api.new_order(order)
    await rx.wait_for_delivered(set(ids))
    assert rx.accepted()[0].json["data"] == always_kept(order)
    rx.verify_all(hook["secret"])
