"""Reading query strings and form fields leniently: a bad filter is ignored, not an error."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from starlette.requests import Request

from orderhooks.domain.ids import is_id

E = TypeVar("E", bound=StrEnum)

MAX_PARAM_LENGTH = 200
MAX_NUMBER_DIGITS = 18  # any such number fits a signed 64-bit integer
FORM_TIME_FORMAT = "%Y-%m-%dT%H:%M"

# What a page says after an action redirected to it; the query names a code, never text.
NOTICES: Mapping[str, str] = {
    "enabled": "Webhook enabled.",
    "disabled": "Webhook disabled: no new deliveries are created; pending ones wait.",
    "awaiting": "Webhook enabled, but it waits for its accounts' agreement before sending.",
    "recovered": "{count} failed {deliveries} went back to pending.",
    "replayed": "{count} {events} queued for replay.",
    "test-sent": "Test event queued.",
    "retried": "Delivery is due now.",
}


def text_param(request: Request, name: str) -> str | None:
    """A query parameter, stripped; None when absent, empty or absurdly long."""
    value = request.query_params.get(name, "").strip()
    return value if value and len(value) <= MAX_PARAM_LENGTH else None


def cursor_param(request: Request, prefix: str) -> str | None:
    """The `cursor` of a list of `prefix` ids (a `Next page` link's); None, the first page,
    when it is not such an id."""
    value = text_param(request, "cursor")
    return value if value is not None and is_id(value, prefix) else None


def enum_param(request: Request, name: str, enum: type[E]) -> E | None:
    """A query parameter that must be one of `enum`'s values; None otherwise."""
    value = text_param(request, name)
    try:
        return enum(value) if value else None
    except ValueError:
        return None


def is_number(value: str) -> bool:
    """Whether `value` is a whole number in ASCII digits, at most MAX_NUMBER_DIGITS of
    them: `str.isdigit` is also true of characters `int` cannot read, such as "²", and
    `int` refuses more than 4,300 digits (no count or choice of the dashboard has 19)."""
    return len(value) <= MAX_NUMBER_DIGITS and value.isascii() and value.isdigit()


def notice(request: Request) -> str | None:
    """The message of the `notice` code in the query string, if any."""
    template = NOTICES.get(request.query_params.get("notice", ""))
    if template is None:
        return None
    raw = request.query_params.get("count", "0")
    count = int(raw) if is_number(raw) else 0
    return template.format(
        count=count,
        deliveries="delivery" if count == 1 else "deliveries",
        events="event" if count == 1 else "events",
    )


def parse_form_time(value: object) -> datetime | None:
    """A `datetime-local` form value (`2026-11-28T12:00`), read as UTC; None when empty.

    Raises ValueError when it is not a time.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range") from None


def form_time(moment: datetime) -> str:
    """The `datetime-local` value of a UTC time."""
    return moment.astimezone(UTC).strftime(FORM_TIME_FORMAT)
