"""Signatures (PRODUCT 4.1): Standard Webhooks `webhook-signature` and the hex HMAC header."""

from __future__ import annotations

from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def generate_secret() -> str:
    """`whsec_` + standard base64 (with padding) of 32 random bytes."""
    raise NotImplementedError


def is_valid_secret(secret: str) -> bool:
    """Whether `secret` is `whsec_` + base64 of 24-64 bytes."""
    raise NotImplementedError


def signature_headers(
    secrets: Sequence[str], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp`, `webhook-signature` (one `v1,…` per secret,
    space-separated, newest first) and `x-server-authorization-hmac-sha256` (hex, newest
    secret)."""
    raise NotImplementedError


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance_seconds: int = 300) -> bool:
    """Whether a request carries a valid signature for `secret` (both headers checked)."""
    raise NotImplementedError
