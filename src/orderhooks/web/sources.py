"""`GET /v1/sources` (admin): the broker sources this process consumes (docs/api.md).

Each entry shows the source's state and counters, its URL without the password; the
credentials are never part of any answer.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from orderhooks.sources.consumer import SourceStatus
from orderhooks.sources.runtime import SourceSet
from orderhooks.web.answer_models import SourcePage
from orderhooks.web.auth import AdminCaller
from orderhooks.web.context import get_context
from orderhooks.web.openapi import AUTH_ERRORS, answers
from orderhooks.web.responses import OrjsonResponse

router = APIRouter(tags=["sources"])


def source_statuses(request: Request) -> list[SourceStatus]:
    """The sources of the process serving `request`, consumed here or only configured."""
    running = getattr(request.app.state, "sources", None)
    if isinstance(running, SourceSet):
        return running.statuses
    # Not consumed by this process (e.g. `orderhooks api`): the configured sources, idle.
    return [SourceStatus(config) for config in get_context(request).settings.sources]


@router.get(
    "/v1/sources",
    summary="List the broker sources and their state",
    responses=answers(200, SourcePage, "The sources, in configuration order", *AUTH_ERRORS),
)
async def list_sources(request: Request, caller: AdminCaller) -> OrjsonResponse:
    """Every configured source: state, messages consumed and dead-lettered, lag."""
    return OrjsonResponse({"data": [status.as_json() for status in source_statuses(request)]})
