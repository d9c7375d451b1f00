"""The answers of the API as pydantic models, for the OpenAPI document only.

Handlers build their JSON with `answer_json`; these models describe it (docs/api.md), and a
test checks real answers against the published schemas. Every field listed is always
present; a nullable one is `null` when unset.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orderhooks.domain.model import (
    AttemptError,
    DeliveryState,
    DisabledReason,
    EventType,
    OperationalEventType,
    Ordering,
    PayloadFormat,
    PersonalData,
    Role,
    WebhookState,
)

Timestamp = Field(json_schema_extra={"format": "date-time"})


class Shape(BaseModel):
    """An answer: the names are the JSON names."""

    model_config = ConfigDict(extra="allow")


class ErrorInfo(Shape):
    """What went wrong; `details` name fields (and batch indexes)."""

    code: str
    message: str
    details: list[dict[str, Any]]


class ErrorBody(Shape):
    """Every error answer."""

    error: ErrorInfo


class Health(Shape):
    """`/healthz`, `/readyz`."""

    status: str


class BatchOut(Shape):
    """A webhook's `batch`: several events per request."""

    maxEvents: int
    maxWaitMs: int


class ClientTlsOut(Shape):
    """A webhook's client certificate; the key is never shown."""

    clientCertificate: str
    clientKey: Literal["<set>"]
    caCertificate: str | None


class WebhookOut(Shape):
    """A webhook (docs/api.md, webhooks); never its secret."""

    id: str
    url: str
    description: str
    accounts: list[str]
    locations: list[str]
    channelLinks: list[str]
    channels: list[int]
    eventTypes: list[EventType | OperationalEventType]
    newOrderTrigger: int | None
    statusFilter: list[int]
    courierStatusFilter: list[int]
    payloadFormat: PayloadFormat
    headers: dict[str, str]
    timeoutSeconds: int
    retrySchedule: list[int]
    maxConcurrency: int
    rateLimitPerSecond: float | None
    ordering: Ordering
    state: WebhookState
    disabledReason: DisabledReason | None
    disabledAt: str | None = Timestamp
    createdAt: str = Timestamp
    updatedAt: str = Timestamp
    batch: BatchOut | None
    personalData: PersonalData
    fields: list[str] | None
    tls: ClientTlsOut | None


class WebhookCreated(WebhookOut):
    """The answer to create: the webhook and its secret, shown this once."""

    secret: str


class WebhookPage(Shape):
    """A page of webhooks."""

    data: list[WebhookOut]
    nextCursor: str | None


class SecretOut(Shape):
    """The webhook's current (newest) signing secret."""

    secret: str


class EventOut(Shape):
    """An event: the envelope of docs/events.md#the-envelope. An operational event has no location
    and no sequence, and an order only for `delivery.failed`."""

    id: str
    type: EventType | OperationalEventType
    timestamp: str = Timestamp
    account: str
    location: str | None
    orderId: str | None
    sequence: int | None
    test: bool
    data: dict[str, Any]


class EventPage(Shape):
    """A page of events."""

    data: list[EventOut]
    nextCursor: str | None


class DeliveryOut(Shape):
    """A delivery: one event to one webhook."""

    id: str
    webhookId: str
    eventId: str
    eventType: EventType | OperationalEventType
    orderId: str | None
    account: str
    sequence: int | None = Field(description="the event's sequence; null for an operational event")
    state: DeliveryState
    replay: bool
    test: bool
    createdAt: str = Timestamp
    nextAttemptAt: str | None = Timestamp
    deliveredAt: str | None = Timestamp
    attemptCount: int


class AttemptOut(Shape):
    """One HTTP attempt of a delivery."""

    attempt: int
    startedAt: str = Timestamp
    durationMs: int
    statusCode: int | None
    responseBody: str
    error: AttemptError | None


class DeliveryDetail(DeliveryOut):
    """One delivery with its event and attempts."""

    event: EventOut
    attempts: list[AttemptOut]


class DeliveryPage(Shape):
    """A page of deliveries, newest first."""

    data: list[DeliveryOut]
    nextCursor: str | None


class OrderEventOut(Shape):
    """An event of an order, as listed with the order."""

    id: str
    type: EventType
    sequence: int
    timestamp: str = Timestamp


class StatusHistoryEntry(Shape):
    """One status the order went through."""

    status: int | None
    timeStamp: str | None


class OrderOut(Shape):
    """`GET /v1/orders/{id}`."""

    orderId: str
    account: str
    location: str
    channelLink: str
    channel: int
    status: int
    document: dict[str, Any]
    statusHistory: list[StatusHistoryEntry]
    courier: dict[str, Any] | None
    events: list[OrderEventOut]
    createdAt: str = Timestamp
    updatedAt: str = Timestamp


class IngestAccepted(Shape):
    """`POST /v1/orders`: the order and the events created (none for a repeat)."""

    orderId: str
    eventIds: list[str]


class EventIds(Shape):
    """The events created, in order (none for a repeat)."""

    eventIds: list[str]


class DeliveryIdOut(Shape):
    """The delivery of a test event."""

    deliveryId: str


class RequeuedOut(Shape):
    """How many failed deliveries went back to pending."""

    requeued: int


class QueuedOut(Shape):
    """How many replay deliveries were created."""

    queued: int


class LatencyOut(Shape):
    """Attempt latency percentiles in milliseconds (null without attempts)."""

    p50: float | None
    p95: float | None
    p99: float | None


class StatsOut(Shape):
    """A webhook's delivery statistics."""

    webhookId: str
    counts: dict[str, int]
    successRate: float | None
    latencyMs: LatencyOut
    lastSuccessAt: str | None = Timestamp
    lastFailureAt: str | None = Timestamp


class PricingOut(Shape):
    """Currency and price per 1,000 delivered events of each type (minor units)."""

    currency: str
    perThousand: dict[str, int]


class AgreementOut(Shape):
    """An account's agreement."""

    account: str
    signedBy: str
    signedAt: str = Timestamp
    pricing: PricingOut


class UsageRowOut(Shape):
    """Units delivered and replayed for one account, month and type; `charge` prices the
    delivered units (replays are counted apart and not charged)."""

    account: str
    month: str
    eventType: EventType
    delivered: int
    replayed: int
    charge: int
    currency: str | None


class UsageOut(Shape):
    """Usage rows."""

    data: list[UsageRowOut]


class KeyOut(Shape):
    """An API key as listed: never the key itself."""

    id: str
    role: Role
    accounts: list[str]
    name: str
    createdAt: str = Timestamp
    revokedAt: str | None = Timestamp


class KeyCreated(KeyOut):
    """A new key and its plaintext, shown this once."""

    key: str


class KeyPage(Shape):
    """A page of keys."""

    data: list[KeyOut]
    nextCursor: str | None


class AuditOut(Shape):
    """Who did what to which object, and when."""

    id: str
    at: str = Timestamp
    actor: str
    action: str
    targetType: str
    targetId: str
    details: dict[str, Any]


class AuditPage(Shape):
    """A page of the audit trail, newest first."""

    data: list[AuditOut]
    nextCursor: str | None


class SourceOut(Shape):
    """A broker source: its URL without the password, its state and counters."""

    id: str
    url: str
    state: Literal["connected", "reconnecting"]
    consumed: int
    deadLettered: int
    lag: int | None


class SourcePage(Shape):
    """The broker sources of `GET /v1/sources`."""

    data: list[SourceOut]


class PortalLinkCreated(Shape):
    """A one-time link into the dashboard; its token is in this answer only."""

    id: str = Field(description="`plk_…`: names the link in the audit trail and to revoke it")
    url: str
    expiresAt: str = Timestamp


class ErasureOut(Shape):
    """`POST /v1/orders/{orderId}/erase`: the order, and how many of its events changed."""

    orderId: str
    events: int
