"""Checks of the end-to-end suites: states and units of answers, and per-order ordering as a
receiver sees it, and the ingest flow several suites send. The API client and the order
builder are tests/support's."""

from __future__ import annotations

import importlib.metadata
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from orderhooks.testing import ReceivedRequest
from tests.support.api import Api
from tests.support.data import new_order

VERSION = importlib.metadata.version("orderhooks")


def states(deliveries: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Count deliveries by state."""
    counts: dict[str, int] = defaultdict(int)
    for delivery in deliveries:
        counts[delivery["state"]] += 1
    return dict(counts)


def units(rows: Iterable[dict[str, Any]], event_type: str, column: str = "delivered") -> int:
    """The `delivered` (or `replayed`) units of one event type in usage rows."""
    return sum(int(row[column]) for row in rows if row["eventType"] == event_type)


def first_acceptances(requests: Iterable[ReceivedRequest]) -> list[ReceivedRequest]:
    """The first 2xx-answered request of each webhook-id, in arrival order."""
    seen: set[str | None] = set()
    out = []
    for request in requests:
        if request.accepted and request.webhook_id not in seen:
            seen.add(request.webhook_id)
            out.append(request)
    return out


def sequences_by_order(requests: Iterable[ReceivedRequest]) -> dict[str, list[int]]:
    """Envelope sequences per orderId, in the order of the given requests."""
    by_order: dict[str, list[int]] = defaultdict(list)
    for request in requests:
        by_order[request.json["orderId"]].append(request.json["sequence"])
    return dict(by_order)


def assert_per_order(requests: list[ReceivedRequest], *, contiguous: bool = True) -> None:
    """Check per-order order as a receiver sees it.

    Each event's first acceptance comes after the previous event's, per order; with
    `contiguous`, the sequences are 1..n without gaps; and no attempt of an event arrived
    before the previous event of its order had been accepted.
    """
    accepted = first_acceptances(requests)
    for order_id, sequences in sequences_by_order(accepted).items():
        assert sequences == sorted(sequences), f"order {order_id} arrived as {sequences}"
        if contiguous:
            assert sequences == list(range(1, len(sequences) + 1)), (
                f"order {order_id} has gaps: {sequences}"
            )
    accepted_at = {(r.json["orderId"], r.json["sequence"]): r.arrived_monotonic for r in accepted}
    for request in requests:
        key = (request.json["orderId"], request.json["sequence"] - 1)
        previous = accepted_at.get(key)
        if previous is not None:
            assert previous <= request.arrived_monotonic, (
                f"order {key[0]}: sequence {key[1] + 1} (attempt {request.attempt}) was sent "
                f"before sequence {key[1]} was delivered"
            )


async def ingest_flow(api: Api, account: str, orders: int) -> list[str]:
    """New orders, then a status update, a courier update and another status update
    of each: the event ids, in ingest order."""
    created = [new_order(account) for _ in range(orders)]
    ids: list[str] = []
    for order in created:
        ids += await api.new_order(order)
    for order in created:
        ids += await api.status(order["_id"], 20)
        ids += await api.courier(order["_id"], 83)
        ids += await api.status(order["_id"], 40)
    return ids
