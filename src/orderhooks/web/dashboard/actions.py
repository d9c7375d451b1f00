"""What the dashboard's buttons do: the service operations the API calls, audited the
same way (`via: dashboard`).

Every handler runs after `guards.action` checked the session, origin and CSRF token,
and reads the webhook or delivery through the viewer's scope first, so a partner can
only act on what it can see.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from orderhooks.domain.model import EventType, Webhook, WebhookState
from orderhooks.exceptions import FieldProblem, ValidationError
from orderhooks.service import deliveries, webhooks
from orderhooks.web.dashboard.auth import Viewer
from orderhooks.web.dashboard.context import UI_PREFIX, Dashboard, redirect
from orderhooks.web.dashboard.guards import ActionHandler
from orderhooks.web.dashboard.params import is_number, parse_form_time
from orderhooks.web.dashboard.webhooks import ROTATION_GRACE_CHOICES


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
    return since, until


async def enable(dash: Dashboard, request: Request, viewer: Viewer, form: FormData) -> Response:
    """POST …/enable: active again (or awaiting agreement)."""
    webhook = await _webhook(dash, request, viewer)
    changed = await webhooks.set_enabled(dash.service, viewer.actor, webhook, enabled=True)
    awaiting = changed.state == WebhookState.AWAITING_AGREEMENT
    return _back_to(webhook.id, "awaiting" if awaiting else "enabled")


async def disable(dash: Dashboard, request: Request, viewer: Viewer, form: FormData) -> Response:
    """POST …/disable: no new deliveries; pending ones wait."""
    webhook = await _webhook(dash, request, viewer)
    await webhooks.set_enabled(dash.service, viewer.actor, webhook, enabled=False)
    return _back_to(webhook.id, "disabled")


async def rotate(dash: Dashboard, request: Request, viewer: Viewer, form: FormData) -> Response:
    """POST …/rotate: a new secret, shown once on the page this answers with."""
    webhook = await _webhook(dash, request, viewer)
    raw_grace = str(form.get("grace_seconds", ""))
    allowed = {seconds for seconds, _ in ROTATION_GRACE_CHOICES}
    if not is_number(raw_grace) or int(raw_grace) not in allowed:
        raise ValidationError([FieldProblem("grace_seconds", "is not one of the choices")])
    grace = int(raw_grace)
    secret = await webhooks.rotate_secret(dash.service, viewer.actor, webhook, grace)
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
    count = await deliveries.recover(dash.service, viewer.actor, webhook, since, until)
    return _back_to(webhook.id, "recovered", count)


async def replay(dash: Dashboard, request: Request, viewer: Viewer, form: FormData) -> Response:
    """POST …/replay: every stored event of the range that the webhook's filters accept."""
    webhook = await _webhook(dash, request, viewer)
    since, until = _time_range(form)
    try:
        types = [EventType(str(value)) for value in form.getlist("event_types")]
    except ValueError:
        raise ValidationError([FieldProblem("event_types", "unknown event type")]) from None
    count = await deliveries.replay(dash.service, viewer.actor, webhook, since, until, types)
    return _back_to(webhook.id, "replayed", count)


async def send_test(dash: Dashboard, request: Request, viewer: Viewer, form: FormData) -> Response:
    """POST …/test: a synthetic event with `"test": true`, not billed."""
    webhook = await _webhook(dash, request, viewer)
    try:
        event_type = EventType(str(form.get("type", "")))
    except ValueError:
        raise ValidationError([FieldProblem("type", "unknown event type")]) from None
    delivery_id = await deliveries.send_test(dash.service, viewer.actor, webhook, event_type)
    return redirect(f"{UI_PREFIX}/deliveries/{delivery_id}?notice=test-sent")


async def retry_delivery(
    dash: Dashboard, request: Request, viewer: Viewer, form: FormData
) -> Response:
    """POST /ui/deliveries/{id}/retry: attempt now."""
    view = await dash.store.get_delivery(request.path_params["delivery_id"], viewer.scope)
    await deliveries.retry_now(dash.service, viewer.actor, view.delivery.id)
    return redirect(f"{UI_PREFIX}/deliveries/{view.delivery.id}?notice=retried")


WEBHOOK_ACTIONS: Mapping[str, ActionHandler] = {
    "enable": enable,
    "disable": disable,
    "rotate": rotate,
    "recover": recover,
    "replay": replay,
    "test": send_test,
}
