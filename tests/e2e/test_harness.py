"""The receiver itself: each behaviour, the recording, and signature verification.

These need no orderhooks server: the requests are signed here with the
`standardwebhooks` package, so `verify_all` is checked against an independent signer.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from orderhooks.testing import Receiver, hex_signature
from orderhooks.testing.server import free_port


def signed(secret: str, body: bytes, message_id: str = "evt_1") -> dict[str, str]:
    """Headers as orderhooks sends them, made with the reference implementation."""
    now = datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body.decode()),
        "x-server-authorization-hmac-sha256": hex_signature(secret, body),
        "orderhooks-delivery-id": f"dlv_{message_id}",
        "orderhooks-attempt": "1",
    }


def new_secret() -> str:
    """A fresh `whsec_` secret."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


async def test_records_and_verifies(rx: Receiver) -> None:
    secret = new_secret()
    async with httpx.AsyncClient() as client:
        for n in range(3):
            body = b'{"id": "evt_%d", "sequence": %d}' % (n, n)
            response = await client.post(rx.url, content=body, headers=signed(secret, body))
            assert response.status_code == 200
    assert rx.verify_all(secret) == 3
    assert [e["sequence"] for e in rx.events()] == [0, 1, 2]
    request = rx.requests[0]
    assert (request.method, request.path, request.attempt) == ("POST", "/hook", 1)
    assert request.arrived_wall == pytest.approx(time.time(), abs=5)
    with pytest.raises(AssertionError, match="signature verification failed"):
        rx.verify_all(new_secret())


async def test_verify_all_catches_a_wrong_hex_header(rx: Receiver) -> None:
    secret = new_secret()
    body = b'{"id": "evt_1"}'
    headers = signed(secret, body)
    headers["x-server-authorization-hmac-sha256"] = hex_signature(secret, body + b" ")
    async with httpx.AsyncClient() as client:
        await client.post(rx.url, content=body, headers=headers)
    with pytest.raises(AssertionError, match="x-server-authorization-hmac-sha256"):
        rx.verify_all(secret)


async def test_fail_first_per_delivery_and_globally(rx: Receiver) -> None:
    async with httpx.AsyncClient() as client:
        rx.fail_first(2, per_delivery=True, status=503, headers={"Retry-After": "7"})
        codes = []
        for delivery in ("a", "a", "b", "a", "b", "b"):
            response = await client.post(rx.url, headers={"orderhooks-delivery-id": delivery})
            codes.append(response.status_code)
        assert codes == [503, 503, 503, 200, 503, 200]
        assert response.headers.get("retry-after") is None
        rx.fail_first(1)
        assert [(await client.post(rx.url)).status_code for _ in range(2)] == [500, 200]


async def test_status_gone_throttle_redirect(rx: Receiver) -> None:
    async with httpx.AsyncClient() as client:
        rx.gone()
        assert (await client.post(rx.url)).status_code == 410
        rx.throttle(429, "3")
        throttled = await client.post(rx.url)
        assert (throttled.status_code, throttled.headers["retry-after"]) == (429, "3")
        rx.redirect()
        moved = await client.post(rx.url)
        assert moved.status_code == 302
        assert moved.headers["location"] == rx.url_for("/redirected")
    assert [r.reply for r in rx.requests] == ["410", "429", "302"]
    assert not any(r.accepted for r in rx.requests)


async def test_random_failures_are_reproducible() -> None:
    outcomes = []
    for _ in range(2):
        async with Receiver() as rx, httpx.AsyncClient() as client:
            rx.fail_randomly(0.5, seed=42)
            outcomes.append([(await client.post(rx.url)).status_code for _ in range(20)])
    assert outcomes[0] == outcomes[1]
    assert {500, 200} == set(outcomes[0])


async def test_black_hole_reset_and_slow(rx: Receiver) -> None:
    async with httpx.AsyncClient() as client:
        rx.black_hole()
        with pytest.raises(httpx.ReadTimeout):
            await client.post(rx.url, timeout=0.3)
        rx.reset_connections()
        with pytest.raises(httpx.TransportError):
            await client.post(rx.url)
        rx.healthy()
        rx.slow(0.3)
        started = time.monotonic()
        assert (await client.post(rx.url)).status_code == 200
        assert time.monotonic() - started >= 0.3
        with pytest.raises(httpx.ReadTimeout):
            await client.post(rx.url, timeout=0.1)
    await rx.wait_for(lambda: len(rx.abandoned()) == 2, timeout=2, what="2 abandoned")
    assert [r.reply for r in rx.requests] == ["black_hole", "reset", "200", "200"]
    assert [r.accepted for r in rx.requests] == [False, False, True, False]


async def test_max_in_flight(rx: Receiver) -> None:
    rx.slow(0.3)
    async with httpx.AsyncClient() as client:
        await asyncio.gather(*(client.post(rx.url) for _ in range(5)))
    assert rx.max_in_flight == 5
    assert rx.in_flight == 0


async def test_stop_refuses_and_start_reuses_the_port() -> None:
    rx = Receiver().start()
    port = rx.port
    try:
        rx.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.post(rx.url)
        rx.start()
        assert rx.port == port
        assert httpx.post(rx.url).status_code == 200
    finally:
        rx.stop()


async def test_wait_for_times_out(rx: Receiver) -> None:
    with pytest.raises(AssertionError, match="timed out"):
        await rx.wait_for(lambda: False, timeout=0.1, what="nothing")


def test_free_port_is_free() -> None:
    port = free_port()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/")
