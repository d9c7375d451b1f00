"""The harness of the `test_api_*` suites (no tests here): the real app from `create_app`
on a real SQLite file, driven in-process through `httpx.ASGITransport`.

A module makes its own fixture with `running_api(tmp_path, ...)`; keys are made through
the API itself, so authentication is exercised exactly as in production.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from orderhooks.config import Settings
from orderhooks.delivery.claims import Outcome
from orderhooks.domain.apikeys import generate_api_key, hash_api_key
from orderhooks.domain.ids import new_id
from orderhooks.domain.model import ApiKey, Attempt, AttemptError, DeliveryState, Role
from orderhooks.metrics import Metrics
from orderhooks.store import Store, open_store
from orderhooks.web.app import create_app

# The product's sample payloads, as kept in the repository for the tests.
SAMPLES = Path(__file__).resolve().parents[1] / "unit" / "fixtures"
PRICING = {
    "currency": "EUR",
    "perThousand": {"order.new": 500, "order.status_update": 100, "order.courier_update": 100},
}
_counter = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other call of this process returns."""
    return f"{prefix}-{next(_counter)}-{new_id('u')[-6:]}"


def sample(name: str) -> dict[str, Any]:
    """A fresh copy of a sample payload of the product (`new_order`, ...)."""
    return copy.deepcopy(json.loads((SAMPLES / f"{name}.json").read_text()))


def new_order(account: str, order_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """The sample order, as a new order of `account`."""
    document = sample("new_order")
    document.update(_id=order_id or unique("ord"), account=account, **overrides)
    return document


def bearer(key: str | None) -> dict[str, str]:
    """The Authorization header of a key (none for None)."""
    return {} if key is None else {"Authorization": f"Bearer {key}"}


@dataclass
class Api:
    """The app under test, its store, and an admin key."""

    client: httpx.AsyncClient
    store: Store
    settings: Settings
    metrics: Metrics
    admin_key: str
    key_ids: dict[str, str] = field(default_factory=dict)  # plaintext -> id

    async def call(
        self,
        method: str,
        path: str,
        key: str | None = "admin",
        json_body: Any = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """A request with `key` (a plaintext, or "admin" for the admin key, or None)."""
        plaintext = self.admin_key if key == "admin" else key
        headers = {**bearer(plaintext), **kwargs.pop("headers", {})}
        if json_body is not None:
            kwargs["json"] = json_body
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def make_key(self, role: str, accounts: Iterable[str] = ()) -> str:
        """A new key made through `POST /v1/keys`; returns its plaintext."""
        body = {"role": role, "accounts": list(accounts), "name": unique("key")}
        response = await self.call("POST", "/v1/keys", json_body=body)
        assert response.status_code == 201, response.text
        self.key_ids[response.json()["key"]] = response.json()["id"]
        return str(response.json()["key"])

    async def agree(self, account: str) -> None:
        """Record an agreement for `account`."""
        body = {"signedBy": "Ops", "signedAt": "2026-11-01T09:00:00Z", "pricing": PRICING}
        response = await self.call("PUT", f"/v1/accounts/{account}/agreement", json_body=body)
        assert response.status_code == 200, response.text

    async def make_webhook(
        self, account: str, key: str | None = "admin", **fields: Any
    ) -> dict[str, Any]:
        """A webhook on `account` for every type, made through the API; its JSON."""
        body = {
            "url": "https://receiver.example.com/hook",
            "accounts": [account],
            "eventTypes": ["order.new", "order.status_update", "order.courier_update"],
            **fields,
        }
        response = await self.call("POST", "/v1/webhooks", key, json_body=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def post_order(self, account: str, **overrides: Any) -> dict[str, Any]:
        """Ingest a new order of `account`; the answer's JSON."""
        response = await self.call("POST", "/v1/orders", json_body=new_order(account, **overrides))
        assert response.status_code == 202, response.text
        return dict(response.json())


def api_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings of a test app: a SQLite file in `tmp_path`, agreements required."""
    values: dict[str, Any] = {"data_dir": tmp_path, "retry_jitter": 0.0}
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running_api(tmp_path: Path, role: str = "api", **overrides: Any) -> AsyncIterator[Api]:
    """The app on a fresh, migrated SQLite store, with an admin key in the store."""
    settings = api_settings(tmp_path, **overrides)
    store = open_store(settings)
    await store.open()
    await store.migrate()
    admin_key = generate_api_key()
    now = datetime.now(UTC)
    await store.create_key(
        ApiKey(new_id("key"), Role.ADMIN, (), "test admin", hash_api_key(admin_key), now)
    )
    metrics = Metrics()
    app = create_app(settings, store, role=role, metrics=metrics)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://orderhooks.test") as c:
            yield Api(c, store, settings, metrics, admin_key)
    finally:
        await store.close()


async def finish_deliveries(api: Api, statuses: Mapping[str, int | None]) -> None:
    """Make one real attempt outcome for each delivery through the store's queue: claim
    what is due and record a 2xx as delivered, anything else as failed (no retries).

    Exactly the given deliveries must be due: a test arranges its traffic so.
    """
    now = datetime.now(UTC) + timedelta(seconds=1)
    claims = await api.store.claim(now, 1000, "api-tests")
    assert {c.delivery.id for c in claims} == set(statuses), "due deliveries differ"
    outcomes = []
    for claim in claims:
        status_code = statuses[claim.delivery.id]
        delivered = status_code is not None and 200 <= status_code < 300
        attempt = Attempt(
            delivery_id=claim.delivery.id,
            attempt=claim.attempt,
            started_at=now,
            duration_ms=42,
            status_code=status_code,
            response_body="ok" if delivered else "nope",
            error=None if delivered else AttemptError.HTTP_STATUS,
        )
        outcomes.append(
            Outcome(
                delivery_id=claim.delivery.id,
                webhook_id=claim.webhook.id,
                attempt=attempt,
                next_state=DeliveryState.DELIVERED if delivered else DeliveryState.FAILED,
                next_attempt_at=None,
                schedule_position=claim.delivery.schedule_position + (0 if delivered else 1),
            )
        )
    await api.store.record(outcomes, now)


async def finish_delivery(api: Api, delivery_id: str, status_code: int | None) -> None:
    """`finish_deliveries` for the one delivery that is due."""
    await finish_deliveries(api, {delivery_id: status_code})


async def store_key(api: Api, role: Role, accounts: tuple[str, ...] = ()) -> str:
    """A key written straight into the store (no API call: for rate-limit tests)."""
    plaintext = generate_api_key()
    key = ApiKey(
        new_id("key"), role, accounts, unique("k"), hash_api_key(plaintext), datetime.now(UTC)
    )
    await api.store.create_key(key)
    return plaintext
