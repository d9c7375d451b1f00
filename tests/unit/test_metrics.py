"""The ingest latency middleware: which requests it times, and the status class it notes."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orderhooks.metrics import IngestLatencyMiddleware, Metrics, ingest_endpoint


@pytest.mark.parametrize(
    ("method", "path", "endpoint"),
    [
        ("POST", "/v1/orders", "/v1/orders"),
        ("POST", "/v1/orders/o-1/status", "/v1/orders/{orderId}/status"),
        ("POST", "/v1/orders/o-1/courier", "/v1/orders/{orderId}/courier"),
        ("POST", "/v1/events", "/v1/events"),
        ("GET", "/v1/orders", None),
        ("GET", "/v1/events", None),
        ("POST", "/v1/orders//status", None),
        ("POST", "/v1/orders/o-1/other", None),
        ("POST", "/v1/orders/o-1/status/x", None),
        ("POST", "/v1/webhooks", None),
        ("POST", "/v1/orders/", None),
    ],
)
def test_ingest_endpoint_names_ingest_routes_only(
    method: str, path: str, endpoint: str | None
) -> None:
    assert ingest_endpoint(method, path) == endpoint


def _app(metrics: Metrics) -> Starlette:
    async def accept(request: Request) -> Response:
        return JSONResponse({"eventIds": []}, status_code=202)

    async def reject(request: Request) -> Response:
        return JSONResponse({"error": {}}, status_code=422)

    async def crash(request: Request) -> Response:
        raise RuntimeError("boom")

    app = Starlette(
        routes=[
            Route("/v1/orders", accept, methods=["POST"]),
            Route("/v1/events", reject, methods=["POST"]),
            Route("/v1/orders/{order_id}/status", crash, methods=["POST"]),
            Route("/v1/webhooks", accept, methods=["POST"]),
        ]
    )
    app.add_middleware(IngestLatencyMiddleware, metrics=metrics)
    return app


def _count(metrics: Metrics, endpoint: str, status_class: str) -> float:
    value = metrics.registry.get_sample_value(
        "orderhooks_ingest_request_duration_seconds_count",
        {"endpoint": endpoint, "status_class": status_class},
    )
    return 0.0 if value is None else value


async def test_the_middleware_times_ingest_requests_by_status_class() -> None:
    metrics = Metrics()
    transport = httpx.ASGITransport(app=_app(metrics), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/v1/orders", json={})).status_code == 202
        assert (await client.post("/v1/orders", json={})).status_code == 202
        assert (await client.post("/v1/events", json=[])).status_code == 422
        assert (await client.post("/v1/orders/o-1/status", json={})).status_code == 500
        assert (await client.post("/v1/webhooks", json={})).status_code == 202
    assert _count(metrics, "/v1/orders", "2xx") == 2
    assert _count(metrics, "/v1/events", "4xx") == 1
    assert _count(metrics, "/v1/orders/{orderId}/status", "5xx") == 1
    timed = [
        s
        for family in metrics.registry.collect()
        if family.name == "orderhooks_ingest_request_duration_seconds"
        for s in family.samples
        if s.name.endswith("_count")
    ]
    assert len(timed) == 3, "only ingest requests are timed"
