"""Usage priced by agreement: the one definition of a charge, for the API and the dashboard.

Usage counts, per account, month and event type, the units delivered (one event to one
webhook, however many attempts it took; test events never count) and, apart, the units
replayed. Only delivered units are charged: `delivered × perThousand / 1000`, rounded half
up to the minor unit, in the agreement's currency. Without a price (no agreement, or an
agreement that does not price the type) nothing is charged: the charge is 0, and the
currency is the agreement's, or None without one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from orderhooks.domain.model import Agreement, UsageRow
from orderhooks.exceptions import FieldProblem, ValidationError
from orderhooks.service.context import ServiceContext

MAX_MONTHS = 120


@dataclass(frozen=True, slots=True)
class PricedUsage:
    """A usage row with its price per 1,000 (None: not priced) and its charge."""

    row: UsageRow
    per_thousand: int | None
    charge: int
    currency: str | None


def charge(units: int, per_thousand: int) -> int:
    """`units × per_thousand / 1000` rounded half up to an integer (minor units)."""
    return (units * per_thousand + 500) // 1000


def price(row: UsageRow, agreement: Agreement | None) -> PricedUsage:
    """`row` priced by `agreement`; replays are counted apart and never charged."""
    per_thousand = None if agreement is None else agreement.per_thousand.get(row.event_type)
    return PricedUsage(
        row=row,
        per_thousand=per_thousand,
        charge=0 if per_thousand is None else charge(row.delivered, per_thousand),
        currency=None if agreement is None else agreement.currency,
    )


def price_rows(
    rows: Sequence[UsageRow], agreements: Mapping[str, Agreement | None]
) -> list[PricedUsage]:
    """Each row priced by its account's agreement, in the order given."""
    return [price(row, agreements.get(row.account)) for row in rows]


async def priced_usage(
    ctx: ServiceContext, accounts: Sequence[str] | None, months: Sequence[str]
) -> list[PricedUsage]:
    """The usage of `accounts` (None: every account) in `months`, priced."""
    rows = await ctx.store.usage(accounts, months)
    names = sorted({row.account for row in rows})
    found = await asyncio.gather(*(ctx.store.get_agreement(name) for name in names))
    return price_rows(rows, dict(zip(names, found, strict=True)))


def _month_index(month: str) -> int:
    year, number = month.split("-")
    return int(year) * 12 + int(number) - 1


def months_between(first: str, last: str) -> list[str]:
    """Every `YYYY-MM` from `first` to `last`, both included."""
    return [
        f"{i // 12:04d}-{i % 12 + 1:02d}"
        for i in range(_month_index(first), _month_index(last) + 1)
    ]


def month_range(first: str | None, last: str | None, now: datetime) -> list[str]:
    """The months from `first` to `last` (each defaulting to the current month); 422 when
    they are reversed or span more than `MAX_MONTHS`."""
    end = last or f"{now.year:04d}-{now.month:02d}"
    start = first or end
    if _month_index(start) > _month_index(end):
        if last is None:  # `to` was not given: name the field the client sent
            problem = FieldProblem("from", "must not be after to (the current month by default)")
        else:
            problem = FieldProblem("to", "must not be before from")
        raise ValidationError([problem])
    if _month_index(end) - _month_index(start) >= MAX_MONTHS:
        raise ValidationError([FieldProblem("from", f"at most {MAX_MONTHS} months at once")])
    return months_between(start, end)
