"""The usage page: units delivered per account, month and type, priced by agreement."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from orderhooks.service.usage import priced_usage
from orderhooks.web.dashboard.auth import Viewer
from orderhooks.web.dashboard.billing import (
    account_totals,
    is_month,
    recent_months,
    usage_lines,
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
    lines = usage_lines(await priced_usage(dash.service, accounts, months))
    return dash.render(
        "usage.html",
        viewer=viewer,
        title="Usage",
        nav="usage",
        lines=lines,
        totals=account_totals(lines),
        # A month from the address that the form does not offer is still the one shown.
        months=offered if chosen in (*offered, ALL_RECENT_MONTHS) else [*offered, chosen],
        month=chosen,
        all_months=ALL_RECENT_MONTHS,
        account=account or "",
        own_accounts=[] if viewer.is_admin else sorted(viewer.key.accounts),
        unpriced=sorted({line.account for line in lines if line.currency is None}),
    )
