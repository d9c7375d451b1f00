"""Every error answer in one place: the exception tree and framework errors mapped to
`{"error": {"code", "message", "details"}}` (docs/api.md).

::

    ApiError (this module)      HTTP-only refusals: 400, 401, 403, 413, 415, 429, 503
    OrderhooksError tree        ValidationError 422, NotFound 404, Conflict 409,
                                LimitExceeded 422, StorageFull 503 (storage_unavailable),
                                StoreUnavailable 503, StoreError 500,
                                SecretUnreadable 503 (secrets_unavailable)
    UnknownOrder (a NotFound)   404, naming the batch index
    RequestValidationError      422 naming the query or path parameter
    Starlette HTTPException     404, 405 (with Allow: every method of the path) in the same shape
    anything else               logged, 500 in the same shape (or the page an
                                `add_internal_error_page` hook gives for its path)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from re import Pattern
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from orderhooks.exceptions import (
    Conflict,
    LimitExceeded,
    NotFound,
    OrderhooksError,
    SecretUnreadable,
    StorageFull,
    StoreError,
    StoreUnavailable,
    UnknownOrder,
    ValidationError,
)
from orderhooks.logging import get_logger
from orderhooks.web.asgi_status import StatusNotingSend
from orderhooks.web.request_models import field_path
from orderhooks.web.responses import OrjsonResponse

log = get_logger("orderhooks.web")

_CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """A refusal that only exists at the HTTP edge (authentication, limits, body syntax)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES_BY_STATUS.get(status, "error")
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> OrjsonResponse:
    """The error JSON of docs/api.md with `status`."""
    body = {"error": {"code": code, "message": message, "details": list(details)}}
    return OrjsonResponse(body, status_code=status, headers=dict(headers or {}))


def _parameter_name(loc: Sequence[Any]) -> str:
    """`("query", "limit")` -> `limit`: the name the client used, without its location."""
    return field_path(tuple(p for p in loc if p not in ("query", "path", "header", "body")))


async def _api_error(_: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _orderhooks_error(request: Request, exc: Exception) -> OrjsonResponse:
    if isinstance(exc, ValidationError):
        details = [p.as_dict() for p in exc.problems]
        return error_response(422, "validation_error", exc.message, details)
    if isinstance(exc, NotFound):
        return error_response(404, "not_found", str(exc) or "not found")
    if isinstance(exc, Conflict):
        return error_response(409, "conflict", str(exc) or "conflict")
    if isinstance(exc, LimitExceeded):
        return error_response(422, "limit_exceeded", str(exc) or "limit exceeded")
    if isinstance(exc, StorageFull):
        # Nothing was stored; the client may send the same request again later.
        log.warning("the store cannot write: disk full", method=request.method)
        message = "the database cannot store anything now (disk full); nothing was stored"
        return error_response(503, "storage_unavailable", message)
    if isinstance(exc, StoreUnavailable):
        return error_response(503, "unavailable", "the database is not reachable")
    if isinstance(exc, SecretUnreadable):
        # Another process sealed with a key this one lacks (docs/security.md): the
        # operator's to fix. The message names webhook and key id, never a value.
        log.error("a stored secret cannot be decrypted", error=str(exc))
        return error_response(
            503, "secrets_unavailable", "a stored secret cannot be decrypted; see the server log"
        )
    # A StoreError that is not an outage is a bug or a broken database: log, answer 500.
    kind = "store_error" if isinstance(exc, StoreError) else "unexpected_error"
    return _internal(request, exc, kind)


async def _unknown_order(_: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, UnknownOrder)
    details = [{"index": exc.index, "field": "orderId", "message": "unknown order"}]
    return error_response(404, "not_found", f"unknown order {exc.order_id!r}", details)


async def _request_validation(_: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"field": _parameter_name(err.get("loc", ())), "message": str(err.get("msg", ""))}
        for err in exc.errors()
    ]
    return error_response(422, "validation_error", "the request is invalid", details)


def index_route_methods(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Remember which methods each path of `routers` takes, for the `Allow` of a 405.
    Starlette names the methods of the first route that matched the path only, and a
    path served by several routes (`GET` and `POST /v1/webhooks`) takes more."""
    app.state.route_methods = [
        (route.path_regex, frozenset(route.methods or ()))
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
    ]


def _allowed_methods(request: Request) -> str | None:
    """The `Allow` of a 405: every method of the routes whose path matches the request's
    (None when `index_route_methods` was not called, or no indexed path matches)."""
    indexed: Sequence[tuple[Pattern[str], frozenset[str]]] = getattr(
        request.app.state, "route_methods", ()
    )
    path = request.scope["path"]
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    methods = {m for regex, route_methods in indexed if regex.match(path) for m in route_methods}
    if "GET" in methods:
        methods.add("HEAD")  # answered as GET without the body (web/head.py)
    return ", ".join(sorted(methods)) if methods else None


async def _http_exception(request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES_BY_STATUS.get(exc.status_code, "error")
    try:
        message = HTTPStatus(exc.status_code).phrase.lower()
    except ValueError:
        message = "error"
    if isinstance(exc.detail, str) and exc.detail and exc.detail.lower() != message:
        message = exc.detail
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        if allowed is not None:
            headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
            headers["Allow"] = allowed
    return error_response(exc.status_code, code, message, (), headers)


# The answer to an unexpected exception of a request, or None for the error JSON.
InternalErrorPage = Callable[[Request], Response | None]


def _log_internal(request: Request, exc: BaseException, kind: str) -> None:
    # Only the method, path and exception are logged: headers and bodies may carry keys.
    log.error(kind, method=request.method, path=request.url.path, exc_info=exc)


def _internal(request: Request, exc: BaseException, kind: str) -> OrjsonResponse:
    _log_internal(request, exc, kind)
    return error_response(500, "internal_error", "internal error")


class CatchAllMiddleware:
    """Answers any exception no handler took with a 500, logged once: the error JSON, or
    the first page one of `pages` gives for the request (the dashboard's, under /ui)."""

    def __init__(self, app: ASGIApp, pages: Sequence[InternalErrorPage] = ()) -> None:
        self.app = app
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; turn an escaped exception into a 500 unless the answer started."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        noting_send = StatusNotingSend(send)
        try:
            await self.app(scope, receive, noting_send)
        except Exception as exc:
            if noting_send.started:
                raise
            request = Request(scope)
            _log_internal(request, exc, "unexpected_error")
            response = self._page(request)
            if response is None:
                response = error_response(500, "internal_error", "internal error")
            await response(scope, receive, send)

    def _page(self, request: Request) -> Response | None:
        for page in self.pages:
            try:
                answer = page(request)
            except Exception as exc:  # a page that cannot be made: the JSON still answers
                _log_internal(request, exc, "error_page_failed")
                return None
            if answer is not None:
                return answer
        return None


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping above on `app`."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(UnknownOrder, _unknown_order)
    app.add_exception_handler(OrderhooksError, _orderhooks_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    # Filled by `add_internal_error_page`, read by the middleware at each failure.
    pages: list[InternalErrorPage] = []
    app.state.internal_error_pages = pages
    app.add_middleware(CatchAllMiddleware, pages=pages)


def add_internal_error_page(app: FastAPI, page: InternalErrorPage) -> None:
    """Let `page` answer the unexpected exceptions of the requests it takes (it returns
    None for the others, which keep the error JSON); the exception is logged either way."""
    pages: list[InternalErrorPage] = app.state.internal_error_pages
    pages.append(page)
