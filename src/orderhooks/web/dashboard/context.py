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
from orderhooks.web.dashboard.auth import KeyDirectory, Viewer
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

# Pages are per-user and may show payloads: never cached, never framed, no inline script.
SECURITY_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


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
        self.keys = KeyDirectory(store)
        self.templates = build_templates()
        self._signer: SessionSigner | None = None
        # Sessions signed out before they expire, by nonce, so that a copied cookie dies
        # with the sign-out (in this process; other processes see it expire).
        self._ended: dict[str, int] = {}

    @property
    def service(self) -> ServiceContext:
        """What the operations of `orderhooks.service` need, from the dashboard's parts."""
        return ServiceContext(self.store, self.settings, self.clock)

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
        key = await self.keys.current(session.key_id)
        if key is None:
            return None
        return Viewer(key=key, session=session, csrf_token=self.signer.csrf_token(session))

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
        return HTMLResponse(html, status_code=status_code, headers=dict(SECURITY_HEADERS))

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
    """Send a visitor without a session to the sign-in page, remembering where they were."""
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return redirect(f"{UI_PREFIX}?next={quote(target, safe='')}")


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a dashboard path only, never another site."""
    if not value or "\\" in value or "//" in value:
        return UI_PREFIX
    if value == UI_PREFIX or value.startswith((f"{UI_PREFIX}/", f"{UI_PREFIX}?")):
        return value
    return UI_PREFIX
