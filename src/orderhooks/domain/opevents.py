"""Operational events (docs/events.md): partners are told, through their own webhooks,
when delivery to a webhook goes wrong (pure).

Four types: `webhook.failing` (a webhook starts being probed), `webhook.recovered` (its
first success after that), `webhook.disabled` and `delivery.failed`. This module builds
their `data`, their envelope, and decides which webhooks receive one; storing and
sending them is the store's and the dispatcher's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orderhooks.domain.envelope import format_timestamp
from orderhooks.domain.health import WebhookHealth
from orderhooks.domain.model import (
    ALL_ACCOUNTS,
    Attempt,
    AttemptError,
    Delivery,
    DisabledReason,
    Webhook,
    WebhookState,
)

# Defined beside the order types (webhooks list both), re-exported here.
from orderhooks.domain.model import OperationalEventType as OperationalEventType

# Operational events are not gated by agreements: a webhook waiting for its account's
# agreement is told about failures like an active one; a disabled webhook is not.
RECEIVING_STATES = frozenset({WebhookState.ACTIVE, WebhookState.AWAITING_AGREEMENT})


@dataclass(frozen=True, slots=True)
class OperationalEvent:
    """One operational event about webhook `webhook_id`; `order_id` is set only for
    `delivery.failed`."""

    id: str
    type: OperationalEventType
    webhook_id: str
    account: str
    order_id: str | None
    created_at: datetime
    data: Mapping[str, Any]
    test: bool = False


# ---------------------------------------------------------------- transitions


def starts_failing(before: WebhookHealth, after: WebhookHealth) -> bool:
    """Whether an attempt moved the webhook into probing: emit `webhook.failing`."""
    return after.probing and not before.probing


def recovers(before: WebhookHealth, after: WebhookHealth) -> bool:
    """Whether an attempt was the first success after `webhook.failing` (also when the
    webhook was disabled and enabled since): emit `webhook.recovered`."""
    return before.failing_reported_since is not None and after.failing_reported_since is None


# ---------------------------------------------------------------- data


def _about(webhook: Webhook) -> dict[str, Any]:
    return {"webhookId": webhook.id, "url": webhook.url, "accounts": list(webhook.accounts)}


def _error(error: AttemptError | None) -> str | None:
    return None if error is None else error.value


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


def webhook_failing_data(
    webhook: Webhook, health: WebhookHealth, last_attempt: Attempt
) -> dict[str, Any]:
    """`data` of `webhook.failing`: the health after the attempt that started probing."""
    return {
        **_about(webhook),
        "consecutiveFailures": health.consecutive_failures,
        "lastError": _error(last_attempt.error),
        "lastStatusCode": last_attempt.status_code,
        "since": _time(health.failing_since),
    }


def webhook_recovered_data(webhook: Webhook, before: WebhookHealth) -> dict[str, Any]:
    """`data` of `webhook.recovered`: `before` is the health just before the success
    (its failure count starts afresh when the webhook is enabled again)."""
    return {
        **_about(webhook),
        "failingSince": _time(before.failing_reported_since),
        "failedAttempts": before.consecutive_failures,
    }


def webhook_disabled_data(webhook: Webhook, reason: DisabledReason) -> dict[str, Any]:
    """`data` of `webhook.disabled`."""
    return {**_about(webhook), "reason": reason.value}


def delivery_failed_data(delivery: Delivery, last_attempt: Attempt) -> dict[str, Any]:
    """`data` of `delivery.failed`; attempts are numbered from 1 across recoveries, so
    the last one's number is how many were made."""
    return {
        "deliveryId": delivery.id,
        "webhookId": delivery.webhook_id,
        "eventId": delivery.event_id,
        "eventType": str(delivery.event_type),
        "orderId": delivery.order_id,
        "attempts": last_attempt.attempt,
        "lastError": _error(last_attempt.error),
        "lastStatusCode": last_attempt.status_code,
    }


# ---------------------------------------------------------------- events and envelope


def operational_event(
    event_id: str,
    event_type: OperationalEventType,
    about: Webhook,
    data: Mapping[str, Any],
    now: datetime,
) -> OperationalEvent:
    """An operational event about webhook `about`: its account is the first of the
    webhook's, its order the failed delivery's (`delivery.failed` only)."""
    order_id = data.get("orderId") if event_type is OperationalEventType.DELIVERY_FAILED else None
    return OperationalEvent(
        id=event_id,
        type=event_type,
        webhook_id=about.id,
        account=about.accounts[0],
        order_id=order_id if isinstance(order_id, str) else None,
        created_at=now,
        data=data,
    )


def operational_envelope(event: OperationalEvent) -> dict[str, Any]:
    """The envelope of an operational event: the order envelope's fields in the same
    order, `location` and `sequence` null."""
    return {
        "id": event.id,
        "type": event.type.value,
        "timestamp": format_timestamp(event.created_at),
        "account": event.account,
        "location": None,
        "orderId": event.order_id,
        "sequence": None,
        "test": event.test,
        "data": event.data,
    }


# ---------------------------------------------------------------- routing


def lists_type(webhook: Webhook, event_type: str) -> bool:
    """Whether the webhook's `eventTypes` names `event_type` (order or operational)."""
    return any(str(listed) == event_type for listed in webhook.event_types)


def covers_accounts(receiver: Webhook, about: Webhook) -> bool:
    """Whether `receiver` may hear about `about`: it is on all accounts (`*`), or on
    every account of `about`."""
    if ALL_ACCOUNTS in receiver.accounts:
        return True
    return set(about.accounts) <= set(receiver.accounts)


def may_receive_operational_events(webhook: Webhook) -> bool:
    """Whether `route_operational_event` may pick the webhook for some event type."""
    return webhook.state in RECEIVING_STATES and any(
        lists_type(webhook, event_type) for event_type in OperationalEventType
    )


def route_operational_event(
    event_type: OperationalEventType, about: Webhook, webhooks: Iterable[Webhook]
) -> list[Webhook]:
    """The webhooks that receive an operational event about webhook `about`: enabled,
    listing the type, covering all of `about`'s accounts, and never `about` itself."""
    return [
        webhook
        for webhook in webhooks
        if webhook.id != about.id
        and webhook.state in RECEIVING_STATES
        and lists_type(webhook, event_type)
        and covers_accounts(webhook, about)
    ]
