"""Which webhooks want which event (docs/api.md, webhooks): type, scope, filters, triggers."""

from __future__ import annotations

from collections.abc import Iterable

from orderhooks.domain.model import ALL_ACCOUNTS, Event, EventType, Webhook, WebhookState
from orderhooks.domain.statuses import PROBLEM_STATUS_MIN


def in_scope(webhook: Webhook, event: Event) -> bool:
    """Whether the event's account, location, channel link and channel pass the webhook's
    scope (an empty narrowing list means all)."""
    if ALL_ACCOUNTS not in webhook.accounts and event.account not in webhook.accounts:
        return False
    if webhook.locations and event.location not in webhook.locations:
        return False
    if webhook.channel_links and event.channel_link not in webhook.channel_links:
        return False
    return not webhook.channels or event.channel in webhook.channels


def passes_status_filters(webhook: Webhook, event: Event) -> bool:
    """Whether the event's status passes the filter of its type (empty filter: all; an
    event without a status passes only an empty filter)."""
    if event.type == EventType.STATUS_UPDATE:
        allowed = webhook.status_filter
    elif event.type == EventType.COURIER_UPDATE:
        allowed = webhook.courier_status_filter
    else:
        return True
    return not allowed or event.status in allowed


def wants(webhook: Webhook, event: Event) -> bool:
    """Whether an event goes to a webhook: type, account/location/channel scope and status
    filters. Ignores the webhook's state and, for `order.new`, its trigger (see
    `wants_new_order`)."""
    return (
        event.type in webhook.event_types
        and in_scope(webhook, event)
        and passes_status_filters(webhook, event)
    )


def wants_new_order(webhook: Webhook, event: Event) -> bool:
    """Whether an arriving `order.new` satisfies the webhook's `newOrderTrigger`: no
    trigger, or the arrival status is the trigger or a later normal-flow status."""
    trigger = webhook.new_order_trigger
    if trigger is None:
        return True
    return event.status is not None and trigger <= event.status < PROBLEM_STATUS_MIN


def route_event(event: Event, webhooks: Iterable[Webhook]) -> list[Webhook]:
    """The active webhooks that get `event` (an `order.new` only goes to webhooks without
    a trigger, or whose trigger the event's status already satisfies on arrival)."""
    return [
        webhook
        for webhook in webhooks
        if webhook.state == WebhookState.ACTIVE
        and wants(webhook, event)
        and (event.type != EventType.NEW or wants_new_order(webhook, event))
    ]


def trigger_fires(trigger: int, previous_max_flow_status: int, new_status: int) -> bool:
    """Whether a `newOrderTrigger` fires when an order that had reached
    `previous_max_flow_status` (-1: none) moves to `new_status`: the first time it
    reaches the trigger or a later normal-flow status; never on problem statuses."""
    return previous_max_flow_status < trigger <= new_status < PROBLEM_STATUS_MIN


def triggered_webhooks(
    event: Event, previous_max_flow_status: int, webhooks: Iterable[Webhook]
) -> list[Webhook]:
    """The active webhooks whose trigger fires for a triggered `order.new` at `event.status`
    (type and scope checked too)."""
    if event.status is None:
        return []
    return [
        webhook
        for webhook in webhooks
        if webhook.state == WebhookState.ACTIVE
        and webhook.new_order_trigger is not None
        and wants(webhook, event)
        and trigger_fires(webhook.new_order_trigger, previous_max_flow_status, event.status)
    ]


def replay_selection(
    webhook: Webhook, events: Iterable[Event], orders_with_new: set[str]
) -> list[Event]:
    """The stored events (oldest first) that a replay sends to `webhook`: those it wants,
    and of each order's `order.new` events only the one meant for it: the arrival (sequence
    1) without a trigger, else the first at or past its trigger. `orders_with_new` carries
    the orders whose `order.new` is already chosen, on earlier pages or before the range;
    it is updated."""
    selected = []
    for event in events:
        if not wants(webhook, event):
            continue
        if event.type == EventType.NEW:
            if event.order_id in orders_with_new:
                continue
            if webhook.new_order_trigger is None:
                meant = event.sequence == 1
            else:
                meant = wants_new_order(webhook, event)
            if not meant or event.order_id is None:
                continue
            orders_with_new.add(event.order_id)
        selected.append(event)
    return selected
