"""Payload shaping and erasure on PostgreSQL: a `serve` process on a fresh database, the
same checks as the SQLite suites (test_shaping.py, test_erasure.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.e2e.shaping_support import (
    always_kept,
    assert_no_personal_data,
    erase_while_failing,
    personal_order,
    without_personal_data,
)
from tests.support.api import Api, admin_api, expect

pytestmark = pytest.mark.postgres


@pytest.fixture()
async def pg_api(pg_server: ServerProcess) -> AsyncIterator[Api]:
    """An admin client of the PostgreSQL server."""
    async with admin_api(pg_server) as api:
        yield api


async def test_shaping_on_postgres(pg_api: Api, account: str) -> None:
    async with Receiver() as rx, Receiver() as raw_rx:
        paths = ["items[].plu", "customer.name", "payment"]
        hook = await pg_api.create_webhook(rx.url, [account], personalData="exclude", fields=paths)
        raw = await pg_api.create_webhook(
            raw_rx.url, [account], personalData="exclude", payloadFormat="raw"
        )
        assert (await pg_api.webhook(hook["id"]))["fields"] == paths
        order = personal_order(account)
        ids = await pg_api.new_order(order)
        await rx.wait_for_delivered(set(ids))
        await raw_rx.wait_for_delivered(set(ids))
        assert rx.accepted()[0].json["data"] == {
            **always_kept(order),
            "payment": order["payment"],
            "items": [{"plu": "BRG-01"}, {"plu": "DRN-03"}],
        }
        assert raw_rx.accepted()[0].json == without_personal_data(order, "order.new")
        for request in (*rx.accepted(), *raw_rx.accepted()):
            assert_no_personal_data(request.body)
        rx.verify_all(hook["secret"])
        raw_rx.verify_all(raw["secret"])
        delivery = await pg_api.delivery(rx.accepted()[0].delivery_id or "")
        assert delivery["event"]["data"] == order, "the stored event is unchanged"

        patched = expect(
            await pg_api.call(
                "PATCH", f"/v1/webhooks/{hook['id']}", json_body={"personalData": "include"}
            ),
            200,
        )
        assert (patched["personalData"], patched["fields"]) == ("include", paths)
        second = personal_order(account)
        ids = await pg_api.new_order(second)
        await rx.wait_for_delivered(set(ids))
        data = rx.accepted()[-1].json["data"]
        assert data["customer"] == {"name": "Ana Silva"}, "customer.name is listed"


async def test_erasure_on_postgres(pg_api: Api, account: str, rx: Receiver) -> None:
    await erase_while_failing(pg_api, account, rx)
