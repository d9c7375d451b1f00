"""Rows to domain values and back, the same for both engines.

Times and JSON are encoded by `values` (BIGINT microseconds since the Unix epoch, orjson
text); booleans come back as 0/1 from SQLite and as bool from PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from orderhooks.domain.batches import BatchSettings
from orderhooks.domain.health import WebhookHealth
from orderhooks.domain.model import (
    Agreement,
    ApiKey,
    Attempt,
    AttemptError,
    AuditEntry,
    ClientTls,
    Delivery,
    DeliveryState,
    DisabledReason,
    Event,
    EventType,
    OperationalEventType,
    Ordering,
    OrderState,
    PayloadFormat,
    PersonalData,
    Role,
    SigningSecret,
    UsageRow,
    Webhook,
    WebhookState,
    any_event_type,
)
from orderhooks.secretbox import (
    SecretBox,
    webhook_client_key_context,
    webhook_header_context,
    webhook_secret_context,
)
from orderhooks.store.shared.tx import Row
from orderhooks.store.shared.values import (
    dumps,
    loads,
    micros,
    micros_or_none,
    moment,
    moment_or_none,
)

# ---------------------------------------------------------------- orders and events


def order_params(order: OrderState) -> dict[str, object]:
    """The parameters of `insert_order` and `update_order`."""
    return {
        "order_id": order.order_id,
        "account": order.account,
        "location": order.location,
        "channel_link": order.channel_link,
        "channel": order.channel,
        "status": order.status,
        "document": dumps(order.document),
        "body_hash": order.body_hash,
        "courier": None if order.courier is None else dumps(order.courier),
        "next_sequence": order.next_sequence,
        "max_flow_status": order.max_flow_status,
        "created_at": micros(order.created_at),
        "updated_at": micros(order.updated_at),
    }


def order_from_row(row: Row) -> OrderState:
    """An OrderState from an `orders` row."""
    courier = row["courier"]
    return OrderState(
        order_id=row["order_id"],
        account=row["account"],
        location=row["location"],
        channel_link=row["channel_link"],
        channel=row["channel"],
        status=row["status"],
        document=loads(row["document"]),
        body_hash=row["body_hash"],
        courier=None if courier is None else loads(courier),
        next_sequence=row["next_sequence"],
        max_flow_status=row["max_flow_status"],
        created_at=moment(row["created_at"]),
        updated_at=moment(row["updated_at"]),
    )


def batch_from_row(row: Row) -> BatchSettings | None:
    """A webhook's `batch` from its two columns (both null: no batching)."""
    if row["batch_max_events"] is None:
        return None
    return BatchSettings(
        max_events=row["batch_max_events"], max_wait_ms=row["batch_max_wait_ms"] or 0
    )


def event_params(event: Event, trace_parent: str | None = None) -> dict[str, object]:
    """The parameters of `insert_event`; `trace_parent` is the W3C traceparent of the
    ingest span that created the event, if tracing is on."""
    return {
        "id": event.id,
        "type": str(event.type),
        "order_id": event.order_id,
        "account": event.account,
        "location": event.location,
        "channel_link": event.channel_link,
        "channel": event.channel,
        "sequence": event.sequence,
        "created_at": micros(event.created_at),
        "data": dumps(event.data),
        "status": event.status,
        "test": event.test,
        "trace_parent": trace_parent,
    }


def event_from_row(row: Row) -> Event:
    """An Event from an `events` row. An operational event's row has no order; the
    order of `delivery.failed` is the failed delivery's, kept in its data."""
    data = loads(row["data"])
    order_id = row["order_id"]
    if order_id is None and row["type"] == OperationalEventType.DELIVERY_FAILED:
        order_id = data.get("orderId")
    return Event(
        id=row["id"],
        type=any_event_type(row["type"]),
        order_id=order_id,
        account=row["account"],
        location=row["location"],
        channel_link=row["channel_link"],
        channel=row["channel"],
        sequence=row["sequence"],
        created_at=moment(row["created_at"]),
        data=data,
        status=row["status"],
        test=bool(row["test"]),
    )


# ---------------------------------------------------------------- webhooks


def secrets_param(webhook_id: str, secrets: Sequence[SigningSecret], box: SecretBox) -> str:
    """The `secrets` column: JSON, newest first, each secret sealed by `box`."""
    context = webhook_secret_context(webhook_id)
    return dumps(
        [
            {"secret": box.seal(s.secret, context), "expires_at": micros_or_none(s.expires_at)}
            for s in secrets
        ]
    )


def headers_param(webhook_id: str, headers: Mapping[str, str], box: SecretBox) -> str:
    """The `headers` column: JSON, names as given, each value sealed by `box`."""
    return dumps(
        {
            name: box.seal(value, webhook_header_context(webhook_id, name))
            for name, value in headers.items()
        }
    )


def tls_param(webhook_id: str, tls: ClientTls | None, box: SecretBox) -> str | None:
    """The `tls` column: NULL, or JSON with the client key sealed by `box`."""
    if tls is None:
        return None
    return dumps(
        {
            "clientCertificate": tls.client_certificate,
            "clientKey": box.seal(tls.client_key, webhook_client_key_context(webhook_id)),
            "caCertificate": tls.ca_certificate,
        }
    )


def secrets_from_column(webhook_id: str, text: str, box: SecretBox) -> tuple[SigningSecret, ...]:
    """The secrets of a `secrets` column (SecretUnreadable when one does not open)."""
    context = webhook_secret_context(webhook_id)
    return tuple(
        SigningSecret(box.open(s["secret"], context), moment_or_none(s["expires_at"]))
        for s in loads(text)
    )


def headers_from_column(webhook_id: str, text: str, box: SecretBox) -> dict[str, str]:
    """The headers of a `headers` column (SecretUnreadable when a value does not open)."""
    return {
        name: box.open(value, webhook_header_context(webhook_id, name))
        for name, value in loads(text).items()
    }


def tls_from_column(webhook_id: str, text: str | None, box: SecretBox) -> ClientTls | None:
    """The client certificate of a `tls` column (SecretUnreadable when the key does not
    open)."""
    if text is None:
        return None
    value = loads(text)
    return ClientTls(
        client_certificate=value["clientCertificate"],
        client_key=box.open(value["clientKey"], webhook_client_key_context(webhook_id)),
        ca_certificate=value["caCertificate"],
    )


def webhook_params(webhook: Webhook, box: SecretBox) -> dict[str, object]:
    """The parameters of `insert_webhook` (`update_webhook` takes all but `secrets`);
    secrets, header values and the client key sealed by `box`."""
    schedule = webhook.retry_schedule
    return {
        "id": webhook.id,
        "url": webhook.url,
        "description": webhook.description,
        "accounts": dumps(list(webhook.accounts)),
        "event_types": dumps([str(t) for t in webhook.event_types]),
        "secrets": secrets_param(webhook.id, webhook.secrets, box),
        "locations": dumps(list(webhook.locations)),
        "channel_links": dumps(list(webhook.channel_links)),
        "channels": dumps(list(webhook.channels)),
        "new_order_trigger": webhook.new_order_trigger,
        "status_filter": dumps(list(webhook.status_filter)),
        "courier_status_filter": dumps(list(webhook.courier_status_filter)),
        "payload_format": str(webhook.payload_format),
        "headers": headers_param(webhook.id, webhook.headers, box),
        "timeout_seconds": webhook.timeout_seconds,
        "retry_schedule": None if schedule is None else dumps(list(schedule)),
        "max_concurrency": webhook.max_concurrency,
        "rate_limit_per_second": webhook.rate_limit_per_second,
        "ordering": str(webhook.ordering),
        "state": str(webhook.state),
        "disabled_reason": None
        if webhook.disabled_reason is None
        else str(webhook.disabled_reason),
        "disabled_at": micros_or_none(webhook.disabled_at),
        "created_at": micros(webhook.created_at),
        "updated_at": micros(webhook.updated_at),
        "batch_max_events": None if webhook.batch is None else webhook.batch.max_events,
        "batch_max_wait_ms": None if webhook.batch is None else webhook.batch.max_wait_ms,
        "personal_data": str(webhook.personal_data),
        "field_paths": None if webhook.fields is None else dumps(list(webhook.fields)),
        "tls": tls_param(webhook.id, webhook.tls, box),
    }


def webhook_from_row(row: Row, box: SecretBox) -> Webhook:
    """A Webhook from a `webhooks` row; SecretUnreadable when `box` cannot open one of
    its secrets (never read as plaintext instead)."""
    schedule = row["retry_schedule"]
    reason = row["disabled_reason"]
    return Webhook(
        id=row["id"],
        url=row["url"],
        description=row["description"],
        accounts=tuple(loads(row["accounts"])),
        event_types=tuple(any_event_type(t) for t in loads(row["event_types"])),
        secrets=secrets_from_column(row["id"], row["secrets"], box),
        locations=tuple(loads(row["locations"])),
        channel_links=tuple(loads(row["channel_links"])),
        channels=tuple(loads(row["channels"])),
        new_order_trigger=row["new_order_trigger"],
        status_filter=tuple(loads(row["status_filter"])),
        courier_status_filter=tuple(loads(row["courier_status_filter"])),
        payload_format=PayloadFormat(row["payload_format"]),
        headers=headers_from_column(row["id"], row["headers"], box),
        timeout_seconds=row["timeout_seconds"],
        retry_schedule=None if schedule is None else tuple(loads(schedule)),
        max_concurrency=row["max_concurrency"],
        rate_limit_per_second=row["rate_limit_per_second"],
        ordering=Ordering(row["ordering"]),
        state=WebhookState(row["state"]),
        disabled_reason=None if reason is None else DisabledReason(reason),
        disabled_at=moment_or_none(row["disabled_at"]),
        created_at=moment(row["created_at"]),
        updated_at=moment(row["updated_at"]),
        batch=batch_from_row(row),
        personal_data=PersonalData(row["personal_data"]),
        fields=None if row["field_paths"] is None else tuple(loads(row["field_paths"])),
        tls=tls_from_column(row["id"], row["tls"], box),
    )


def health_from_row(row: Row) -> WebhookHealth:
    """A WebhookHealth from a `webhook_runtime` row."""
    return WebhookHealth(
        consecutive_failures=row["consecutive_failures"],
        failing_since=moment_or_none(row["failing_since"]),
        last_success_at=moment_or_none(row["last_success_at"]),
        last_failure_at=moment_or_none(row["last_failure_at"]),
        probing=bool(row["probing"]),
        probe_at=moment_or_none(row["probe_at"]),
        failing_reported_since=moment_or_none(row["failing_reported_since"]),
    )


def health_params(webhook_id: str, health: WebhookHealth) -> dict[str, object]:
    """The parameters of `update_health`."""
    return {
        "webhook_id": webhook_id,
        "consecutive_failures": health.consecutive_failures,
        "failing_since": micros_or_none(health.failing_since),
        "last_success_at": micros_or_none(health.last_success_at),
        "last_failure_at": micros_or_none(health.last_failure_at),
        "probing": health.probing,
        "probe_at": micros_or_none(health.probe_at),
        "failing_reported_since": micros_or_none(health.failing_reported_since),
    }


# ---------------------------------------------------------------- deliveries


def delivery_from_row(row: Row, *, leased: bool = False, batch_id: str | None = None) -> Delivery:
    """A Delivery from a `deliveries` row; with `leased`, as the claim that read the row
    leaves it (`delivering`, in batch `batch_id`), without a second copy. A cancelled one
    has no next attempt (rows cancelled before `cancel_deliveries` cleared it kept one)."""
    state = DeliveryState.DELIVERING if leased else DeliveryState(row["state"])
    cancelled = state == DeliveryState.CANCELLED
    return Delivery(
        id=row["id"],
        webhook_id=row["webhook_id"],
        event_id=row["event_id"],
        event_type=any_event_type(row["event_type"]),
        order_id=row["order_id"],
        account=row["account"],
        sequence=row["sequence"],
        state=state,
        replay=bool(row["replay"]),
        test=bool(row["test"]),
        created_at=moment(row["created_at"]),
        next_attempt_at=None if cancelled else moment_or_none(row["next_attempt_at"]),
        delivered_at=moment_or_none(row["delivered_at"]),
        attempt_count=row["attempt_count"],
        schedule_position=row["schedule_position"],
        batch_id=batch_id if leased else row["batch_id"],
    )


def new_delivery_params(
    delivery_id: str,
    webhook_id: str,
    event: Event,
    *,
    replay: bool,
    ready: bool,
    now: datetime,
) -> dict[str, object]:
    """The parameters of `insert_delivery`: a pending delivery due at `now`."""
    created = micros(now)
    return {
        "id": delivery_id,
        "webhook_id": webhook_id,
        "event_id": event.id,
        "event_type": str(event.type),
        "order_id": event.order_id,
        "account": event.account,
        "sequence": event.sequence,
        "replay": replay,
        "test": event.test,
        "ready": ready,
        "created_at": created,
        "next_attempt_at": created,
    }


def attempt_params(
    attempt: Attempt, webhook_id: str, batch_id: str | None = None
) -> dict[str, object]:
    """The parameters of `insert_attempt`; `batch_id`: the batch it was made in."""
    return {
        "delivery_id": attempt.delivery_id,
        "attempt": attempt.attempt,
        "webhook_id": webhook_id,
        "started_at": micros(attempt.started_at),
        "duration_ms": attempt.duration_ms,
        "status_code": attempt.status_code,
        "response_body": attempt.response_body,
        "error": None if attempt.error is None else str(attempt.error),
        "batch_id": batch_id,
        "body_settings": attempt.body_settings,
    }


def attempt_from_row(row: Row) -> Attempt:
    """An Attempt from an `attempts` row."""
    error = row["error"]
    return Attempt(
        delivery_id=row["delivery_id"],
        attempt=row["attempt"],
        started_at=moment(row["started_at"]),
        duration_ms=row["duration_ms"],
        status_code=row["status_code"],
        response_body=row["response_body"],
        error=None if error is None else AttemptError(error),
        body_settings=row["body_settings"],
    )


# ---------------------------------------------------------------- accounts, keys, audit


def agreement_from_row(row: Row) -> Agreement:
    """An Agreement from an `agreements` row."""
    prices = loads(row["per_thousand"])
    return Agreement(
        account=row["account"],
        signed_by=row["signed_by"],
        signed_at=moment(row["signed_at"]),
        currency=row["currency"],
        per_thousand={EventType(k): int(v) for k, v in prices.items()},
    )


def usage_from_row(row: Row) -> UsageRow:
    """A UsageRow from a `usage` row."""
    return UsageRow(
        account=row["account"],
        month=row["month"],
        event_type=EventType(row["event_type"]),
        delivered=row["delivered"],
        replayed=row["replayed"],
    )


def key_params(key: ApiKey) -> dict[str, object]:
    """The parameters of `insert_key` (the key's hash, never the key)."""
    return {
        "id": key.id,
        "role": str(key.role),
        "accounts": dumps(list(key.accounts)),
        "name": key.name,
        "key_hash": key.key_hash,
        "created_at": micros(key.created_at),
    }


def key_from_row(row: Row) -> ApiKey:
    """An ApiKey from an `api_keys` row."""
    return ApiKey(
        id=row["id"],
        role=Role(row["role"]),
        accounts=tuple(loads(row["accounts"])),
        name=row["name"],
        key_hash=row["key_hash"],
        created_at=moment(row["created_at"]),
        revoked_at=moment_or_none(row["revoked_at"]),
    )


def audit_from_row(row: Row) -> AuditEntry:
    """An AuditEntry from an `audit` row."""
    return AuditEntry(
        id=row["id"],
        at=moment(row["at"]),
        actor=row["actor"],
        action=row["action"],
        target_type=row["target_type"],
        target_id=row["target_id"],
        details=loads(row["details"]),
    )


def audit_params(entry: AuditEntry) -> dict[str, object]:
    """The parameters of `insert_audit`."""
    return {
        "id": entry.id,
        "at": micros(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "details": dumps(dict(entry.details)),
    }
