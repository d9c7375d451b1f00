"""The bytes that leave the system: the envelope (docs/events.md, the envelope) and raw bodies."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from orderhooks.domain.model import Event, PayloadFormat, PersonalData, Webhook
from orderhooks.domain.shaping import shape_event, webhook_shaping


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds: `2026-11-28T12:00:00.123456Z`."""
    # A naive datetime is taken as UTC: every time in orderhooks is UTC.
    if moment.tzinfo is not None and moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # isoformat pads the year to 4 digits and, with a timespec, always writes the
    # microseconds; a third of strftime's cost (this runs for every envelope sent).
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def envelope(event: Event) -> dict[str, Any]:
    """The envelope of an event as a JSON-ready dict."""
    return {
        "id": event.id,
        "type": str(event.type),
        "timestamp": format_timestamp(event.created_at),
        "account": event.account,
        "location": event.location,
        "orderId": event.order_id,
        "sequence": event.sequence,
        "test": event.test,
        "data": event.data,
    }


def _as_dict(value: object) -> dict[str, Any]:
    # orjson encodes dicts only; event data may be any read-only Mapping.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode_json(value: Any) -> bytes:
    """orjson bytes of a JSON-ready value, Mappings included."""
    return orjson.dumps(value, default=_as_dict)


def encode_body(event: Event, payload_format: PayloadFormat) -> bytes:
    """The request body for a webhook: the envelope, or `data` alone for `raw` (orjson)."""
    if payload_format == PayloadFormat.RAW:
        return encode_json(event.data)
    return encode_json(envelope(event))


def webhook_body(event: Event, webhook: Webhook) -> bytes:
    """The body `webhook` receives for `event`: `data` shaped by the webhook's current
    `fields` and `personalData` (docs/events.md, "Payload shaping"), in its payload format.
    The stored event is not changed."""
    return encode_body(shape_event(event, webhook_shaping(webhook)), webhook.payload_format)


DEFAULT_BODY_SETTINGS = ""  # how an attempt records the defaults below
_DEFAULT_SHAPE: tuple[PayloadFormat, PersonalData, tuple[str, ...] | None] = (
    PayloadFormat.ENVELOPE,
    PersonalData.INCLUDE,
    None,  # every field
)


def body_settings(webhook: Webhook) -> str:
    """The settings that shape `webhook`'s bodies (payload format, `personalData`,
    `fields`) as JSON text, which each attempt records ("" for the defaults, as most
    webhooks have them): with the stored event they give again the exact bytes that
    attempt sent (`with_body_settings`)."""
    return _body_settings(webhook.payload_format, webhook.personal_data, webhook.fields)


@functools.lru_cache(maxsize=4096)
def _body_settings(
    payload_format: PayloadFormat, personal_data: PersonalData, fields: tuple[str, ...] | None
) -> str:
    if (payload_format, personal_data, fields) == _DEFAULT_SHAPE:
        return DEFAULT_BODY_SETTINGS
    settings = {
        "payloadFormat": payload_format.value,
        "personalData": personal_data.value,
        "fields": None if fields is None else list(fields),
    }
    return orjson.dumps(settings).decode()


def with_body_settings(webhook: Webhook, recorded: str | None) -> Webhook:
    """`webhook` shaping its bodies as an attempt that recorded `recorded` did (as it is
    now when nothing was recorded: attempts made before orderhooks recorded them)."""
    if recorded is None:
        return webhook
    payload_format, personal_data, fields = _DEFAULT_SHAPE
    if recorded != DEFAULT_BODY_SETTINGS:
        settings = orjson.loads(recorded)
        payload_format = PayloadFormat(settings["payloadFormat"])
        personal_data = PersonalData(settings["personalData"])
        fields = None if settings["fields"] is None else tuple(settings["fields"])
    return dataclasses.replace(
        webhook, payload_format=payload_format, personal_data=personal_data, fields=fields
    )
