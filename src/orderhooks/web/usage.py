"""`GET /v1/usage` (docs/guarantees.md, agreements and usage): units delivered and replayed per
account, month and type, priced with the account's agreement.

What a charge is, and what it is without a price, is defined once in
`orderhooks.service.usage`, for this answer and the dashboard's usage page alike.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from orderhooks.service import usage
from orderhooks.service.usage import PricedUsage
from orderhooks.web.answer_models import UsageOut
from orderhooks.web.auth import Caller, PartnerCaller
from orderhooks.web.common import IdQuery
from orderhooks.web.context import get_context
from orderhooks.web.openapi import AUTH_ERRORS, answers
from orderhooks.web.responses import OrjsonResponse

router = APIRouter(tags=["usage"])

CSV_COLUMNS = ("account", "month", "eventType", "delivered", "replayed", "charge", "currency")
MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
FromQuery = Annotated[
    str | None, Query(alias="from", pattern=MONTH_PATTERN, description="First month, `YYYY-MM`")
]
ToQuery = Annotated[str | None, Query(pattern=MONTH_PATTERN, description="Last month, `YYYY-MM`")]


def _accounts(caller: Caller, account: str | None) -> list[str] | None:
    if account is not None:
        caller.require_accounts([account])
        return [account]
    return None if caller.is_admin else sorted(caller.accounts)


def usage_json(priced: PricedUsage) -> dict[str, Any]:
    """One priced usage row as the API answers it."""
    row = priced.row
    return {
        "account": row.account,
        "month": row.month,
        "eventType": row.event_type.value,
        "delivered": row.delivered,
        "replayed": row.replayed,
        "charge": priced.charge,
        "currency": priced.currency,
    }


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
    responses=_USAGE_ANSWERS,
)
async def get_usage(
    request: Request,
    caller: PartnerCaller,
    account: IdQuery = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response:
    """Delivered and replayed units and the charge of the delivered ones (replays are not
    charged); without `from` and `to`, the current month."""
    ctx = get_context(request)
    months = usage.month_range(from_, to, ctx.now())
    priced = await usage.priced_usage(ctx.service, _accounts(caller, account), months)
    rows = [usage_json(p) for p in priced]
    if format == "csv":
        return Response(as_csv(rows), media_type="text/csv; charset=utf-8")
    return OrjsonResponse({"data": rows})
