"""Identifiers: a prefix and 26 characters that sort by creation time (ULID-like).

The 26 characters are Crockford base32 of 128 bits: 48 bits of Unix milliseconds, then
80 random bits. Within one process ids are strictly increasing: an id made in the same
millisecond as the previous one (or after the clock stepped back) reuses that
millisecond and increments the random part, so lists can page by keyset on `id`.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

IdFactory = Callable[[str], str]

CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_BODY_LENGTH = 26
TIMESTAMP_CHARS = 10
RANDOM_BITS = 80
_RANDOM_LIMIT = 1 << RANDOM_BITS
_DECODE = {char: value for value, char in enumerate(CROCKFORD_ALPHABET)}


# Every pair of characters, by the 10 bits they encode: 13 lookups make the 26 characters.
_PAIRS = [first + second for first in CROCKFORD_ALPHABET for second in CROCKFORD_ALPHABET]
_PAIR_SHIFTS = tuple(range(10 * (ID_BODY_LENGTH // 2 - 1), -1, -10))


def _encode(value: int) -> str:
    return "".join([_PAIRS[(value >> shift) & 0x3FF] for shift in _PAIR_SHIFTS])


class IdGenerator:
    """Makes strictly increasing ids from a nanosecond clock and a source of random bits."""

    def __init__(
        self,
        clock_ns: Callable[[], int] = time.time_ns,
        random_bits: Callable[[int], int] = secrets.randbits,
    ) -> None:
        self._clock_ns = clock_ns
        self._random_bits = random_bits
        # The SQLite writer thread and the event loop both make ids; the lock keeps the
        # (millisecond, random) pair consistent between them.
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0

    def _next_parts(self) -> tuple[int, int]:
        with self._lock:
            now_ms = self._clock_ns() // 1_000_000
            if now_ms > self._last_ms:
                millis, random_part = now_ms, self._random_bits(RANDOM_BITS)
            else:
                # Same millisecond, or the clock stepped back: stay in order.
                millis, random_part = self._last_ms, self._last_random + 1
                if random_part >= _RANDOM_LIMIT:
                    # 2^80 ids in one millisecond will not happen; borrow the next one anyway.
                    millis, random_part = self._last_ms + 1, self._random_bits(RANDOM_BITS)
            self._last_ms, self._last_random = millis, random_part
        return millis, random_part

    def __call__(self, prefix: str) -> str:
        """A new id `prefix_` + 26 characters, greater than every id this generator made."""
        millis, random_part = self._next_parts()
        return f"{prefix}_{_encode((millis << RANDOM_BITS) | random_part)}"


_default_generator = IdGenerator()


def new_id(prefix: str) -> str:
    """A new id such as `evt_01JD…`: 48 bits of milliseconds, 80 random bits, Crockford base32."""
    return _default_generator(prefix)


def is_id(value: str, prefix: str) -> bool:
    """Whether `value` has the shape of an id `new_id(prefix)` makes: the prefix, `_` and
    26 upper-case Crockford base32 characters."""
    head, separator, body = value.partition("_")
    return (
        head == prefix
        and separator == "_"
        and len(body) == ID_BODY_LENGTH
        and all(char in _DECODE for char in body)
    )


def id_time(identifier: str) -> datetime:
    """The creation time (to the millisecond, UTC) encoded in an id made by `new_id`."""
    body = identifier.rsplit("_", 1)[-1]
    if len(body) != ID_BODY_LENGTH:
        raise ValueError(f"not an orderhooks id: {identifier!r}")
    millis = 0
    for char in body[:TIMESTAMP_CHARS].upper():
        if char not in _DECODE:
            raise ValueError(f"not an orderhooks id: {identifier!r}")
        millis = (millis << 5) | _DECODE[char]
    return datetime.fromtimestamp(millis / 1000, tz=UTC)
