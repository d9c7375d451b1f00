"""Opening a portal link: a one-time URL that signs the browser in with a partner's view.

`GET /ui/portal/{token}` only looks: an unknown, used or expired link gets a page saying
so (404 or 410); a usable one gets a page whose form posts the token back (a small
script submits it at once). `POST /ui/portal` uses the link, atomically in the store,
and starts a session that ends when the link expires. Looking first keeps link
previewers (chat unfurlers, mail scanners) that fetch URLs without running scripts from
using up a link meant for a person.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from orderhooks.domain.portal import MAX_EXPIRES_IN_SECONDS, PortalLink, hash_portal_token
from orderhooks.exceptions import StoreUnavailable
from orderhooks.service.portal import open_portal_link
from orderhooks.web.dashboard.context import UI_PREFIX, Dashboard, framed_by_other_sites, redirect
from orderhooks.web.dashboard.guards import Endpoint, read_form, same_origin
from orderhooks.web.dashboard.session import SESSION_COOKIE

TOKEN_FIELD = "portal_token"  # noqa: S105 - a form field name, not a secret
MAX_TOKEN_LENGTH = 128
PORTAL_PATH = f"{UI_PREFIX}/portal"

_UNUSABLE = (
    "This portal link is not valid: it was already used, it has expired, or it never"
    " existed. Ask for a new link."
)


def _unusable(dash: Dashboard, status_code: int) -> Response:
    return dash.visitor_page(
        "portal.html", title="Portal link", status_code=status_code, message=_UNUSABLE, token=None
    )


def _status_of(link: PortalLink | None, dash: Dashboard) -> int:
    """200 for a usable link, 404 for an unknown one, 410 for a used or expired one."""
    if link is None:
        return 404
    return 200 if link.usable(dash.clock()) else 410


def _store_down(dash: Dashboard) -> Response:
    return dash.error_page(None, 503, "The database is not reachable right now.")


def portal_page(dash: Dashboard) -> Endpoint:
    """GET /ui/portal/{token}: whether the link can be used, and the form that uses it."""

    async def endpoint(request: Request) -> Response:
        token = request.path_params["token"]
        if len(token) > MAX_TOKEN_LENGTH:
            return _unusable(dash, 404)
        try:
            link = await dash.store.portal_link_by_token(hash_portal_token(token))
        except StoreUnavailable:
            return _store_down(dash)
        status_code = _status_of(link, dash)
        if status_code != 200:
            return _unusable(dash, status_code)
        return dash.visitor_page("portal.html", title="Portal link", message="", token=token)

    return endpoint


def open_portal(dash: Dashboard) -> Endpoint:
    """POST /ui/portal: use the link once and start its session."""

    async def endpoint(request: Request) -> Response:
        form = await read_form(request, max_fields=5)
        token = form.get(TOKEN_FIELD)
        if not same_origin(request):
            return dash.error_page(None, 403, "This form did not come from this dashboard.")
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            return _unusable(dash, 404)
        try:
            link = await open_portal_link(dash.service, token)
            if link is None:
                found = await dash.store.portal_link_by_token(hash_portal_token(token))
                return _unusable(dash, 404 if found is None else 410)
        except StoreUnavailable:
            return _store_down(dash)
        return _signed_in(dash, request, link)

    return endpoint


def _signed_in(dash: Dashboard, request: Request, link: PortalLink) -> Response:
    """Go to the overview with a session cookie that ends when the link expires."""
    now = dash.clock()
    expires_at = int(link.expires_at.timestamp())  # whole seconds, never after expiresAt
    max_age = max(0, min(expires_at - int(now.timestamp()), MAX_EXPIRES_IN_SECONDS))
    https = request.url.scheme == "https"
    cross_site = _cross_site(dash, request)
    response = redirect(UI_PREFIX)
    response.set_cookie(
        SESSION_COOKIE,
        dash.signer.issue(link.id, now, expires_at=expires_at),
        max_age=max_age,
        path=UI_PREFIX,
        secure=https,
        httponly=True,
        samesite="none" if cross_site else "strict",
    )
    if cross_site:
        _partition_last_cookie(response)
    return response


def _cross_site(dash: Dashboard, request: Request) -> bool:
    """Whether a portal session's cookie is the cross-site kind: a page framed by another
    site only gets its cookie back when the cookie is SameSite=None (which browsers accept
    over HTTPS only), partitioned per top site."""
    return request.url.scheme == "https" and framed_by_other_sites(dash.settings.ui_frame_ancestors)


def forget_partitioned_session(dash: Dashboard, request: Request, response: Response) -> None:
    """Where a portal link may have set a partitioned session cookie (framed by other
    sites, over HTTPS), delete that one too: a browser keeps it apart from the
    unpartitioned cookie of the same name, and deletes it only with the same attributes."""
    if not _cross_site(dash, request):
        return
    response.delete_cookie(
        SESSION_COOKIE, path=UI_PREFIX, secure=True, httponly=True, samesite="none"
    )
    _partition_last_cookie(response)


def _partition_last_cookie(response: Response) -> None:
    """Add `Partitioned` (CHIPS) to the cookie just set: browsers that block third-party
    cookies keep a partitioned one for the site that frames the dashboard. Written by
    hand because Python's cookie module learns the attribute only in 3.14."""
    for index in range(len(response.raw_headers) - 1, -1, -1):
        name, value = response.raw_headers[index]
        if name == b"set-cookie":
            response.raw_headers[index] = (name, value + b"; Partitioned")
            return
