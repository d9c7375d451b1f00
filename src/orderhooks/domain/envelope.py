"""The bytes that leave the system: the envelope (PRODUCT 4.2) and raw bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orderhooks.domain.model import Event, PayloadFormat


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds: `2026-11-28T12:00:00.123456Z`."""
    raise NotImplementedError


def envelope(event: Event) -> dict[str, Any]:
    """The envelope of an event as a JSON-ready dict."""
    raise NotImplementedError


def encode_body(event: Event, payload_format: PayloadFormat) -> bytes:
    """The request body for a webhook: the envelope, or `data` alone for `raw` (orjson)."""
    raise NotImplementedError
