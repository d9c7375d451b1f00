"""The permission matrix of docs/api.md#authentication-and-roles: every endpoint × every kind of
caller.

One table: for each endpoint, the status expected for an admin key, an ingest key, a
partner key of the object's account and a partner key of another account. A missing,
wrong or revoked key is 401 everywhere; the operations endpoints need no key at all.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orderhooks.domain.apikeys import generate_api_key
from orderhooks.testing.certificates import issue, make_ca
from tests.integration.api_support import LocalApi, running_api
from tests.support.data import new_order, sample, unique

CALLERS = ("admin", "ingest", "partner", "other")
_ticks = itertools.count(1)


def _timestamp() -> str:
    """A distinct status timeStamp per call, so no update is a repeat."""
    tick = next(_ticks)
    return f"2026-11-28T12:{tick // 60 % 60:02d}:{tick % 60:02d}.{tick:06d}Z"


@dataclass
class World:
    """Objects of account `account`, and keys of every kind."""

    api: LocalApi
    account: str
    other_account: str
    keys: dict[str, str | None]
    order: str
    event: str
    webhook: str
    delivery: str

    async def fill(self, template: str) -> str:
        """The path with its placeholders filled; `fresh_*` ones get a new object."""
        values = {
            "account": self.account,
            "order": self.order,
            "event": self.event,
            "webhook": self.webhook,
            "delivery": self.delivery,
        }
        if "{fresh_webhook}" in template:
            values["fresh_webhook"] = (await self.api.make_webhook(self.account))["id"]
        if "{fresh_key}" in template:
            response = await self.api.call(
                "POST", "/v1/keys", json_body={"role": "ingest", "name": unique("k")}
            )
            values["fresh_key"] = response.json()["id"]
        if "{fresh_portal_link}" in template:
            response = await self.api.call(
                "POST", "/v1/portal-links", json_body={"accounts": [self.account]}
            )
            values["fresh_portal_link"] = response.json()["id"]
        return template.format(**values)


@dataclass(frozen=True)
class Row:
    """One endpoint and the status each caller gets (admin, ingest, partner, other)."""

    method: str
    path: str
    expected: tuple[int, int, int, int]
    body: Callable[[World], Any] | None = None


def _webhook_body(accounts: list[str]) -> Callable[[World], Any]:
    def body(world: World) -> Any:
        names = [world.account if a == "A" else a for a in accounts]
        return {"url": "https://r.example.com/h", "accounts": names, "eventTypes": ["order.new"]}

    return body


@functools.cache
def _client_tls() -> dict[str, str]:
    """A valid webhook `tls` (made once: issuing certificates takes a moment)."""
    ca = make_ca()
    client = issue(ca, "partner")
    return {
        "clientCertificate": client.cert_pem,
        "clientKey": client.key_pem,
        "caCertificate": ca.cert_pem,
    }


def _with_tls(accounts: list[str]) -> Callable[[World], Any]:
    plain = _webhook_body(accounts)
    return lambda world: {**plain(world), "tls": _client_tls()}


SINCE = {"since": "2020-01-01T00:00:00Z"}
AGREEMENT = {
    "signedBy": "Ops",
    "signedAt": "2026-11-01T09:00:00Z",
    "pricing": {
        "currency": "EUR",
        "perThousand": {"order.new": 5, "order.status_update": 1, "order.courier_update": 1},
    },
}
INGEST, PARTNER, ADMIN_ONLY = (202, 202, 403, 403), (200, 403, 200, 404), (200, 403, 403, 403)

MATRIX = [
    # ingest
    Row("POST", "/v1/orders", INGEST, lambda w: new_order(w.account)),
    Row(
        "POST",
        "/v1/orders/{order}/status",
        INGEST,
        lambda w: {"status": 20, "timeStamp": _timestamp()},
    ),
    Row(
        "POST",
        "/v1/orders/{order}/courier",
        INGEST,
        lambda w: {**sample("courier_update"), "received": _timestamp()},
    ),
    Row(
        "POST",
        "/v1/events",
        INGEST,
        lambda w: [{"type": "order.new", "data": new_order(w.account)}],
    ),
    # orders and events
    Row("GET", "/v1/orders/{order}", PARTNER),
    Row("GET", "/v1/events", (200, 403, 200, 200)),
    Row("GET", "/v1/events?account={account}", (200, 403, 200, 403)),
    Row("GET", "/v1/events/{event}", PARTNER),
    # erasure: admin only, an unknown order 404 to the admin alone
    Row("POST", "/v1/orders/{order}/erase", ADMIN_ONLY),
    Row("POST", "/v1/orders/no-such-order/erase", (404, 403, 403, 403)),
    # webhooks
    Row("POST", "/v1/webhooks", (201, 403, 201, 403), _webhook_body(["A"])),
    Row("POST", "/v1/webhooks", (201, 403, 403, 403), _webhook_body(["*"])),
    Row("GET", "/v1/webhooks", (200, 403, 200, 200)),
    Row("GET", "/v1/webhooks?account={account}", (200, 403, 200, 403)),
    Row("GET", "/v1/webhooks/{webhook}", PARTNER),
    Row("PATCH", "/v1/webhooks/{webhook}", PARTNER, lambda w: {"description": "changed"}),
    Row(
        "PATCH",
        "/v1/webhooks/{webhook}",
        PARTNER,
        lambda w: {"batch": {"maxEvents": 10, "maxWaitMs": 100}},
    ),
    Row(
        "PATCH",
        "/v1/webhooks/{webhook}",
        PARTNER,
        lambda w: {"personalData": "exclude", "fields": ["items[].plu"]},
    ),
    Row(
        "POST",
        "/v1/webhooks",
        (201, 403, 201, 403),
        lambda w: {**_webhook_body(["A"])(w), "personalData": "exclude", "fields": []},
    ),
    Row("POST", "/v1/webhooks", (201, 403, 201, 403), _with_tls(["A"])),
    Row("PATCH", "/v1/webhooks/{webhook}", PARTNER, lambda w: {"tls": None}),
    Row("DELETE", "/v1/webhooks/{fresh_webhook}", (204, 403, 204, 404)),
    Row("GET", "/v1/webhooks/{webhook}/secret", PARTNER),
    Row("POST", "/v1/webhooks/{webhook}/secret/rotate", PARTNER, lambda w: {}),
    Row("POST", "/v1/webhooks/{fresh_webhook}/disable", PARTNER),
    Row("POST", "/v1/webhooks/{webhook}/enable", PARTNER),
    Row(
        "POST", "/v1/webhooks/{webhook}/test", (202, 403, 202, 404), lambda w: {"type": "order.new"}
    ),
    Row("POST", "/v1/webhooks/{webhook}/recover", PARTNER, lambda w: SINCE),
    Row("POST", "/v1/webhooks/{webhook}/replay", PARTNER, lambda w: SINCE),
    Row("GET", "/v1/webhooks/{webhook}/stats", PARTNER),
    # deliveries
    Row("GET", "/v1/deliveries", (200, 403, 200, 200)),
    Row("GET", "/v1/deliveries/{delivery}", PARTNER),
    Row("POST", "/v1/deliveries/{delivery}/retry", (202, 403, 202, 404)),
    # agreements and usage
    Row("PUT", "/v1/accounts/{account}/agreement", ADMIN_ONLY, lambda w: AGREEMENT),
    Row("GET", "/v1/accounts/{account}/agreement", PARTNER),
    Row("GET", "/v1/usage", (200, 403, 200, 200)),
    Row("GET", "/v1/usage?account={account}", (200, 403, 200, 403)),
    Row("GET", "/v1/usage?account={account}&format=csv", (200, 403, 200, 403)),
    # keys and audit
    Row("POST", "/v1/keys", (201, 403, 403, 403), lambda w: {"role": "ingest", "name": "k"}),
    Row("GET", "/v1/keys", ADMIN_ONLY),
    Row("DELETE", "/v1/keys/{fresh_key}", (204, 403, 403, 403)),
    Row("GET", "/v1/audit", ADMIN_ONLY),
    # the event catalog: any key
    Row("GET", "/v1/event-types", (200, 200, 200, 200)),
    Row("GET", "/v1/sources", ADMIN_ONLY),
    # portal links: a partner for its own accounts only
    Row("POST", "/v1/portal-links", (201, 403, 201, 403), lambda w: {"accounts": [w.account]}),
    Row("DELETE", "/v1/portal-links/{fresh_portal_link}", (204, 403, 204, 404)),
]
OPEN_ENDPOINTS = ("/healthz", "/readyz", "/metrics", "/openapi.json")


@pytest.fixture()
def database_url(request: pytest.FixtureRequest) -> str:
    """SQLite ("") unless a test asks for "postgres" (a fresh PostgreSQL database)."""
    engine = getattr(request, "param", "sqlite")
    return str(request.getfixturevalue("pg_url")) if engine == "postgres" else ""


ENGINES = pytest.mark.parametrize(
    "database_url",
    ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)


@pytest.fixture()
async def world(tmp_path: Path, database_url: str) -> AsyncIterator[World]:
    async with running_api(tmp_path, database_url=database_url) as api:
        account, other = unique("acct-a"), unique("acct-b")
        await api.agree(account)
        webhook = await api.make_webhook(account)
        order = await api.post_order(account)
        deliveries = (await api.call("GET", f"/v1/deliveries?webhookId={webhook['id']}")).json()
        revoked = await api.make_key("partner", [account])
        keys: dict[str, str | None] = {
            "admin": api.admin_key,
            "ingest": await api.make_key("ingest"),
            "partner": await api.make_key("partner", [account]),
            "other": await api.make_key("partner", [other]),
            "none": None,
            "wrong": generate_api_key(),
            "revoked": revoked,
        }
        revoked_id = api.key_ids[revoked]
        assert (await api.call("DELETE", f"/v1/keys/{revoked_id}")).status_code == 204
        yield World(
            api=api,
            account=account,
            other_account=other,
            keys=keys,
            order=order["orderId"],
            event=order["eventIds"][0],
            webhook=webhook["id"],
            delivery=deliveries["data"][0]["id"],
        )


@ENGINES
async def test_permission_matrix(world: World) -> None:
    """Every endpoint answers every caller as docs/api.md#authentication-and-roles says, checked
    before the body."""
    mismatches = []
    for row in MATRIX:
        expectations = dict(zip(CALLERS, row.expected, strict=True))
        expectations.update(none=401, wrong=401, revoked=401)
        for caller, expected in expectations.items():
            path = await world.fill(row.path)
            body = row.body(world) if row.body is not None else None
            response = await world.api.call(row.method, path, world.keys[caller], json_body=body)
            if response.status_code != expected:
                mismatches.append(
                    f"{row.method} {row.path} as {caller}: {response.status_code} "
                    f"(expected {expected}) {response.text[:200]}"
                )
            elif expected >= 400:
                assert set(response.json()["error"]) == {"code", "message", "details"}
    assert not mismatches, "\n".join(mismatches)


async def test_operations_endpoints_need_no_key(world: World) -> None:
    """/healthz, /readyz, /metrics and /openapi.json answer whatever key is sent, or none."""
    for path in OPEN_ENDPOINTS:
        for caller in ("none", "wrong", "revoked", "admin", "ingest", "partner", "other"):
            response = await world.api.call("GET", path, world.keys[caller])
            assert response.status_code == 200, (path, caller, response.text)


def test_matrix_covers_every_documented_operation(tmp_path: Path) -> None:
    """The table names every operation of the OpenAPI document (the dashboard aside)."""
    from orderhooks.web.app import create_app
    from tests.integration.api_support import api_settings

    app = create_app(api_settings(tmp_path), store=None, role="api")  # type: ignore[arg-type]
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if not path.startswith("/ui") and path not in OPEN_ENDPOINTS
    }
    covered = {
        (row.method, row.path.split("?")[0].replace("{fresh_webhook}", "{webhook}"))
        for row in MATRIX
    }
    names = {
        "{order}": "{orderId}",
        "{event}": "{eventId}",
        "{webhook}": "{webhookId}",
        "{delivery}": "{deliveryId}",
        "{fresh_key}": "{keyId}",
        "{fresh_portal_link}": "{linkId}",
    }
    normalised = set()
    for method, path in covered:
        for ours, theirs in names.items():
            path = path.replace(ours, theirs)
        normalised.add((method, path))
    assert documented - normalised == set()


@pytest.mark.parametrize(
    ("method", "path", "caller", "expected"),
    [
        ("POST", "/v1/orders", "none", 401),
        ("POST", "/v1/webhooks", "ingest", 403),
        ("POST", "/v1/keys", "partner", 403),
        ("PATCH", "/v1/webhooks/{webhook}", "other", 404),
        ("POST", "/v1/webhooks/{webhook}/replay", "other", 404),
        ("PUT", "/v1/accounts/{account}/agreement", "partner", 403),
        ("PATCH", "/v1/webhooks/{webhook}", "partner", 400),
    ],
)
async def test_authentication_role_and_scope_come_before_the_body(
    world: World, method: str, path: str, caller: str, expected: int
) -> None:
    """A malformed body does not hide a 401, 403 or 404 (docs/api.md, authentication)."""
    response = await world.api.call(
        method,
        await world.fill(path),
        world.keys[caller],
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == expected, response.text


async def test_partner_naming_all_accounts_is_forbidden_in_words_that_fit(world: World) -> None:
    """403 wherever a partner names `*`; the message speaks of what was asked, which is not
    always a webhook (a usage query, an events filter, a portal link)."""
    partner = world.keys["partner"]
    calls = [
        ("POST", "/v1/webhooks", {"url": "https://example.com/", "accounts": ["*"]}),
        ("GET", "/v1/usage?account=*", None),
        ("GET", "/v1/events?account=*", None),
        ("POST", "/v1/portal-links", {"accounts": ["*"]}),
    ]
    for method, path, body in calls:
        response = await world.api.call(method, path, partner, json_body=body)
        assert response.status_code == 403, (path, response.text)
        message = response.json()["error"]["message"]
        assert "all accounts" in message and "webhook" not in message, (path, message)


async def test_partner_naming_a_foreign_account_in_a_body_is_forbidden(world: World) -> None:
    """403 for a foreign account even when the rest of the body is invalid too."""
    body = {"url": "ftp://nope", "accounts": [world.other_account, world.account]}
    response = await world.api.call("POST", "/v1/webhooks", world.keys["partner"], json_body=body)
    assert response.status_code == 403
    patch = {"accounts": [world.other_account]}
    response = await world.api.call(
        "PATCH", f"/v1/webhooks/{world.webhook}", world.keys["partner"], json_body=patch
    )
    assert response.status_code == 403


async def test_partner_sees_a_webhook_only_when_all_its_accounts_are_its_own(world: World) -> None:
    shared = await world.api.make_webhook(
        world.account, accounts=[world.account, world.other_account]
    )
    for caller in ("partner", "other"):
        response = await world.api.call("GET", f"/v1/webhooks/{shared['id']}", world.keys[caller])
        assert response.status_code == 404
        listed = await world.api.call("GET", "/v1/webhooks?limit=500", world.keys[caller])
        assert shared["id"] not in {w["id"] for w in listed.json()["data"]}
    assert (await world.api.call("GET", f"/v1/webhooks/{shared['id']}")).status_code == 200


@ENGINES
async def test_partner_never_hears_about_another_accounts_webhook(world: World) -> None:
    """A partner may list the operational types, but its webhook on its own account is
    not told about a webhook that also covers another account, and its key cannot read
    that event; a webhook on all of that webhook's accounts is told."""
    api, partner = world.api, world.keys["partner"]
    ops = ["webhook.failing", "webhook.recovered", "webhook.disabled", "delivery.failed"]
    own = await api.make_webhook(world.account, partner, eventTypes=ops)
    covering = await api.make_webhook(
        world.account, accounts=[world.account, world.other_account], eventTypes=ops
    )
    shared = await api.make_webhook(world.account, accounts=[world.account, world.other_account])
    assert (await api.call("POST", f"/v1/webhooks/{shared['id']}/disable")).status_code == 200

    events = (await api.call("GET", "/v1/events?type=webhook.disabled&limit=500")).json()
    [event] = [e for e in events["data"] if e["data"]["webhookId"] == shared["id"]]
    for caller in ("partner", "other"):
        key = world.keys[caller]
        assert (await api.call("GET", f"/v1/events/{event['id']}", key)).status_code == 404
        listed = await api.call("GET", "/v1/events?type=webhook.disabled", key)
        assert listed.status_code == 200 and listed.json()["data"] == []
    to_own = await api.call("GET", f"/v1/deliveries?webhookId={own['id']}", partner)
    assert to_own.json()["data"] == []
    to_covering = await api.call("GET", f"/v1/deliveries?webhookId={covering['id']}")
    assert [d["eventId"] for d in to_covering.json()["data"]] == [event["id"]]
    [delivery] = to_covering.json()["data"]
    for caller in ("partner", "other"):
        response = await api.call("GET", f"/v1/deliveries/{delivery['id']}", world.keys[caller])
        assert response.status_code == 404
    assert (await api.call("GET", f"/v1/events/{event['id']}")).status_code == 200


@ENGINES
async def test_a_partner_reads_operational_deliveries_only_to_webhooks_it_sees(
    world: World,
) -> None:
    """The operator's all-accounts webhook is told about the partner's webhook: the
    partner's key does not list that delivery, nor read it (its attempts hold what the
    operator's receiver answered), nor retry it; the operator's key does."""
    api, partner = world.api, world.keys["partner"]
    watched = await api.make_webhook(world.account, partner, eventTypes=["order.new"])
    operator = await api.make_webhook(
        world.account, accounts=["*"], eventTypes=["webhook.disabled"]
    )
    assert (
        await api.call("POST", f"/v1/webhooks/{watched['id']}/disable", partner)
    ).status_code == 200
    [told] = (await api.call("GET", f"/v1/deliveries?webhookId={operator['id']}")).json()["data"]
    listed = await api.call("GET", "/v1/deliveries?limit=500", partner)
    assert told["id"] not in {d["id"] for d in listed.json()["data"]}
    for method, path in (
        ("GET", f"/v1/deliveries/{told['id']}"),
        ("POST", f"/v1/deliveries/{told['id']}/retry"),
    ):
        assert (await api.call(method, path, partner)).status_code == 404
    assert (await api.call("GET", f"/v1/deliveries/{told['id']}")).status_code == 200
