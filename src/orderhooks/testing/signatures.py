"""Checking a received request's signatures as a receiver would (docs/events.md, signatures).

The Standard Webhooks header is checked with the `standardwebhooks` package itself, an
implementation independent of orderhooks; the hex header is recomputed here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from standardwebhooks.webhooks import Webhook as StandardWebhook

from orderhooks.testing.recording import ReceivedRequest

HEX_SIGNATURE_HEADER = "x-server-authorization-hmac-sha256"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret: the base64-decoded part after the prefix."""
    return base64.b64decode(secret.removeprefix("whsec_"))


def hex_signature(secret: str, body: bytes) -> str:
    """The expected `x-server-authorization-hmac-sha256` value for `body`."""
    return hmac.new(secret_key(secret), body, hashlib.sha256).hexdigest()


def signature_problem(
    request: ReceivedRequest, secret: str, hex_secret: str | None = None
) -> str | None:
    """Why `request` fails verification with `secret`, or None when it passes.

    Checks the Standard Webhooks signature with the `standardwebhooks` package, and the
    hex header against `hex_secret` (default: `secret`).
    """
    try:
        StandardWebhook(secret).verify(request.body, dict(request.headers))
    except Exception as exc:  # the package raises several unrelated exception types
        return f"standardwebhooks: {exc}"
    expected = hex_signature(hex_secret or secret, request.body)
    got = request.headers.get(HEX_SIGNATURE_HEADER)
    if got is None or not hmac.compare_digest(expected, got):
        return f"{HEX_SIGNATURE_HEADER}: expected {expected}, got {got}"
    return None
