"""Erasure (docs/api.md, `POST /v1/orders/{orderId}/erase`): the customer's personal data
removed from a stored order and from every stored event of it.

Deliveries read their event when they are claimed, so whatever is sent after the
erasure (pending deliveries, their retries, replays) carries the erased data. What the
personal data is, is `domain.shaping.remove_personal_data`: the same set that
`personalData: exclude` keeps from a webhook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orderhooks.domain.model import EventType
from orderhooks.domain.shaping import remove_personal_data
from orderhooks.exceptions import NotFound
from orderhooks.store.shared.audit import Audit, audited
from orderhooks.store.shared.core import StoreCore, writing
from orderhooks.store.shared.heads import lock_orders
from orderhooks.store.shared.tx import Tx
from orderhooks.store.shared.values import dumps, loads, unstorable


def _erased_courier(courier: Any) -> Any:
    """The order's current courier without the courier's name and phone number."""
    return remove_personal_data({"courier": courier}, EventType.NEW).get("courier")


class ErasureOperations(StoreCore):
    """Erasing an order's personal data."""

    @writing()
    async def erase_order(self, tx: Tx, order_id: str, *, audit: Audit[int] | None = None) -> int:
        """Remove the personal data from the stored order and its events; returns how many
        events changed. NotFound for an unknown order."""
        if unstorable(order_id):
            raise NotFound(f"order {order_id} not found")
        # Held until the commit: an ingest of this order waits, then builds on the erased
        # document (PostgreSQL; SQLite has one writer).
        await lock_orders(tx, [order_id])
        row = await tx.fetchrow("order_by_id", order_id=order_id)
        if row is None:
            raise NotFound(f"order {order_id} not found")
        document: Mapping[str, Any] = loads(row["document"])
        courier = None if row["courier"] is None else loads(row["courier"])
        erased_document = remove_personal_data(document, EventType.NEW)
        erased_courier = None if courier is None else _erased_courier(courier)
        if erased_document is not document or erased_courier != courier:
            await tx.execute(
                "erase_order",
                order_id=order_id,
                document=dumps(erased_document),
                courier=None if erased_courier is None else dumps(erased_courier),
            )
        changed = []
        for event in await tx.fetch("events_to_erase", order_id=order_id):
            data: Mapping[str, Any] = loads(event["data"])
            erased = remove_personal_data(data, event["type"])
            if erased is not data:
                changed.append({"id": event["id"], "data": dumps(erased)})
        if changed:
            await tx.executemany("erase_event", changed)
        return await audited(tx, len(changed), audit)
