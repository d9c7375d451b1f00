"""`GET /v1/usage` (PRODUCT 5): units delivered and replayed per account, month and type,
priced with the account's agreement.

`charge` prices the delivered units only: replays are counted apart and not charged,
and test events are never counted. It is `delivered × perThousand / 1000` rounded half
up to the minor unit, in the agreement's currency (null, and 0, without an agreement).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from orderhooks.domain.model import Agreement, UsageRow
from orderhooks.exceptions import FieldProblem, ValidationError
from orderhooks.web.auth import Caller, PartnerCaller
from orderhooks.web.context import ApiContext, get_context
from orderhooks.web.openapi import AUTH_ERRORS, answers
from orderhooks.web.responses import OrjsonResponse
from orderhooks.web.shapes import UsageOut

router = APIRouter(tags=["usage"])

MAX_MONTHS = 120
CSV_COLUMNS = ("account", "month", "eventType", "delivered", "replayed", "charge", "currency")
MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
FromQuery = Annotated[
    str | None, Query(alias="from", pattern=MONTH_PATTERN, description="First month, `YYYY-MM`")
]
ToQuery = Annotated[str | None, Query(pattern=MONTH_PATTERN, description="Last month, `YYYY-MM`")]


def charge(units: int, per_thousand: int) -> int:
    """`units × per_thousand / 1000` rounded half up to an integer (minor units)."""
    return (units * per_thousand + 500) // 1000


def _month_index(month: str) -> int:
    year, number = month.split("-")
    return int(year) * 12 + int(number) - 1


def months_between(first: str, last: str) -> list[str]:
    """Every `YYYY-MM` from `first` to `last`, both included."""
    return [
        f"{i // 12:04d}-{i % 12 + 1:02d}"
        for i in range(_month_index(first), _month_index(last) + 1)
    ]


def _months(start: str | None, end: str | None, now: datetime) -> list[str]:
    last = end or f"{now.year:04d}-{now.month:02d}"
    first = start or last
    if _month_index(first) > _month_index(last):
        raise ValidationError([FieldProblem("to", "must not be before from")])
    if _month_index(last) - _month_index(first) >= MAX_MONTHS:
        raise ValidationError([FieldProblem("from", f"at most {MAX_MONTHS} months at once")])
    return months_between(first, last)


def _accounts(caller: Caller, account: str | None) -> list[str] | None:
    if account is not None:
        caller.require_accounts([account])
        return [account]
    return None if caller.is_admin else sorted(caller.accounts)


async def priced_rows(ctx: ApiContext, rows: Sequence[UsageRow]) -> list[dict[str, Any]]:
    """The usage rows with their charge and currency."""
    agreements: dict[str, Agreement | None] = {}
    out = []
    for row in rows:
        if row.account not in agreements:
            agreements[row.account] = await ctx.store.get_agreement(row.account)
        agreement = agreements[row.account]
        price = 0 if agreement is None else agreement.per_thousand.get(row.event_type, 0)
        out.append(
            {
                "account": row.account,
                "month": row.month,
                "eventType": row.event_type.value,
                "delivered": row.delivered,
                "replayed": row.replayed,
                "charge": charge(row.delivered, price),
                "currency": None if agreement is None else agreement.currency,
            }
        )
    return out


def as_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV with a header line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
    return buffer.getvalue()


_USAGE_ANSWERS = answers(200, UsageOut, "Usage rows, priced", *AUTH_ERRORS)
_USAGE_ANSWERS[200]["content"]["text/csv"] = {
    "schema": {"type": "string", "description": "Header: " + ",".join(CSV_COLUMNS)}
}


@router.get(
    "/v1/usage",
    summary="Usage and charges per account, month and type",
    response_class=OrjsonResponse,
    responses=_USAGE_ANSWERS,
)
async def get_usage(
    request: Request,
    caller: PartnerCaller,
    account: Annotated[str | None, Query(max_length=128)] = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response:
    """Delivered and replayed units and the charge of the delivered ones (replays are not
    charged); without `from` and `to`, the current month."""
    ctx = get_context(request)
    months = _months(from_, to, ctx.now())
    rows = await priced_rows(ctx, await ctx.store.usage(_accounts(caller, account), months))
    if format == "csv":
        return Response(as_csv(rows), media_type="text/csv; charset=utf-8")
    return OrjsonResponse({"data": rows})
