"""What the dashboard's buttons do: the same store calls the API makes, each audited.

Every handler runs after `guards.action` checked the session, origin and CSRF token,
and reads the webhook or delivery through the viewer's scope first, so a partner can
only act on what it can see.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from orderhooks.delivery.signing import generate_secret
from orderhooks.domain.ids import new_id
from orderhooks.domain.model import (
    AuditEntry,
    DisabledReason,
    EventType,
    Webhook,
    WebhookState,
)
from orderhooks.exceptions import FieldProblem, ValidationError
from orderhooks.web.dashboard.auth import Viewer
from orderhooks.web.dashboard.context import UI_PREFIX, Dashboard, redirect
from orderhooks.web.dashboard.params import parse_form_time
from orderhooks.web.dashboard.webhooks import ROTATION_GRACE_CHOICES
from orderhooks.web.testevents import synthetic_event
from orderhooks.web.webhook_actions import rotated_secrets

ActionHandler = Callable[[Dashboard, Request, Viewer, FormData], Awaitable[Response]]
AUDIT_VIA = {"via": "dashboard"}


async def _audit(
    dash: Dashboard,
    viewer: Viewer,
    action: str,
    target: tuple[str, str],
    details: Mapping[str, Any] | None = None,
) -> None:
    """Record who did what, like the API does; `details` never carry a secret."""
    await dash.store.add_audit(
        AuditEntry(
            id=new_id("aud"),
            at=dash.clock(),
            actor=viewer.actor,
            action=action,
            target_type=target[0],
            target_id=target[1],
            details={**AUDIT_VIA, **(details or {})},
        )
    )


def _back_to(webhook_id: str, notice: str, count: int | None = None) -> Response:
    query = {"notice": notice} if count is None else {"notice": notice, "count": str(count)}
    return redirect(f"{UI_PREFIX}/webhooks/{webhook_id}?{urlencode(query)}")


async def _webhook(dash: Dashboard, request: Request, viewer: Viewer) -> Webhook:
    return await dash.store.get_webhook(request.path_params["webhook_id"], viewer.scope)


def _time_field(form: FormData, name: str, *, required: bool) -> datetime | None:
    try:
        moment = parse_form_time(form.get(name))
    except ValueError:
        raise ValidationError([FieldProblem(name, "is not a date and time")]) from None
    if moment is None and required:
        raise ValidationError([FieldProblem(name, "is required")])
    return moment


def _time_range(form: FormData) -> tuple[datetime, datetime | None]:
    since = _time_field(form, "since", required=True)
    until = _time_field(form, "until", required=False)
    assert since is not None  # required above
    if until is not None and until < since:
        raise ValidationError([FieldProblem("until", "must not be before since")])
    return since, until


async def enable(dash: Dashboard, request: Request, viewer: Viewer, form: FormData) -> Response:
    """POST …/enable: active again (or awaiting agreement)."""
    webhook = await _webhook(dash, request, viewer)
    changed = await dash.store.set_webhook_state(
        webhook.id, WebhookState.ACTIVE, None, dash.clock()
    )
    await _audit(dash, viewer, "webhook.enabled", ("webhook", webhook.id))
    awaiting = changed.state == WebhookState.AWAITING_AGREEMENT
    return _back_to(webhook.id, "awaiting" if awaiting else "enabled")


async def disable(dash: Dashboard, request: Request, viewer: Viewer, form: FormData) -> Response:
    """POST …/disable: no new deliveries; pending ones wait."""
    webhook = await _webhook(dash, request, viewer)
    await dash.store.set_webhook_state(
        webhook.id, WebhookState.DISABLED, DisabledReason.MANUAL, dash.clock()
    )
    await _audit(dash, viewer, "webhook.disabled", ("webhook", webhook.id))
    return _back_to(webhook.id, "disabled")


async def rotate(dash: Dashboard, request: Request, viewer: Viewer, form: FormData) -> Response:
    """POST …/rotate: a new secret, shown once on the page this answers with."""
    webhook = await _webhook(dash, request, viewer)
    raw_grace = str(form.get("grace_seconds", ""))
    allowed = {seconds for seconds, _ in ROTATION_GRACE_CHOICES}
    if not raw_grace.isdigit() or int(raw_grace) not in allowed:
        raise ValidationError([FieldProblem("grace_seconds", "is not one of the choices")])
    grace, now, secret = int(raw_grace), dash.clock(), generate_secret()
    await dash.store.set_webhook_secrets(
        webhook.id, rotated_secrets(webhook, secret, grace, now), now
    )
    await _audit(
        dash,
        viewer,
        "webhook.secret_rotated",
        ("webhook", webhook.id),
        {"gracePeriodSeconds": grace},
    )
    # Answered directly, not redirected: the secret must not travel in a URL or a cookie.
    return dash.render(
        "secret.html",
        viewer=viewer,
        title="New signing secret",
        nav="webhooks",
        webhook=webhook,
        secret=secret,
        grace_seconds=grace,
    )


async def recover(dash: Dashboard, request: Request, viewer: Viewer, form: FormData) -> Response:
    """POST …/recover: failed deliveries created in the range go back to pending."""
    webhook = await _webhook(dash, request, viewer)
    since, until = _time_range(form)
    count = await dash.store.recover_failed(webhook.id, since, until, dash.clock())
    await _audit(
        dash,
        viewer,
        "webhook.recovered",
        ("webhook", webhook.id),
        {
            "requeued": count,
            "since": since.isoformat(),
            "until": until.isoformat() if until else None,
        },
    )
    return _back_to(webhook.id, "recovered", count)


async def replay(dash: Dashboard, request: Request, viewer: Viewer, form: FormData) -> Response:
    """POST …/replay: every stored event of the range that the webhook's filters accept."""
    webhook = await _webhook(dash, request, viewer)
    since, until = _time_range(form)
    try:
        types = [EventType(str(value)) for value in form.getlist("event_types")]
    except ValueError:
        raise ValidationError([FieldProblem("event_types", "unknown event type")]) from None
    count = await dash.store.replay_events(webhook, since, until, types or None, dash.clock())
    details = {
        "queued": count,
        "since": since.isoformat(),
        "until": until.isoformat() if until else None,
        "eventTypes": [str(t) for t in types] or None,
    }
    await _audit(dash, viewer, "webhook.replayed", ("webhook", webhook.id), details)
    return _back_to(webhook.id, "replayed", count)


async def send_test(dash: Dashboard, request: Request, viewer: Viewer, form: FormData) -> Response:
    """POST …/test: a synthetic event with `"test": true`, not billed."""
    webhook = await _webhook(dash, request, viewer)
    try:
        event_type = EventType(str(form.get("type", "")))
    except ValueError:
        raise ValidationError([FieldProblem("type", "unknown event type")]) from None
    now = dash.clock()
    delivery_id = await dash.store.create_test_delivery(
        webhook, synthetic_event(webhook, event_type, now), now
    )
    await _audit(dash, viewer, "webhook.tested", ("webhook", webhook.id), {"type": str(event_type)})
    return redirect(f"{UI_PREFIX}/deliveries/{delivery_id}?notice=test-sent")


async def retry_delivery(
    dash: Dashboard, request: Request, viewer: Viewer, form: FormData
) -> Response:
    """POST /ui/deliveries/{id}/retry: attempt now."""
    view = await dash.store.get_delivery(request.path_params["delivery_id"], viewer.scope)
    await dash.store.retry_delivery_now(view.delivery.id, dash.clock())
    await _audit(dash, viewer, "delivery.retried", ("delivery", view.delivery.id))
    return redirect(f"{UI_PREFIX}/deliveries/{view.delivery.id}?notice=retried")


WEBHOOK_ACTIONS: Mapping[str, ActionHandler] = {
    "enable": enable,
    "disable": disable,
    "rotate": rotate,
    "recover": recover,
    "replay": replay,
    "test": send_test,
}
