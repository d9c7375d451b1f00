"""What can be done to one webhook besides editing it (PRODUCT 4.5, 7): its secret and
rotation, enable and disable, a test event, recover, replay, statistics."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Request

from orderhooks.delivery.signing import generate_secret, is_valid_secret
from orderhooks.domain.model import DisabledReason, SigningSecret, Webhook, WebhookState
from orderhooks.exceptions import FieldProblem, ValidationError
from orderhooks.web.auth import PartnerCaller
from orderhooks.web.bodies import NO_BODY, read_json
from orderhooks.web.common import record_audit
from orderhooks.web.context import get_context
from orderhooks.web.openapi import AUTH_ERRORS, BODY_ERRORS, answers, json_body
from orderhooks.web.responses import OrjsonResponse
from orderhooks.web.schemas import (
    RecoverRequest,
    ReplayRequest,
    SecretRotation,
    TestRequest,
    validate_body,
)
from orderhooks.web.shapes import (
    DeliveryIdOut,
    QueuedOut,
    RequeuedOut,
    SecretOut,
    StatsOut,
    WebhookOut,
)
from orderhooks.web.testevents import synthetic_event
from orderhooks.web.views import stats_json
from orderhooks.web.webhooks import WEBHOOK_PATH, as_json

router = APIRouter(tags=["webhooks"])

_OBJECT_ERRORS = (404, *AUTH_ERRORS)
_BODY_OBJECT_ERRORS = (404, *AUTH_ERRORS, *BODY_ERRORS)


def rotated_secrets(
    webhook: Webhook, new_secret: str, grace_seconds: int, now: datetime
) -> tuple[SigningSecret, ...]:
    """The new secret first; the old ones keep signing until `now + grace` at the latest
    (a shorter expiry from an earlier rotation stays); expired ones are dropped."""
    grace_end = now + timedelta(seconds=grace_seconds)
    kept = []
    for old in webhook.secrets:
        expires = grace_end if old.expires_at is None else min(old.expires_at, grace_end)
        if expires > now and old.secret != new_secret:
            kept.append(SigningSecret(old.secret, expires))
    return (SigningSecret(new_secret), *kept)


@router.get(
    WEBHOOK_PATH + "/secret",
    summary="Read the webhook's current secret",
    response_class=OrjsonResponse,
    responses=answers(200, SecretOut, "The newest signing secret", *_OBJECT_ERRORS),
)
async def get_secret(request: Request, webhookId: str, caller: PartnerCaller) -> OrjsonResponse:
    """`{"secret": "whsec_…"}`: the secret that signs from now on."""
    ctx = get_context(request)
    webhook = await ctx.store.get_webhook(webhookId, caller.scope)
    return OrjsonResponse({"secret": webhook.secrets[0].secret})


@router.post(
    WEBHOOK_PATH + "/secret/rotate",
    summary="Rotate the webhook's secret",
    response_class=OrjsonResponse,
    responses=answers(200, SecretOut, "The new secret", *_BODY_OBJECT_ERRORS),
    openapi_extra=json_body(SecretRotation, required=False),
)
async def rotate_secret(request: Request, webhookId: str, caller: PartnerCaller) -> OrjsonResponse:
    """Replace the secret; the old one keeps signing alongside during the grace period."""
    ctx = get_context(request)
    webhook = await ctx.store.get_webhook(webhookId, caller.scope)
    body = await read_json(request, ctx.settings.max_body_bytes, required=False)
    spec = SecretRotation() if body is NO_BODY else validate_body(SecretRotation, body)
    if spec.secret is not None and not is_valid_secret(spec.secret):
        message = "must be whsec_ followed by standard base64 of 24 to 64 bytes"
        raise ValidationError([FieldProblem("secret", message)])
    new_secret = spec.secret if spec.secret is not None else generate_secret()
    now = ctx.now()
    secrets = rotated_secrets(webhook, new_secret, spec.grace_period_seconds, now)
    await ctx.store.set_webhook_secrets(webhook.id, secrets, now)
    details = {"gracePeriodSeconds": spec.grace_period_seconds, "provided": spec.secret is not None}
    await record_audit(ctx, caller, "webhook.secret_rotated", ("webhook", webhook.id), details)
    return OrjsonResponse({"secret": new_secret})


async def _set_state(
    request: Request, webhook_id: str, caller: PartnerCaller, enable: bool
) -> OrjsonResponse:
    ctx = get_context(request)
    webhook = await ctx.store.get_webhook(webhook_id, caller.scope)
    # These endpoints take no body; an empty request needs no content type.
    await read_json(request, ctx.settings.max_body_bytes, required=False)
    state = WebhookState.ACTIVE if enable else WebhookState.DISABLED
    reason = None if enable else DisabledReason.MANUAL
    stored = await ctx.store.set_webhook_state(webhook.id, state, reason, ctx.now())
    action = "webhook.enabled" if enable else "webhook.disabled"
    await record_audit(ctx, caller, action, ("webhook", webhook.id))
    return OrjsonResponse(as_json(ctx, stored))


@router.post(
    WEBHOOK_PATH + "/enable",
    summary="Enable a webhook",
    response_class=OrjsonResponse,
    responses=answers(
        200, WebhookOut, "The webhook (awaiting_agreement without one)", *_BODY_OBJECT_ERRORS
    ),
)
async def enable_webhook(request: Request, webhookId: str, caller: PartnerCaller) -> OrjsonResponse:
    """Make the webhook active (or awaiting_agreement); its waiting deliveries resume."""
    return await _set_state(request, webhookId, caller, enable=True)


@router.post(
    WEBHOOK_PATH + "/disable",
    summary="Disable a webhook",
    response_class=OrjsonResponse,
    responses=answers(200, WebhookOut, "The webhook, disabled (manual)", *_BODY_OBJECT_ERRORS),
)
async def disable_webhook(
    request: Request, webhookId: str, caller: PartnerCaller
) -> OrjsonResponse:
    """Disable the webhook (`manual`): no new deliveries, pending ones wait."""
    return await _set_state(request, webhookId, caller, enable=False)


@router.post(
    WEBHOOK_PATH + "/test",
    summary="Send a test event",
    status_code=202,
    response_class=OrjsonResponse,
    responses=answers(202, DeliveryIdOut, "The test delivery is queued", *_BODY_OBJECT_ERRORS),
    openapi_extra=json_body(TestRequest, required=False, description="Defaults to order.new"),
)
async def test_webhook(request: Request, webhookId: str, caller: PartnerCaller) -> OrjsonResponse:
    """Queue a synthetic event (`"test": true`, not billed) to this webhook only."""
    ctx = get_context(request)
    webhook = await ctx.store.get_webhook(webhookId, caller.scope)
    body = await read_json(request, ctx.settings.max_body_bytes, required=False)
    spec = TestRequest() if body is NO_BODY else validate_body(TestRequest, body)
    now = ctx.now()
    event = synthetic_event(webhook, spec.type, now)
    delivery_id = await ctx.store.create_test_delivery(webhook, event, now)
    return OrjsonResponse({"deliveryId": delivery_id}, status_code=202)


@router.post(
    WEBHOOK_PATH + "/recover",
    summary="Recover failed deliveries",
    response_class=OrjsonResponse,
    responses=answers(200, RequeuedOut, "Failed deliveries back to pending", *_BODY_OBJECT_ERRORS),
    openapi_extra=json_body(RecoverRequest),
)
async def recover_webhook(
    request: Request, webhookId: str, caller: PartnerCaller
) -> OrjsonResponse:
    """Failed deliveries created in the range go back to pending with the whole schedule."""
    ctx = get_context(request)
    webhook = await ctx.store.get_webhook(webhookId, caller.scope)
    spec = validate_body(RecoverRequest, await read_json(request, ctx.settings.max_body_bytes))
    _check_range(spec.since, spec.until)
    count = await ctx.store.recover_failed(webhook.id, spec.since, spec.until, ctx.now())
    await record_audit(
        ctx, caller, "webhook.recovered", ("webhook", webhook.id), {"requeued": count}
    )
    return OrjsonResponse({"requeued": count})


@router.post(
    WEBHOOK_PATH + "/replay",
    summary="Replay stored events",
    response_class=OrjsonResponse,
    responses=answers(200, QueuedOut, "Replay deliveries created", *_BODY_OBJECT_ERRORS),
    openapi_extra=json_body(ReplayRequest),
)
async def replay_webhook(request: Request, webhookId: str, caller: PartnerCaller) -> OrjsonResponse:
    """New `replay` deliveries of every stored event in the range the webhook accepts."""
    ctx = get_context(request)
    webhook = await ctx.store.get_webhook(webhookId, caller.scope)
    spec = validate_body(ReplayRequest, await read_json(request, ctx.settings.max_body_bytes))
    _check_range(spec.since, spec.until)
    count = await ctx.store.replay_events(
        webhook, spec.since, spec.until, spec.event_types, ctx.now()
    )
    await record_audit(ctx, caller, "webhook.replayed", ("webhook", webhook.id), {"queued": count})
    return OrjsonResponse({"queued": count})


def _check_range(since: datetime, until: datetime | None) -> None:
    if until is not None and until < since:
        raise ValidationError([FieldProblem("until", "must not be before since")])


@router.get(
    WEBHOOK_PATH + "/stats",
    summary="Delivery statistics of a webhook",
    response_class=OrjsonResponse,
    responses=answers(200, StatsOut, "Counts, success rate, latency", *_OBJECT_ERRORS),
)
async def webhook_stats(request: Request, webhookId: str, caller: PartnerCaller) -> OrjsonResponse:
    """Counts by state, success rate, latency percentiles, last success and failure."""
    ctx = get_context(request)
    webhook = await ctx.store.get_webhook(webhookId, caller.scope)
    return OrjsonResponse(
        stats_json(webhook.id, await ctx.store.webhook_stats(webhook.id, ctx.now()))
    )
