"""Reading values leniently from documents others wrote (an event's data, a delivered
envelope): a missing or malformed value is None, never an error."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


def int_or_none(value: object) -> int | None:
    """`value` when it is an integer (a JSON boolean is not), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def timestamp_or_none(value: object, *, naive_zone: tzinfo | None = None) -> datetime | None:
    """An ISO 8601 timestamp, or None when `value` is not a string or not a time.

    A time without an offset is read in `naive_zone` when one is given; without one it is
    None, since the moment it names is unknown. A time whose moment in UTC falls outside
    the years 1 to 9999 (`0001-01-01T00:00:00+01:00`) is None too: it is a valid ISO 8601
    string that ingest accepts, but nothing could show it in UTC.
    """
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        if naive_zone is None:
            return None
        moment = moment.replace(tzinfo=naive_zone)
    try:
        moment.astimezone(UTC)
    except OverflowError:
        return None
    return moment
