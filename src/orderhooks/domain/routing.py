"""Which webhooks want which event (PRODUCT 3): type, scope, filters, triggers."""

from __future__ import annotations

from collections.abc import Iterable

from orderhooks.domain.model import Event, Webhook


def wants(webhook: Webhook, event: Event) -> bool:
    """Whether an event goes to a webhook: type, account/location/channel scope and status
    filters. Ignores the webhook's state and, for `order.new`, its trigger (see
    `wants_new_order`)."""
    raise NotImplementedError


def route_event(event: Event, webhooks: Iterable[Webhook]) -> list[Webhook]:
    """The active webhooks that get `event` (an `order.new` only goes to webhooks without
    a trigger, or whose trigger the event's status already satisfies on arrival)."""
    raise NotImplementedError


def trigger_fires(trigger: int, previous_max_flow_status: int, new_status: int) -> bool:
    """Whether a `newOrderTrigger` fires when an order that had reached
    `previous_max_flow_status` (-1: none) moves to `new_status`: the first time it
    reaches the trigger or a later normal-flow status; never on problem statuses."""
    raise NotImplementedError
