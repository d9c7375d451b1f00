"""A span for each HTTP request, installed only when tracing is on (`orderhooks.tracing`).

The span is a SERVER span named after the method and, once routing has matched, the
route's path template (`POST /v1/orders/{order_id}/status`), so that ids do not make
every name unique. An incoming W3C `traceparent` (the order platform's own trace) is
continued; the ingest span is made inside this one. A path segment that is a portal
link's token is replaced by `{token}` in `url.path`: a link that was fetched but not used
yet must not be readable by whoever reads the traces (docs/security.md, portal links).
"""

from __future__ import annotations

from opentelemetry.trace import SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Receive, Scope, Send

from orderhooks.domain.portal import TOKEN_PREFIX
from orderhooks.web.asgi_status import StatusNotingSend

_PROPAGATOR = TraceContextTextMapPropagator()
_SERVER_ERROR = 500


def _incoming_headers(scope: Scope) -> dict[str, str]:
    """The W3C Trace Context headers of a request (only those: nothing else is read)."""
    wanted = {b"traceparent", b"tracestate"}
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope.get("headers", ())
        if name.lower() in wanted
    }


def traced_path(path: str) -> str:
    """`path` as a span records it: portal link tokens replaced by `{token}`."""
    if TOKEN_PREFIX not in path:
        return path
    return "/".join(
        "{token}" if part.startswith(TOKEN_PREFIX) else part for part in path.split("/")
    )


def _route_template(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


class RequestSpanMiddleware:
    """Wraps every HTTP request of the app in a span (method, route, status)."""

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self._app = app
        self._tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request inside its span."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        method = str(scope["method"])
        parent = _PROPAGATOR.extract(_incoming_headers(scope))
        attributes = {"http.request.method": method, "url.path": traced_path(str(scope["path"]))}
        with self._tracer.start_as_current_span(
            method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        ) as span:
            noting_send = StatusNotingSend(send)
            try:
                await self._app(scope, receive, noting_send)
            finally:
                template = _route_template(scope)
                if template is not None:
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.route", template)
                span.set_attribute("http.response.status_code", noting_send.status)
                if noting_send.status >= _SERVER_ERROR:
                    span.set_status(StatusCode.ERROR)


__all__ = ["RequestSpanMiddleware"]
