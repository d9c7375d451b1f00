"""HEAD answered as GET without the body (RFC 9110, 9.3.2): load balancers and uptime
checks probe `/healthz` that way, and every API path that takes GET takes HEAD too."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGetMiddleware:
    """Routes a HEAD request as the GET of its path (authentication, scope and errors
    alike) and sends that answer's status and headers, `content-length` included, with
    an empty body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass a request on; a HEAD one as GET, its answer without the body."""
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
