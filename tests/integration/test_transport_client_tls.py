"""The delivery transport with client certificates (docs/security.md, "Client
certificates"): the context of a request's `client_tls` is used for it alone, against an
HTTPS receiver on loopback that requires a certificate of its CA."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from orderhooks.delivery.clienttls import parse_client_tls
from orderhooks.delivery.netguard import NetworkGuard
from orderhooks.delivery.transport import AiohttpTransport, OutboundRequest
from orderhooks.domain.model import AttemptError, ClientTls
from orderhooks.testing.receiver import Receiver
from tests.support.tls import PARTNER_NAME, Pki, make_pki, mtls_receiver, tls_field

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture
async def rx(pki: Pki) -> AsyncIterator[Receiver]:
    receiver = mtls_receiver(pki).start()
    try:
        yield receiver
    finally:
        await asyncio.to_thread(receiver.stop)


@pytest.fixture
async def transport(pki: Pki) -> AsyncIterator[AiohttpTransport]:
    # Trusts the receiver's CA for requests without a client certificate of their own.
    trusting = ssl.create_default_context(cadata=pki.ca.cert_pem)
    sender = AiohttpTransport(NetworkGuard(LOOPBACK), limit=8, ssl_context=trusting)
    try:
        yield sender
    finally:
        await sender.close()


def _request(url: str, webhook_id: str, tls: ClientTls | None) -> OutboundRequest:
    return OutboundRequest(url, b"{}", {"content-type": "application/json"}, 5.0, tls, webhook_id)


def _tls(pki: Pki, client_is_stranger: bool = False) -> ClientTls:
    client = pki.stranger if client_is_stranger else pki.client
    parsed = parse_client_tls(tls_field(client, pki.ca), datetime.now(UTC))
    assert parsed is not None
    return parsed


async def test_without_a_client_certificate_the_receiver_refuses(
    transport: AiohttpTransport, rx: Receiver
) -> None:
    result = await transport.send(_request(rx.url, "wh_none", None))
    assert result.error == AttemptError.CONNECTION_ERROR, result
    assert rx.requests == []


async def test_each_request_presents_its_own_webhooks_certificate(
    transport: AiohttpTransport, rx: Receiver, pki: Pki
) -> None:
    stranger = await transport.send(_request(rx.url, "wh_stranger", _tls(pki, True)))
    assert stranger.error == AttemptError.CONNECTION_ERROR, stranger
    for _ in range(2):  # the second one rides the pooled connection of the first
        ok = await transport.send(_request(rx.url, "wh_partner", _tls(pki)))
        assert ok.status_code == 200 and ok.error is None, ok
    # A request without a certificate never rides the connection opened with one.
    again = await transport.send(_request(rx.url, "wh_none", None))
    assert again.error == AttemptError.CONNECTION_ERROR, again
    assert [r.client_name for r in rx.requests] == [PARTNER_NAME, PARTNER_NAME]
