"""The checks every dashboard page and form goes through.

Pages need a session; forms need a session, a same-origin request and the session's
CSRF token. Store errors become HTML error pages here, so the API's JSON error
handlers never see a dashboard request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from orderhooks.exceptions import (
    Conflict,
    LimitExceeded,
    NotFound,
    StoreUnavailable,
    ValidationError,
)
from orderhooks.web.bodies import read_body
from orderhooks.web.dashboard.auth import Viewer
from orderhooks.web.dashboard.context import Dashboard, sign_in_redirect

PageHandler = Callable[[Dashboard, Request, Viewer], Awaitable[Response]]
ActionHandler = Callable[[Dashboard, Request, Viewer, FormData], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]

CSRF_FIELD = "csrf_token"
MAX_FORM_FIELDS = 50
# Far above the largest form of the dashboard (a replay form is well under 1 KiB).
MAX_FORM_BYTES = 64 * 1024


async def read_form(request: Request, *, max_fields: int) -> FormData:
    """The fields of a posted form, read as an API body is (`read_body`): refused (413)
    past MAX_FORM_BYTES before it is held in memory, whether it declares its length or
    not, and a plain 400 when the client went away. An unreadable form (a file, too many
    fields, broken multipart) is a 400."""
    body = await read_body(request, MAX_FORM_BYTES)

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return await Request(request.scope, replay).form(max_files=0, max_fields=max_fields)


async def _guarded(
    dash: Dashboard, viewer: Viewer, handler: Callable[[], Awaitable[Response]]
) -> Response:
    try:
        return await handler()
    except NotFound:
        return dash.error_page(viewer, 404, "Nothing here, or nothing this key may see.")
    except Conflict as exc:
        return dash.error_page(viewer, 409, str(exc) or "That cannot be done in this state.")
    except (ValidationError, LimitExceeded) as exc:
        return dash.error_page(viewer, 422, str(exc))
    except StoreUnavailable:
        return dash.error_page(viewer, 503, "The database is not reachable right now.")


def page(dash: Dashboard, handler: PageHandler, *, anonymous: Endpoint | None = None) -> Endpoint:
    """A GET endpoint that needs a session; without one, `anonymous` answers (by default a
    redirect to the sign-in page)."""

    async def endpoint(request: Request) -> Response:
        viewer = await dash.viewer(request)
        if viewer is None:
            return await anonymous(request) if anonymous else sign_in_redirect(request)
        return await _guarded(dash, viewer, lambda: handler(dash, request, viewer))

    return endpoint


def same_origin(request: Request) -> bool:
    """Whether a POST came from a page of this site (browsers send Origin on POST)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # Without Origin (older clients), the CSRF token alone decides.
        return origin is None
    try:
        parts = urlsplit(origin)
    except ValueError:
        # An unbalanced IPv6 bracket (`http://[`): no page of this site sends that.
        return False
    # Behind a reverse proxy the browser's host may arrive as X-Forwarded-Host.
    hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "")}
    return parts.netloc in hosts - {""} and parts.scheme in ("http", "https")


def action(dash: Dashboard, handler: ActionHandler) -> Endpoint:
    """A POST endpoint that needs a session, the same origin and the CSRF token."""

    async def endpoint(request: Request) -> Response:
        viewer = await dash.viewer(request)
        if viewer is None:
            return sign_in_redirect(request)
        form = await read_form(request, max_fields=MAX_FORM_FIELDS)
        token = form.get(CSRF_FIELD)
        valid = isinstance(token, str) and dash.signer.check_csrf(viewer.session, token)
        if not valid or not same_origin(request):
            return dash.error_page(
                viewer, 403, "This form has expired or did not come from this dashboard."
            )
        return await _guarded(dash, viewer, lambda: handler(dash, request, viewer, form))

    return endpoint
