"""Helpers of the hostile-input and secrecy suites: spoiling a valid body one field at a
time, the error shape, row counts read behind the app's back, and the spellings of a
webhook secret to search for."""

from __future__ import annotations

import base64
import copy
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from orderhooks.delivery.signing import SECRET_PREFIX

# Tables whose row counts prove that a refused request stored nothing.
COUNTED_TABLES = (
    "orders",
    "events",
    "deliveries",
    "webhooks",
    "api_keys",
    "agreements",
    "audit",
    "portal_links",
)


def with_value(body: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `body` with the field at a dotted path (`items.0.price`) replaced."""
    out: Any = copy.deepcopy(dict(body))
    parts = path.split(".")
    target = out
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last = parts[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return dict(out)


def without(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A copy of `body` without the top-level field `name`."""
    return {k: v for k, v in body.items() if k != name}


def assert_error(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    """Check that `response` is one of the 4xx `statuses` with the error JSON of docs/api.md;
    the `error` object."""
    request = response.request
    assert response.status_code in statuses, (
        f"{request.method} {request.url!s:.200} -> {response.status_code}, "
        f"expected {statuses}: {response.text[:1000]}"
    )
    assert response.headers.get("content-type", "").startswith("application/json"), (
        f"error answers are JSON, got {response.headers.get('content-type')!r}"
    )
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    assert {"code", "message", "details"} <= set(error), body
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["details"], list), body
    return error


def detail_fields(error: Mapping[str, Any]) -> list[str]:
    """The `field` of every `details` entry."""
    return [str(d.get("field", "")) for d in error["details"] if isinstance(d, dict)]


def count_rows(db_path: Path, tables: Iterable[str] = COUNTED_TABLES) -> dict[str, int]:
    """Rows per table, read from the SQLite file directly (a second, read-only connection)."""
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        counts = {}
        for table in tables:
            # Table names come from the constant above, never from input.
            row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
            counts[table] = int(row[0])
        return counts
    finally:
        connection.close()


async def count_rows_pg(
    connection: asyncpg.Connection, tables: Iterable[str] = COUNTED_TABLES
) -> dict[str, int]:
    """Rows per table of a PostgreSQL database, read on a connection of the test's own."""
    counts = {}
    for table in tables:
        # Table names come from the constant above, never from input.
        counts[table] = int(await connection.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608
    return counts


def secret_forms(secret: str) -> list[str]:
    """The spellings of a webhook secret to search for: as issued, its base64 part, and its
    key bytes re-encoded."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    raw = base64.b64decode(encoded)
    return [
        secret,
        encoded,
        encoded.rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
    ]
