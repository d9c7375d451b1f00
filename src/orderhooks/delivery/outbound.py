"""The request of one delivery attempt (docs/events.md, signatures): body, signature and headers."""

from __future__ import annotations

import functools
import importlib.metadata
import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from orderhooks.delivery.claims import Claim
from orderhooks.delivery.signing import signature_headers
from orderhooks.delivery.transport import OutboundRequest
from orderhooks.domain.envelope import webhook_body
from orderhooks.domain.model import Event, PayloadFormat, PersonalData, Webhook

CONTENT_TYPE = "application/json"
HEADER_EVENT_TYPE = "orderhooks-event-type"
HEADER_DELIVERY_ID = "orderhooks-delivery-id"
HEADER_ATTEMPT = "orderhooks-attempt"
HEADER_BATCH_SIZE = "orderhooks-batch-size"
BATCH_EVENT_TYPE = "batch"  # the `orderhooks-event-type` of a batch request
HEADER_TRACEPARENT = "traceparent"  # W3C Trace Context, sent only with trace propagation on

# Headers a webhook's static `headers` may never set: the ones orderhooks signs or
# describes the request with, and the ones that frame the HTTP message itself.
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-server-authorization-hmac-sha256",
        HEADER_EVENT_TYPE,
        HEADER_DELIVERY_ID,
        HEADER_ATTEMPT,
        HEADER_BATCH_SIZE,
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "host",
        # Hop-by-hop and negotiation headers: `Expect: 100-continue` makes the client
        # wait for an interim answer that many receivers never send (the attempt then
        # times out), `Upgrade` asks to leave HTTP/1.1, `Proxy-Authorization` belongs to
        # the egress proxy's URL.
        "expect",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    }
)
RESERVED_HEADER_PREFIX = "orderhooks-"
# A header name is an HTTP token (RFC 9110). `fullmatch`, never `^…$`: `$` also matches
# before a final line break, and a name ending in one got past the API's check.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}")


def is_header_name(name: str) -> bool:
    """Whether `name` is a valid HTTP header name (of at most 128 characters)."""
    return _HEADER_NAME.fullmatch(name) is not None


def is_reserved_header(name: str) -> bool:
    """Whether orderhooks sets the header `name` itself, so a static header may not."""
    lowered = name.lower()
    return lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_HEADER_PREFIX)


@functools.cache
def user_agent() -> str:
    """`orderhooks/<version>`, the version `--version` prints."""
    try:
        version = importlib.metadata.version("orderhooks")
    except importlib.metadata.PackageNotFoundError:
        version = "0+unknown"
    return f"orderhooks/{version}"


_BodyKey = tuple[str, PayloadFormat, tuple[str, ...] | None, PersonalData]


class BodyCache:
    """Encodes each event once per (payload format, shaping), for a batch of claims that
    share events: webhooks with the same settings share the bytes."""

    def __init__(self) -> None:
        self._bodies: dict[_BodyKey, bytes] = {}

    def body(self, event: Event, webhook: Webhook) -> bytes:
        """The request body `webhook` receives for `event` (shaped, in its format)."""
        key = (event.id, webhook.payload_format, webhook.fields, webhook.personal_data)
        body = self._bodies.get(key)
        if body is None:
            body = self._bodies[key] = webhook_body(event, webhook)
        return body


def build_request(
    claim: Claim, body: bytes, now: datetime, *, trace_parent: str | None = None
) -> OutboundRequest:
    """The signed request of attempt `claim.attempt`, timestamped `now`; with
    `trace_parent` (ORDERHOOKS_TRACE_PROPAGATION) its `traceparent` header."""
    described = {
        HEADER_EVENT_TYPE: str(claim.event.type),
        HEADER_DELIVERY_ID: claim.delivery.id,
        HEADER_ATTEMPT: str(claim.attempt),
    }
    return _signed_request(
        claim.webhook, claim.event.id, body, now, described, trace_parent, claim.lease_expires_at
    )


def build_batch_request(
    claims: Sequence[Claim], body: bytes, now: datetime, *, trace_parent: str | None = None
) -> OutboundRequest:
    """The signed request of one batch (docs/events.md, "Batches"): `webhook-id` is the
    batch id, the delivery ids go comma-separated, the signature covers the whole body;
    with `trace_parent` (ORDERHOOKS_TRACE_PROPAGATION) its `traceparent` header."""
    first = claims[0]
    described = {
        HEADER_EVENT_TYPE: BATCH_EVENT_TYPE,
        HEADER_DELIVERY_ID: ",".join(claim.delivery.id for claim in claims),
        HEADER_BATCH_SIZE: str(len(claims)),
        # Its events are retried together, so their attempt numbers agree (the highest
        # stands for all when one joined after attempts of its own).
        HEADER_ATTEMPT: str(max(claim.attempt for claim in claims)),
    }
    message_id = first.batch_id or first.delivery.id
    lease = min(claim.lease_expires_at for claim in claims)
    return _signed_request(first.webhook, message_id, body, now, described, trace_parent, lease)


def _signed_request(
    webhook: Webhook,
    message_id: str,
    body: bytes,
    now: datetime,
    described: Mapping[str, str],
    trace_parent: str | None,
    lease_expires_at: datetime,
) -> OutboundRequest:
    """One POST of `body` to `webhook`: its static headers (never a reserved one), the
    content type, the user agent, the signatures over `message_id`, the headers that
    describe the request, and the traceparent when given; it can be signed again at
    another time (`resign`) for the same lease."""
    # A reserved static header may still be stored from before its name was reserved.
    headers = {
        name: value for name, value in webhook.headers.items() if not is_reserved_header(name)
    }
    headers["content-type"] = CONTENT_TYPE
    headers["user-agent"] = user_agent()
    headers.update(
        signature_headers(webhook.valid_secrets(now), message_id, int(now.timestamp()), body)
    )
    headers.update(described)
    _set_traceparent(headers, trace_parent)

    def resign(at: datetime) -> OutboundRequest:
        return _signed_request(
            webhook, message_id, body, at, described, trace_parent, lease_expires_at
        )

    return OutboundRequest(
        url=webhook.url,
        body=body,
        headers=headers,
        timeout_seconds=float(webhook.timeout_seconds),
        client_tls=webhook.tls,
        webhook_id=webhook.id,
        resign=resign,
        lease_expires_at=lease_expires_at,
    )


def _set_traceparent(headers: dict[str, str], trace_parent: str | None) -> None:
    """Add the attempt's traceparent, replacing a static header of that name (any
    spelling): one traceparent only."""
    if trace_parent is None:
        return
    for name in [n for n in headers if n.lower() == HEADER_TRACEPARENT]:
        del headers[name]
    headers[HEADER_TRACEPARENT] = trace_parent


__all__ = [
    "BATCH_EVENT_TYPE",
    "HEADER_BATCH_SIZE",
    "RESERVED_HEADERS",
    "BodyCache",
    "build_batch_request",
    "build_request",
    "user_agent",
]
