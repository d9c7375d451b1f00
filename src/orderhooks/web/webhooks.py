"""Webhook subscriptions (docs/api.md, webhooks): create, list, read, change, delete.

Partners manage the webhooks of their own accounts: a webhook is visible to a partner
only when all its accounts are the partner's, and naming a foreign account (or `*`) in
a body or filter is 403. Every change is written to the audit trail without secrets or
header values (static headers often carry the receiver's credentials).
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from orderhooks.domain.model import Webhook, WebhookState
from orderhooks.service import webhooks as operations
from orderhooks.store.base import WebhookFilter
from orderhooks.web.answer_json import webhook_json
from orderhooks.web.answer_models import WebhookCreated, WebhookOut, WebhookPage
from orderhooks.web.auth import PartnerCaller
from orderhooks.web.bodies import read_accounts_body
from orderhooks.web.common import IdQuery, PageParams, page_answer
from orderhooks.web.context import ApiContext, get_context
from orderhooks.web.openapi import AUTH_ERRORS, BODY_ERRORS, answers, json_body
from orderhooks.web.request_models import WebhookCreate, WebhookPatch
from orderhooks.web.responses import OrjsonResponse

router = APIRouter(tags=["webhooks"])

WEBHOOK_PATH = "/v1/webhooks/{webhookId}"


def as_json(ctx: ApiContext, webhook: Webhook) -> dict[str, Any]:
    """A webhook's JSON with the server's retry schedule as its default."""
    return webhook_json(webhook, ctx.settings.retry_schedule)


async def _caller_webhook(request: Request, webhookId: str, caller: PartnerCaller) -> Webhook:
    """The webhook `WEBHOOK_PATH` names; 404 when absent or not the caller's (the key is
    checked first)."""
    return await get_context(request).store.get_webhook(webhookId, caller.scope)


CallerWebhook = Annotated[Webhook, Depends(_caller_webhook)]


def _stored_value(value: Any) -> Any:
    """Lists become tuples: Webhook values are immutable; nested bodies (`batch`, `tls`)
    go on as their JSON, for the service to check."""
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, exclude_none=True)
    return tuple(value) if isinstance(value, list) else value


def _given_fields(spec: BaseModel) -> dict[str, Any]:
    """The fields a body gave, as Webhook values."""
    return {name: _stored_value(getattr(spec, name)) for name in spec.model_fields_set}


@router.post(
    "/v1/webhooks",
    summary="Create a webhook",
    status_code=201,
    responses=answers(
        201, WebhookCreated, "Created; the secret is shown this once", *AUTH_ERRORS, *BODY_ERRORS
    ),
    openapi_extra=json_body(WebhookCreate),
)
async def create_webhook(request: Request, caller: PartnerCaller) -> OrjsonResponse:
    """Create a webhook (sending nothing to its URL); the answer carries its secret."""
    ctx = get_context(request)
    spec = await read_accounts_body(request, WebhookCreate, ctx.settings.max_body_bytes, caller)
    fields = {
        **_given_fields(spec),
        "url": spec.url,
        "accounts": spec.accounts,
        "event_types": spec.event_types,
    }
    stored, secret = await operations.create_webhook(ctx.service, caller.actor, fields)
    return OrjsonResponse({**as_json(ctx, stored), "secret": secret}, status_code=201)


@router.get(
    "/v1/webhooks",
    summary="List webhooks",
    responses=answers(200, WebhookPage, "A page of webhooks, oldest first", *AUTH_ERRORS),
)
async def list_webhooks(
    request: Request,
    caller: PartnerCaller,
    page: PageParams,
    account: IdQuery = None,
    state: Annotated[WebhookState | None, Query()] = None,
) -> OrjsonResponse:
    """The caller's webhooks, optionally of one account and in one state."""
    ctx = get_context(request)
    if account is not None:
        caller.require_accounts([account])
    flt = WebhookFilter(scope=caller.scope, account=account, state=state)
    return await page_answer(
        page, "wh", partial(ctx.store.list_webhooks, flt), lambda w: as_json(ctx, w)
    )


@router.get(
    WEBHOOK_PATH,
    summary="Read a webhook",
    responses=answers(200, WebhookOut, "The webhook", 404, *AUTH_ERRORS),
)
async def get_webhook(request: Request, webhook: CallerWebhook) -> OrjsonResponse:
    """One webhook; 404 when absent or not the caller's."""
    return OrjsonResponse(as_json(get_context(request), webhook))


@router.patch(
    WEBHOOK_PATH,
    summary="Change a webhook",
    responses=answers(200, WebhookOut, "The changed webhook", 404, 409, *AUTH_ERRORS, *BODY_ERRORS),
    openapi_extra=json_body(WebhookPatch, description="Any subset of the webhook's fields"),
)
async def patch_webhook(
    request: Request, webhook: CallerWebhook, caller: PartnerCaller
) -> OrjsonResponse:
    """Change the given fields (sending nothing to the URL); the secret is rotated apart."""
    ctx = get_context(request)
    patch = await read_accounts_body(request, WebhookPatch, ctx.settings.max_body_bytes, caller)
    stored = await operations.patch_webhook(
        ctx.service, caller.actor, webhook, _given_fields(patch)
    )
    return OrjsonResponse(as_json(ctx, stored))


@router.delete(
    WEBHOOK_PATH,
    summary="Delete a webhook",
    status_code=204,
    responses=answers(
        204, None, "Deleted; its pending deliveries are cancelled", 404, *AUTH_ERRORS
    ),
)
async def delete_webhook(
    request: Request, webhook: CallerWebhook, caller: PartnerCaller
) -> Response:
    """Delete a webhook; its pending and delivering deliveries become `cancelled`."""
    await operations.delete_webhook(get_context(request).service, caller.actor, webhook)
    return Response(status_code=204)
