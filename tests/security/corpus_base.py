"""The vocabulary of the hostile-input corpus: one `Bad` request, and helpers that spoil a
valid order one field at a time.

Paths may name `<order>` and `<webhook>`: an order and a webhook that exist, so that a bad
body reaches the validation of a known object rather than stopping at 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tests.security.support import with_value
from tests.support.data import new_order

ACCOUNT = "acct-hostile"
MAX_BODY_BYTES = 1_048_576  # the product default, ORDERHOOKS_MAX_BODY_BYTES
NESTING_LEVELS = 10_000
HUGE_ARRAY_ENTRIES = 100_000
LONG_ID_CHARS = 10_000
INJECTIONS = ("' OR 1=1 --", "../../etc/passwd", "%00", "\x00", "*", "%", "_", "'; DROP TABLE x;--")
JSON = "application/json"


@dataclass(frozen=True)
class Bad:
    """One hostile request and the statuses that may refuse it."""

    id: str
    method: str
    path: str
    content: bytes | None = None
    content_type: str | None = JSON
    expect: tuple[int, ...] = (422,)
    field: str | None = None  # a `details` entry must name this field
    index: int | None = None  # ... at this batch index
    order_id: str | None = None  # an order the request names: it must not exist afterwards
    headers: tuple[tuple[str, bytes], ...] = ()


def dumps(value: Any) -> bytes:
    """JSON bytes of a test body."""
    return orjson.dumps(value)


def field_name(path: str) -> str:
    """`items.0.price` -> `items[0].price` (the naming of `details` in docs/api.md#errors)."""
    out = ""
    for part in path.split("."):
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def raw_value(body: dict[str, Any], path: str, literal: bytes) -> bytes:
    """`body` with the field at `path` set to raw JSON text (numbers orjson cannot write)."""
    return dumps(with_value(body, path, "__RAW__")).replace(b'"__RAW__"', literal)


def order_case(case_id: str, body: bytes | dict[str, Any], order_id: str | None, **kw: Any) -> Bad:
    """A `POST /v1/orders` case with `body` (bytes as they are, or a dict as JSON)."""
    content = body if isinstance(body, bytes) else dumps(body)
    return Bad(case_id, "POST", "/v1/orders", content, order_id=order_id, **kw)


def spoiled_order(case_id: str, path: str, value: Any, **kw: Any) -> Bad:
    """A valid order with one field (a dotted path) replaced; by default the refusal must
    name that field."""
    order = new_order(ACCOUNT, order_id=f"bad-{case_id}")
    kw.setdefault("field", field_name(path))
    return order_case(case_id, with_value(order, path, value), order["_id"], **kw)
