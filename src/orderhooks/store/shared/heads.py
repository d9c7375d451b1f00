"""Per-order queue heads: which pending deliveries the claim may take.

A (webhook, order) queue is the webhook's pending and delivering deliveries of one
order. Under `ordering: per_order` only its head (lowest sequence; among deliveries of
one sequence, an event and its replays, the one in flight, else the earliest created,
so that one event is never sent twice at once) may be sent; the `ready` column marks
heads so that the claim never searches. Every transaction that
changes a queue refreshes it, holding the order's lock (`lock_orders` on PostgreSQL;
SQLite has one writer), so that two transactions never both miss a new head.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from orderhooks.domain.model import Ordering, Webhook
from orderhooks.store.shared.tx import Tx

Queue = tuple[str, str]  # (webhook id, order id)
LOCK_CHUNK = 1000  # order ids locked per statement; chunks go in sorted order


def ordered_queues(queues: Iterable[Queue], webhooks: Mapping[str, Webhook]) -> list[Queue]:
    """The queues whose webhook is live and keeps per-order order, sorted (a lock order)."""
    return sorted(
        {
            queue
            for queue in queues
            if (webhook := webhooks.get(queue[0])) is not None
            and webhook.ordering == Ordering.PER_ORDER
        }
    )


async def share_ordering(tx: Tx) -> None:
    """Before reading the webhooks' `ordering` to mark heads: a change of it waits for
    this transaction, and this one for a change in progress (PostgreSQL; SQLite has one
    writer). Taken first, after the claim lock only."""
    await tx.execute("share_ordering")


async def lock_ordering(tx: Tx) -> None:
    """Before changing a webhook's `ordering`: waits for the transactions marking heads
    by the old one (see `share_ordering`)."""
    await tx.execute("lock_ordering")


async def lock_orders(tx: Tx, order_ids: Iterable[str]) -> None:
    """Lock the orders' rows in sorted order (PostgreSQL; a plain read on SQLite)."""
    ordered = sorted(set(order_ids))
    for start in range(0, len(ordered), LOCK_CHUNK):
        await tx.fetch("lock_orders", order_ids=tx.array(ordered[start : start + LOCK_CHUNK]))


async def refresh_heads(tx: Tx, queues: Iterable[Queue], webhooks: Mapping[str, Webhook]) -> None:
    """Set `ready` on the heads of the queues, and clear it on the rest (per-order
    webhooks only: under `ordering: none` every delivery is ready)."""
    rows = ordered_queues(queues, webhooks)
    if rows:
        params = [{"webhook_id": webhook_id, "order_id": order_id} for webhook_id, order_id in rows]
        await tx.executemany("refresh_heads", params)
