"""Identifiers: a prefix and 26 characters that sort by creation time (ULID-like)."""

from __future__ import annotations

from collections.abc import Callable

IdFactory = Callable[[str], str]


def new_id(prefix: str) -> str:
    """A new id such as `evt_01JD…`: 48 bits of milliseconds, 80 random bits, Crockford base32."""
    raise NotImplementedError
