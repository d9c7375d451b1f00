"""Signing in with an API key and signing out.

The key is posted once, looked up by its hash, and forgotten: the cookie carries a
signed session token naming the key's id (see `session`). The sign-in form itself is
protected by a nonce cookie and a matching hidden field.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from orderhooks.web.dashboard.auth import SignInRefusal
from orderhooks.web.dashboard.context import UI_PREFIX, Dashboard, redirect, safe_next
from orderhooks.web.dashboard.guards import CSRF_FIELD, Endpoint, read_form, same_origin
from orderhooks.web.dashboard.portal import forget_partitioned_session
from orderhooks.web.dashboard.session import (
    SESSION_COOKIE,
    SESSION_LIFETIME_SECONDS,
    SIGNIN_COOKIE,
    SIGNIN_NONCE_LIFETIME_SECONDS,
)

KEY_FIELD = "api_key"
SIGNIN_FIELD = "signin_token"

_MESSAGES = {
    SignInRefusal.UNKNOWN: "That key was not recognised. Check it and try again.",
    SignInRefusal.ROLE: "An ingest key cannot open the dashboard; use an admin or partner key.",
}


def _is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def _signin_form(
    dash: Dashboard, request: Request, *, next_path: str, message: str = "", status_code: int = 200
) -> Response:
    nonce = dash.signer.new_signin_nonce()
    response = dash.visitor_page(
        "signin.html",
        title="Sign in",
        status_code=status_code,
        message=message,
        next_path=next_path,
        signin_token=dash.signer.signin_token(nonce),
    )
    response.set_cookie(
        SIGNIN_COOKIE,
        nonce,
        max_age=SIGNIN_NONCE_LIFETIME_SECONDS,
        path=UI_PREFIX,
        secure=_is_https(request),
        httponly=True,
        samesite="strict",
    )
    return response


def sign_in_page(dash: Dashboard) -> Endpoint:
    """GET /ui without a session: the sign-in form (200, as docs/api.md says)."""

    async def endpoint(request: Request) -> Response:
        return _signin_form(dash, request, next_path=safe_next(request.query_params.get("next")))

    return endpoint


def sign_in(dash: Dashboard) -> Endpoint:
    """POST /ui/signin: check the key, start a session, go where the user was heading."""

    async def endpoint(request: Request) -> Response:
        form = await read_form(request, max_fields=10)
        next_path = safe_next(str(form.get("next") or ""))
        presented = form.get(SIGNIN_FIELD)
        nonce = request.cookies.get(SIGNIN_COOKIE)
        if not same_origin(request) or not dash.signer.check_signin(
            nonce, presented if isinstance(presented, str) else None
        ):
            message = "The sign-in form expired. Please enter your key again."
            return _signin_form(
                dash, request, next_path=next_path, message=message, status_code=403
            )
        plaintext = form.get(KEY_FIELD)
        if not isinstance(plaintext, str) or not plaintext.strip():
            message = "Enter an API key."
            return _signin_form(
                dash, request, next_path=next_path, message=message, status_code=401
            )
        # The whole key, as the API takes it: ORDERHOOKS_ADMIN_KEY may be any length, and
        # the form (64 KiB at most, `read_form`) bounds what is hashed.
        result = await dash.keys.sign_in(plaintext)
        if isinstance(result, SignInRefusal):
            status_code = 401 if result == SignInRefusal.UNKNOWN else 403
            return _signin_form(
                dash,
                request,
                next_path=next_path,
                message=_MESSAGES[result],
                status_code=status_code,
            )
        response = redirect(next_path)
        response.set_cookie(
            SESSION_COOKIE,
            dash.signer.issue(result.id, dash.clock()),
            max_age=SESSION_LIFETIME_SECONDS,
            path=UI_PREFIX,
            secure=_is_https(request),
            httponly=True,
            samesite="strict",
        )
        response.delete_cookie(SIGNIN_COOKIE, path=UI_PREFIX)
        return response

    return endpoint


def sign_out(dash: Dashboard) -> Endpoint:
    """POST /ui/signout: forget the session (the form carries the CSRF token and comes
    from this site, as every form)."""

    async def endpoint(request: Request) -> Response:
        viewer = await dash.viewer(request)
        if viewer is not None:
            form = await read_form(request, max_fields=10)
            token = form.get(CSRF_FIELD)
            valid = isinstance(token, str) and dash.signer.check_csrf(viewer.session, token)
            if not valid or not same_origin(request):
                return dash.error_page(
                    viewer, 403, "This form has expired or did not come from this dashboard."
                )
            dash.end_session(viewer.session)
        response = redirect(UI_PREFIX)
        response.delete_cookie(
            SESSION_COOKIE,
            path=UI_PREFIX,
            secure=_is_https(request),
            httponly=True,
            samesite="strict",
        )
        forget_partitioned_session(dash, request, response)
        return response

    return endpoint
