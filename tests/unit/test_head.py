"""HEAD answered as GET without the body (web/head.py). HTTP clients drop a HEAD body
whatever the server sends, so the middleware is checked on its ASGI messages."""

from __future__ import annotations

from typing import Any

from orderhooks.web.head import HeadAsGetMiddleware


async def _run(method: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The methods the app saw, and the messages the middleware sent on."""
    seen: list[str] = []
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["method"])
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
        )
        await send({"type": "http.response.body", "body": b"hello"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await HeadAsGetMiddleware(app)({"type": "http", "method": method}, receive, send)
    return seen, sent


async def test_head_is_routed_as_get_and_sent_without_its_body() -> None:
    seen, sent = await _run("HEAD")
    assert seen == ["GET"]
    assert sent[0]["status"] == 200 and sent[0]["headers"] == [(b"content-length", b"5")]
    assert sent[1]["body"] == b""


async def test_other_methods_pass_unchanged() -> None:
    for method in ("GET", "POST"):
        seen, sent = await _run(method)
        assert seen == [method] and sent[1]["body"] == b"hello"
