"""How values read on the pages: times in UTC, durations, money, rates (Jinja filters)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

# Currencies whose minor unit is not a hundredth (ISO 4217); everything else has two digits.
_MINOR_DIGITS = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "TND": 3}


def when(moment: datetime | None) -> str:
    """`2026-11-28 12:00:03 UTC`, or a dash."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(moment: datetime | None) -> str:
    """The machine-readable form for `<time datetime>`."""
    return "" if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def duration(span: timedelta | float | None) -> str:
    """`45 s`, `12 min 3 s`, `2 h 5 min`, `3 d 4 h` (seconds when given a number)."""
    if span is None:
        return "—"
    seconds = span.total_seconds() if isinstance(span, timedelta) else float(span)
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    whole = int(seconds)
    if whole < 60:
        text = f"{seconds:.1f} s" if seconds < 10 and seconds != whole else f"{whole} s"
    elif whole < 3600:
        text = _two_units(whole // 60, "min", whole % 60, "s")
    elif whole < 86_400:
        text = _two_units(whole // 3600, "h", whole % 3600 // 60, "min")
    else:
        text = _two_units(whole // 86_400, "d", whole % 86_400 // 3600, "h")
    return sign + text


def _two_units(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big} {big_unit} {small} {small_unit}" if small else f"{big} {big_unit}"


def ago(moment: datetime | None, now: datetime) -> str:
    """`5 min 2 s ago` or `in 30 s`."""
    if moment is None:
        return "—"
    delta = now - moment
    if delta >= timedelta(0):
        return f"{duration(delta)} ago"
    return f"in {duration(-delta)}"


def milliseconds(value: float | None) -> str:
    """`85 ms`, `1.50 s`."""
    if value is None:
        return "—"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def percent(rate: float | None) -> str:
    """`99.5 %` of a fraction; a rate short of 1 that rounds to 100 reads `> 99.9 %`, and
    one above 0 that rounds to 0 reads `< 0.1 %`: a failure is never hidden by rounding."""
    if rate is None:
        return "—"
    shown = f"{rate * 100:.1f}"
    if shown == "100.0" and rate < 1:
        return "> 99.9 %"
    if shown == "0.0" and rate > 0:
        return "< 0.1 %"
    return f"{shown.removesuffix('.0')} %"


def money(minor: int | None, currency: str | None) -> str:
    """`12.34 EUR` from integer minor units."""
    if minor is None or currency is None:
        return "—"
    digits = _MINOR_DIGITS.get(currency.upper(), 2)
    sign, minor = ("-", -minor) if minor < 0 else ("", minor)
    if digits == 0:
        return f"{sign}{minor:,} {currency}"
    whole, part = divmod(minor, 10**digits)
    return f"{sign}{whole:,}.{part:0{digits}d} {currency}"


def rate(value: float) -> str:
    """A per-minute rate with the precision it deserves: `0.05`, `2.5`, `120`."""
    if value >= 10:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def number(value: int | float | None) -> str:
    """`12,345`."""
    return "—" if value is None else f"{value:,}"


def pretty_json(value: object) -> str:
    """Indented JSON for reading (the exact bytes are shown separately)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def pretty_body(body: bytes) -> str:
    """A request or response body indented when it is JSON, else as text."""
    try:
        return pretty_json(orjson.loads(body))
    except orjson.JSONDecodeError:
        return body.decode("utf-8", errors="replace")


FILTERS = {
    "when": when,
    "iso": iso,
    "duration": duration,
    "ago": ago,
    "ms": milliseconds,
    "percent": percent,
    "money": money,
    "number": number,
    "rate": rate,
    "pretty_json": pretty_json,
}
