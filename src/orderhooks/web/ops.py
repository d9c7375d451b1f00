"""Operations endpoints, served by every role without a key: `/healthz`, `/readyz`,
`/metrics` (docs/api.md, authentication)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from orderhooks.logging import get_logger
from orderhooks.metrics import Metrics
from orderhooks.store.base import QueueGauge
from orderhooks.web.answer_models import Health
from orderhooks.web.context import get_context
from orderhooks.web.errors import error_response
from orderhooks.web.openapi import answers
from orderhooks.web.responses import OrjsonResponse

log = get_logger("orderhooks.web")

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def refresh_queue_gauges(metrics: Metrics, gauges: list[QueueGauge], now: datetime) -> None:
    """Set the queue gauges from the store, dropping webhooks that left the queue."""
    metrics.queue_depth.clear()
    metrics.oldest_pending_age.clear()
    for gauge in gauges:
        metrics.queue_depth.labels(webhook_id=gauge.webhook_id).set(gauge.pending)
        age = 0.0
        if gauge.oldest_pending_at is not None:
            age = max(0.0, (now - gauge.oldest_pending_at).total_seconds())
        metrics.oldest_pending_age.labels(webhook_id=gauge.webhook_id).set(age)


def ops_router(role: str, workers_running: Callable[[], bool] | None) -> APIRouter:
    """The health, readiness and metrics routes; readiness checks workers on serve and
    worker (when the runner says how), the store on every role."""
    router = APIRouter(tags=["operations"])

    @router.get(
        "/healthz",
        summary="Alive",
        response_class=OrjsonResponse,
        responses=answers(200, Health, "The process is alive"),
    )
    async def healthz() -> OrjsonResponse:
        """The process answers."""
        return OrjsonResponse({"status": "ok"})

    @router.get(
        "/readyz",
        summary="Ready",
        response_class=OrjsonResponse,
        responses=answers(200, Health, "Store reachable (and workers running)", 503),
    )
    async def readyz(request: Request) -> Response:
        """200 when the store answers and, on serve and worker, the workers run."""
        ctx = get_context(request)
        try:
            await ctx.store.ping()
        except Exception as exc:
            log.warning("not_ready", reason="store", error=type(exc).__name__)
            return error_response(503, "not_ready", "the database is not reachable")
        if role in ("serve", "worker") and workers_running is not None and not workers_running():
            return error_response(503, "not_ready", "the delivery workers are not running")
        return OrjsonResponse({"status": "ready"})

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics(request: Request) -> Response:
        """The Prometheus text exposition; queue gauges are read from the store now, and
        the attempt series of webhooks deleted since are dropped."""
        ctx = get_context(request)
        store_answered = True
        try:
            refresh_queue_gauges(ctx.metrics, await ctx.store.queue_gauges(), ctx.now())
            if ctx.metrics.counted_webhooks():
                ctx.metrics.forget_webhooks_but(await ctx.store.live_webhook_ids())
        except Exception as exc:
            # A scrape still answers with the counters when the store is down.
            log.warning("queue_gauges_failed", error=type(exc).__name__)
            store_answered = False
        workers_ok = role not in ("serve", "worker") or workers_running is None or workers_running()
        ctx.metrics.ready.set(1 if store_answered and workers_ok else 0)
        return Response(ctx.metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    return router
