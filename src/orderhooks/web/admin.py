"""Operator endpoints (docs/guarantees.md, agreements and usage; docs/api.md, authentication): API
keys, agreements, the audit trail and the erasure of an order's personal data.

Keys are shown once, in the answer to create, and never again: lists, the audit trail
and error answers carry ids only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from starlette.convertors import Convertor, register_url_convertor

from orderhooks.exceptions import NotFound
from orderhooks.service import agreements, keys, orders
from orderhooks.web.answer_json import agreement_json, audit_json, key_json
from orderhooks.web.answer_models import (
    AgreementOut,
    AuditPage,
    ErasureOut,
    KeyCreated,
    KeyPage,
)
from orderhooks.web.auth import AdminCaller, PartnerCaller
from orderhooks.web.bodies import read_json, read_model
from orderhooks.web.common import PageParams, page_answer
from orderhooks.web.context import get_context
from orderhooks.web.openapi import AUTH_ERRORS, BODY_ERRORS, answers, json_body
from orderhooks.web.request_models import AgreementBody, KeyCreate, validate_body
from orderhooks.web.responses import OrjsonResponse

router = APIRouter()


class AccountConvertor(Convertor[str]):
    """An account in a path: any text an order may name, `/` and line breaks included
    (sent percent-encoded; Starlette's `path` stops at a line break)."""

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        """The account as it was decoded from the path."""
        return value

    def to_string(self, value: str) -> str:
        """The account as it goes into a path."""
        return value


register_url_convertor("account", AccountConvertor())

AccountPath = Annotated[str, Path(min_length=1, max_length=128)]


@router.post(
    "/v1/keys",
    tags=["keys"],
    summary="Create an API key",
    status_code=201,
    responses=answers(
        201, KeyCreated, "Created; the key is shown this once", *AUTH_ERRORS, *BODY_ERRORS
    ),
    openapi_extra=json_body(KeyCreate),
)
async def create_key(request: Request, caller: AdminCaller) -> OrjsonResponse:
    """A new key; only its hash is stored, the plaintext is in this answer only."""
    ctx = get_context(request)
    spec = await read_model(request, KeyCreate, ctx.settings.max_body_bytes)
    stored, plaintext = await keys.create_key(
        ctx.service, caller.actor, spec.role, spec.accounts, spec.name
    )
    return OrjsonResponse({**key_json(stored), "key": plaintext}, status_code=201)


@router.get(
    "/v1/keys",
    tags=["keys"],
    summary="List API keys",
    responses=answers(
        200, KeyPage, "A page of keys (revoked ones marked), oldest first", *AUTH_ERRORS
    ),
)
async def list_keys(request: Request, caller: AdminCaller, page: PageParams) -> OrjsonResponse:
    """Every key, without its plaintext or hash."""
    return await page_answer(page, "key", get_context(request).store.list_keys, key_json)


@router.delete(
    "/v1/keys/{keyId}",
    tags=["keys"],
    summary="Revoke an API key",
    status_code=204,
    responses=answers(204, None, "Revoked: the key is refused from now on", 404, *AUTH_ERRORS),
)
async def revoke_key(request: Request, keyId: str, caller: AdminCaller) -> Response:
    """Revoke a key; this process refuses it at once (others within seconds)."""
    ctx = get_context(request)
    await keys.revoke_key(ctx.service, caller.actor, keyId)
    ctx.keys.forget(keyId)
    return Response(status_code=204)


@router.put(
    "/v1/accounts/{account:account}/agreement",
    tags=["agreements"],
    summary="Record an account's agreement",
    responses=answers(
        200,
        AgreementOut,
        "Recorded; the account's webhooks become active",
        *AUTH_ERRORS,
        *BODY_ERRORS,
    ),
    openapi_extra=json_body(AgreementBody),
)
async def put_agreement(
    request: Request, account: AccountPath, caller: AdminCaller
) -> OrjsonResponse:
    """Record who signed, when, and the prices; awaiting webhooks become active."""
    ctx = get_context(request)
    body = await read_json(request, ctx.settings.max_body_bytes)
    agreements.check_account(account)
    spec = validate_body(AgreementBody, body)
    stored = await agreements.record_agreement(
        ctx.service,
        caller.actor,
        account,
        signed_by=spec.signed_by,
        signed_at=spec.signed_at,
        currency=spec.pricing.currency,
        per_thousand=spec.pricing.per_thousand.by_type(),
    )
    return OrjsonResponse(agreement_json(stored))


@router.get(
    "/v1/accounts/{account:account}/agreement",
    tags=["agreements"],
    summary="Read an account's agreement",
    responses=answers(200, AgreementOut, "The agreement", 404, *AUTH_ERRORS),
)
async def get_agreement(
    request: Request, account: AccountPath, caller: PartnerCaller
) -> OrjsonResponse:
    """The account's agreement; 404 when none is recorded or the account is not the caller's."""
    ctx = get_context(request)
    agreement = None
    if caller.scope.allows(account):
        agreement = await ctx.store.get_agreement(account)
    if agreement is None:
        raise NotFound(f"no agreement recorded for account {account!r}")
    return OrjsonResponse(agreement_json(agreement))


@router.get(
    "/v1/audit",
    tags=["audit"],
    summary="The audit trail",
    responses=answers(200, AuditPage, "A page of audit entries, newest first", *AUTH_ERRORS),
)
async def list_audit(request: Request, caller: AdminCaller, page: PageParams) -> OrjsonResponse:
    """Who created, changed, rotated, enabled, disabled or deleted what, and when."""
    return await page_answer(page, "aud", get_context(request).store.list_audit, audit_json)


@router.post(
    "/v1/orders/{orderId}/erase",
    tags=["deliveries, events and orders"],
    summary="Erase an order's personal data",
    responses=answers(
        200,
        ErasureOut,
        "Erased from the stored order and its events",
        404,
        *AUTH_ERRORS,
        *BODY_ERRORS,
    ),
)
async def erase_order(request: Request, orderId: str, caller: AdminCaller) -> OrjsonResponse:
    """Remove the customer's personal data from the stored order and every stored event of
    it: whatever is sent from now on (pending deliveries, retries, replays) carries the
    erased data. What was delivered before is the receiver's to erase."""
    ctx = get_context(request)
    await ctx.store.get_order(orderId, caller.scope)  # 404 comes before the body's checks
    # No body is expected; an empty request needs no content type, and a body that is not
    # acceptable JSON is refused (400, 413, 415) before anything is erased.
    await read_json(request, ctx.settings.max_body_bytes, required=False)
    changed = await orders.erase_order(ctx.service, caller.actor, orderId)
    return OrjsonResponse({"orderId": orderId, "events": changed})
