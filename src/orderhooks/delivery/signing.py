"""Signatures (docs/events.md, signatures): Standard Webhooks `webhook-signature` and the hex HMAC
header.

The key of a secret `whsec_<base64>` is the base64-decoded part after the prefix. The
`webhook-signature` header signs `{webhook-id}.{webhook-timestamp}.{body}` (the Standard
Webhooks scheme, so the `standardwebhooks` package verifies it as is); the
`x-server-authorization-hmac-sha256` header signs the raw body alone, in hex, for
receivers built for Deliverect.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import secrets as _random
import time
from collections.abc import Mapping, Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the scheme's prefix, not a secret
SECRET_BYTES = 32
SECRET_MIN_BYTES = 24
SECRET_MAX_BYTES = 64
SIGNATURE_VERSION = "v1"
# Every delivery signs with its webhook's secret: decode each one once (a few hundred
# webhooks' keys, a few kB).
KEY_CACHE_SIZE = 1024
DEFAULT_TOLERANCE_SECONDS = 300

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"
HEADER_HEX_HMAC = "x-server-authorization-hmac-sha256"


def generate_secret() -> str:
    """`whsec_` + standard base64 (with padding) of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(SECRET_BYTES)).decode("ascii")


@functools.lru_cache(maxsize=KEY_CACHE_SIZE)
def _key(secret: str) -> bytes:
    """The HMAC key of a secret; ValueError when it is not `whsec_` + base64."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a signing secret starts with whsec_")
    try:
        return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError("a signing secret is whsec_ and standard base64") from exc


def is_valid_secret(secret: str) -> bool:
    """Whether `secret` is `whsec_` + base64 of 24-64 bytes."""
    try:
        key = _key(secret)
    except ValueError:
        return False
    return SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of `{message_id}.{timestamp}.{body}`."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.digest(_key(secret), signed, "sha256")
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def hex_body_hmac(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the raw body (the `x-server-authorization-hmac-sha256` value)."""
    return hmac.digest(_key(secret), body, "sha256").hex()


def signature_headers(
    secrets: Sequence[str], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp`, `webhook-signature` (one `v1,…` per secret,
    space-separated, newest first) and `x-server-authorization-hmac-sha256` (hex, newest
    secret)."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    return {
        HEADER_ID: message_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: " ".join(sign(s, message_id, timestamp, body) for s in secrets),
        HEADER_HEX_HMAC: hex_body_hmac(secrets[0], body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """Whether a request carries a valid signature for `secret` (both headers checked).

    `now` (Unix seconds) defaults to the system clock; the timestamp must lie within
    `tolerance_seconds` of it either way, against replays of old requests.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = lowered.get(HEADER_ID)
    raw_timestamp = lowered.get(HEADER_TIMESTAMP, "")
    if not message_id or not (raw_timestamp.isascii() and raw_timestamp.isdigit()):
        return False
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    try:
        expected = sign(secret, message_id, timestamp, body)
        expected_hex = hex_body_hmac(secret, body)
    except ValueError:
        return False
    offered = lowered.get(HEADER_SIGNATURE, "").split()
    signature_ok = any(hmac.compare_digest(expected, candidate) for candidate in offered)
    hex_ok = hmac.compare_digest(expected_hex, lowered.get(HEADER_HEX_HMAC, "").lower())
    return signature_ok and hex_ok
