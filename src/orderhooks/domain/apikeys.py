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
