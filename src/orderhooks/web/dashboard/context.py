"""What every dashboard page needs: the store, the session signer, the templates, a clock."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from orderhooks.clock import Clock, utc_now
from orderhooks.config import Settings
from orderhooks.service.context import ServiceContext
from orderhooks.store import Store
from orderhooks.web.dashboard.auth import (
    KeyDirectory,
    Viewer,
    is_portal_session,
    portal_principal,
)
from orderhooks.web.dashboard.formatting import FILTERS
from orderhooks.web.dashboard.session import (
    SESSION_COOKIE,
    Session,
    SessionSigner,
    load_session_secret,
)
from orderhooks.web.dashboard.timeline import courier_label, status_label

PACKAGE_DIR = Path(__file__).parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
UI_PREFIX = "/ui"

# Pages are per-user and may show payloads: never cached, no inline script, and framed
# only by the sites ORDERHOOKS_UI_FRAME_ANCESTORS names (none by default).
_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors {ancestors}; base-uri 'none'"
)
# The stylesheet and scripts under /ui/static: the same for everyone, so cacheable and
# never framed, but a browser must take them only as the type they are served with.
ASSET_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# Every page has the assets' headers (one list, so the two cannot drift) and no caching.
_BASE_HEADERS: Mapping[str, str] = {"Cache-Control": "no-store", **ASSET_HEADERS}


def security_headers(frame_ancestors: str) -> dict[str, str]:
    """The headers of every dashboard page, for a validated frame-ancestors source list.

    X-Frame-Options says the same for browsers without CSP: DENY for `'none'`,
    SAMEORIGIN for `'self'` alone, and nothing when other sites may frame the pages
    (it cannot name them, and a DENY would override the CSP in some browsers)."""
    headers = {
        **_BASE_HEADERS,
        "Content-Security-Policy": _CONTENT_SECURITY_POLICY.format(ancestors=frame_ancestors),
    }
    if frame_ancestors == "'none'":
        headers["X-Frame-Options"] = "DENY"
    elif frame_ancestors == "'self'":
        headers["X-Frame-Options"] = "SAMEORIGIN"
    return headers


def framed_by_other_sites(frame_ancestors: str) -> bool:
    """Whether the frame-ancestors list lets sites other than this one frame the pages."""
    return frame_ancestors not in ("'none'", "'self'")


def query_string(params: Mapping[str, object] | None = None, **more: object) -> str:
    """`?a=1&b=2` from the non-empty values (a Jinja global for links and pagers)."""
    merged = {**(params or {}), **more}
    pairs = [(name, str(value)) for name, value in merged.items() if value not in (None, "")]
    return "?" + urlencode(pairs) if pairs else ""


def build_templates() -> Environment:
    """The Jinja2 environment of the dashboard, autoescaping everything."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    env.filters["status_label"] = status_label
    env.filters["courier_label"] = courier_label
    env.globals["qs"] = query_string
    return env


class Dashboard:
    """The dashboard's dependencies, shared by its routes."""

    def __init__(self, *, settings: Settings, store: Store, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        # What the operations of `orderhooks.service` need, from the dashboard's parts.
        self.service = ServiceContext(store, settings, clock)
        self.keys = KeyDirectory(store)
        self.templates = build_templates()
        self.headers = security_headers(settings.ui_frame_ancestors)
        self._signer: SessionSigner | None = None
        # Sessions signed out before they expire, by nonce, so that a copied cookie dies
        # with the sign-out (in this process; other processes see it expire).
        self._ended: dict[str, int] = {}

    @property
    def signer(self) -> SessionSigner:
        """The session signer; its secret is read (or created) on first use, not at mount
        time, because the data dir may not exist yet when the app is built."""
        if self._signer is None:
            self._signer = SessionSigner(load_session_secret(self.settings.data_dir))
        return self._signer

    async def viewer(self, request: Request) -> Viewer | None:
        """The signed-in viewer of a request, or None (no, expired, or revoked session)."""
        session = self.signer.read(request.cookies.get(SESSION_COOKIE), self.clock())
        if session is None or session.nonce in self._ended:
            return None
        csrf_token = self.signer.csrf_token(session)
        if is_portal_session(session):
            return await self._portal_viewer(session, csrf_token)
        key = await self.keys.current(session.key_id)
        if key is None:
            return None
        return Viewer(key=key, session=session, csrf_token=csrf_token)

    async def _portal_viewer(self, session: Session, csrf_token: str) -> Viewer | None:
        """The viewer of a portal link's session: read again on every request, so that
        ending the link (or revoking the key that made it) ends the session at once."""
        link = await self.store.portal_link_by_id(session.key_id)
        if link is None or not link.session_open(self.clock()):
            return None
        if await self.keys.current(link.created_by) is None:
            return None
        return Viewer(
            key=portal_principal(link), session=session, csrf_token=csrf_token, portal_link=link
        )

    def end_session(self, session: Session) -> None:
        """Refuse this session from now on, even though its cookie has not expired."""
        now = self.clock().timestamp()
        self._ended = {n: exp for n, exp in self._ended.items() if exp > now}
        self._ended[session.nonce] = session.expires_at

    def render(
        self,
        template: str,
        *,
        viewer: Viewer | None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """A page rendered from `template`, with the security headers."""
        html = self.templates.get_template(template).render(
            viewer=viewer, now=self.clock(), **context
        )
        return HTMLResponse(html, status_code=status_code, headers=dict(self.headers))

    def visitor_page(
        self, template: str, *, title: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        """A page for a visitor without a session (signing in, opening a portal link): no
        viewer, so no navigation."""
        return self.render(
            template, viewer=None, status_code=status_code, title=title, nav="", **context
        )

    def error_page(self, viewer: Viewer | None, status_code: int, message: str) -> HTMLResponse:
        """An error page with `status_code`."""
        return self.render(
            "error.html",
            viewer=viewer,
            status_code=status_code,
            title=f"Error {status_code}",
            nav="",
            message=message,
        )


def redirect(location: str) -> RedirectResponse:
    """303 See Other: after a form, the browser GETs the next page."""
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


def sign_in_redirect(request: Request) -> Response:
    """Send a visitor without a session to the sign-in page, remembering where they were:
    the page itself, or for a form posted once the session ended, the page of the form
    (`/ui/webhooks/{id}` for `/ui/webhooks/{id}/disable`: a form's address takes POST only,
    and the form is not sent again)."""
    target = request.url.path
    if request.method not in ("GET", "HEAD"):
        target = target.rsplit("/", 1)[0] or UI_PREFIX
    elif request.url.query:
        target += "?" + request.url.query
    return redirect(f"{UI_PREFIX}?next={quote(target, safe='')}")


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a dashboard path only, never another site."""
    if not value or "\\" in value or "//" in value:
        return UI_PREFIX
    if value == UI_PREFIX or value.startswith((f"{UI_PREFIX}/", f"{UI_PREFIX}?")):
        return value
    return UI_PREFIX
