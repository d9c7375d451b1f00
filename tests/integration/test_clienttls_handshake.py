"""Client certificates against a real HTTPS receiver on 127.0.0.1 that requires them.

The receiver is aiohttp on Python's ssl with `CERT_REQUIRED`, trusting only the test CA;
requests go through aiohttp with the context `build_ssl_context` makes, as deliveries will.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from orderhooks.delivery.clienttls import ClientTls, ClientTlsContexts, parse_client_tls
from orderhooks.testing.certificates import Issued, issue, make_ca


@dataclass
class TlsReceiver:
    """An HTTPS server that records the common name of each client certificate it saw."""

    url: str
    clients: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Pki:
    ca: Issued
    server: Issued
    client: Issued


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca = make_ca()
    return Pki(ca, issue(ca, "receiver", server_address="127.0.0.1"), issue(ca, "partner-42"))


def _server_context(pki: Pki, directory: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*pki.server.write(directory, "server"))
    context.load_verify_locations(cadata=pki.ca.cert_pem)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@pytest.fixture
async def receiver(pki: Pki, tmp_path: Path) -> AsyncIterator[TlsReceiver]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    found = TlsReceiver(url=f"https://127.0.0.1:{sock.getsockname()[1]}/hook")

    async def hook(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(pair[0] for pair in (peer or {}).get("subject", ()))
        found.clients.append(subject.get("commonName", ""))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=_server_context(pki, tmp_path)).start()
    try:
        yield found
    finally:
        await runner.cleanup()


def _tls(pki: Pki, *, ca: Issued | None = None, client: Issued | None = None) -> ClientTls:
    holder = client or pki.client
    value = {
        "clientCertificate": holder.cert_pem,
        "clientKey": holder.key_pem,
        "caCertificate": (ca or pki.ca).cert_pem,
    }
    tls = parse_client_tls(value, datetime.now(UTC))
    assert tls is not None
    return tls


async def _post(url: str, context: ssl.SSLContext) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=b"{}", ssl=context) as response,
    ):
        return response.status


async def test_the_receiver_accepts_the_client_certificate(pki: Pki, receiver: TlsReceiver) -> None:
    context = ClientTlsContexts().context_for("wh_1", _tls(pki))
    assert context is not None
    assert await _post(receiver.url, context) == 200
    assert receiver.clients == ["partner-42"]


async def test_one_session_serves_webhooks_with_and_without_certificates(
    pki: Pki, receiver: TlsReceiver
) -> None:
    contexts = ClientTlsContexts()
    with_cert = contexts.context_for("wh_1", _tls(pki))
    without = ssl.create_default_context(cadata=pki.ca.cert_pem)
    async with aiohttp.ClientSession() as session:
        # Connections are pooled per context: the certificate of one webhook never
        # rides on a connection opened for another.
        for _ in range(2):
            async with session.post(receiver.url, data=b"{}", ssl=with_cert) as response:
                assert response.status == 200
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.post(receiver.url, data=b"{}", ssl=without) as response:
                await response.read()
    assert receiver.clients == ["partner-42", "partner-42"]


def _without_a_client_certificate(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=pki.ca.cert_pem)


def _a_certificate_of_another_authority(pki: Pki) -> ssl.SSLContext | None:
    stranger = issue(make_ca("another CA"), "partner-42")
    return ClientTlsContexts().context_for("wh_1", _tls(pki, client=stranger))


def _trusting_another_authority_only(pki: Pki) -> ssl.SSLContext | None:
    # The CA certificate replaces the system roots: the receiver's must not verify.
    return ClientTlsContexts().context_for("wh_1", _tls(pki, ca=make_ca("another CA")))


def _the_system_roots(pki: Pki) -> ssl.SSLContext | None:
    # Without a CA certificate the system roots do not know the test CA.
    value = {"clientCertificate": pki.client.cert_pem, "clientKey": pki.client.key_pem}
    return ClientTlsContexts().context_for("wh_1", parse_client_tls(value, datetime.now(UTC)))


@pytest.mark.parametrize(
    ("context_of", "error"),
    [
        pytest.param(
            _without_a_client_certificate,
            aiohttp.ClientConnectionError,
            id="no-client-certificate",
        ),
        pytest.param(
            _a_certificate_of_another_authority,
            aiohttp.ClientConnectionError,
            id="client-certificate-of-another-ca",
        ),
        pytest.param(
            _trusting_another_authority_only,
            aiohttp.ClientConnectorCertificateError,
            id="ca-certificate-replaces-system-roots",
        ),
        pytest.param(
            _the_system_roots,
            aiohttp.ClientConnectorCertificateError,
            id="system-roots-do-not-know-test-ca",
        ),
    ],
)
async def test_no_request_gets_through_without_the_right_certificates(
    pki: Pki,
    receiver: TlsReceiver,
    context_of: Callable[[Pki], ssl.SSLContext | None],
    error: type[Exception],
) -> None:
    context = context_of(pki)
    assert context is not None
    with pytest.raises(error):
        await _post(receiver.url, context)
    assert receiver.clients == []
