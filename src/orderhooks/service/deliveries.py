"""What can be done to deliveries: send a test event, retry one now, recover the failed
ones of a webhook, replay its stored events. Each is audited the same way, whoever asks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from orderhooks.domain.model import AuditEntry, Delivery, EventType, Webhook
from orderhooks.exceptions import FieldProblem, ValidationError
from orderhooks.service.audit import Actor, audit_entry, audit_time
from orderhooks.service.context import ServiceContext
from orderhooks.service.testevents import synthetic_event


def check_range(since: datetime, until: datetime | None) -> None:
    """422 naming `until` when it is before `since`."""
    if until is not None and until < since:
        raise ValidationError([FieldProblem("until", "must not be before since")])


async def send_test(
    ctx: ServiceContext, actor: Actor, webhook: Webhook, event_type: EventType
) -> str:
    """Queue a synthetic event (`"test": true`, never billed) to this webhook only; returns
    the delivery's id."""
    now = ctx.now()
    event = synthetic_event(webhook, event_type, now)
    details = {"type": event_type.value}
    entry = audit_entry(ctx, actor, "webhook.tested", ("webhook", webhook.id), details)
    return await ctx.store.create_test_delivery(webhook, event, now, audit=entry)


async def retry_now(ctx: ServiceContext, actor: Actor, delivery_id: str) -> Delivery:
    """Make a pending or failed delivery due now (Conflict for the other states)."""
    entry = audit_entry(ctx, actor, "delivery.retried", ("delivery", delivery_id))
    return await ctx.store.retry_delivery_now(delivery_id, ctx.now(), audit=entry)


async def recover(
    ctx: ServiceContext, actor: Actor, webhook: Webhook, since: datetime, until: datetime | None
) -> int:
    """Failed deliveries created in the range go back to pending with the whole schedule;
    returns how many."""
    check_range(since, until)

    def recovered(count: int) -> AuditEntry:
        details = {"requeued": count, "since": audit_time(since), "until": audit_time(until)}
        return audit_entry(ctx, actor, "webhook.recovered", ("webhook", webhook.id), details)

    return await ctx.store.recover_failed(webhook.id, since, until, ctx.now(), audit=recovered)


async def replay(
    ctx: ServiceContext,
    actor: Actor,
    webhook: Webhook,
    since: datetime,
    until: datetime | None,
    event_types: Sequence[EventType] | None = None,
) -> int:
    """New `replay` deliveries of every stored event of the range that the webhook accepts
    (of `event_types` only, when given); returns how many."""
    check_range(since, until)
    types = list(event_types) if event_types else None

    def replayed(count: int) -> AuditEntry:
        details = {
            "queued": count,
            "since": audit_time(since),
            "until": audit_time(until),
            "eventTypes": None if types is None else [t.value for t in types],
        }
        return audit_entry(ctx, actor, "webhook.replayed", ("webhook", webhook.id), details)

    return await ctx.store.replay_events(webhook, since, until, types, ctx.now(), audit=replayed)
