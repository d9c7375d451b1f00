"""Keys, agreements, usage, audit, rate limits, operations endpoints, error mapping and
the OpenAPI document, through the API on a real SQLite store."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import structlog
import structlog.testing

from orderhooks.domain.model import Role
from orderhooks.exceptions import StoreUnavailable
from orderhooks.metrics import Metrics
from orderhooks.web.app import create_app
from tests.integration.api_support import (
    LocalApi,
    api_settings,
    finish_deliveries,
    finish_delivery,
    running_api,
    store_key,
)
from tests.support.api import Api
from tests.support.data import PRICING, courier_body, iso_now, new_order, unique

# ---------------------------------------------------------------- keys


async def test_keys_are_shown_once_and_never_listed(api: Api) -> None:
    account = unique("acct")
    response = await api.call(
        "POST", "/v1/keys", json_body={"role": "partner", "accounts": [account], "name": "BI"}
    )
    assert response.status_code == 201
    created = response.json()
    assert created["id"].startswith("key_")
    assert created["key"].startswith("ohk_")
    assert {k: created[k] for k in ("role", "accounts", "name")} == {
        "role": "partner",
        "accounts": [account],
        "name": "BI",
    }
    listed = await api.call("GET", "/v1/keys?limit=500")
    assert listed.status_code == 200
    item = next(k for k in listed.json()["data"] if k["id"] == created["id"])
    assert "key" not in item and "keyHash" not in item and "key_hash" not in item
    assert item["revokedAt"] is None
    assert created["key"] not in listed.text and api.admin_key not in listed.text
    works = await api.call("GET", "/v1/webhooks", created["key"])
    assert works.status_code == 200


async def test_a_revoked_key_is_refused_at_once(api: Api) -> None:
    key = await api.make_key("ingest")
    assert (await api.call("GET", "/v1/keys", key)).status_code == 403  # known, wrong role
    assert (await api.call("DELETE", f"/v1/keys/{api.key_ids[key]}")).status_code == 204
    refused = await api.call("POST", "/v1/orders", key, json_body={})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    listed = (await api.call("GET", "/v1/keys?limit=500")).json()["data"]
    assert next(k for k in listed if k["id"] == api.key_ids[key])["revokedAt"] is not None
    assert (await api.call("DELETE", "/v1/keys/key_nope")).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "partner", "name": "p"}, "accounts"),
        ({"role": "partner", "accounts": [], "name": "p"}, "accounts"),
        ({"role": "admin", "accounts": ["a"], "name": "p"}, "accounts"),
        ({"role": "ingest", "accounts": ["a"], "name": "p"}, "accounts"),
        ({"role": "partner", "accounts": ["*"], "name": "p"}, "accounts"),
        ({"role": "root", "name": "p"}, "role"),
        ({"role": "admin"}, "name"),
        ({"role": "admin", "name": 5}, "name"),
        ({"role": "admin", "name": "n", "key": "ohk_mine"}, "key"),
    ],
)
async def test_invalid_keys_are_422(api: Api, body: dict[str, Any], field: str) -> None:
    response = await api.call("POST", "/v1/keys", json_body=body)
    assert response.status_code == 422
    assert field in [d["field"] for d in response.json()["error"]["details"]]


async def test_wrong_keys_never_appear_in_error_answers(api: Api) -> None:
    attempt = "ohk_" + "x" * 43
    response = await api.call("GET", "/v1/webhooks", attempt)
    assert response.status_code == 401
    assert attempt not in response.text
    assert (
        await api.call("GET", "/v1/webhooks", None, headers={"authorization": "Basic abc"})
    ).status_code == 401


# ---------------------------------------------------------------- agreements


async def test_agreement_put_and_get(api: Api) -> None:
    account = unique("acct")
    assert (await api.call("GET", f"/v1/accounts/{account}/agreement")).status_code == 404
    body = {"signedBy": "Jane Doe", "signedAt": "2026-11-01T09:00:00+01:00", "pricing": PRICING}
    put = await api.call("PUT", f"/v1/accounts/{account}/agreement", json_body=body)
    assert put.status_code == 200
    expected = {
        "account": account,
        "signedBy": "Jane Doe",
        "signedAt": "2026-11-01T08:00:00.000000Z",
        "pricing": PRICING,
    }
    assert put.json() == expected
    partner = await api.make_key("partner", [account])
    read = await api.call("GET", f"/v1/accounts/{account}/agreement", partner)
    assert read.json() == expected


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"signedBy": ""}, "signedBy"),
        ({"signedAt": "2026-11-01"}, "signedAt"),
        ({"pricing": {**PRICING, "currency": "eur"}}, "pricing.currency"),
        ({"pricing": {**PRICING, "currency": "EURO"}}, "pricing.currency"),
        (
            {"pricing": {**PRICING, "perThousand": {**PRICING["perThousand"], "order.new": "500"}}},
            "pricing.perThousand.order.new",
        ),
        (
            {"pricing": {**PRICING, "perThousand": {**PRICING["perThousand"], "order.new": -1}}},
            "pricing.perThousand.order.new",
        ),
        (
            {"pricing": {**PRICING, "perThousand": {"order.new": 1, "order.status_update": 1}}},
            "pricing.perThousand.order.courier_update",
        ),
        ({"extra": True}, "extra"),
    ],
)
async def test_agreements_are_validated_strictly(
    api: Api, change: dict[str, Any], field: str
) -> None:
    account = unique("acct")
    body = {"signedBy": "Jane", "signedAt": "2026-11-01T09:00:00Z", "pricing": PRICING, **change}
    response = await api.call("PUT", f"/v1/accounts/{account}/agreement", json_body=body)
    assert response.status_code == 422
    assert field in [d["field"] for d in response.json()["error"]["details"]]
    assert (await api.call("GET", f"/v1/accounts/{account}/agreement")).status_code == 404


# ---------------------------------------------------------------- usage


async def test_usage_counts_delivered_units_and_prices_them(api: LocalApi) -> None:
    account = unique("acct")
    await api.agree(account)  # order.new costs 500 per thousand
    webhook = await api.make_webhook(account)
    for _ in range(3):
        await api.post_order(account)
    listed = (await api.call("GET", f"/v1/deliveries?webhookId={webhook['id']}")).json()["data"]
    await finish_deliveries(api, {d["id"]: 200 for d in listed})
    month = datetime.now(UTC).strftime("%Y-%m")
    partner = await api.make_key("partner", [account])
    response = await api.call("GET", "/v1/usage", partner)
    assert response.status_code == 200
    assert response.json()["data"] == [
        {
            "account": account,
            "month": month,
            "eventType": "order.new",
            "delivered": 3,
            "replayed": 0,
            "charge": 2,  # 3 × 500 / 1000 = 1.5, rounded half up
            "currency": "EUR",
        }
    ]
    as_csv = await api.call(
        "GET", f"/v1/usage?account={account}&format=csv&from={month}&to={month}"
    )
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert rows == [
        ["account", "month", "eventType", "delivered", "replayed", "charge", "currency"],
        [account, month, "order.new", "3", "0", "2", "EUR"],
    ]


async def test_usage_without_agreement_has_no_currency_and_no_charge(tmp_path: Path) -> None:
    async with running_api(tmp_path, require_agreement=False) as app:
        account = unique("acct")
        webhook = await app.make_webhook(account)
        await app.post_order(account)
        [delivery] = (await app.call("GET", f"/v1/deliveries?webhookId={webhook['id']}")).json()[
            "data"
        ]
        await finish_delivery(app, delivery["id"], 200)
        data = (await app.call("GET", f"/v1/usage?account={account}")).json()["data"]
        assert [(r["delivered"], r["charge"], r["currency"]) for r in data] == [(1, 0, None)]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-13", "from"),
        ("to=26-01", "to"),
        ("from=2026-05&to=2026-04", "to"),
        ("from=2000-01&to=2026-01", "from"),
        ("format=xml", "format"),
    ],
)
async def test_usage_query_validation(api: Api, query: str, field: str) -> None:
    response = await api.call("GET", f"/v1/usage?{query}")
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]


async def test_usage_of_past_months_is_empty(api: Api) -> None:
    response = await api.call("GET", "/v1/usage?from=2001-01&to=2001-12")
    assert response.json() == {"data": []}


# ---------------------------------------------------------------- rate limit


async def test_the_per_key_rate_limit(tmp_path: Path) -> None:
    async with running_api(tmp_path, rate_limit_per_key=1) as app:
        key = await store_key(app, Role.PARTNER, ("a",))
        other = await store_key(app, Role.PARTNER, ("a",))
        assert (await app.call("GET", "/v1/webhooks", key)).status_code == 200
        limited = await app.call("GET", "/v1/webhooks", key)
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert (await app.call("GET", "/v1/webhooks", other)).status_code == 200


# ---------------------------------------------------------------- operations


class BrokenStore:
    """A store whose database is gone."""

    async def ping(self) -> None:
        raise StoreUnavailable("gone")

    async def queue_gauges(self) -> list[Any]:
        raise StoreUnavailable("gone")

    async def key_by_hash(self, key_hash: str) -> None:
        raise StoreUnavailable("gone")


async def _get(app: Any, path: str, key: str | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        headers = {} if key is None else {"authorization": f"Bearer {key}"}
        return await client.get(path, headers=headers)


async def test_readiness(tmp_path: Path, api: LocalApi) -> None:
    settings = api_settings(tmp_path)
    assert (await _get(create_app(settings, api.store, role="api"), "/readyz")).status_code == 200
    stopped = create_app(settings, api.store, role="serve", workers_running=lambda: False)
    response = await _get(stopped, "/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_ready"
    running = create_app(settings, api.store, role="worker", workers_running=lambda: True)
    assert (await _get(running, "/readyz")).status_code == 200
    api_only = create_app(settings, api.store, role="api", workers_running=lambda: False)
    assert (await _get(api_only, "/readyz")).status_code == 200  # api checks the store only
    broken = create_app(settings, BrokenStore(), role="api")  # type: ignore[arg-type]
    assert (await _get(broken, "/readyz")).status_code == 503
    assert (await _get(broken, "/healthz")).status_code == 200
    assert (await _get(broken, "/metrics")).status_code == 200
    unavailable = await _get(broken, "/v1/webhooks", "ohk_any")
    assert unavailable.status_code == 503
    assert unavailable.json()["error"]["code"] == "unavailable"


async def test_a_worker_serves_only_health_readiness_and_metrics(
    tmp_path: Path, api: LocalApi
) -> None:
    worker = create_app(api_settings(tmp_path), api.store, role="worker")
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await _get(worker, path)).status_code == 200
    for path in ("/v1/webhooks", "/openapi.json", "/docs", "/ui"):
        response = await _get(worker, path, api.admin_key)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


async def test_metrics_text_with_queue_gauges(api: Api) -> None:
    account = unique("acct")
    await api.agree(account)
    webhook = await api.make_webhook(account)
    await api.post_order(account)
    response = await api.call("GET", "/metrics", None)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert f'orderhooks_queue_pending{{webhook_id="{webhook["id"]}"}} 1.0' in response.text
    assert (
        f'orderhooks_queue_oldest_pending_age_seconds{{webhook_id="{webhook["id"]}"}}'
        in response.text
    )


# ---------------------------------------------------------------- errors


async def test_unknown_routes_and_methods_answer_the_error_shape(api: Api) -> None:
    missing = await api.call("GET", "/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = await api.call("PUT", "/v1/webhooks")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"
    assert wrong.headers["allow"]


async def test_an_unexpected_failure_is_500_in_the_error_shape(
    api: LocalApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(api.store, "list_keys", explode)
    app = create_app(api.settings, api.store, role="api")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with structlog.testing.capture_logs() as logs:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            headers = {"authorization": f"Bearer {api.admin_key}"}
            response = await client.get("/v1/keys", headers=headers)
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "internal error", "details": []}
    }
    [entry] = [e for e in logs if e["event"] == "unexpected_error"]
    assert entry["path"] == "/v1/keys"
    assert api.admin_key not in str(logs)


# ---------------------------------------------------------------- the OpenAPI document


async def test_answers_match_the_published_schemas(api: LocalApi) -> None:
    """Real answers validate against the schemas of /openapi.json (what a fuzzer checks)."""
    document = (await api.call("GET", "/openapi.json", None)).json()
    account = unique("acct")
    await api.agree(account)
    webhook = await api.make_webhook(account)
    order = await api.post_order(account)
    [delivery] = (await api.call("GET", f"/v1/deliveries?webhookId={webhook['id']}")).json()["data"]
    await finish_delivery(api, delivery["id"], 500)
    hook, order_id = webhook["id"], order["orderId"]
    window = {"since": "2026-01-01T00:00:00Z", "until": iso_now()}
    new_webhook = {
        "url": "https://r.example.com/",
        "accounts": [account],
        "eventTypes": ["order.new"],
    }
    agreement = {"signedBy": "Ops", "signedAt": "2026-11-01T09:00:00Z", "pricing": PRICING}
    calls = [
        ("GET", "/v1/webhooks", None, "/v1/webhooks"),
        ("GET", f"/v1/webhooks/{webhook['id']}", None, "/v1/webhooks/{webhookId}"),
        ("GET", f"/v1/webhooks/{webhook['id']}/stats", None, "/v1/webhooks/{webhookId}/stats"),
        ("GET", f"/v1/deliveries/{delivery['id']}", None, "/v1/deliveries/{deliveryId}"),
        ("GET", "/v1/deliveries", None, "/v1/deliveries"),
        ("GET", "/v1/events", None, "/v1/events"),
        ("GET", f"/v1/orders/{order['orderId']}", None, "/v1/orders/{orderId}"),
        ("GET", "/v1/keys", None, "/v1/keys"),
        ("GET", "/v1/audit", None, "/v1/audit"),
        ("GET", "/v1/usage", None, "/v1/usage"),
        ("GET", f"/v1/accounts/{account}/agreement", None, "/v1/accounts/{account}/agreement"),
        ("POST", "/v1/orders", {"nope": 1}, "/v1/orders"),
        ("GET", "/v1/webhooks/wh_nope", None, "/v1/webhooks/{webhookId}"),
        ("POST", f"/v1/webhooks/{webhook['id']}/test", {}, "/v1/webhooks/{webhookId}/test"),
        ("GET", "/readyz", None, "/readyz"),
    ]
    # What the other operations answer when they succeed, each one once, in this order.
    successes = [
        ("POST", "/v1/webhooks", new_webhook, "/v1/webhooks"),
        ("PATCH", f"/v1/webhooks/{hook}", {"description": "d"}, "/v1/webhooks/{webhookId}"),
        ("GET", f"/v1/webhooks/{hook}/secret", None, "/v1/webhooks/{webhookId}/secret"),
        (
            "POST",
            f"/v1/webhooks/{hook}/secret/rotate",
            {},
            "/v1/webhooks/{webhookId}/secret/rotate",
        ),
        ("POST", f"/v1/webhooks/{hook}/disable", None, "/v1/webhooks/{webhookId}/disable"),
        ("POST", f"/v1/webhooks/{hook}/enable", None, "/v1/webhooks/{webhookId}/enable"),
        ("POST", f"/v1/webhooks/{hook}/recover", window, "/v1/webhooks/{webhookId}/recover"),
        ("POST", f"/v1/webhooks/{hook}/replay", window, "/v1/webhooks/{webhookId}/replay"),
        (
            "POST",
            f"/v1/deliveries/{delivery['id']}/retry",
            None,
            "/v1/deliveries/{deliveryId}/retry",
        ),
        ("GET", f"/v1/events/{order['eventIds'][0]}", None, "/v1/events/{eventId}"),
        ("POST", "/v1/orders", new_order(account), "/v1/orders"),
        ("POST", "/v1/events", [{"type": "order.new", "data": new_order(account)}], "/v1/events"),
        ("POST", f"/v1/orders/{order_id}/status", {"status": 20}, "/v1/orders/{orderId}/status"),
        ("POST", f"/v1/orders/{order_id}/courier", courier_body(), "/v1/orders/{orderId}/courier"),
        ("POST", "/v1/keys", {"role": "partner", "accounts": [account], "name": "n"}, "/v1/keys"),
        ("PUT", f"/v1/accounts/{account}/agreement", agreement, "/v1/accounts/{account}/agreement"),
        ("POST", "/v1/portal-links", {"accounts": [account]}, "/v1/portal-links"),
        ("GET", "/v1/event-types", None, "/v1/event-types"),
        ("GET", "/v1/sources", None, "/v1/sources"),
        ("POST", f"/v1/orders/{order_id}/erase", None, "/v1/orders/{orderId}/erase"),
    ]
    for method, url, body, template in calls + successes:
        response = await api.call(method, url, json_body=body)
        if (method, url, body, template) in successes:
            assert response.is_success, (method, url, response.text)
        operation = document["paths"][template][method.lower()]
        documented = operation["responses"][str(response.status_code)]
        schema = documented["content"]["application/json"]["schema"]
        jsonschema.validate(
            response.json(),
            {**schema, "components": closed(document["components"])},
            cls=jsonschema.Draft202012Validator,
        )


def closed(node: Any) -> Any:
    """`node` with every answer model closed to the properties it describes.

    Answer models allow more than they list (a newer server may add fields), so an
    answer field that the schema forgot validates anyway; closed, it fails, and the
    published document names every field the server sends.
    """
    if isinstance(node, list):
        return [closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: closed(value) for key, value in node.items()}
    if "properties" in out and out.get("additionalProperties") is True:
        out["additionalProperties"] = False
    return out


async def test_every_schema_reference_resolves(api: Api) -> None:
    document = (await api.call("GET", "/openapi.json", None)).json()
    names = set(document["components"]["schemas"])
    text = str(document)
    import re

    for ref in re.findall(r"#/components/schemas/([A-Za-z0-9_.-]+)", text):
        assert ref in names, ref
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_a_metrics_registry_is_made_when_none_is_given(tmp_path: Path) -> None:
    app = create_app(api_settings(tmp_path), store=None, role="api")  # type: ignore[arg-type]
    assert isinstance(app.state.orderhooks.metrics, Metrics)
