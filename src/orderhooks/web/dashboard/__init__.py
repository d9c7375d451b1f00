"""The dashboard at /ui: server-rendered pages, signed in with an API key.

Pages read through the `Store` with the scope the API applies to the same key; the
buttons call the same store methods as the API and leave the same audit trail. See
docs/dashboard.md for the pages and the security model.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import cast

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from orderhooks.clock import Clock, utc_now
from orderhooks.config import Settings
from orderhooks.exceptions import OrderhooksError
from orderhooks.store import Store
from orderhooks.web.dashboard.context import UI_PREFIX, Dashboard
from orderhooks.web.dashboard.routes import dashboard_routes
from orderhooks.web.errors import ApiError, add_internal_error_page

# What a browser is told when a request under /ui is refused outside a page's handler:
# by the framework (an unknown address, a method, an unreadable form), at the HTTP edge
# (a form too large, a client gone: `read_body`) or by the store
# (unreachable while the session is looked up).
_ERROR_MESSAGES = {
    400: "The form could not be read. Go back, reload the page and try again.",
    404: "Nothing here, or nothing this key may see.",
    405: "This address does not take that kind of request.",
    409: "That cannot be done in this state.",
    413: "The form is larger than any form of this dashboard.",
    422: "That request is not valid.",
    500: "Something went wrong on the server; it was logged.",
    503: "The database is not reachable right now. Try again in a moment.",
}
HttpErrorHandler = Callable[[Request, Exception], Response | Awaitable[Response]]
# Headers of the API's answer that a page keeps (what to do next), not its content's.
_KEPT_HEADERS = ("allow", "retry-after")


def is_dashboard_path(path: str) -> bool:
    """Whether a request path is the dashboard's (/ui and everything under it)."""
    return path == UI_PREFIX or path.startswith(f"{UI_PREFIX}/")


def _html_error_pages(app: FastAPI, dash: Dashboard) -> None:
    """Answer the refusals that reach the app's error handlers from under /ui with the
    dashboard's error page, with the status (and `Allow`, `Retry-After`) the API's
    handler gives them, and the unexpected exceptions with its 500 page; the API's error
    JSON stays everywhere else."""
    for exc_class in (HTTPException, OrderhooksError, ApiError):
        api_handler = cast(HttpErrorHandler, app.exception_handlers[exc_class])

        async def handler(
            request: Request, exc: Exception, api_handler: HttpErrorHandler = api_handler
        ) -> Response:
            answer = api_handler(request, exc)
            api_page = await answer if inspect.isawaitable(answer) else answer
            if not is_dashboard_path(request.url.path):
                return api_page
            status = api_page.status_code
            message = _ERROR_MESSAGES.get(status, "This request cannot be answered.")
            page = dash.error_page(None, status, message)
            for name in _KEPT_HEADERS:
                if name in api_page.headers:
                    page.headers[name] = api_page.headers[name]
            return page

        app.add_exception_handler(exc_class, handler)

    def unexpected(request: Request) -> Response | None:
        # An exception no handler knows (a bug), already logged by the catch-all.
        if not is_dashboard_path(request.url.path):
            return None
        return dash.error_page(None, 500, _ERROR_MESSAGES[500])

    add_internal_error_page(app, unexpected)


def mount_dashboard(
    app: FastAPI, *, settings: Settings, store: Store, clock: Clock = utc_now
) -> None:
    """Add the /ui routes to `app` (plain Starlette routes: not part of the OpenAPI
    document), and its HTML error pages for what is refused under /ui outside a page."""
    dash = Dashboard(settings=settings, store=store, clock=clock)
    app.router.routes.extend(dashboard_routes(dash))
    _html_error_pages(app, dash)


__all__ = ["mount_dashboard"]
