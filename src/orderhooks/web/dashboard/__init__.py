"""The dashboard at /ui: server-rendered pages, signed in with an API key.

Pages read through the `Store` with the scope the API applies to the same key; the
buttons call the same store methods as the API and leave the same audit trail. See
docs/dashboard.md for the pages and the security model.
"""

from __future__ import annotations

from fastapi import FastAPI

from orderhooks.clock import Clock, utc_now
from orderhooks.config import Settings
from orderhooks.store import Store
from orderhooks.web.dashboard.context import Dashboard
from orderhooks.web.dashboard.routes import dashboard_routes


def mount_dashboard(
    app: FastAPI, *, settings: Settings, store: Store, clock: Clock = utc_now
) -> None:
    """Add the /ui routes to `app` (plain Starlette routes: not part of the OpenAPI document)."""
    dash = Dashboard(settings=settings, store=store, clock=clock)
    app.router.routes.extend(dashboard_routes(dash))


__all__ = ["mount_dashboard"]
