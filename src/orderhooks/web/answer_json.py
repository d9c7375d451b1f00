"""The JSON answers of the API (docs/api.md), built from the domain values.

Timestamps are RFC 3339 UTC with microseconds (`envelope.format_timestamp`); names are
camelCase; secrets never appear except where a function says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from pydantic.alias_generators import to_camel

from orderhooks.delivery.clienttls import client_tls_json
from orderhooks.domain.envelope import envelope, format_timestamp
from orderhooks.domain.model import (
    Agreement,
    ApiKey,
    Attempt,
    AuditEntry,
    Delivery,
    DeliveryState,
    Webhook,
)
from orderhooks.domain.portal import PortalLink
from orderhooks.store.base import DeliveryView, OrderView, Page, WebhookStats

T = TypeVar("T")


def timestamp(moment: datetime | None) -> str | None:
    """RFC 3339 UTC, or None."""
    return None if moment is None else format_timestamp(moment)


def page_json(page: Page[T], item_json: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """`{"data": [...], "nextCursor": ...}`."""
    return {"data": [item_json(item) for item in page.items], "nextCursor": page.next_cursor}


def webhook_json(webhook: Webhook, default_schedule: Sequence[int]) -> dict[str, Any]:
    """Every field of docs/api.md#webhooks with its value or default; never the secret."""
    schedule = webhook.retry_schedule if webhook.retry_schedule is not None else default_schedule
    return {
        "id": webhook.id,
        "url": webhook.url,
        "description": webhook.description,
        "accounts": list(webhook.accounts),
        "locations": list(webhook.locations),
        "channelLinks": list(webhook.channel_links),
        "channels": list(webhook.channels),
        "eventTypes": [t.value for t in webhook.event_types],
        "newOrderTrigger": webhook.new_order_trigger,
        "statusFilter": list(webhook.status_filter),
        "courierStatusFilter": list(webhook.courier_status_filter),
        "payloadFormat": webhook.payload_format.value,
        "headers": dict(webhook.headers),
        "timeoutSeconds": webhook.timeout_seconds,
        "retrySchedule": list(schedule),
        "maxConcurrency": webhook.max_concurrency,
        "rateLimitPerSecond": webhook.rate_limit_per_second,
        "ordering": webhook.ordering.value,
        "state": webhook.state.value,
        "disabledReason": None
        if webhook.disabled_reason is None
        else webhook.disabled_reason.value,
        "disabledAt": timestamp(webhook.disabled_at),
        "createdAt": timestamp(webhook.created_at),
        "updatedAt": timestamp(webhook.updated_at),
        "batch": None
        if webhook.batch is None
        else {"maxEvents": webhook.batch.max_events, "maxWaitMs": webhook.batch.max_wait_ms},
        "personalData": webhook.personal_data.value,
        "fields": None if webhook.fields is None else list(webhook.fields),
        "tls": client_tls_json(webhook.tls),
    }


def _field_json(value: object) -> object:
    """A field's value as the API writes it: a moment in RFC 3339, an enum by its value, a
    tuple as a list, a mapping as a plain dict; anything else as it is."""
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


class FieldsJson:
    """The JSON of a flat domain value: the fields named, in that order, each under its
    camelCase name and written by `_field_json`. Only the named fields go out: a field
    added to the value later, or a secret, is never answered by accident."""

    def __init__(self, *names: str) -> None:
        self._keys = tuple((name, to_camel(name)) for name in names)

    def __call__(self, value: object) -> dict[str, Any]:
        """`value`'s named fields as JSON."""
        return {key: _field_json(getattr(value, name)) for name, key in self._keys}


_DELIVERY_JSON = FieldsJson(
    "id",
    "webhook_id",
    "event_id",
    "event_type",
    "order_id",
    "account",
    "sequence",
    "state",
    "replay",
    "test",
    "created_at",
    "next_attempt_at",
    "delivered_at",
    "attempt_count",
)
_ATTEMPT_JSON = FieldsJson(
    "attempt", "started_at", "duration_ms", "status_code", "response_body", "error"
)
_KEY_JSON = FieldsJson("id", "role", "accounts", "name", "created_at", "revoked_at")
_AUDIT_JSON = FieldsJson("id", "at", "actor", "action", "target_type", "target_id", "details")


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    """One delivery, without its event and attempts."""
    return _DELIVERY_JSON(delivery)


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    """One attempt; `responseBody` is at most the first 2 KiB the store kept."""
    return _ATTEMPT_JSON(attempt)


def delivery_view_json(view: DeliveryView) -> dict[str, Any]:
    """One delivery with its event (the envelope) and its attempts, oldest first."""
    return {
        **delivery_json(view.delivery),
        "event": envelope(view.event),
        "attempts": [attempt_json(a) for a in view.attempts],
    }


def _history_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"status": entry.get("status"), "timeStamp": entry.get("timeStamp")}


def order_view_json(view: OrderView) -> dict[str, Any]:
    """`GET /v1/orders/{id}`: the current document, its status history, courier and events."""
    order = view.order
    return {
        "orderId": order.order_id,
        "account": order.account,
        "location": order.location,
        "channelLink": order.channel_link,
        "channel": order.channel,
        "status": order.status,
        "document": dict(order.document),
        "statusHistory": [_history_entry(e) for e in view.status_history],
        "courier": None if order.courier is None else dict(order.courier),
        "events": [
            {
                "id": e.id,
                "type": e.type.value,
                "sequence": e.sequence,
                "timestamp": timestamp(e.created_at),
            }
            for e in view.events
        ],
        "createdAt": timestamp(order.created_at),
        "updatedAt": timestamp(order.updated_at),
    }


def key_json(key: ApiKey) -> dict[str, Any]:
    """A key as listed: never the plaintext, never the hash."""
    return _KEY_JSON(key)


def agreement_json(agreement: Agreement) -> dict[str, Any]:
    """The agreement in the shape of its `PUT` body, plus the account."""
    return {
        "account": agreement.account,
        "signedBy": agreement.signed_by,
        "signedAt": timestamp(agreement.signed_at),
        "pricing": {
            "currency": agreement.currency,
            "perThousand": {t.value: p for t, p in agreement.per_thousand.items()},
        },
    }


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    """One audit entry."""
    return _AUDIT_JSON(entry)


def stats_json(webhook_id: str, stats: WebhookStats) -> dict[str, Any]:
    """`GET /v1/webhooks/{id}/stats`: every state counted (0 when none)."""
    return {
        "webhookId": webhook_id,
        "counts": {state.value: stats.counts.get(state, 0) for state in DeliveryState},
        "successRate": stats.success_rate,
        "latencyMs": {
            "p50": stats.latency_ms_p50,
            "p95": stats.latency_ms_p95,
            "p99": stats.latency_ms_p99,
        },
        "lastSuccessAt": timestamp(stats.last_success_at),
        "lastFailureAt": timestamp(stats.last_failure_at),
    }


def portal_link_json(link: PortalLink, url: str) -> dict[str, Any]:
    """A new portal link: its id (to revoke it), its URL (with the token, shown this
    once) and its expiry."""
    return {"id": link.id, "url": url, "expiresAt": timestamp(link.expires_at)}
