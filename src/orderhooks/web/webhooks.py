"""Webhook subscriptions (PRODUCT 3, 7): create, list, read, change, delete.

Partners manage the webhooks of their own accounts: a webhook is visible to a partner
only when all its accounts are the partner's, and naming a foreign account (or `*`) in
a body or filter is 403. Every change is written to the audit trail without secrets or
header values (static headers often carry the receiver's credentials).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request, Response

from orderhooks.delivery.netguard import check_url
from orderhooks.delivery.signing import generate_secret
from orderhooks.domain.ids import new_id
from orderhooks.domain.model import SigningSecret, Webhook, WebhookState
from orderhooks.exceptions import FieldProblem, ValidationError, WebhookLimitReached
from orderhooks.store.base import WebhookFilter
from orderhooks.web.auth import Caller, PartnerCaller
from orderhooks.web.bodies import read_json
from orderhooks.web.common import DEFAULT_PAGE_SIZE, Cursor, Limit, record_audit
from orderhooks.web.context import ApiContext, get_context
from orderhooks.web.openapi import AUTH_ERRORS, BODY_ERRORS, answers, json_body
from orderhooks.web.responses import OrjsonResponse
from orderhooks.web.schemas import MAX_TIMEOUT_SECONDS, WebhookCreate, WebhookPatch, validate_body
from orderhooks.web.shapes import WebhookCreated, WebhookOut, WebhookPage
from orderhooks.web.views import page_json, webhook_json

router = APIRouter(tags=["webhooks"])

WEBHOOK_PATH = "/v1/webhooks/{webhookId}"


def as_json(ctx: ApiContext, webhook: Webhook) -> dict[str, Any]:
    """A webhook's JSON with the server's retry schedule as its default."""
    return webhook_json(webhook, ctx.settings.retry_schedule)


def _precheck_accounts(caller: Caller, body: Any) -> None:
    """403 for foreign accounts before the rest of the body is validated (PRODUCT 6)."""
    if isinstance(body, dict) and isinstance(body.get("accounts"), list):
        caller.require_accounts(a for a in body["accounts"] if isinstance(a, str))


def check_webhook_url(ctx: ApiContext, url: str) -> None:
    """422 naming `url` unless it is http(s) with a host that is not a blocked literal."""
    problem = check_url(url, ctx.settings.allowed_networks)
    if problem is not None:
        raise ValidationError([FieldProblem("url", problem)])


async def check_webhook_cap(
    ctx: ApiContext, accounts: Iterable[str], already: Sequence[str] = ()
) -> None:
    """422 `limit_exceeded` when an account already has the most webhooks allowed."""
    cap = ctx.settings.max_webhooks_per_account
    for account in accounts:
        if account not in already and await ctx.store.count_webhooks(account) >= cap:
            raise WebhookLimitReached(account, cap)


def _host(url: str) -> str:
    """The host of a URL: its user info, path and query may carry credentials."""
    return urlsplit(url).hostname or ""


def _stored_value(value: Any) -> Any:
    """Lists become tuples: Webhook values are immutable."""
    return tuple(value) if isinstance(value, list) else value


@router.post(
    "/v1/webhooks",
    summary="Create a webhook",
    status_code=201,
    response_class=OrjsonResponse,
    responses=answers(
        201, WebhookCreated, "Created; the secret is shown this once", *AUTH_ERRORS, *BODY_ERRORS
    ),
    openapi_extra=json_body(WebhookCreate),
)
async def create_webhook(request: Request, caller: PartnerCaller) -> OrjsonResponse:
    """Create a webhook (sending nothing to its URL); the answer carries its secret."""
    ctx = get_context(request)
    body = await read_json(request, ctx.settings.max_body_bytes)
    _precheck_accounts(caller, body)
    spec = validate_body(WebhookCreate, body)
    caller.require_accounts(spec.accounts)
    check_webhook_url(ctx, spec.url)
    now = ctx.now()
    given = {name: _stored_value(getattr(spec, name)) for name in spec.model_fields_set}
    if "timeout_seconds" not in given:
        given["timeout_seconds"] = min(ctx.settings.delivery_timeout_seconds, MAX_TIMEOUT_SECONDS)
    secret = generate_secret()
    webhook = Webhook(
        **{
            **given,
            "id": new_id("wh"),
            "url": spec.url,
            "accounts": tuple(spec.accounts),
            "event_types": tuple(spec.event_types),
            "secrets": (SigningSecret(secret),),
            "created_at": now,
            "updated_at": now,
        }
    )
    cap = ctx.settings.max_webhooks_per_account
    stored = await ctx.store.create_webhook(webhook, max_per_account=cap)
    details = {"host": _host(stored.url), "accounts": list(stored.accounts)}
    await record_audit(ctx, caller, "webhook.created", ("webhook", stored.id), details)
    return OrjsonResponse({**as_json(ctx, stored), "secret": secret}, status_code=201)


@router.get(
    "/v1/webhooks",
    summary="List webhooks",
    response_class=OrjsonResponse,
    responses=answers(200, WebhookPage, "A page of webhooks, oldest first", *AUTH_ERRORS),
)
async def list_webhooks(
    request: Request,
    caller: PartnerCaller,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
    account: Annotated[str | None, Query(max_length=128)] = None,
    state: Annotated[WebhookState | None, Query()] = None,
) -> OrjsonResponse:
    """The caller's webhooks, optionally of one account and in one state."""
    ctx = get_context(request)
    if account is not None:
        caller.require_accounts([account])
    flt = WebhookFilter(scope=caller.scope, account=account, state=state)
    page = await ctx.store.list_webhooks(flt, limit, cursor)
    return OrjsonResponse(page_json(page, lambda w: as_json(ctx, w)))


@router.get(
    WEBHOOK_PATH,
    summary="Read a webhook",
    response_class=OrjsonResponse,
    responses=answers(200, WebhookOut, "The webhook", 404, *AUTH_ERRORS),
)
async def get_webhook(request: Request, webhookId: str, caller: PartnerCaller) -> OrjsonResponse:
    """One webhook; 404 when absent or not the caller's."""
    ctx = get_context(request)
    return OrjsonResponse(as_json(ctx, await ctx.store.get_webhook(webhookId, caller.scope)))


@router.patch(
    WEBHOOK_PATH,
    summary="Change a webhook",
    response_class=OrjsonResponse,
    responses=answers(200, WebhookOut, "The changed webhook", 404, *AUTH_ERRORS, *BODY_ERRORS),
    openapi_extra=json_body(WebhookPatch, description="Any subset of the webhook's fields"),
)
async def patch_webhook(request: Request, webhookId: str, caller: PartnerCaller) -> OrjsonResponse:
    """Change the given fields (sending nothing to the URL); the secret is rotated apart."""
    ctx = get_context(request)
    webhook = await ctx.store.get_webhook(webhookId, caller.scope)
    body = await read_json(request, ctx.settings.max_body_bytes)
    _precheck_accounts(caller, body)
    patch = validate_body(WebhookPatch, body)
    changed = sorted(patch.model_fields_set)
    if not changed:
        return OrjsonResponse(as_json(ctx, webhook))
    if "url" in changed:
        check_webhook_url(ctx, patch.url)
    if "accounts" in changed:
        caller.require_accounts(patch.accounts)
        await check_webhook_cap(ctx, patch.accounts, already=webhook.accounts)
    values = {name: _stored_value(getattr(patch, name)) for name in changed}
    stored = await ctx.store.update_webhook(replace(webhook, **values, updated_at=ctx.now()))
    fields = [WebhookPatch.model_fields[name].alias or name for name in changed]
    await record_audit(ctx, caller, "webhook.updated", ("webhook", stored.id), {"fields": fields})
    return OrjsonResponse(as_json(ctx, stored))


@router.delete(
    WEBHOOK_PATH,
    summary="Delete a webhook",
    status_code=204,
    response_class=Response,
    responses=answers(
        204, None, "Deleted; its pending deliveries are cancelled", 404, *AUTH_ERRORS
    ),
)
async def delete_webhook(request: Request, webhookId: str, caller: PartnerCaller) -> Response:
    """Delete a webhook; its pending and delivering deliveries become `cancelled`."""
    ctx = get_context(request)
    webhook = await ctx.store.get_webhook(webhookId, caller.scope)
    await ctx.store.delete_webhook(webhook.id, ctx.now())
    await record_audit(ctx, caller, "webhook.deleted", ("webhook", webhook.id))
    return Response(status_code=204)
