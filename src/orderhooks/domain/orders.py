"""Validation of the ingest bodies (PRODUCT 2.1, 2.3): strict types, unknown fields kept."""

from __future__ import annotations

from typing import Any


def validate_order(body: Any) -> dict[str, Any]:
    """Check a new-order document; return it unchanged (unknown fields kept).

    Raises ValidationError naming each bad field with a dotted path (`items[0].price`).
    """
    raise NotImplementedError


def validate_status_update(body: Any) -> dict[str, Any]:
    """Check a status update body (needs `status`); return it unchanged."""
    raise NotImplementedError


def validate_courier_update(body: Any) -> dict[str, Any]:
    """Check a courier update body (needs `courier` or `status`); return it unchanged."""
    raise NotImplementedError
