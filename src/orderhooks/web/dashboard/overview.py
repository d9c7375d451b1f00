"""The overview: activity of the last hour, the queue, and the webhooks in trouble first."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response

from orderhooks.domain.model import Delivery, DeliveryState, Webhook
from orderhooks.store.base import DeliveryFilter, PendingSummary, WebhookFilter, WebhookStats
from orderhooks.web.dashboard.auth import Viewer
from orderhooks.web.dashboard.context import Dashboard
from orderhooks.web.dashboard.deliveries import openable_webhooks
from orderhooks.web.dashboard.health import Health, trouble_first, webhook_health
from orderhooks.web.dashboard.panels import activity_panel
from orderhooks.web.dashboard.series import CHART_RANGES, load_series
from orderhooks.web.sources import source_statuses

OVERVIEW_WEBHOOKS = 100  # the webhooks counted on the overview; the list page pages on
ATTENTION_ROWS = 10
# Webhooks that may be in trouble, of all the viewer's, whose health is worked out to
# pick the worst ATTENTION_ROWS (the store gives those disabled or failing first).
TROUBLE_CANDIDATES = 50
RECENT_FAILURES = 10


async def health_rows(
    dash: Dashboard, hooks: Sequence[Webhook]
) -> list[tuple[Webhook, Health, WebhookStats]]:
    """Each webhook with its health and stats, worst first."""
    now = dash.clock()
    stats = await asyncio.gather(*(dash.store.webhook_stats(h.id, now) for h in hooks))
    by_id = {h.id: s for h, s in zip(hooks, stats, strict=True)}
    ranked = trouble_first([(h, webhook_health(h, by_id[h.id])) for h in hooks])
    return [(hook, health, by_id[hook.id]) for hook, health in ranked]


async def _recent_failures(
    dash: Dashboard,
    viewer: Viewer,
    rows: Sequence[tuple[Webhook, Health, WebhookStats]],
) -> Sequence[Delivery]:
    """The newest failed deliveries; not even asked for when there are none (a state
    filter across all webhooks is the costly kind: no index serves it). An admin's list
    holds every live webhook, so a failure in their stats tells there are some; else the
    store is asked, through an index, as deleted webhooks keep their failed deliveries.
    A partner's deliveries also go to webhooks its list leaves out (installed on one of
    its accounts and another, or on every account, or on one of its accounts before a
    PATCH), so the store is asked too."""
    accounts = viewer.scope.accounts
    if accounts is None:
        failed = any(stats.counts.get(DeliveryState.FAILED, 0) for _, _, stats in rows)
        if not failed and not await dash.store.any_failed(None):
            return []
    elif not await dash.store.any_failed(sorted(accounts)):
        return []
    flt = DeliveryFilter(scope=viewer.scope, state=DeliveryState.FAILED)
    return (await dash.store.list_deliveries(flt, RECENT_FAILURES, None)).items


async def _queue(dash: Dashboard, viewer: Viewer) -> PendingSummary:
    """The pending deliveries the viewer may list, as `GET /v1/deliveries?state=pending`
    lists them: every one for an admin; a partner's also to webhooks its list leaves out
    (shared with other accounts), never another account's."""
    accounts = viewer.scope.accounts
    if accounts is not None:
        return await dash.store.pending_of(sorted(accounts))
    gauges = await dash.store.queue_gauges()
    oldest = min((g.oldest_pending_at for g in gauges if g.oldest_pending_at), default=None)
    return PendingSummary(sum(g.pending for g in gauges), oldest)


async def overview_page(dash: Dashboard, request: Request, viewer: Viewer) -> Response:
    """GET /ui."""
    store, scope, now = dash.store, viewer.scope, dash.clock()
    chart = CHART_RANGES["1h"]
    hooks, troubled = await asyncio.gather(
        store.list_webhooks(WebhookFilter(scope=scope), OVERVIEW_WEBHOOKS, None),
        # Trouble is looked for among every webhook, not only the first OVERVIEW_WEBHOOKS.
        store.webhooks_in_trouble(scope, TROUBLE_CANDIDATES),
    )
    counted = {hook.id for hook in hooks.items}
    extra = [hook for hook in troubled if hook.id not in counted]
    # Independent reads run together: the page takes as long as the slowest one.
    rows, queue, buckets = await asyncio.gather(
        health_rows(dash, [*hooks.items, *extra]),
        _queue(dash, viewer),
        load_series(store, scope, None, chart, now),
    )
    failures = await _recent_failures(dash, viewer, rows)
    openable = await openable_webhooks(store, scope, failures)
    return dash.render(
        "overview.html",
        viewer=viewer,
        title="Overview",
        nav="overview",
        panel=activity_panel(buckets, chart, prefix="overview"),
        pending=queue.pending,
        oldest_pending_at=queue.oldest_pending_at,
        webhook_count=len(hooks.items),
        more_webhooks=hooks.next_cursor is not None,
        active_count=sum(
            1 for hook, health, _ in rows if hook.id in counted and health.level in ("ok", "idle")
        ),
        attention=[row for row in rows if row[1].rank < 2][:ATTENTION_ROWS],
        failures=failures,
        openable=openable,
        # Broker sources are the operator's: shown to admins only, never with credentials.
        sources=[s.as_json() for s in source_statuses(request)] if viewer.is_admin else [],
    )
