"""Plain values as both engines store them: times as BIGINT microseconds since the Unix
epoch (exact and sortable), JSON as orjson text, and the text PostgreSQL cannot store."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (no float rounding)."""
    return (moment - EPOCH) // ONE_MICROSECOND


def micros_or_none(moment: datetime | None) -> int | None:
    """`micros`, passing None through."""
    return None if moment is None else micros(moment)


def moment(value: int) -> datetime:
    """The UTC datetime of a microsecond count."""
    return EPOCH + timedelta(microseconds=value)


def moment_or_none(value: int | None) -> datetime | None:
    """`moment`, passing None through."""
    return None if value is None else moment(value)


def dumps(value: Any) -> str:
    """JSON text of a value; mappings that are not dicts are copied into one."""
    return orjson.dumps(value, default=_plain).decode()


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def loads(text: str) -> Any:
    """The value of JSON text."""
    return orjson.loads(text)


def unstorable(*values: object) -> bool:
    """Whether a text value holds a NUL character. PostgreSQL text cannot store one, so no
    stored id or filter value has it: a lookup by such a value finds nothing, in both
    engines alike, instead of failing in one of them."""
    return any(isinstance(value, str) and "\x00" in value for value in values)


def month_of(when: datetime) -> str:
    """`YYYY-MM` of a UTC time: the usage month."""
    utc = when.astimezone(UTC)
    # As strftime's "%Y-%m" (whose year is not zero-padded), without its cost per delivery.
    return f"{utc.year}-{utc.month:02d}"
