"""Operations on stored orders: erasing a customer's personal data on request."""

from __future__ import annotations

from orderhooks.domain.model import AuditEntry
from orderhooks.service.audit import Actor, audit_entry
from orderhooks.service.context import ServiceContext


async def erase_order(ctx: ServiceContext, actor: Actor, order_id: str) -> int:
    """Remove the customer's personal data (the set `personalData: exclude` removes) from
    the stored order and every stored event of it, so that nothing sent from now on
    (pending deliveries, retries, replays) carries it; returns how many events changed.
    NotFound for an unknown order. What was delivered before is the receiver's to erase."""

    def erased(changed: int) -> AuditEntry:
        return audit_entry(ctx, actor, "order.erased", ("order", order_id), {"events": changed})

    return await ctx.store.erase_order(order_id, audit=erased)
