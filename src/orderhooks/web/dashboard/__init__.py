"""The dashboard at /ui: server-rendered pages, signed in with an API key.

Pages read through the `Store` with the scope the API applies to the same key; the
buttons call the same store methods as the API and leave the same audit trail. See
docs/dashboard.md for the pages and the security model.
"""

from __future__ import annotations

import inspect

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from orderhooks.clock import Clock, utc_now
from orderhooks.config import Settings
from orderhooks.store import Store
from orderhooks.web.dashboard.context import UI_PREFIX, Dashboard
from orderhooks.web.dashboard.routes import dashboard_routes

# What a browser is told when the framework refuses a request under /ui.
_HTTP_ERROR_MESSAGES = {
    400: "The form could not be read. Go back, reload the page and try again.",
    404: "Nothing here, or nothing this key may see.",
    405: "This address does not take that kind of request.",
    413: "The form is larger than any form of this dashboard.",
}


def is_dashboard_path(path: str) -> bool:
    """Whether a request path is the dashboard's (/ui and everything under it)."""
    return path == UI_PREFIX or path.startswith(f"{UI_PREFIX}/")


def _html_http_errors(app: FastAPI, dash: Dashboard) -> None:
    """Answer the framework's refusals under /ui (an unknown address, a method a page does
    not take, a form that cannot be read) with the dashboard's error page; the API's
    handler keeps answering its error JSON everywhere else."""
    api_handler = app.exception_handlers[HTTPException]

    async def handler(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException) or not is_dashboard_path(request.url.path):
            answer = api_handler(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        message = _HTTP_ERROR_MESSAGES.get(exc.status_code, "This request cannot be answered.")
        page = dash.error_page(None, exc.status_code, message)
        page.headers.update(exc.headers or {})
        return page

    app.add_exception_handler(HTTPException, handler)


def mount_dashboard(
    app: FastAPI, *, settings: Settings, store: Store, clock: Clock = utc_now
) -> None:
    """Add the /ui routes to `app` (plain Starlette routes: not part of the OpenAPI
    document), and its HTML error pages for what the framework refuses under /ui."""
    dash = Dashboard(settings=settings, store=store, clock=clock)
    app.router.routes.extend(dashboard_routes(dash))
    _html_http_errors(app, dash)


__all__ = ["mount_dashboard"]
