"""What can be done to one webhook besides editing it (docs/guarantees.md, manual control;
docs/api.md): its secret and rotation, enable and disable, a test event, recover, replay,
statistics."""

from __future__ import annotations

from fastapi import APIRouter, Request

from orderhooks.domain.model import Webhook
from orderhooks.service import deliveries, webhooks
from orderhooks.web.answer_json import stats_json
from orderhooks.web.answer_models import (
    DeliveryIdOut,
    QueuedOut,
    RequeuedOut,
    SecretOut,
    StatsOut,
    WebhookOut,
)
from orderhooks.web.auth import PartnerCaller
from orderhooks.web.bodies import read_json, read_model
from orderhooks.web.context import get_context
from orderhooks.web.openapi import AUTH_ERRORS, BODY_ERRORS, answers, json_body
from orderhooks.web.request_models import (
    RecoverRequest,
    ReplayRequest,
    SecretRotation,
    TestRequest,
)
from orderhooks.web.responses import OrjsonResponse
from orderhooks.web.webhooks import WEBHOOK_PATH, CallerWebhook, as_json

router = APIRouter(tags=["webhooks"])

_OBJECT_ERRORS = (404, *AUTH_ERRORS)
_BODY_OBJECT_ERRORS = (404, *AUTH_ERRORS, *BODY_ERRORS)


@router.get(
    WEBHOOK_PATH + "/secret",
    summary="Read the webhook's current secret",
    responses=answers(200, SecretOut, "The newest signing secret", *_OBJECT_ERRORS),
)
async def get_secret(webhook: CallerWebhook) -> OrjsonResponse:
    """`{"secret": "whsec_…"}`: the secret that signs from now on."""
    return OrjsonResponse({"secret": webhook.secrets[0].secret})


@router.post(
    WEBHOOK_PATH + "/secret/rotate",
    summary="Rotate the webhook's secret",
    responses=answers(200, SecretOut, "The new secret", *_BODY_OBJECT_ERRORS),
    openapi_extra=json_body(SecretRotation, required=False),
)
async def rotate_secret(
    request: Request, webhook: CallerWebhook, caller: PartnerCaller
) -> OrjsonResponse:
    """Replace the secret; the old one keeps signing alongside during the grace period."""
    ctx = get_context(request)
    spec = await read_model(request, SecretRotation, ctx.settings.max_body_bytes, required=False)
    new_secret = await webhooks.rotate_secret(
        ctx.service, caller.actor, webhook, spec.grace_period_seconds, spec.secret
    )
    return OrjsonResponse({"secret": new_secret})


async def _set_state(
    request: Request, webhook: Webhook, caller: PartnerCaller, enable: bool
) -> OrjsonResponse:
    ctx = get_context(request)
    # These endpoints take no body; an empty request needs no content type.
    await read_json(request, ctx.settings.max_body_bytes, required=False)
    stored = await webhooks.set_enabled(ctx.service, caller.actor, webhook, enable)
    return OrjsonResponse(as_json(ctx, stored))


@router.post(
    WEBHOOK_PATH + "/enable",
    summary="Enable a webhook",
    responses=answers(
        200, WebhookOut, "The webhook (awaiting_agreement without one)", *_BODY_OBJECT_ERRORS
    ),
)
async def enable_webhook(
    request: Request, webhook: CallerWebhook, caller: PartnerCaller
) -> OrjsonResponse:
    """Make the webhook active (or awaiting_agreement); its waiting deliveries resume."""
    return await _set_state(request, webhook, caller, enable=True)


@router.post(
    WEBHOOK_PATH + "/disable",
    summary="Disable a webhook",
    responses=answers(200, WebhookOut, "The webhook, disabled (manual)", *_BODY_OBJECT_ERRORS),
)
async def disable_webhook(
    request: Request, webhook: CallerWebhook, caller: PartnerCaller
) -> OrjsonResponse:
    """Disable the webhook (`manual`): no new deliveries, pending ones wait."""
    return await _set_state(request, webhook, caller, enable=False)


@router.post(
    WEBHOOK_PATH + "/test",
    summary="Send a test event",
    status_code=202,
    responses=answers(202, DeliveryIdOut, "The test delivery is queued", *_BODY_OBJECT_ERRORS),
    openapi_extra=json_body(TestRequest, required=False, description="Defaults to order.new"),
)
async def test_webhook(
    request: Request, webhook: CallerWebhook, caller: PartnerCaller
) -> OrjsonResponse:
    """Queue a synthetic event (`"test": true`, not billed) to this webhook only."""
    ctx = get_context(request)
    spec = await read_model(request, TestRequest, ctx.settings.max_body_bytes, required=False)
    delivery_id = await deliveries.send_test(ctx.service, caller.actor, webhook, spec.type)
    return OrjsonResponse({"deliveryId": delivery_id}, status_code=202)


@router.post(
    WEBHOOK_PATH + "/recover",
    summary="Recover failed deliveries",
    responses=answers(200, RequeuedOut, "Failed deliveries back to pending", *_BODY_OBJECT_ERRORS),
    openapi_extra=json_body(RecoverRequest),
)
async def recover_webhook(
    request: Request, webhook: CallerWebhook, caller: PartnerCaller
) -> OrjsonResponse:
    """Failed deliveries created in the range go back to pending with the whole schedule."""
    ctx = get_context(request)
    spec = await read_model(request, RecoverRequest, ctx.settings.max_body_bytes)
    count = await deliveries.recover(ctx.service, caller.actor, webhook, spec.since, spec.until)
    return OrjsonResponse({"requeued": count})


@router.post(
    WEBHOOK_PATH + "/replay",
    summary="Replay stored events",
    responses=answers(200, QueuedOut, "Replay deliveries created", *_BODY_OBJECT_ERRORS),
    openapi_extra=json_body(ReplayRequest),
)
async def replay_webhook(
    request: Request, webhook: CallerWebhook, caller: PartnerCaller
) -> OrjsonResponse:
    """New `replay` deliveries of every stored event in the range the webhook accepts."""
    ctx = get_context(request)
    spec = await read_model(request, ReplayRequest, ctx.settings.max_body_bytes)
    count = await deliveries.replay(
        ctx.service, caller.actor, webhook, spec.since, spec.until, spec.event_types
    )
    return OrjsonResponse({"queued": count})


@router.get(
    WEBHOOK_PATH + "/stats",
    summary="Delivery statistics of a webhook",
    responses=answers(200, StatsOut, "Counts, success rate, latency", *_OBJECT_ERRORS),
)
async def webhook_stats(request: Request, webhook: CallerWebhook) -> OrjsonResponse:
    """Counts by state, success rate, latency percentiles, last success and failure."""
    ctx = get_context(request)
    return OrjsonResponse(
        stats_json(webhook.id, await ctx.store.webhook_stats(webhook.id, ctx.now()))
    )
