"""Reading values leniently from documents others wrote."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from orderhooks.domain.lenient import int_or_none, timestamp_or_none


@pytest.mark.parametrize(
    ("value", "expected"), [(3, 3), (0, 0), (True, None), (3.0, None), ("3", None), (None, None)]
)
def test_int_or_none_takes_integers_only(value: object, expected: int | None) -> None:
    assert int_or_none(value) == expected


def test_a_timestamp_with_an_offset_is_read_as_written() -> None:
    assert timestamp_or_none("2026-11-28T12:00:00+01:00") == datetime(
        2026, 11, 28, 12, tzinfo=timezone(timedelta(hours=1))
    )
    assert timestamp_or_none("2026-11-28T12:00:00Z") == datetime(2026, 11, 28, 12, tzinfo=UTC)


@pytest.mark.parametrize("value", [None, 1_764_331_200, "", "yesterday", "2026-13-01T00:00:00Z"])
def test_what_is_not_a_timestamp_string_is_none(value: object) -> None:
    assert timestamp_or_none(value) is None
    assert timestamp_or_none(value, naive_zone=UTC) is None


def test_a_timestamp_without_an_offset_needs_a_zone() -> None:
    assert timestamp_or_none("2026-11-28T12:00:00") is None
    assert timestamp_or_none("2026-11-28T12:00:00", naive_zone=UTC) == datetime(
        2026, 11, 28, 12, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+00:45"]
)
def test_a_timestamp_outside_the_years_utc_can_hold_is_none(value: str) -> None:
    # Valid ISO 8601, accepted by ingest; in UTC it is in year 0 or 10000, which the
    # dashboard's order page failed on (500) when it showed it.
    assert timestamp_or_none(value) is None
    assert timestamp_or_none("0001-01-01T00:00:00Z") == datetime(1, 1, 1, tzinfo=UTC)
