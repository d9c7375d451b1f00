"""Small pieces the routers share: list paging and time filters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Query
from pydantic import BaseModel

from orderhooks.domain.ids import is_id
from orderhooks.exceptions import FieldProblem, ValidationError
from orderhooks.store.base import Page
from orderhooks.web.answer_json import page_json
from orderhooks.web.request_models import parse_rfc3339
from orderhooks.web.responses import OrjsonResponse

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_CURSOR_CHARS = 200

Limit = Annotated[
    int,
    Query(ge=1, le=MAX_PAGE_SIZE, description=f"Page size, 1-{MAX_PAGE_SIZE}"),
]
Cursor = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_CHARS, description="`nextCursor` of the previous page"),
]
TimeQuery = Annotated[
    str | None,
    Query(description="RFC 3339 timestamp", json_schema_extra={"format": "date-time"}),
]


class PageQuery(BaseModel):
    """The paging parameters of every list endpoint, taken as one `PageParams` argument
    (FastAPI lists them where the argument stands, before the endpoint's filters)."""

    limit: Limit = DEFAULT_PAGE_SIZE
    cursor: Cursor = None

    def position(self, prefix: str) -> str | None:
        """The cursor, checked to be the id of an item of a list of `prefix` ids (what
        `nextCursor` holds); 422 naming `cursor` otherwise. Any other string would be taken
        as a position and answer everything or nothing. An empty cursor is the first page,
        for a client that sends `cursor=` before it has a nextCursor."""
        if not self.cursor:
            return None
        if is_id(self.cursor, prefix):
            return self.cursor
        raise ValidationError([FieldProblem("cursor", "must be the nextCursor of this list")])


PageParams = Annotated[PageQuery, Query()]

# A filter naming one object or account by id.
IdQuery = Annotated[str | None, Query(max_length=128)]


async def page_answer(
    page: PageQuery,
    prefix: str,
    read_page: Callable[[int, str | None], Awaitable[Page[T]]],
    item_json: Callable[[T], dict[str, Any]],
) -> OrjsonResponse:
    """What every list endpoint answers: the page `read_page` gives for the requested size
    and cursor (checked to be a `prefix` id), as `{"data": [...], "nextCursor": ...}`."""
    return OrjsonResponse(page_json(await read_page(page.limit, page.position(prefix)), item_json))


def query_time(name: str, value: str | None) -> datetime | None:
    """A timestamp query parameter; 422 naming it when it is not RFC 3339."""
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise ValidationError([FieldProblem(name, str(exc))]) from None


def time_range(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """`since` and `until` parsed; 422 when `until` is before `since`."""
    start, end = query_time("since", since), query_time("until", until)
    if start is not None and end is not None and end < start:
        raise ValidationError([FieldProblem("until", "must not be before since")])
    return start, end
