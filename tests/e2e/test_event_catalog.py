"""The event catalog holds for real traffic: the bodies a real server delivers to a real
receiver (envelope and raw, order events and test events) validate against the schemas
that server publishes at `GET /v1/event-types` and in `/openapi.json`."""

from __future__ import annotations

from typing import Any

import jsonschema
import orjson

from orderhooks.testing.receiver import Receiver
from tests.support.api import Api, expect
from tests.support.data import new_order as make_order

Validator = jsonschema.Draft202012Validator


def check(body: Any, schema: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in Validator(schema).iter_errors(body)]
    assert errors == [], f"{body.get('type', 'raw body')}: {errors}"


async def published_schemas(api: Api) -> dict[str, dict[str, Any]]:
    """The schemas of `GET /v1/event-types`, checked equal to the OpenAPI `webhooks` ones."""
    catalog = expect(await api.client.get("/v1/event-types"), 200)["data"]
    schemas = {entry["type"]: entry["schema"] for entry in catalog}
    document = expect(await api.client.get("/openapi.json"), 200)
    for name, schema in schemas.items():
        content = document["webhooks"][name]["post"]["requestBody"]["content"]
        assert content["application/json"]["schema"] == schema, name
    return schemas


def full_order(account: str) -> dict[str, Any]:
    """An order with every kind of known field the catalog describes, and an unknown one."""
    return make_order(
        account,
        _created="2026-11-28T11:58:02.114000Z",
        statusHistory=[{"timeStamp": "2026-11-28T11:58:02.114000Z", "status": 10}],
        customer={"name": "Ana Silva", "phoneNumber": "+32470000000", "email": None},
        deliveryAddress={"city": "Gent", "coordinates": {"latitude": 51.05, "longitude": 3.72}},
        courier={"deliveryBy": "channel", "status": 0},
        taxes=[{"name": "VAT 6%", "taxClassId": 6, "total": 179}],
        discounts=[{"type": "order_flat_off", "amount": -200}],
        note="no onions",
        tip=150,
        testOrder=False,
        kitchenScreen={"lane": 3},
    )


async def test_delivered_bodies_validate_against_the_catalog(api: Api, account: str) -> None:
    schemas = await published_schemas(api)
    async with Receiver() as envelope_rx, Receiver() as raw_rx:
        envelope_hook = await api.create_webhook(envelope_rx.url, [account])
        await api.create_webhook(raw_rx.url, [account], payloadFormat="raw")
        order = full_order(account)
        ids = await api.new_order(order)
        ids += await api.status(order["_id"], 20, reason="accepted by POS")
        ids += await api.courier(order["_id"], 83)
        ids += await api.status(order["_id"], 90)
        await envelope_rx.wait_for_delivered(set(ids))
        await raw_rx.wait_for_delivered(set(ids))

        bodies = [orjson.loads(r.body) for r in envelope_rx.requests]
        assert [b["type"] for b in bodies] == [
            "order.new",
            "order.status_update",
            "order.courier_update",
            "order.status_update",
        ]
        for body in bodies:
            check(body, schemas[body["type"]])
        types = {b["id"]: b["type"] for b in bodies}
        for request in raw_rx.requests:
            schema = schemas[types[request.webhook_id]]
            check(orjson.loads(request.body), {**schema["properties"]["data"]})
        envelope_rx.verify_all(envelope_hook["secret"])


async def test_test_events_validate_against_the_catalog(
    api: Api, account: str, rx: Receiver
) -> None:
    schemas = await published_schemas(api)
    hook = await api.create_webhook(rx.url, [account])
    for event_type in ("order.new", "order.status_update", "order.courier_update"):
        response = await api.client.post(
            f"/v1/webhooks/{hook['id']}/test", json={"type": event_type}
        )
        delivery_id = expect(response, 202)["deliveryId"]

        def delivered(delivery_id: str = delivery_id) -> bool:
            return any(r.delivery_id == delivery_id for r in rx.accepted())

        await rx.wait_for(delivered, what=f"test {event_type}")
        request = next(r for r in rx.requests if r.delivery_id == delivery_id)
        body = orjson.loads(request.body)
        assert body["test"] is True
        check(body, schemas[event_type])


async def test_the_schemas_would_catch_a_wrong_body(api: Api) -> None:
    schemas = await published_schemas(api)
    body = {
        "id": "evt_1",
        "type": "order.status_update",
        "timestamp": "2026-11-28T12:00:00.000000Z",
        "account": "a",
        "location": "l",
        "orderId": "o",
        "sequence": 1,
        "test": False,
        "data": {"orderId": "o", "account": "a", "location": "l", "status": "20"},
    }
    assert not Validator(schemas["order.status_update"]).is_valid(body)
    assert Validator(schemas["order.status_update"]).is_valid(
        {**body, "data": {**body["data"], "status": 20}}
    )
