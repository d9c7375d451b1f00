"""The dashboard at /ui: server-rendered pages, signed in with an API key."""

from __future__ import annotations

from fastapi import FastAPI

from orderhooks.config import Settings
from orderhooks.store.base import Store


def mount_dashboard(app: FastAPI, *, settings: Settings, store: Store) -> None:
    """Add the /ui routes to `app`."""
    # Filled in by the dashboard work (issue 7).
