"""API keys: generated with 256 bits of randomness, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "ohk_"
KEY_RANDOM_BYTES = 32


def generate_api_key() -> str:
    """A new plaintext key, shown once: `ohk_` + 43 URL-safe characters."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def hash_api_key(plaintext: str) -> str:
    """The stored form of a key. Keys are high-entropy random strings, so one SHA-256 is
    enough; a slow hash would only slow every request down."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def presented_key(configured: str) -> str:
    """A configured key (`ORDERHOOKS_ADMIN_KEY`) as a client can present it: HTTP drops the
    whitespace around a header value, so a key kept with a newline (a secret file's) or
    spaces around it is the key without them."""
    return configured.strip()


def header_key(credentials: str) -> str:
    """The key of an `Authorization` header as the client wrote it. Header bytes arrive
    read as Latin-1; clients send text as UTF-8, so bytes that read as UTF-8 are taken
    so (a key beyond ASCII), others as they came."""
    if credentials.isascii():
        return credentials
    try:
        return credentials.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return credentials
