"""The webhook field `tls` through the API (docs/api.md; docs/security.md, "Client
certificates"), and what an unreadable stored secret does to requests: the app on a real
SQLite file with ORDERHOOKS_ENCRYPTION_KEYS set."""

from __future__ import annotations

import base64
import sqlite3
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from orderhooks.domain.model import Scope
from orderhooks.secretbox import parse_keys
from orderhooks.testing.certificates import issue, make_ca
from tests.integration.api_support import LocalApi
from tests.support.api import expect
from tests.support.data import ALL_TYPES, new_order, unique
from tests.support.tls import Pki, make_pki, new_encryption_key, tls_field

API_SETTINGS = {"encryption_keys": parse_keys(new_encryption_key())}


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


def _body(account: str, tls: Any, url: str = "https://receiver.example.com/hook") -> dict[str, Any]:
    return {"url": url, "accounts": [account], "eventTypes": ALL_TYPES, "tls": tls}


def _row(api: LocalApi, webhook_id: str) -> sqlite3.Row:
    with sqlite3.connect(api.settings.data_dir / "orderhooks.db") as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM webhooks WHERE id = ?", (webhook_id,)).fetchone()
    assert row is not None
    return row


async def test_the_key_is_write_only_and_stored_sealed(api: LocalApi, pki: Pki) -> None:
    account = unique("acct")
    created = await api.create_webhook(
        "https://receiver.example.com/hook", [account], tls=tls_field(pki.client, pki.ca)
    )
    expected = {
        "clientCertificate": pki.client.cert_pem,
        "clientKey": "<set>",
        "caCertificate": pki.ca.cert_pem,
    }
    assert created["tls"] == expected
    assert (await api.webhook(created["id"]))["tls"] == expected
    listed = await api.list_all("/v1/webhooks", account=account)
    assert [w["tls"] for w in listed] == [expected]
    stored = await api.store.get_webhook(created["id"], Scope())
    assert stored.tls is not None and stored.tls.client_key == pki.client.key_pem
    row = _row(api, created["id"])
    assert pki.client.key_pem not in row["tls"] and '"clientKey":"enc:v1:' in row["tls"]
    assert "enc:v1:" in row["secrets"]


async def test_patch_with_the_placeholder_keeps_the_key(api: LocalApi, pki: Pki) -> None:
    created = await api.create_webhook(
        "https://receiver.example.com/hook", [unique("acct")], tls=tls_field(pki.client, None)
    )
    path = f"/v1/webhooks/{created['id']}"
    kept = {**tls_field(pki.client, pki.ca), "clientKey": "<set>"}
    patched = expect(await api.call("PATCH", path, json_body={"tls": kept}), 200)
    assert patched["tls"]["caCertificate"] == pki.ca.cert_pem
    stored = await api.store.get_webhook(created["id"], Scope())
    assert stored.tls is not None and stored.tls.client_key == pki.client.key_pem
    # A certificate that does not match the kept key is refused, and nothing changes.
    other = {**tls_field(pki.stranger, pki.ca), "clientKey": "<set>"}
    refused = expect(await api.call("PATCH", path, json_body={"tls": other}), 422)
    assert any(d["field"].startswith("tls") for d in refused["error"]["details"])
    assert (await api.webhook(created["id"]))["tls"] == patched["tls"]
    audit = await api.list_all("/v1/audit", targetId=created["id"])
    updates = [entry for entry in audit if entry["action"] == "webhook.updated"]
    assert [entry["details"]["fields"] for entry in updates] == [["tls"]]
    assert "PRIVATE KEY" not in str(audit) and "CERTIFICATE" not in str(audit)
    removed = expect(await api.call("PATCH", path, json_body={"tls": None}), 200)
    assert removed["tls"] is None and _row(api, created["id"])["tls"] is None


async def test_client_certificates_need_https(api: LocalApi, pki: Pki) -> None:
    account = unique("acct")
    body = _body(account, tls_field(pki.client, None), url="http://receiver.example.com/hook")
    refused = expect(await api.call("POST", "/v1/webhooks", json_body=body), 422)
    assert [d["field"] for d in refused["error"]["details"]] == ["tls"]
    assert await api.list_all("/v1/webhooks", account=account) == []
    created = await api.create_webhook(
        "https://receiver.example.com/hook", [account], tls=tls_field(pki.client, None)
    )
    path = f"/v1/webhooks/{created['id']}"
    to_http = {"url": "http://receiver.example.com/hook"}
    refused = expect(await api.call("PATCH", path, json_body=to_http), 422)
    assert [d["field"] for d in refused["error"]["details"]] == ["tls"]
    assert (await api.webhook(created["id"]))["url"].startswith("https://")
    both = {"url": "http://receiver.example.com/hook", "tls": None}
    assert expect(await api.call("PATCH", path, json_body=both), 200)["tls"] is None


async def test_a_certificate_for_servers_only_is_refused(api: LocalApi) -> None:
    ca = make_ca()
    server_only = issue(ca, "receiver", server_address="127.0.0.1")
    body = _body(unique("acct"), tls_field(server_only, ca))
    refused = expect(await api.call("POST", "/v1/webhooks", json_body=body), 422)
    assert [d["field"] for d in refused["error"]["details"]] == ["tls.clientCertificate"]


def _pem(kind: str, der: bytes) -> str:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN {kind}-----\n{body}-----END {kind}-----\n"


P256_OID = bytes.fromhex("06082a8648ce3d030107")  # 1.2.840.10045.3.1.7, the curve P-256
UNKNOWN_CURVE_OID = bytes.fromhex("06082a8648ce3d03011c")  # ...3.1.28: no such curve
V3, V73 = bytes.fromhex("a003020102"), bytes.fromhex("a003020148")  # [0] INTEGER version
ED25519_OID, ED448_OID = bytes.fromhex("06032b6570"), bytes.fromhex("06032b6571")
# 2.5.29.19 and 2.5.29.37, the extensions basic constraints and extended key usage.
BASIC_CONSTRAINTS_OID, USAGE_OID = bytes.fromhex("0603551d13"), bytes.fromhex("0603551d25")


def _damaged_tls(pki: Pki) -> dict[str, tuple[dict[str, Any], str]]:
    """`tls` values whose PEM parses but whose contents OpenSSL or cryptography cannot
    use, each with the field it must be refused for."""
    ca = make_ca()
    client_key = pki.client.key_pem
    cert_der = pki.client.certificate.public_bytes(serialization.Encoding.DER)
    key_der = pki.client.key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    ed25519_der = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert P256_OID in cert_der and P256_OID in key_der and ED25519_OID in ed25519_der
    unknown_curve_cert = _pem("CERTIFICATE", cert_der.replace(P256_OID, UNKNOWN_CURVE_OID))
    assert cert_der.count(BASIC_CONSTRAINTS_OID) == 1 and cert_der.count(USAGE_OID) == 1
    twice_usage_cert = _pem("CERTIFICATE", cert_der.replace(BASIC_CONSTRAINTS_OID, USAGE_OID))
    assert V3 in cert_der
    return {
        # A version X.509 does not have (v3 is 2).
        "certificate version": (
            {
                "clientCertificate": _pem("CERTIFICATE", cert_der.replace(V3, V73, 1)),
                "clientKey": client_key,
            },
            "tls.clientCertificate",
        ),
        # An empty extended key usage: the certificate loads, its extensions do not.
        "empty usage": (tls_field(issue(ca, "client", usages=()), None), "tls.clientCertificate"),
        # One extension twice (extended key usage): its extensions do not load either.
        "extension twice": (
            {"clientCertificate": twice_usage_cert, "clientKey": client_key},
            "tls.clientCertificate",
        ),
        # The public key of the certificate is on a curve nobody knows.
        "certificate curve": (
            {"clientCertificate": unknown_curve_cert, "clientKey": client_key},
            "tls.clientCertificate",
        ),
        "authority curve": (
            {**tls_field(pki.client, None), "caCertificate": unknown_curve_cert},
            "tls.caCertificate",
        ),
        "key curve": (
            {
                "clientCertificate": pki.client.cert_pem,
                "clientKey": _pem("PRIVATE KEY", key_der.replace(P256_OID, UNKNOWN_CURVE_OID)),
            },
            "tls.clientKey",
        ),
        # An Ed25519 key labelled as Ed448 (which OpenSSL fails on without a reason).
        "key type": (
            {
                "clientCertificate": pki.client.cert_pem,
                "clientKey": _pem("PRIVATE KEY", ed25519_der.replace(ED25519_OID, ED448_OID)),
            },
            "tls.clientKey",
        ),
    }


async def test_damaged_certificates_and_keys_are_422_not_500(api: LocalApi, pki: Pki) -> None:
    """Certificates and keys that parse as PEM but whose insides cannot be read (an empty
    extended key usage, an unknown curve, a key of one type labelled as another) are
    refused with 422 naming the field on create and PATCH, and change nothing (they
    answered 500)."""
    account = unique("acct")
    webhook = await api.create_webhook("https://receiver.example.com/hook", [account])
    path = f"/v1/webhooks/{webhook['id']}"
    for case, (tls, field) in _damaged_tls(pki).items():
        created = expect(await api.call("POST", "/v1/webhooks", json_body=_body(account, tls)), 422)
        assert [d["field"] for d in created["error"]["details"]] == [field], case
        patched = expect(await api.call("PATCH", path, json_body={"tls": tls}), 422)
        assert [d["field"] for d in patched["error"]["details"]] == [field], case
    assert [w["id"] for w in await api.list_all("/v1/webhooks", account=account)] == [webhook["id"]]
    assert (await api.webhook(webhook["id"]))["tls"] is None


async def test_an_unreadable_stored_secret_is_503_never_500(api: LocalApi) -> None:
    """A value sealed with a key this process lacks (another process's list): the
    requests that need it answer 503 `secrets_unavailable`, never 500."""
    account = unique("acct")
    created = await api.create_webhook(
        "https://receiver.example.com/hook", [account], headers={"X-Token": "t-1"}
    )
    foreign = '{"X-Token": "enc:v1:0badc0de:' + "A" * 60 + '"}'
    with sqlite3.connect(api.settings.data_dir / "orderhooks.db") as db:
        db.execute("UPDATE webhooks SET headers = ? WHERE id = ?", (foreign, created["id"]))
        db.execute("UPDATE meta SET value = value + 1 WHERE name = 'webhooks_version'")
    for method, path, body in (
        ("GET", f"/v1/webhooks/{created['id']}", None),
        ("GET", "/v1/webhooks", None),
        ("POST", "/v1/orders", new_order(account)),
    ):
        response = await api.call(method, path, json_body=body)
        error = expect(response, 503)
        assert error["error"]["code"] == "secrets_unavailable", error
        assert "0badc0de" not in response.text
