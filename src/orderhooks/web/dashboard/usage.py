"""The usage page: units delivered per account, month and type, priced by agreement."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from orderhooks.web.dashboard.auth import Viewer
from orderhooks.web.dashboard.billing import (
    account_totals,
    is_month,
    price_usage,
    recent_months,
)
from orderhooks.web.dashboard.context import Dashboard
from orderhooks.web.dashboard.params import text_param

ALL_RECENT_MONTHS = "last-12"


def _accounts_for(viewer: Viewer, account: str | None) -> list[str] | None:
    """The accounts to report on: the one asked for if the viewer may see it, else all the
    viewer's (None: every account, for admin)."""
    if viewer.is_admin:
        return [account] if account else None
    own = sorted(viewer.key.accounts)
    return [account] if account in own else own


async def usage_page(dash: Dashboard, request: Request, viewer: Viewer) -> Response:
    """GET /ui/usage?month=YYYY-MM&account=…"""
    offered = recent_months(dash.clock())
    chosen = text_param(request, "month") or offered[0]
    if chosen == ALL_RECENT_MONTHS:
        months = offered
    else:
        chosen = chosen if is_month(chosen) else offered[0]
        months = [chosen]
    account = text_param(request, "account")
    accounts = _accounts_for(viewer, account)
    rows = await dash.store.usage(accounts, months)
    names = sorted({row.account for row in rows})
    agreements = await asyncio.gather(*(dash.store.get_agreement(name) for name in names))
    lines = price_usage(rows, dict(zip(names, agreements, strict=True)))
    return dash.render(
        "usage.html",
        viewer=viewer,
        title="Usage",
        nav="usage",
        lines=lines,
        totals=account_totals(lines),
        months=offered,
        month=chosen,
        all_months=ALL_RECENT_MONTHS,
        account=account or "",
        own_accounts=[] if viewer.is_admin else sorted(viewer.key.accounts),
        unpriced=sorted({line.account for line in lines if line.charge is None}),
    )
