"""Values that cross the seams between domain, store, delivery and web.

Frozen dataclasses: the store returns them, the domain computes with them, the web
layer serialises them. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # batches.py reads PayloadFormat from here: imported for the annotation only.
    from orderhooks.domain.batches import BatchSettings


class EventType(StrEnum):
    """The three order data types (docs/events.md, event types)."""

    NEW = "order.new"
    STATUS_UPDATE = "order.status_update"
    COURIER_UPDATE = "order.courier_update"


class OperationalEventType(StrEnum):
    """The four operational event types (docs/events.md), listed in `eventTypes` beside
    the order types; `domain/opevents.py` builds and routes them."""

    WEBHOOK_FAILING = "webhook.failing"
    WEBHOOK_RECOVERED = "webhook.recovered"
    WEBHOOK_DISABLED = "webhook.disabled"
    DELIVERY_FAILED = "delivery.failed"


# Any type a webhook may list and an event or delivery may have.
AnyEventType = EventType | OperationalEventType


def any_event_type(value: str) -> AnyEventType:
    """The order or operational event type named `value` (ValueError when neither)."""
    try:
        return EventType(value)
    except ValueError:
        return OperationalEventType(value)


class WebhookState(StrEnum):
    """Whether a webhook gets new deliveries."""

    ACTIVE = "active"
    DISABLED = "disabled"
    AWAITING_AGREEMENT = "awaiting_agreement"


class DisabledReason(StrEnum):
    """Why a webhook is disabled."""

    MANUAL = "manual"
    GONE = "gone"
    FAILING = "failing"


class PayloadFormat(StrEnum):
    """What the request body is: the envelope of docs/events.md#the-envelope, or the `data` object
    alone."""

    ENVELOPE = "envelope"
    RAW = "raw"


class PersonalData(StrEnum):
    """Whether a webhook receives the customer's personal data (docs/events.md)."""

    INCLUDE = "include"
    EXCLUDE = "exclude"


class Ordering(StrEnum):
    """Whether events of one order wait for the previous one (docs/guarantees.md)."""

    PER_ORDER = "per_order"
    NONE = "none"


class DeliveryState(StrEnum):
    """The life of one event sent to one webhook (see docs/architecture.md)."""

    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Role(StrEnum):
    """API key roles (docs/api.md, authentication)."""

    ADMIN = "admin"
    INGEST = "ingest"
    PARTNER = "partner"


class AttemptError(StrEnum):
    """Why an attempt failed, when it did (docs/api.md)."""

    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    BLOCKED_ADDRESS = "blocked_address"
    REDIRECT = "redirect"
    HTTP_STATUS = "http_status"
    PROXY_ERROR = "proxy_error"  # the egress proxy could not be reached: not the receiver's fault


ALL_ACCOUNTS = "*"


@dataclass(frozen=True, slots=True)
class Event:
    """One stored event, immutable once created: an order event, or an operational event
    (docs/events.md), which has no location, channel or sequence and whose `order_id`
    is None except for `delivery.failed` (the failed delivery's order).

    `status` is what the webhook filters look at: the order status for `order.new` and
    `order.status_update`, the courier status for `order.courier_update` (None when absent).
    """

    id: str
    type: AnyEventType
    order_id: str | None
    account: str
    location: str | None
    channel_link: str | None
    channel: int | None
    sequence: int | None
    created_at: datetime
    data: Mapping[str, Any]
    status: int | None
    test: bool = False


@dataclass(frozen=True, slots=True)
class SigningSecret:
    """One secret of a webhook; `expires_at` is set on an old secret during a rotation grace."""

    secret: str
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ClientTls:
    """A webhook's validated client certificate settings, in canonical PEM.

    `client_certificate` is the leaf first, then any intermediates; `client_key` is
    unencrypted PKCS#8 and never shown in a repr.
    """

    client_certificate: str
    client_key: str = field(repr=False)
    ca_certificate: str | None = None

    @property
    def fingerprint(self) -> str:
        """SHA-256 over all three values: changes whenever any of them does."""
        digest = hashlib.sha256()
        for part in (self.client_certificate, self.client_key, self.ca_certificate or ""):
            digest.update(part.encode())
            digest.update(b"\x00")
        return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Webhook:
    """One subscription (docs/api.md, webhooks). `secrets` is newest first."""

    id: str
    url: str
    accounts: tuple[str, ...]
    event_types: tuple[AnyEventType, ...]
    secrets: tuple[SigningSecret, ...]
    created_at: datetime
    updated_at: datetime
    description: str = ""
    locations: tuple[str, ...] = ()
    channel_links: tuple[str, ...] = ()
    channels: tuple[int, ...] = ()
    new_order_trigger: int | None = None
    status_filter: tuple[int, ...] = ()
    courier_status_filter: tuple[int, ...] = ()
    payload_format: PayloadFormat = PayloadFormat.ENVELOPE
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: int = 15
    retry_schedule: tuple[int, ...] | None = None
    max_concurrency: int = 8
    rate_limit_per_second: float | None = None
    ordering: Ordering = Ordering.PER_ORDER
    state: WebhookState = WebhookState.ACTIVE
    disabled_reason: DisabledReason | None = None
    disabled_at: datetime | None = None
    # None: one event per request; else several per request (docs/events.md, "Batches").
    batch: BatchSettings | None = None
    personal_data: PersonalData = PersonalData.INCLUDE
    fields: tuple[str, ...] | None = None  # `None` keeps all of an event's `data`
    tls: ClientTls | None = None

    def valid_secrets(self, now: datetime) -> tuple[str, ...]:
        """The secrets that sign at `now`, newest first."""
        return tuple(s.secret for s in self.secrets if s.expires_at is None or s.expires_at > now)


@dataclass(frozen=True, slots=True)
class OrderState:
    """What the store keeps of one order between ingests.

    `max_flow_status` is the highest normal-flow status (below 100) the order has
    reached, or -1; `newOrderTrigger` fires the first time it crosses a trigger.
    `body_hash` is the repeat key of the last order document accepted (the SHA-256 of
    its compact JSON encoding; of the body's bytes for an order that earlier versions
    stored from `POST /v1/orders`).
    """

    order_id: str
    account: str
    location: str
    channel_link: str
    channel: int
    status: int
    document: Mapping[str, Any]
    body_hash: str
    courier: Mapping[str, Any] | None
    next_sequence: int
    max_flow_status: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery the domain decided to create: one event to one webhook."""

    id: str
    webhook_id: str
    event: Event
    replay: bool = False


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event to one webhook, as stored."""

    id: str
    webhook_id: str
    event_id: str
    event_type: AnyEventType
    order_id: str | None  # None for an operational event, outside every per-order queue
    account: str
    sequence: int | None
    state: DeliveryState
    replay: bool
    test: bool
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    attempt_count: int
    # Attempts counted against the retry schedule; `recover` sets it back to 0 so the
    # delivery gets the whole schedule again while `attempt_count` keeps numbering.
    schedule_position: int = 0
    # The batch it rides in (`bat_…`), kept while the batch is retried; None alone.
    batch_id: str | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP attempt of a delivery."""

    delivery_id: str
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    response_body: str
    error: AttemptError | None
    # What shaped the body it sent (`envelope.body_settings`); None on attempts made
    # before orderhooks recorded it.
    body_settings: str | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key; only the hash of its secret part is stored."""

    id: str
    role: Role
    accounts: tuple[str, ...]
    name: str
    key_hash: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Agreement:
    """An account's signed agreement to pay for delivered events (docs/guarantees.md, agreements and
    usage)."""

    account: str
    signed_by: str
    signed_at: datetime
    currency: str
    per_thousand: Mapping[EventType, int]


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Units delivered for one account, month (`YYYY-MM`) and event type."""

    account: str
    month: str
    event_type: EventType
    delivered: int
    replayed: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what to which object, and when."""

    id: str
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which accounts the caller may see: None means all (admin)."""

    accounts: frozenset[str] | None = None

    def allows(self, account: str) -> bool:
        """Whether the caller may see objects of `account`."""
        return self.accounts is None or account in self.accounts

    def allows_all(self, accounts: Sequence[str]) -> bool:
        """Whether the caller may see an object installed on all of `accounts`."""
        if self.accounts is None:
            return True
        return bool(accounts) and all(a in self.accounts for a in accounts)
