"""The FastAPI application of one orderhooks process.

`create_app` wires the routers, the error mapping and the OpenAPI document; it does not
open, migrate or close the store, nor start delivery workers: the process runner does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from fastapi import FastAPI

from orderhooks import package_version
from orderhooks.config import Settings
from orderhooks.metrics import IngestLatencyMiddleware, Metrics
from orderhooks.store import Store
from orderhooks.tracing import TRACING_OFF, Tracing
from orderhooks.web import (
    admin,
    event_types,
    ingest,
    portal_links,
    reads,
    sources,
    usage,
    webhook_actions,
    webhooks,
)
from orderhooks.web.auth import KeyCache
from orderhooks.web.context import ApiContext
from orderhooks.web.dashboard import mount_dashboard
from orderhooks.web.errors import index_route_methods, install_error_handlers
from orderhooks.web.head import HeadAsGetMiddleware
from orderhooks.web.openapi import install_openapi
from orderhooks.web.ops import ops_router
from orderhooks.web.ratelimit import KeyRateLimiter
from orderhooks.web.responses import OrjsonResponse
from orderhooks.web.tracing import RequestSpanMiddleware

ProcessRole = Literal["serve", "api", "worker"]

API_DESCRIPTION = """Webhooks for restaurant order data: ingest orders and their status and
courier updates, subscribe webhooks, and follow every delivery and what it costs.

Authenticate with `Authorization: Bearer <key>`. Errors are
`{"error": {"code", "message", "details"}}`. Usage charges the delivered units only;
replays are counted apart and not charged."""


def create_app(
    settings: Settings,
    store: Store,
    *,
    role: ProcessRole = "serve",
    metrics: Metrics | None = None,
    workers_running: Callable[[], bool] | None = None,
    tracing: Tracing = TRACING_OFF,
) -> FastAPI:
    """The HTTP app: every endpoint of docs/api.md for serve and api, only /healthz, /readyz
    and /metrics for worker; a span per request when `tracing` is on."""
    is_api = role in ("serve", "api")
    app = FastAPI(
        title="orderhooks",
        version=package_version(),
        description=API_DESCRIPTION,
        default_response_class=OrjsonResponse,
        openapi_url="/openapi.json" if is_api else None,
        docs_url="/docs" if is_api else None,
        redoc_url=None,
    )
    metrics = metrics if metrics is not None else Metrics()
    app.state.orderhooks = ApiContext(
        settings=settings,
        store=store,
        metrics=metrics,
        keys=KeyCache(store),
        limiter=KeyRateLimiter(settings.rate_limit_per_key),
        tracing=tracing,
    )
    install_error_handlers(app)
    routers = [ops_router(role, workers_running)]
    if is_api:
        routers += [
            module.router
            for module in (
                ingest,
                webhooks,
                webhook_actions,
                reads,
                admin,
                usage,
                event_types,
                sources,
                portal_links,
            )
        ]
    for router in routers:
        app.include_router(router)
    index_route_methods(app, routers)
    if is_api:
        install_openapi(app)
        app.add_middleware(IngestLatencyMiddleware, metrics=metrics)
        mount_dashboard(app, settings=settings, store=store)
    app.add_middleware(HeadAsGetMiddleware)
    if tracing.enabled:
        # Added last, so it is the outermost layer: the span covers the whole request.
        app.add_middleware(RequestSpanMiddleware, tracer=tracing.tracer)
    return app
