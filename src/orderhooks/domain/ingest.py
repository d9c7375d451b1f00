"""Planning an ingest: given the stored order and a validated body, what changes.

Pure: the store loads the current state and the active webhooks, calls a planner, and
writes the plan in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orderhooks.domain.ids import IdFactory
from orderhooks.domain.model import Event, NewDelivery, OrderState, Webhook


@dataclass(frozen=True, slots=True)
class IngestPlan:
    """The new order state, the events created (in sequence order) and their deliveries.

    `repeat` is true when nothing changes (an idempotent repeat); then `events` and
    `deliveries` are empty and `order` is the current state.
    """

    order: OrderState
    events: Sequence[Event]
    deliveries: Sequence[NewDelivery]
    repeat: bool
    created: bool


def plan_new_order(
    current: OrderState | None,
    document: Mapping[str, Any],
    body_hash: str,
    webhooks: Sequence[Webhook],
    now: datetime,
    new_id: IdFactory,
) -> IngestPlan:
    """A new order (`order.new`), or a newer version of a known one.

    A byte-identical repeat (same `body_hash`) is a repeat. A newer version replaces the
    document; when its status differs it creates an `order.status_update` (and triggered
    `order.new` events) like a status update would.
    """
    raise NotImplementedError


def plan_status_update(
    current: OrderState,
    update: Mapping[str, Any],
    webhooks: Sequence[Webhook],
    now: datetime,
    new_id: IdFactory,
) -> IngestPlan:
    """A status update: the document's `status` and `statusHistory` change, an
    `order.status_update` is created, preceded by a triggered `order.new` when an active
    webhook's trigger fires. Same status and timeStamp as the last history entry: repeat."""
    raise NotImplementedError


def plan_courier_update(
    current: OrderState,
    update: Mapping[str, Any],
    webhooks: Sequence[Webhook],
    now: datetime,
    new_id: IdFactory,
) -> IngestPlan:
    """A courier update: the document's `courier` changes, an `order.courier_update` is
    created."""
    raise NotImplementedError
