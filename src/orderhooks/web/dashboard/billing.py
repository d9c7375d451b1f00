"""Usage priced by agreement (PRODUCT 5), shaped for the usage page; the charge is the
API's own (`web.usage.charge`), so both always agree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from orderhooks.domain.model import Agreement, EventType, UsageRow
from orderhooks.web.usage import charge

MONTHS_OFFERED = 12
_TYPE_ORDER = {t: i for i, t in enumerate(EventType)}


@dataclass(frozen=True, slots=True)
class UsageLine:
    """One row of the usage table; price and charge are None without an agreement."""

    account: str
    month: str
    event_type: EventType
    delivered: int
    replayed: int
    per_thousand: int | None
    charge: int | None
    currency: str | None


@dataclass(frozen=True, slots=True)
class AccountTotal:
    """What one account owes for one month in one currency."""

    account: str
    month: str
    delivered: int
    replayed: int
    charge: int
    currency: str


def price_usage(
    rows: Sequence[UsageRow], agreements: Mapping[str, Agreement | None]
) -> list[UsageLine]:
    """Usage rows with their price and charge, by account, month and event type."""
    lines = []
    for row in sorted(rows, key=lambda r: (r.account, r.month, _TYPE_ORDER[r.event_type])):
        agreement = agreements.get(row.account)
        price = agreement.per_thousand.get(row.event_type) if agreement else None
        lines.append(
            UsageLine(
                account=row.account,
                month=row.month,
                event_type=row.event_type,
                delivered=row.delivered,
                replayed=row.replayed,
                per_thousand=price,
                # Replays are counted apart and not charged: only first deliveries are.
                charge=charge(row.delivered, price) if price is not None else None,
                currency=agreement.currency if agreement else None,
            )
        )
    return lines


def account_totals(lines: Sequence[UsageLine]) -> list[AccountTotal]:
    """Per account and month, the sum of the priced lines."""
    totals: dict[tuple[str, str, str], list[int]] = {}
    for line in lines:
        if line.charge is None or line.currency is None:
            continue
        sums = totals.setdefault((line.account, line.month, line.currency), [0, 0, 0])
        sums[0] += line.delivered
        sums[1] += line.replayed
        sums[2] += line.charge
    return [
        AccountTotal(account, month, delivered, replayed, charge, currency)
        for (account, month, currency), (delivered, replayed, charge) in sorted(totals.items())
    ]


def recent_months(now: datetime, count: int = MONTHS_OFFERED) -> list[str]:
    """`YYYY-MM` of this month and the `count - 1` before it, newest first."""
    year, month = now.year, now.month
    months = []
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


def is_month(value: str) -> bool:
    """Whether `value` is a `YYYY-MM` month."""
    if len(value) != 7 or value[4] != "-":
        return False
    year, month = value[:4], value[5:]
    return year.isdigit() and month.isdigit() and 1 <= int(month) <= 12
