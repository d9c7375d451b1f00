"""The event types page: every event type a webhook can receive, with its description
and the JSON Schema of its envelope, from the same catalog as `GET /v1/event-types`."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from orderhooks.domain.catalog import BATCH_DESCRIPTION, BATCH_TYPE, batch_schema, event_catalog
from orderhooks.web.dashboard.auth import Viewer
from orderhooks.web.dashboard.context import Dashboard


def _indented(schema: object) -> str:
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode()


async def event_types_page(dash: Dashboard, request: Request, viewer: Viewer) -> Response:
    """GET /ui/event-types"""
    entries = [
        {"type": e["type"], "description": e["description"], "schema": _indented(e["schema"])}
        for e in event_catalog()
    ]
    batch = {
        "type": BATCH_TYPE,
        "description": BATCH_DESCRIPTION,
        "schema": _indented(batch_schema()),
    }
    return dash.render(
        "event_types.html",
        viewer=viewer,
        title="Event types",
        nav="event-types",
        entries=entries,
        batch=batch,
    )
