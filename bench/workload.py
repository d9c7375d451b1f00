"""Realistic ingest bodies: new orders with unique ids and their status updates.

The order is the project's own fixture (`fixtures/new_order.json`, a copy of the
shared sample); each generated order gets a unique `_id` and channel order id, an
account and location drawn from small pools, and fresh timestamps. Status updates
walk an order through the normal flow (accepted, preparing, ready, finalized).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

FIXTURES_DIR = Path(__file__).parent / "fixtures"
ACCOUNT_POOL_SIZE = 20
LOCATIONS_PER_ACCOUNT = 5
STATUS_FLOW = (20, 50, 70, 90)  # ACCEPTED, PREPARING, READY_FOR_PICKUP, FINALIZED


def load_fixture(name: str) -> dict[str, Any]:
    """One JSON fixture of the harness."""
    loaded: dict[str, Any] = orjson.loads((FIXTURES_DIR / name).read_bytes())
    return loaded


def _iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Batch:
    """One batch body and the orders and updates it carries."""

    items: list[dict[str, Any]] = field(default_factory=list)
    new_ids: list[str] = field(default_factory=list)
    updates: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Workload:
    """Generates order and status update bodies; ids are unique within `run_id`.

    `status_ratio` is the share of items that are status updates, once some orders
    have been acknowledged (an update for an unknown order would be a 404).
    """

    run_id: str
    status_ratio: float = 0.4
    seed: int = 7
    _template: dict[str, Any] = field(init=False)
    _counter: int = field(init=False, default=0)
    # Orders whose last item was acknowledged, with the index of their next status.
    _open_orders: deque[tuple[str, int]] = field(init=False, default_factory=deque)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._template = load_fixture("new_order.json")
        self._rng = random.Random(self.seed)

    def new_order(self) -> dict[str, Any]:
        """A new order document with a unique id."""
        self._counter += 1
        n = self._counter
        # A shallow copy is enough: only top-level fields change, and bodies are
        # serialised before the next order is made.
        order = dict(self._template)
        account_index = self._rng.randrange(ACCOUNT_POOL_SIZE)
        now = _iso_now()
        order["_id"] = f"b{self.run_id}-{n}"
        order["channelOrderId"] = f"BN-{self.run_id}-{n}"
        order["channelOrderDisplayId"] = str(n % 100_000)
        order["account"] = f"acct-{account_index:02d}"
        order["location"] = f"loc-{account_index:02d}-{self._rng.randrange(LOCATIONS_PER_ACCOUNT)}"
        order["channelLink"] = f"cl-{account_index:02d}"
        order["_created"] = now
        order["_updated"] = now
        order["status"] = 10
        return order

    def acknowledged(self, new_ids: list[str], updates: list[tuple[str, int]]) -> None:
        """Record that orders and updates were stored: they may get their next update.

        An order is out of the pool while one of its updates is in flight, so its
        statuses are ingested in flow order.
        """
        self._open_orders.extend((order_id, 0) for order_id in new_ids)
        for order_id, step in updates:
            if step + 1 < len(STATUS_FLOW):
                self._open_orders.append((order_id, step + 1))

    def wants_status_update(self) -> bool:
        """Whether the next item should be a status update (an order is open)."""
        return bool(self._open_orders) and self._rng.random() < self.status_ratio

    def status_update(self) -> tuple[str, int, dict[str, Any]]:
        """The next status update of the oldest open order: `(order_id, step, body)`."""
        order_id, step = self._open_orders.popleft()
        body = {
            "status": STATUS_FLOW[step],
            "timeStamp": _iso_now(),
            "reason": "",
            "isIgnoredPOSStatus": False,
        }
        return order_id, step, body

    def batch(self, size: int) -> Batch:
        """A `POST /v1/events` body of `size` items, with what to acknowledge after."""
        out = Batch()
        for _ in range(size):
            if self.wants_status_update():
                order_id, step, body = self.status_update()
                out.items.append({"type": "order.status_update", "orderId": order_id, "data": body})
                out.updates.append((order_id, step))
            else:
                order = self.new_order()
                out.new_ids.append(order["_id"])
                out.items.append({"type": "order.new", "data": order})
        return out
