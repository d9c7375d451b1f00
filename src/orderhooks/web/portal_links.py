"""Portal links (docs/api.md, docs/dashboard.md): `POST /v1/portal-links` makes a one-time
URL that opens a partner's view of some accounts in the dashboard, without a key."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from orderhooks.service import portal
from orderhooks.web.answer_json import portal_link_json
from orderhooks.web.answer_models import PortalLinkCreated
from orderhooks.web.auth import PartnerCaller
from orderhooks.web.bodies import read_accounts_body
from orderhooks.web.context import get_context
from orderhooks.web.dashboard.portal import PORTAL_PATH
from orderhooks.web.openapi import AUTH_ERRORS, BODY_ERRORS, answers, json_body
from orderhooks.web.request_models import PortalLinkCreate
from orderhooks.web.responses import OrjsonResponse

router = APIRouter()


@router.post(
    "/v1/portal-links",
    tags=["portal links"],
    summary="Create a one-time link into the dashboard",
    status_code=201,
    responses=answers(
        201,
        PortalLinkCreated,
        "Created; the URL (with its one-time token) is shown this once",
        *AUTH_ERRORS,
        *BODY_ERRORS,
    ),
    openapi_extra=json_body(PortalLinkCreate),
)
async def create_portal_link(request: Request, caller: PartnerCaller) -> OrjsonResponse:
    """A link that signs a browser into the dashboard once, seeing only `accounts`, until
    `expiresInSeconds` from now. A partner may name its own accounts only."""
    ctx = get_context(request)
    spec = await read_accounts_body(request, PortalLinkCreate, ctx.settings.max_body_bytes, caller)
    link, token = await portal.create_portal_link(
        ctx.service, caller.actor, spec.accounts, spec.expires_in_seconds
    )
    url = f"{str(request.base_url).rstrip('/')}{PORTAL_PATH}/{token}"
    return OrjsonResponse(portal_link_json(link, url), status_code=201)


@router.delete(
    "/v1/portal-links/{linkId}",
    tags=["portal links"],
    summary="Revoke a portal link",
    status_code=204,
    responses=answers(
        204,
        None,
        "Revoked: the link can no longer be opened, and its dashboard session has ended",
        404,
        *AUTH_ERRORS,
    ),
)
async def revoke_portal_link(request: Request, linkId: str, caller: PartnerCaller) -> Response:
    """End a link now, used or not (a leaked link, a partner that should no longer look).
    A partner may revoke the links of its own accounts only; others are 404."""
    ctx = get_context(request)
    await portal.revoke_portal_link(ctx.service, caller.actor, linkId, caller.scope)
    return Response(status_code=204)
