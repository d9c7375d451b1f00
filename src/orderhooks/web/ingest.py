"""The ingest API (docs/api.md): orders, status and courier updates, and batches.

Each endpoint reads its JSON body and hands it to `orderhooks.service.ingest`, the one
ingest path, which validates it and answers only once the events and deliveries are
committed (docs/guarantees.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request

from orderhooks.exceptions import NotFound, ValidationError
from orderhooks.metrics import INGEST_BATCH, INGEST_COURIER, INGEST_ORDER, INGEST_STATUS
from orderhooks.service import ingest
from orderhooks.service.context import ServiceContext
from orderhooks.store.base import IngestResult
from orderhooks.web import ingest_docs
from orderhooks.web.answer_models import EventIds, IngestAccepted
from orderhooks.web.auth import Caller, IngestCaller
from orderhooks.web.bodies import read_json, read_json_bytes
from orderhooks.web.context import ApiContext, get_context
from orderhooks.web.errors import ApiError
from orderhooks.web.openapi import AUTH_ERRORS, BODY_ERRORS, answers, json_body
from orderhooks.web.responses import OrjsonResponse

router = APIRouter(tags=["ingest"])


def _event_ids_answer(result: IngestResult) -> OrjsonResponse:
    status = 200 if result.repeat else 202
    return OrjsonResponse({"eventIds": list(result.event_ids)}, status_code=status)


_INGEST_ERRORS = (*AUTH_ERRORS, *BODY_ERRORS)


@router.post(
    INGEST_ORDER,
    summary="Post a new order, or a newer version of a known one",
    status_code=202,
    responses={
        **answers(202, IngestAccepted, "Stored; the events created", *_INGEST_ERRORS),
        **answers(200, IngestAccepted, "A byte-identical repeat: nothing created"),
    },
    openapi_extra=json_body(ingest_docs.ORDER),
)
async def post_order(request: Request, caller: IngestCaller) -> OrjsonResponse:
    """Validate and store an order document; a byte-identical repeat creates nothing."""
    ctx = get_context(request)
    raw, body = await read_json_bytes(request, ctx.settings.max_body_bytes)
    result = await ingest.ingest_order(ctx.service, body, raw)
    answer = {"orderId": result.order_id, "eventIds": list(result.event_ids)}
    return OrjsonResponse(answer, status_code=200 if result.repeat else 202)


UpdateIngest = Callable[[ServiceContext, str, Any], Awaitable[IngestResult]]


async def _require_order(
    ctx: ApiContext, order_id: str, caller: Caller, headers: Mapping[str, str] | None = None
) -> None:
    """404 when the order is unknown: an update's body is judged only for a known order
    (docs/api.md, authentication). Asked only once a body is refused, so that a valid
    update costs no read more than the ingest's own."""
    try:
        await ctx.store.get_order(order_id, caller.scope)
    except NotFound:
        raise ApiError(404, f"unknown order {order_id!r}", headers=headers) from None


def _add_update_route(
    *,
    path: str,
    name: str,
    summary: str,
    description: str,
    repeat: str | None,
    body_schema: str,
    ingest_update: UpdateIngest,
) -> None:
    """Declare one of the update endpoints of a known order (status, courier): they differ
    only in the body they take, how the service validates it, and whether a repeat
    answers 200 (`repeat` describes it; None where the endpoint has no repeats)."""

    async def post_update(request: Request, orderId: str, caller: IngestCaller) -> OrjsonResponse:
        ctx = get_context(request)
        try:
            update = await read_json(request, ctx.settings.max_body_bytes)
            return _event_ids_answer(await ingest_update(ctx.service, orderId, update))
        except ApiError as exc:
            if exc.status >= 500:
                raise
            await _require_order(ctx, orderId, caller, exc.headers)
            raise
        except ValidationError:
            await _require_order(ctx, orderId, caller)
            raise

    post_update.__name__ = post_update.__qualname__ = name  # as tracebacks and logs name it
    router.add_api_route(
        path,
        post_update,
        methods=["POST"],
        name=name,
        summary=summary,
        description=description,
        status_code=202,
        responses={
            **answers(202, EventIds, "Stored; the events created", 404, *_INGEST_ERRORS),
            **(answers(200, EventIds, repeat) if repeat is not None else {}),
        },
        openapi_extra=json_body(body_schema),
    )


_add_update_route(
    path=INGEST_STATUS,
    name="post_status",
    summary="Post a status update of a known order",
    description="Store a status update; an exact repeat creates nothing; unknown order 404.",
    repeat="An exact repeat (same status and timeStamp)",
    body_schema=ingest_docs.STATUS_UPDATE,
    ingest_update=ingest.ingest_status,
)
_add_update_route(
    path=INGEST_COURIER,
    name="post_courier",
    summary="Post a courier update of a known order",
    description="Store a courier update; unknown order 404. Every courier update creates an "
    "event: there is no repeat detection.",
    repeat=None,
    body_schema=ingest_docs.COURIER_UPDATE,
    ingest_update=ingest.ingest_courier,
)


@router.post(
    INGEST_BATCH,
    summary="Post a batch of order events, all stored or none",
    status_code=202,
    responses=answers(202, EventIds, "Stored; every event created, in item order", *_INGEST_ERRORS),
    openapi_extra=json_body(ingest_docs.BATCH),
)
async def post_batch(request: Request, caller: IngestCaller) -> OrjsonResponse:
    """Validate every item, then store them all in one transaction (repeats add none)."""
    ctx = get_context(request)
    body = await read_json(request, ctx.settings.max_body_bytes)
    event_ids = await ingest.ingest_batch(ctx.service, body)
    return OrjsonResponse({"eventIds": event_ids}, status_code=202)
