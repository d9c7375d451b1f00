"""What crosses the channel to a sender process: every field of a request and a result."""

from __future__ import annotations

import dataclasses

from orderhooks.delivery.senders import (
    request_from_message,
    request_message,
    result_from_message,
    result_message,
)
from orderhooks.delivery.transport import OutboundRequest, TransportResult, fake_result
from orderhooks.domain.model import AttemptError, ClientTls


def test_every_field_of_a_request_crosses_the_channel() -> None:
    # A field added to OutboundRequest (a client certificate, say) must be carried by
    # `request_message` too, or multi-process serve would silently send without it.
    assert [f.name for f in dataclasses.fields(OutboundRequest)] == [
        "url",
        "body",
        "headers",
        "timeout_seconds",
        "client_tls",
        "webhook_id",
        "resign",  # stays in the parent, which re-signs what it sends again
        "lease_expires_at",  # stays in the parent, which sends nothing again past it
    ]
    sent = OutboundRequest("http://127.0.0.1:9/x", b"{}", {"content-type": "application/json"}, 2.5)
    assert request_from_message(request_message(7, sent)) == (7, sent)
    tls = ClientTls("-----BEGIN CERTIFICATE-----\n", "-----BEGIN PRIVATE KEY-----\n", None)
    with_tls = dataclasses.replace(sent, client_tls=tls, webhook_id="wh_1")
    assert request_from_message(request_message(8, with_tls)) == (8, with_tls)


def test_every_field_of_a_result_crosses_the_channel() -> None:
    assert [f.name for f in dataclasses.fields(TransportResult)] == [
        "status_code",
        "response_excerpt",
        "response_headers",
        "error",
        "duration_ms",
        "detail",
    ]
    result = dataclasses.replace(
        fake_result(429, excerpt="slow down", headers={"Retry-After": "3"}, duration_ms=12),
        detail="why",
    )
    request_id, back = result_from_message(result_message(8, result))
    assert request_id == 8
    assert (back.status_code, back.response_excerpt, back.error, back.duration_ms) == (
        429,
        "slow down",
        AttemptError.HTTP_STATUS,
        12,
    )
    assert back.detail == "why"
    assert back.response_headers["retry-after"] == "3"  # still case-insensitive
    timeout = result_from_message(result_message(9, fake_result(None, error=AttemptError.TIMEOUT)))
    assert timeout[1].error is AttemptError.TIMEOUT and timeout[1].status_code is None


class _RaisingTransport:
    async def send(self, request: OutboundRequest) -> TransportResult:
        raise RuntimeError("a bug below the transport")

    async def close(self) -> None:
        return None


async def test_a_transport_that_raises_still_answers_with_a_failed_attempt() -> None:
    from orderhooks.delivery.sender import send_or_fail

    request = OutboundRequest("http://127.0.0.1:9/hook", b"{}", {}, 1.0)
    result = await send_or_fail(_RaisingTransport(), request)
    assert result.status_code is None
    assert result.error is AttemptError.CONNECTION_ERROR
    assert "RuntimeError" in result.detail
