"""Request bodies of the admin API (docs/api.md, webhooks; docs/guarantees.md, agreements and usage)
as strict pydantic models.

Strict: nothing is coerced (an integer field refuses strings, booleans and fractions) and
unknown fields are refused. Bodies are validated by hand inside the handlers, after the
authentication, role and scope checks, with `validate_body`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    field_validator,
)
from pydantic.alias_generators import to_camel

from orderhooks.config import MAX_DELIVERY_TIMEOUT_SECONDS
from orderhooks.config.kinds import MAX_RETRY_DELAY_SECONDS
from orderhooks.delivery.outbound import is_header_name, is_reserved_header
from orderhooks.domain import portal, shaping
from orderhooks.domain.batches import MAX_BATCH_EVENTS, MAX_BATCH_WAIT_MS, MIN_BATCH_EVENTS
from orderhooks.domain.model import (
    ALL_ACCOUNTS,
    AnyEventType,
    EventType,
    OperationalEventType,
    Ordering,
    PayloadFormat,
    PersonalData,
    Role,
    any_event_type,
)
from orderhooks.domain.orders import MAX_CHANNEL
from orderhooks.exceptions import FieldProblem, ValidationError

MAX_CONCURRENCY = 64
MAX_RETRY_ENTRIES = 20
MAX_GRACE_PERIOD_SECONDS = 30 * 86_400
DEFAULT_GRACE_PERIOD_SECONDS = 86_400
MAX_STATUS = 999
MAX_TRIGGER_STATUS = 99  # a trigger is a normal-flow status (below 100)
MAX_HEADERS = 32
MAX_LIST_ITEMS = 1000
MAX_PRICE_PER_THOUSAND = 10**12

# Control characters (C0 but the tab, DEL, C1) have no place in a header value.
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 timestamp with an offset, as aware UTC; ValueError otherwise."""
    match = _RFC3339.match(value)
    if match is None:
        raise ValueError("must be an RFC 3339 timestamp such as 2026-11-28T12:00:00Z")
    date, time, fraction, offset = match.groups()
    fraction = (fraction or "")[:7]  # Python keeps microseconds: 6 digits after the dot
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(f"{date}T{time}{fraction}{offset}").astimezone(UTC)
    except (ValueError, OverflowError):
        # OverflowError: an offset that moves year 1 or 9999 out of range in UTC.
        raise ValueError("must be an RFC 3339 timestamp such as 2026-11-28T12:00:00Z") from None


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp string")
    return parse_rfc3339(value)


Timestamp = Annotated[
    datetime, BeforeValidator(_timestamp), Field(json_schema_extra={"format": "date-time"})
]
Name = Annotated[str, Field(min_length=1, max_length=128)]
Status = Annotated[int, Field(ge=0, le=MAX_STATUS)]
EventTypeField = Annotated[EventType, Field(strict=False)]
SUBSCRIBABLE = [t.value for t in EventType] + [t.value for t in OperationalEventType]
SUBSCRIBABLE_TYPES = len(SUBSCRIBABLE)


def _subscribed_type(value: object) -> AnyEventType:
    if isinstance(value, str) and value in SUBSCRIBABLE:
        return any_event_type(value)
    raise ValueError("must be one of " + ", ".join(SUBSCRIBABLE))


# What a webhook may list: the order types and the operational ones (docs/events.md).
SubscribedType = Annotated[
    AnyEventType,
    PlainValidator(_subscribed_type),
    WithJsonSchema({"type": "string", "enum": SUBSCRIBABLE}),
]


class StrictBody(BaseModel):
    """A request body: camelCase names, strict types, unknown fields refused."""

    model_config = ConfigDict(
        strict=True, extra="forbid", alias_generator=to_camel, populate_by_name=False
    )


def field_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """A pydantic location as a dotted path: `("items", 0, "price")` -> `items[0].price`."""
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def problems_of(
    exc: pydantic.ValidationError, prefix: str = "", index: int | None = None
) -> list[FieldProblem]:
    """The FieldProblems of a pydantic error (the input values are left out: they may be
    secrets)."""
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        message = str(err["msg"]).removeprefix("Value error, ")
        problems.append(FieldProblem(field_path(err["loc"], prefix), message, index))
    return problems


def validate_body(model: type[M], value: Any) -> M:
    """`value` validated as `model`; ValidationError (422) naming each bad field."""
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        raise ValidationError(problems_of(exc)) from None


# ---------------------------------------------------------------- webhooks


def _check_headers(headers: dict[str, str]) -> dict[str, str]:
    if len(headers) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    seen: set[str] = set()
    for name, value in headers.items():
        lowered = name.lower()
        # The names orderhooks sets itself on every delivery (the one list, in
        # delivery/outbound.py) and any `orderhooks-` header may not be replaced.
        if not is_header_name(name):
            raise ValueError(f"{name!r} is not a valid header name")
        if is_reserved_header(name):
            raise ValueError(f"{name!r} is set by orderhooks and may not be overridden")
        if lowered in seen:
            raise ValueError(f"{name!r} is given twice")
        seen.add(lowered)
        if len(value) > 4096 or _HEADER_VALUE_FORBIDDEN.search(value):
            raise ValueError(f"the value of {name!r} is not a valid header value")
    return headers


class BatchBody(StrictBody):
    """A webhook's `batch` (docs/api.md): several events per request."""

    max_events: int = Field(ge=MIN_BATCH_EVENTS, le=MAX_BATCH_EVENTS)
    max_wait_ms: int = Field(ge=0, le=MAX_BATCH_WAIT_MS)


def _shaping_value(parse: Callable[[Any], T], value: Any) -> T:
    """`value` checked by a parse function of `domain.shaping`, its problems as one
    ValueError (pydantic names the field)."""
    try:
        return parse(value)
    except ValidationError as exc:
        raise ValueError("; ".join(p.message for p in exc.problems)) from None


def _personal_data(value: Any) -> PersonalData:
    return _shaping_value(shaping.parse_personal_data, value)


def _field_paths(value: Any) -> list[str] | None:
    paths = _shaping_value(shaping.parse_fields, value)
    return None if paths is None else list(paths)


FieldPath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=shaping.MAX_FIELD_PATH_CHARS,
        pattern=f"^{shaping.FIELD_PATH_PATTERN.pattern}$",
    ),
]


MAX_PEM_CHARS = 65_536


class ClientTlsIn(StrictBody):
    """A webhook's `tls`: a client certificate (PEM, leaf first, then intermediates),
    its private key (PEM; write-only: `"<set>"` keeps the stored one) and optionally the
    CA certificates that replace the system roots for this webhook."""

    client_certificate: str = Field(max_length=MAX_PEM_CHARS)
    client_key: str = Field(max_length=MAX_PEM_CHARS)
    ca_certificate: str | None = Field(None, max_length=MAX_PEM_CHARS)


class WebhookPatch(StrictBody):
    """`PATCH /v1/webhooks/{id}`: any subset of the webhook's fields (docs/api.md, webhooks)."""

    url: str = Field("", min_length=1, max_length=2048)
    description: str = Field("", max_length=2000)
    accounts: list[Name] = Field(default_factory=list, min_length=1, max_length=MAX_LIST_ITEMS)
    locations: list[Name] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    channel_links: list[Name] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    channels: list[Annotated[int, Field(ge=0, le=MAX_CHANNEL)]] = Field(
        default_factory=list, max_length=MAX_LIST_ITEMS
    )
    event_types: list[SubscribedType] = Field(
        default_factory=list, min_length=1, max_length=SUBSCRIBABLE_TYPES
    )
    new_order_trigger: int | None = Field(None, ge=0, le=MAX_TRIGGER_STATUS)
    status_filter: list[Status] = Field(default_factory=list, max_length=MAX_STATUS + 1)
    courier_status_filter: list[Status] = Field(default_factory=list, max_length=MAX_STATUS + 1)
    payload_format: Annotated[PayloadFormat, Field(strict=False)] = PayloadFormat.ENVELOPE
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: int = Field(15, ge=1, le=MAX_DELIVERY_TIMEOUT_SECONDS)
    retry_schedule: list[Annotated[int, Field(ge=0, le=MAX_RETRY_DELAY_SECONDS)]] | None = Field(
        None, max_length=MAX_RETRY_ENTRIES
    )
    max_concurrency: int = Field(8, ge=1, le=MAX_CONCURRENCY)
    rate_limit_per_second: float | None = Field(None, gt=0, le=1_000_000)
    ordering: Annotated[Ordering, Field(strict=False)] = Ordering.PER_ORDER
    batch: BatchBody | None = None
    personal_data: Annotated[PersonalData, BeforeValidator(_personal_data)] = Field(
        PersonalData.INCLUDE, description="`exclude` removes the customer's personal data"
    )
    fields: Annotated[list[FieldPath] | None, BeforeValidator(_field_paths)] = Field(
        None,
        max_length=shaping.MAX_FIELD_PATHS,
        description="Paths of `data` to keep (`items[].plu`); null keeps all",
    )
    tls: ClientTlsIn | None = None

    @field_validator("accounts")
    @classmethod
    def _all_accounts_alone(cls, accounts: list[str]) -> list[str]:
        if ALL_ACCOUNTS in accounts and len(accounts) > 1:
            raise ValueError('"*" (all accounts) must be the only entry')
        return list(dict.fromkeys(accounts))

    @field_validator("event_types")
    @classmethod
    def _dedupe_types(cls, types: list[AnyEventType]) -> list[AnyEventType]:
        return list(dict.fromkeys(types))

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        return _check_headers(headers)


class WebhookCreate(WebhookPatch):
    """`POST /v1/webhooks`: `url`, `accounts` and `eventTypes` are required."""

    url: str = Field(min_length=1, max_length=2048)
    accounts: list[Name] = Field(min_length=1, max_length=MAX_LIST_ITEMS)
    event_types: list[SubscribedType] = Field(min_length=1, max_length=SUBSCRIBABLE_TYPES)


class SecretRotation(StrictBody):
    """`POST /v1/webhooks/{id}/secret/rotate`."""

    secret: str | None = Field(None, description="`whsec_` + base64 of 24-64 bytes")
    grace_period_seconds: int = Field(
        DEFAULT_GRACE_PERIOD_SECONDS, ge=0, le=MAX_GRACE_PERIOD_SECONDS
    )


class TestRequest(StrictBody):
    """`POST /v1/webhooks/{id}/test`."""

    __test__ = False  # not a pytest test class, whatever its name

    type: EventTypeField = EventType.NEW


class RecoverRequest(StrictBody):
    """`POST /v1/webhooks/{id}/recover`: failed deliveries created in the range."""

    since: Timestamp
    until: Timestamp | None = None


class ReplayRequest(StrictBody):
    """`POST /v1/webhooks/{id}/replay`: events created in the range, optionally by type."""

    since: Timestamp
    until: Timestamp | None = None
    event_types: list[EventTypeField] | None = Field(None, min_length=1, max_length=3)


# ---------------------------------------------------------------- agreements and keys


class PerThousand(StrictBody):
    """Price of 1,000 delivered events of each type, in minor units."""

    new: int = Field(alias="order.new", ge=0, le=MAX_PRICE_PER_THOUSAND)
    status_update: int = Field(alias="order.status_update", ge=0, le=MAX_PRICE_PER_THOUSAND)
    courier_update: int = Field(alias="order.courier_update", ge=0, le=MAX_PRICE_PER_THOUSAND)

    def by_type(self) -> dict[EventType, int]:
        """The prices keyed by event type."""
        return {
            EventType.NEW: self.new,
            EventType.STATUS_UPDATE: self.status_update,
            EventType.COURIER_UPDATE: self.courier_update,
        }


class Pricing(StrictBody):
    """The currency and the prices of an agreement."""

    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. EUR")
    per_thousand: PerThousand


class AgreementBody(StrictBody):
    """`PUT /v1/accounts/{account}/agreement` (docs/guarantees.md, agreements and usage;
    docs/api.md)."""

    signed_by: str = Field(min_length=1, max_length=200)
    signed_at: Timestamp
    pricing: Pricing


class KeyCreate(StrictBody):
    """`POST /v1/keys`: a partner key needs its accounts; admin and ingest keys take none."""

    role: Annotated[Role, Field(strict=False)]
    accounts: list[Name] = Field(
        default_factory=list, max_length=MAX_LIST_ITEMS, validate_default=True
    )
    name: str = Field(min_length=1, max_length=200)

    @field_validator("accounts")
    @classmethod
    def _accounts_match_role(cls, accounts: list[str], info: pydantic.ValidationInfo) -> list[str]:
        role = info.data.get("role")
        if ALL_ACCOUNTS in accounts:
            raise ValueError('"*" is not an account; an admin key sees every account')
        if role is Role.PARTNER and not accounts:
            raise ValueError("a partner key needs at least one account")
        if role in (Role.ADMIN, Role.INGEST) and accounts:
            raise ValueError(f"an {role.value} key is not scoped to accounts")
        return list(dict.fromkeys(accounts))


# ---------------------------------------------------------------- portal links


class PortalLinkCreate(StrictBody):
    """`POST /v1/portal-links`: the accounts the link shows, and how long it lives."""

    accounts: list[Name] = Field(min_length=1, max_length=portal.MAX_ACCOUNTS)
    expires_in_seconds: int = Field(
        default=portal.DEFAULT_EXPIRES_IN_SECONDS,
        ge=portal.MIN_EXPIRES_IN_SECONDS,
        le=portal.MAX_EXPIRES_IN_SECONDS,
    )

    @field_validator("accounts")
    @classmethod
    def _named_accounts(cls, accounts: list[str]) -> list[str]:
        if ALL_ACCOUNTS in accounts:
            raise ValueError('"*" is not an account; name the accounts the link shows')
        return list(dict.fromkeys(accounts))
