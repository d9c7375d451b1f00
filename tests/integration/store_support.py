"""Builders of the store tests (no tests here): orders, updates, webhooks, attempts and
outcomes at a fixed time, for the contract suite on both engines and the engine tests;
the stores themselves, of either engine (the `make_store` fixture of integration/conftest.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from orderhooks.delivery.claims import Outcome
from orderhooks.domain.ids import new_id
from orderhooks.domain.model import Agreement, Attempt, AttemptError, DeliveryState, Webhook
from orderhooks.store.base import DeliveryFilter, NewOrderItem, StatusItem
from orderhooks.store.postgres import PostgresStore
from orderhooks.store.sqlite import SQLiteStore
from orderhooks.store.store import Store
from tests.support import factories
from tests.support.factories import ALL_TYPES, SECRET, order_document

__all__ = ["ALL_TYPES", "SECRET"]  # the contract suite uses them beside the builders

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
DISABLE_AFTER = 3600

StoreFactory = Callable[..., Awaitable[Store]]  # the `make_store` fixture: options -> store


def build_store(url: str, **options: Any) -> Store:
    """An unopened store of the engine `url` names, without agreement checks unless
    `options` say otherwise."""
    values: dict[str, Any] = {
        "require_agreement": False,
        "disable_after_seconds": DISABLE_AFTER,
    }
    values.update(options)
    if url.startswith("sqlite:///"):
        return SQLiteStore(Path(url.removeprefix("sqlite:///")), **values)
    return PostgresStore(url, pool_size=4, **values)


async def deliveries_of(store: Store, webhook_id: str) -> list[Any]:
    """Every delivery of a webhook, oldest first."""
    page = await store.list_deliveries(DeliveryFilter(webhook_id=webhook_id), 500, None)
    return list(reversed(page.items))


def order(order_id: str = "o1", **overrides: Any) -> dict[str, Any]:
    """A minimal valid order document on account `acc1`, status 10, with a field
    orderhooks does not know."""
    return order_document(_id=order_id, unknownField={"kept": True}, **overrides)


def new_order(order_id: str = "o1", **overrides: Any) -> NewOrderItem:
    """The ingest item of `order(...)`, hashed as the web layer would."""
    document = order(order_id, **overrides)
    return NewOrderItem(document, hashlib.sha256(orjson.dumps(document)).hexdigest())


def status(order_id: str, code: int, stamp: str | None = None) -> StatusItem:
    """A status update item."""
    return StatusItem(order_id, {"status": code, "timeStamp": stamp or f"2026-11-28T12:{code}Z"})


def webhook(**overrides: Any) -> Webhook:
    """A webhook with an id of its own on `acc1` for every event type, no filters."""
    return factories.webhook(
        **{"id": new_id("wh"), "created_at": NOW, "updated_at": NOW, **overrides}
    )


def attempt(delivery_id: str, number: int = 1, code: int | None = 200, **kw: Any) -> Attempt:
    """An attempt that started at NOW and took 25 ms."""
    values: dict[str, Any] = {
        "delivery_id": delivery_id,
        "attempt": number,
        "started_at": NOW,
        "duration_ms": 25,
        "status_code": code,
        "response_body": "ok",
        "error": None if code is not None and code < 300 else AttemptError.HTTP_STATUS,
    }
    values.update(kw)
    return Attempt(**values)


def delivered(claim_delivery_id: str, webhook_id: str, number: int = 1) -> Outcome:
    """A 2xx outcome."""
    return Outcome(
        claim_delivery_id,
        webhook_id,
        attempt(claim_delivery_id, number),
        DeliveryState.DELIVERED,
        None,
        0,
    )


def failed(
    delivery_id: str,
    webhook_id: str,
    number: int = 1,
    retry_at: datetime | None = None,
    position: int = 1,
    **kw: Any,
) -> Outcome:
    """A 500 outcome: retried at `retry_at`, or failed for good without it."""
    state = DeliveryState.PENDING if retry_at is not None else DeliveryState.FAILED
    started = {"started_at": kw.pop("started_at")} if "started_at" in kw else {}
    tried = attempt(delivery_id, number, 500, **started)
    return Outcome(delivery_id, webhook_id, tried, state, retry_at, position, **kw)


def agreement(account: str = "acc1") -> Agreement:
    """A signed agreement with prices for every type."""
    return Agreement(account, "Ana", NOW, "EUR", {t: 100 for t in ALL_TYPES})
