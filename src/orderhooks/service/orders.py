"""Operations on stored orders: erasing a customer's personal data on request."""

from __future__ import annotations

from orderhooks.service.audit import Actor, record_audit
from orderhooks.service.context import ServiceContext


async def erase_order(ctx: ServiceContext, actor: Actor, order_id: str) -> int:
    """Remove the customer's personal data (the set `personalData: exclude` removes) from
    the stored order and every stored event of it, so that nothing sent from now on
    (pending deliveries, retries, replays) carries it; returns how many events changed.
    NotFound for an unknown order. What was delivered before is the receiver's to erase."""
    changed = await ctx.store.erase_order(order_id)
    await record_audit(ctx, actor, "order.erased", ("order", order_id), {"events": changed})
    return changed
