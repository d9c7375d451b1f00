"""The webhook field `batch` through the API (docs/api.md): stored, answered, patched,
and refused with 422 naming `batch` (storing nothing) when invalid or with a raw
payload format."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Api
from tests.support.data import unique

BATCH = {"maxEvents": 100, "maxWaitMs": 500}


def create_body(account: str, **fields: Any) -> dict[str, Any]:
    return {
        "url": "https://receiver.example.com/hook",
        "accounts": [account],
        "eventTypes": ["order.new"],
        **fields,
    }


def names_batch(response: Any) -> bool:
    """Whether a 422 answer names `batch` (or one of its fields)."""
    details = response.json()["error"]["details"]
    return bool(details) and all(d["field"].split(".")[0] == "batch" for d in details)


async def test_batch_is_null_by_default_and_stored_when_given(api: Api) -> None:
    plain = await api.make_webhook(unique("acct"))
    assert plain["batch"] is None
    batching = await api.make_webhook(unique("acct"), batch=BATCH)
    assert batching["batch"] == BATCH
    assert (await api.webhook(batching["id"]))["batch"] == BATCH


INVALID_BATCHES = [
    {"maxEvents": 1, "maxWaitMs": 0},
    {"maxEvents": 501, "maxWaitMs": 0},
    {"maxEvents": 2, "maxWaitMs": -1},
    {"maxEvents": 2, "maxWaitMs": 60_001},
    {"maxEvents": "10", "maxWaitMs": 0},
    {"maxEvents": True, "maxWaitMs": 0},
    {"maxEvents": 10.5, "maxWaitMs": 0},
    {"maxEvents": 10},
    {"maxWaitMs": 10},
    {"maxEvents": 10, "maxWaitMs": 0, "maxBytes": 1},
    {},
    [10, 0],
    "10",
    10,
]


@pytest.mark.parametrize("batch", INVALID_BATCHES)
async def test_an_invalid_batch_is_422_naming_it(api: Api, batch: Any) -> None:
    account = unique("acct")
    response = await api.call("POST", "/v1/webhooks", json_body=create_body(account, batch=batch))
    assert response.status_code == 422, response.text
    assert names_batch(response), response.text
    listed = await api.call("GET", f"/v1/webhooks?account={account}")
    assert listed.json()["data"] == []


async def test_batch_needs_the_envelope_format(api: Api) -> None:
    account = unique("acct")
    body = create_body(account, batch=BATCH, payloadFormat="raw")
    response = await api.call("POST", "/v1/webhooks", json_body=body)
    assert response.status_code == 422 and names_batch(response), response.text
    listed = await api.call("GET", f"/v1/webhooks?account={account}")
    assert listed.json()["data"] == []
    raw_plain = create_body(account, batch=None, payloadFormat="raw")
    assert (await api.call("POST", "/v1/webhooks", json_body=raw_plain)).status_code == 201


async def test_batch_can_be_patched_on_and_off(api: Api) -> None:
    webhook = await api.make_webhook(unique("acct"))
    path = f"/v1/webhooks/{webhook['id']}"
    on = await api.call("PATCH", path, json_body={"batch": BATCH})
    assert on.status_code == 200 and on.json()["batch"] == BATCH
    other = await api.call("PATCH", path, json_body={"description": "kept batching"})
    assert other.json()["batch"] == BATCH
    off = await api.call("PATCH", path, json_body={"batch": None})
    assert off.status_code == 200 and off.json()["batch"] is None


@pytest.mark.parametrize(
    "patch",
    [
        {"payloadFormat": "raw"},
        {"batch": {"maxEvents": 1, "maxWaitMs": 0}},
        {"batch": {"maxEvents": 5, "maxWaitMs": 0}, "payloadFormat": "raw"},
    ],
)
async def test_invalid_batch_patches_change_nothing(api: Api, patch: dict[str, Any]) -> None:
    webhook = await api.make_webhook(unique("acct"), batch=BATCH)
    path = f"/v1/webhooks/{webhook['id']}"
    response = await api.call("PATCH", path, json_body=patch)
    assert response.status_code == 422 and names_batch(response), response.text
    after = (await api.call("GET", path)).json()
    assert after == {k: v for k, v in webhook.items() if k != "secret"}


async def test_a_raw_webhook_may_start_batching_with_the_envelope(api: Api) -> None:
    webhook = await api.make_webhook(unique("acct"), payloadFormat="raw")
    path = f"/v1/webhooks/{webhook['id']}"
    both = await api.call("PATCH", path, json_body={"payloadFormat": "envelope", "batch": BATCH})
    assert both.status_code == 200, both.text
    assert both.json()["batch"] == BATCH and both.json()["payloadFormat"] == "envelope"
