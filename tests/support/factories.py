"""Builders of domain values (webhooks, events, order documents and states): sensible
defaults, override what matters."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from orderhooks.domain.model import (
    Delivery,
    DeliveryState,
    Event,
    EventType,
    OrderState,
    SigningSecret,
    Webhook,
)

NOW = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)
ALL_TYPES = (EventType.NEW, EventType.STATUS_UPDATE, EventType.COURIER_UPDATE)
SECRET = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def webhook(**overrides: Any) -> Webhook:
    """An active webhook on account `acc1` for every event type, no filters."""
    values: dict[str, Any] = {
        "id": "wh_1",
        "url": "https://receiver.example.com/hook",
        "accounts": ("acc1",),
        "event_types": ALL_TYPES,
        "secrets": (SigningSecret(SECRET),),
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(overrides)
    return Webhook(**values)


def event(**overrides: Any) -> Event:
    """An `order.status_update` at status 20 for order `o1` of account `acc1`."""
    values: dict[str, Any] = {
        "id": "evt_1",
        "type": EventType.STATUS_UPDATE,
        "order_id": "o1",
        "account": "acc1",
        "location": "loc1",
        "channel_link": "cl1",
        "channel": 7,
        "sequence": 1,
        "created_at": NOW,
        "data": {},
        "status": 20,
    }
    values.update(overrides)
    return Event(**values)


def delivery(**overrides: Any) -> Delivery:
    """Attempt 1 of `event()` to `webhook()`, being delivered (claimed) now."""
    values: dict[str, Any] = {
        "id": "dlv_1",
        "webhook_id": "wh_1",
        "event_id": "evt_1",
        "event_type": EventType.STATUS_UPDATE,
        "order_id": "o1",
        "account": "acc1",
        "sequence": 1,
        "state": DeliveryState.DELIVERING,
        "replay": False,
        "test": False,
        "created_at": NOW,
        "next_attempt_at": NOW,
        "delivered_at": None,
        "attempt_count": 0,
    }
    values.update(overrides)
    return Delivery(**values)


def order_document(**overrides: Any) -> dict[str, Any]:
    """A minimal valid order document on account `acc1`, status 10."""
    document: dict[str, Any] = {
        "_id": "o1",
        "account": "acc1",
        "location": "loc1",
        "channelLink": "cl1",
        "channel": 7,
        "status": 10,
        "orderType": 2,
        "items": [{"plu": "P1", "name": "Burger", "price": 1150, "quantity": 1}],
    }
    document.update(overrides)
    return document


class SequentialIds:
    """A deterministic IdFactory: `evt_0001`, `dlv_0002`, ... in call order."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self.made: list[str] = []

    def __call__(self, prefix: str) -> str:
        made = f"{prefix}_{next(self._counter):04d}"
        self.made.append(made)
        return made


def order_state(**overrides: Any) -> OrderState:
    """The stored state of `order_document()` right after its arrival."""
    document = overrides.pop("document", order_document())
    values: dict[str, Any] = {
        "order_id": document["_id"],
        "account": document["account"],
        "location": document["location"],
        "channel_link": document["channelLink"],
        "channel": document["channel"],
        "status": document["status"],
        "document": document,
        "body_hash": "hash-1",
        "courier": None,
        "next_sequence": 2,
        "max_flow_status": document["status"] if document["status"] < 100 else -1,
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(overrides)
    return OrderState(**values)


class ManualClock:
    """A monotonic clock (seconds) that moves only when a test moves `now`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
