"""The JSON structure limits (depth, 64-bit integers): the fast check on the bytes never
accepts what the walk of the parsed value refuses, and is exact on depth."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from orderhooks.web.bodies import MAX_JSON_DEPTH, _check_structure, parse_json
from orderhooks.web.errors import ApiError

KEY_ENDINGS = ["k", "[}", '\\"']


def walk_accepts(raw: bytes) -> bool:
    try:
        _check_structure(orjson.loads(raw))
    except ApiError:
        return False
    return True


def nested(depth: int, opening: bytes, closing: bytes, inner: bytes = b"1") -> bytes:
    return opening * depth + inner + closing * depth


@pytest.mark.parametrize("depth", [1, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1])
@pytest.mark.parametrize(
    ("opening", "closing"),
    [(b"[", b"]"), (b'{"a":', b"}"), (b'{"\\"[{":', b"}"), (b'["]]]", ', b"]")],
)
def test_depth_limit_is_exact_with_brackets_and_escapes_in_strings(
    depth: int, opening: bytes, closing: bytes
) -> None:
    raw = nested(depth, opening, closing)
    if depth <= MAX_JSON_DEPTH:
        parse_json(raw)
    else:
        with pytest.raises(ApiError, match="nested deeper"):
            parse_json(raw)


@pytest.mark.parametrize(
    ("raw", "accepted"),
    [
        (b"[9223372036854775807, -9223372036854775808]", True),
        (b"[9223372036854775808]", False),
        (b"[18446744073709551615]", False),
        (b'{"phone": "12345678901234567890"}', True),  # digits in a string: walked, kept
        # Beyond 2**64 - 1 orjson reads an integer as a float: refused from the literal.
        (b"[18446744073709551616]", False),
        (b'{"a": 99999999999999999999999}', False),
        (b"[-9223372036854775809]", False),
        (b'["x", -99999999999999999999999]', False),
        (b'{"12345678901234567890123": "99999999999999999999999"}', True),
        (b"[1.12345678901234567890123, 12345678901234567890123.5]", True),  # floats
        (b"[1e-12345678901234567890, 1E-12345678901234567890]", True),
        (b'["\\\\", 99999999999999999999999]', False),  # after a string with an escape
    ],
)
def test_integers_outside_64_bits_are_refused(raw: bytes, accepted: bool) -> None:
    if accepted:
        parse_json(raw)
    else:
        with pytest.raises(ApiError, match="64-bit"):
            parse_json(raw)


def random_value(rng: random.Random, levels: int) -> Any:
    """A random document nested `levels` deep along one path, with bracket characters,
    quotes and backslashes in its strings and keys, and small values beside the path."""
    scalars = [1, 2**40, -5, None, True, "a[", ']\\"{', "{{[[", 'x"]']
    value: Any = rng.choice(scalars)
    for _ in range(levels):
        beside = [rng.choice(scalars) for _ in range(rng.randint(0, 2))]
        if rng.random() < 0.5:
            value = [*beside, value]
        else:
            keys = [str(i) + rng.choice(KEY_ENDINGS) for i in range(len(beside))]
            value = {**dict(zip(keys, beside, strict=True)), "path]": value}
    return value


def test_the_fast_check_agrees_with_the_walk_on_random_documents() -> None:
    rng = random.Random(11)
    for _ in range(300):
        raw = orjson.dumps(random_value(rng, rng.randint(MAX_JSON_DEPTH - 3, MAX_JSON_DEPTH + 1)))
        try:
            parse_json(raw)
            accepted = True
        except ApiError:
            accepted = False
        assert accepted == walk_accepts(raw), raw[:200]
