"""Certificates and encryption keys for the tests of client certificates and secrets at
rest: a test PKI, an HTTPS receiver that requires client certificates, the `tls` field of
a webhook, new keys for `ORDERHOOKS_ENCRYPTION_KEYS`."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orderhooks.testing.certificates import Issued, issue, make_ca
from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import free_port

LOOPBACK = "127.0.0.1"
PARTNER_NAME = "partner-42"


@dataclass(frozen=True)
class Pki:
    """The receiver's CA with a server and a client certificate, and a stranger: a client
    certificate of another CA, which the receiver does not trust."""

    ca: Issued
    server: Issued
    client: Issued
    other_ca: Issued
    stranger: Issued


def make_pki() -> Pki:
    """A fresh PKI; the server certificate is for 127.0.0.1."""
    ca, other = make_ca("receiver CA"), make_ca("someone else's CA")
    return Pki(
        ca=ca,
        server=issue(ca, "receiver", server_address=LOOPBACK),
        client=issue(ca, PARTNER_NAME),
        other_ca=other,
        stranger=issue(other, "stranger"),
    )


def receiver_context(pki: Pki) -> ssl.SSLContext:
    """A server context that requires a client certificate of the PKI's CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        context.load_cert_chain(*pki.server.write(Path(directory), "server"))
    context.load_verify_locations(cadata=pki.ca.cert_pem)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def mtls_receiver(pki: Pki) -> Receiver:
    """An HTTPS receiver on loopback that requires client certificates; not started
    (`with mtls_receiver(pki) as rx:` runs it for the block)."""
    return Receiver(port=free_port(), ssl_context=receiver_context(pki))


def tls_field(client: Issued, ca: Issued | None) -> dict[str, Any]:
    """A webhook's `tls` with `client`'s certificate and key, trusting `ca` (None: the
    system roots)."""
    value: dict[str, Any] = {"clientCertificate": client.cert_pem, "clientKey": client.key_pem}
    if ca is not None:
        value["caCertificate"] = ca.cert_pem
    return value


def new_encryption_key() -> str:
    """A key for ORDERHOOKS_ENCRYPTION_KEYS: 32 random bytes in standard base64."""
    return base64.b64encode(os.urandom(32)).decode()
