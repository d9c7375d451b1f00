"""Webhook pages: the list with health, and one webhook with charts, deliveries and actions."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from orderhooks.domain.model import DeliveryState, EventType, WebhookState
from orderhooks.store.base import DeliveryFilter, WebhookFilter
from orderhooks.web.dashboard.auth import Viewer
from orderhooks.web.dashboard.context import Dashboard
from orderhooks.web.dashboard.health import webhook_health
from orderhooks.web.dashboard.overview import health_rows
from orderhooks.web.dashboard.panels import activity_panel
from orderhooks.web.dashboard.params import cursor_param, enum_param, form_time, notice, text_param
from orderhooks.web.dashboard.series import CHART_RANGES, chart_range, load_series

WEBHOOKS_PER_PAGE = 50
DELIVERIES_ON_WEBHOOK_PAGE = 20
DEFAULT_ACTION_LOOKBACK = timedelta(hours=24)
ROTATION_GRACE_CHOICES = ((0, "none: stop the old secret now"), (3600, "1 hour"),
                          (86_400, "24 hours"), (7 * 86_400, "7 days"))  # fmt: skip
DEFAULT_ROTATION_GRACE_SECONDS = 86_400


async def list_page(dash: Dashboard, request: Request, viewer: Viewer) -> Response:
    """GET /ui/webhooks: every webhook the viewer may see, with its health."""
    state = enum_param(request, "state", WebhookState)
    account = text_param(request, "account")
    cursor = cursor_param(request, "wh")
    flt = WebhookFilter(scope=viewer.scope, account=account, state=state)
    hooks = await dash.store.list_webhooks(flt, WEBHOOKS_PER_PAGE, cursor)
    rows = await health_rows(dash, hooks.items)
    order = {hook.id: index for index, hook in enumerate(hooks.items)}
    rows.sort(key=lambda row: order[row[0].id])  # the list keeps its stable, pageable order
    return dash.render(
        "webhooks.html",
        viewer=viewer,
        title="Webhooks",
        nav="webhooks",
        rows=rows,
        states=list(WebhookState),
        state=state,
        account=account or "",
        cursor=cursor,
        next_cursor=hooks.next_cursor,
    )


async def detail_page(dash: Dashboard, request: Request, viewer: Viewer) -> Response:
    """GET /ui/webhooks/{id}: configuration, health, charts, deliveries and actions."""
    store, now = dash.store, dash.clock()
    webhook = await store.get_webhook(request.path_params["webhook_id"], viewer.scope)
    chart = chart_range(request.query_params.get("range"))
    state = enum_param(request, "state", DeliveryState)
    cursor = cursor_param(request, "dlv")
    flt = DeliveryFilter(scope=viewer.scope, webhook_id=webhook.id, state=state)
    stats, buckets, recent = await asyncio.gather(
        store.webhook_stats(webhook.id, now),
        load_series(store, viewer.scope, webhook.id, chart, now),
        store.list_deliveries(flt, DELIVERIES_ON_WEBHOOK_PAGE, cursor),
    )
    return dash.render(
        "webhook.html",
        viewer=viewer,
        title=webhook.description or webhook.id,
        nav="webhooks",
        webhook=webhook,
        health=webhook_health(webhook, stats),
        stats=stats,
        panel=activity_panel(buckets, chart, prefix="webhook"),
        ranges=list(CHART_RANGES.values()),
        deliveries=recent.items,
        delivery_states=list(DeliveryState),
        state=state,
        cursor=cursor,
        next_cursor=recent.next_cursor,
        notice=notice(request),
        event_types=list(EventType),
        since_default=form_time(now - DEFAULT_ACTION_LOOKBACK),
        until_default=form_time(now),
        grace_choices=ROTATION_GRACE_CHOICES,
        grace_default=DEFAULT_ROTATION_GRACE_SECONDS,
        can_enable=webhook.state == WebhookState.DISABLED,
        default_schedule=dash.settings.retry_schedule,
    )
