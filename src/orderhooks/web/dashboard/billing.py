"""Usage priced by agreement (docs/guarantees.md, agreements and usage), shaped for the usage page;
the pricing is the service's (`service.usage.price`), the same as `GET /v1/usage` answers, so both
agree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from orderhooks.domain.model import Agreement, EventType, UsageRow
from orderhooks.service.usage import PricedUsage, price_rows

MONTHS_OFFERED = 12
_TYPE_ORDER = {t: i for i, t in enumerate(EventType)}


@dataclass(frozen=True, slots=True)
class UsageLine:
    """One row of the usage table; without a price (`per_thousand` None) nothing is
    charged (0), and without an agreement there is no currency."""

    account: str
    month: str
    event_type: EventType
    delivered: int
    replayed: int
    per_thousand: int | None
    charge: int
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


def usage_lines(priced: Sequence[PricedUsage]) -> list[UsageLine]:
    """Priced usage as table lines, by account, month and event type."""
    ordered = sorted(
        priced, key=lambda p: (p.row.account, p.row.month, _TYPE_ORDER[p.row.event_type])
    )
    return [
        UsageLine(
            account=p.row.account,
            month=p.row.month,
            event_type=p.row.event_type,
            delivered=p.row.delivered,
            replayed=p.row.replayed,
            per_thousand=p.per_thousand,
            charge=p.charge,
            currency=p.currency,
        )
        for p in ordered
    ]


def price_usage(
    rows: Sequence[UsageRow], agreements: Mapping[str, Agreement | None]
) -> list[UsageLine]:
    """Usage rows with their price and charge, by account, month and event type."""
    return usage_lines(price_rows(rows, agreements))


def account_totals(lines: Sequence[UsageLine]) -> list[AccountTotal]:
    """Per account and month, the sum of the lines of an agreement (in its currency)."""
    totals: dict[tuple[str, str, str], list[int]] = {}
    for line in lines:
        if line.currency is None:
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
    if len(value) != 7 or value[4] != "-" or not value.isascii():
        return False
    year, month = value[:4], value[5:]
    return year.isdigit() and month.isdigit() and 1 <= int(month) <= 12
