"""Validating a webhook's client certificate settings and building their SSL context."""

from __future__ import annotations

import functools
import os
import ssl
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from orderhooks.delivery import clienttls
from orderhooks.delivery.clienttls import (
    KEY_PLACEHOLDER,
    ClientTls,
    ClientTlsContexts,
    build_ssl_context,
    check_tls_url,
    client_tls_json,
    parse_client_tls,
)
from orderhooks.exceptions import ValidationError
from orderhooks.testing.certificates import Issued, issue, make_ca

NOW = datetime.now(UTC)


@functools.cache
def rsa_2048() -> rsa.RSAPrivateKey:
    """One RSA key for the whole file: making one takes a second on a busy machine."""
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="module")
def ca() -> Issued:
    return make_ca()


@pytest.fixture(scope="module")
def client(ca: Issued) -> Issued:
    return issue(ca, "partner-client")


def body(client: Issued, ca: Issued | None = None, **overrides: Any) -> dict[str, Any]:
    """A `tls` value for `client`, with fields replaced or (as None) dropped."""
    out: dict[str, Any] = {"clientCertificate": client.cert_pem, "clientKey": client.key_pem}
    if ca is not None:
        out["caCertificate"] = ca.cert_pem
    out.update(overrides)
    return {k: v for k, v in out.items() if v is not None}


def problems(value: object, current: ClientTls | None = None) -> dict[str, str]:
    """The problems `parse_client_tls` raises, by field (it must raise)."""
    with pytest.raises(ValidationError) as caught:
        parse_client_tls(value, NOW, current)
    return {p.field: p.message for p in caught.value.problems}


def traditional(key: Issued) -> str:
    """The key in the older per-algorithm PEM form (`BEGIN EC PRIVATE KEY`)."""
    return key.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


# ---------------------------------------------------------------- accepted


def test_null_means_no_client_certificate() -> None:
    assert parse_client_tls(None, NOW) is None


def test_a_valid_pair_with_a_ca_is_kept_in_canonical_form(ca: Issued, client: Issued) -> None:
    given = body(
        client, ca, clientKey=traditional(client), clientCertificate="\n" + client.cert_pem
    )
    tls = parse_client_tls(given, NOW)
    assert tls is not None
    assert tls.client_certificate == client.cert_pem
    assert tls.client_key == client.key_pem  # PKCS#8, whatever form it came in
    assert tls.client_key.startswith("-----BEGIN PRIVATE KEY-----")
    assert tls.ca_certificate == ca.cert_pem


def test_the_ca_is_optional(client: Issued) -> None:
    tls = parse_client_tls(body(client), NOW)
    assert tls is not None and tls.ca_certificate is None
    assert parse_client_tls(body(client, caCertificate=None), NOW) == tls


@pytest.mark.parametrize(
    "make_key",
    [
        rsa_2048,
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: ec.generate_private_key(ec.SECP521R1()),
        ed25519.Ed25519PrivateKey.generate,
    ],
    ids=["rsa-2048", "p-384", "p-521", "ed25519"],
)
def test_supported_key_types(ca: Issued, make_key: Callable[[], Any]) -> None:
    holder = issue(ca, "partner-client", key=make_key())
    assert parse_client_tls(body(holder), NOW) is not None


def test_a_chain_with_an_intermediate_keeps_the_leaf_first(ca: Issued) -> None:
    intermediate = issue(ca, "intermediate", usages=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    leaf = issue(intermediate, "partner-client")
    tls = parse_client_tls(body(leaf, clientCertificate=leaf.cert_pem + intermediate.cert_pem), NOW)
    assert tls is not None
    assert tls.client_certificate == leaf.cert_pem + intermediate.cert_pem


def test_a_certificate_without_extended_key_usage_is_accepted(ca: Issued) -> None:
    holder = issue(ca, "partner-client", usages=(ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,))
    assert parse_client_tls(body(holder), NOW) is not None


# ---------------------------------------------------------------- refused


def test_not_an_object() -> None:
    for value in ("pem", [], 3, True):
        assert problems(value) == {"tls": "must be null or an object"}


def test_unknown_and_missing_fields(client: Issued) -> None:
    assert problems({"clientCert": client.cert_pem}) == {
        "tls.clientCert": "unknown field",
        "tls.clientCertificate": "is required",
        "tls.clientKey": "is required",
    }


@pytest.mark.parametrize("name", ["clientCertificate", "clientKey", "caCertificate"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (42, "must be a PEM string"),
        ("hello", "is not PEM"),
        ("-----BEGIN {label}-----\nnot base64\n-----END {label}-----\n", "not a valid"),
        ("-----BEGIN " + "A" * 70_000, "at most 65536 characters"),
    ],
    ids=["number", "no-pem", "broken-pem", "huge"],
)
def test_malformed_pem_names_the_field(
    ca: Issued, client: Issued, name: str, value: object, message: str
) -> None:
    if isinstance(value, str):
        value = value.format(label="PRIVATE KEY" if name == "clientKey" else "CERTIFICATE")
    found = problems(body(client, ca, **{name: value}))
    assert list(found) == [f"tls.{name}"]
    assert message in found[f"tls.{name}"]


def test_a_truncated_certificate_is_malformed(client: Issued) -> None:
    cut = client.cert_pem[: len(client.cert_pem) // 2]
    assert problems(body(client, clientCertificate=cut)) == {
        "tls.clientCertificate": "is not a valid PEM certificate"
    }


def test_a_private_key_in_a_certificate_field_is_refused_not_stored(
    ca: Issued, client: Issued
) -> None:
    both = client.cert_pem + client.key_pem
    for name in ("clientCertificate", "caCertificate"):
        found = problems(body(client, ca, **{name: both}))
        assert found == {f"tls.{name}": "holds a private key; only the key goes in tls.clientKey"}


def test_a_key_field_must_hold_one_key_only(client: Issued) -> None:
    for value in (client.key_pem + client.key_pem, client.cert_pem + client.key_pem):
        assert problems(body(client, clientKey=value)) == {
            "tls.clientKey": "must hold exactly one PEM private key, nothing else"
        }
    assert problems(body(client, clientKey=client.cert_pem)) == {
        "tls.clientKey": "must hold exactly one PEM private key, nothing else"
    }


def test_a_key_that_does_not_match_the_certificate(ca: Issued, client: Issued) -> None:
    other = issue(ca, "someone-else")
    assert problems(body(client, clientKey=other.key_pem)) == {
        "tls.clientKey": "does not match tls.clientCertificate (the first certificate there)"
    }


def test_an_expired_client_certificate_is_refused(ca: Issued) -> None:
    ended = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    expired = issue(ca, "partner-client", not_before=ended - timedelta(days=30), not_after=ended)
    assert problems(body(expired)) == {
        "tls.clientCertificate": "the certificate expired at 2026-01-31T12:00:00Z"
    }


def test_a_certificate_not_yet_valid_is_refused(ca: Issued) -> None:
    starts = (NOW + timedelta(days=2)).replace(microsecond=0)
    early = issue(ca, "partner-client", not_before=starts)
    found = problems(body(early))
    assert found == {
        "tls.clientCertificate": f"the certificate is not valid before {starts:%Y-%m-%dT%H:%M:%SZ}"
    }


def test_an_expired_ca_certificate_is_refused(client: Issued) -> None:
    ended = NOW - timedelta(days=1)
    old_ca = make_ca("old CA", not_before=ended - timedelta(days=30), not_after=ended)
    current_ca = make_ca("current CA")
    found = problems(body(client, caCertificate=current_ca.cert_pem + old_ca.cert_pem))
    assert list(found) == ["tls.caCertificate"]
    assert found["tls.caCertificate"].startswith("certificate 2 expired at ")


def test_a_server_only_certificate_is_refused(ca: Issued) -> None:
    server = issue(ca, "receiver", server_address="127.0.0.1")
    assert problems(body(server)) == {
        "tls.clientCertificate": "is not for client authentication (extended key usage)"
    }


@pytest.mark.parametrize(
    ("make_key", "message"),
    [
        (lambda: dsa.generate_private_key(2048), "is a DSA key; use RSA of 2048 to 4096 bits"),
        # A weak key on purpose: the test is that it is refused.
        (lambda: rsa.generate_private_key(65537, 1024), "is an RSA key of 1024 bits; use RSA"),  # noqa: S505
        (lambda: ec.generate_private_key(ec.SECP256K1()), "is an ECDSA key on secp256k1; use RSA"),
    ],
    ids=["dsa", "rsa-1024", "secp256k1"],
)
def test_unsupported_key_types(ca: Issued, make_key: Callable[[], Any], message: str) -> None:
    holder = issue(ca, "partner-client", key=make_key())
    found = problems(body(holder))
    assert list(found) == ["tls.clientKey"]
    assert found["tls.clientKey"].startswith(message)


def _pkcs8(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def test_a_huge_rsa_key_is_refused_before_its_numbers_are_checked(client: Issued) -> None:
    # Made-up numbers: checking them would fail, so the size must be judged first.
    p, q = (1 << 4200) + 1, (1 << 4200) + 3
    public = rsa.RSAPublicNumbers(65537, p * q)
    huge = rsa.RSAPrivateNumbers(p, q, 65537, 1, 1, 1, public).private_key(
        unsafe_skip_rsa_key_validation=True
    )
    assert problems(body(client, clientKey=_pkcs8(huge))) == {
        "tls.clientKey": "is an RSA key of 8401 bits; use RSA of 2048 to 4096 bits, "
        "ECDSA on P-256, P-384 or P-521, or Ed25519"
    }


def test_an_inconsistent_rsa_key_is_refused(client: Issued) -> None:
    numbers = rsa_2048().private_numbers()
    broken = rsa.RSAPrivateNumbers(
        numbers.p,
        numbers.q,
        numbers.d + 2,
        numbers.dmp1,
        numbers.dmq1,
        numbers.iqmp,
        numbers.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)
    assert problems(body(client, clientKey=_pkcs8(broken))) == {
        "tls.clientKey": "is not a valid RSA key (its numbers are inconsistent)"
    }


def test_a_key_with_a_passphrase_is_refused(client: Issued) -> None:
    locked = client.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()
    assert problems(body(client, clientKey=locked)) == {
        "tls.clientKey": "is protected by a passphrase; send it without one"
    }


def test_every_bad_field_is_named_at_once(ca: Issued) -> None:
    ended = NOW - timedelta(hours=1)
    expired = issue(ca, "partner-client", not_before=ended - timedelta(days=1), not_after=ended)
    found = problems(body(expired, clientKey="junk", caCertificate=7, extra=True))
    assert set(found) == {
        "tls.extra",
        "tls.clientCertificate",
        "tls.clientKey",
        "tls.caCertificate",
    }


# ---------------------------------------------------------------- the write-only key


def test_answers_mask_the_key(ca: Issued, client: Issued) -> None:
    tls = parse_client_tls(body(client, ca), NOW)
    shown = client_tls_json(tls)
    assert shown == {
        "clientCertificate": client.cert_pem,
        "clientKey": "<set>",
        "caCertificate": ca.cert_pem,
    }
    assert client_tls_json(None) is None
    assert client.key_pem not in repr(tls)
    assert "PRIVATE" not in repr(tls)


def test_sending_the_mask_back_keeps_the_stored_key(ca: Issued, client: Issued) -> None:
    stored = parse_client_tls(body(client), NOW)
    assert stored is not None
    changed = parse_client_tls(body(client, ca, clientKey=KEY_PLACEHOLDER), NOW, stored)
    assert changed == ClientTls(stored.client_certificate, stored.client_key, ca.cert_pem)


def test_the_mask_with_a_new_certificate_must_still_match(ca: Issued, client: Issued) -> None:
    stored = parse_client_tls(body(client), NOW)
    other = issue(ca, "someone-else")
    found = problems(body(other, clientKey=KEY_PLACEHOLDER), stored)
    assert list(found) == ["tls.clientKey"]


def test_the_mask_without_a_stored_key_is_refused(client: Issued) -> None:
    found = problems(body(client, clientKey=KEY_PLACEHOLDER))
    assert list(found) == ["tls.clientKey"]
    assert "has none" in found["tls.clientKey"]


def test_client_certificates_need_https(client: Issued) -> None:
    tls = parse_client_tls(body(client), NOW)
    assert check_tls_url("https://partner.example/hook", tls) is None
    assert check_tls_url("http://partner.example/hook", None) is None
    problem = check_tls_url("http://partner.example/hook", tls)
    assert problem is not None and problem.field == "tls"


# ---------------------------------------------------------------- SSL contexts


def test_the_context_verifies_servers_with_the_given_ca_only(ca: Issued, client: Issued) -> None:
    tls = parse_client_tls(body(client, ca), NOW)
    assert tls is not None
    context = build_ssl_context(tls)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    subjects = [dict(pair[0] for pair in c["subject"]) for c in context.get_ca_certs()]
    assert subjects == [{"commonName": "orderhooks test CA"}]


def test_without_a_ca_the_context_uses_the_system_roots(client: Issued) -> None:
    tls = parse_client_tls(body(client), NOW)
    assert tls is not None
    system = ssl.create_default_context().get_ca_certs()
    assert system, "the machine has no system roots to compare with"
    assert build_ssl_context(tls).get_ca_certs() == system


def test_the_key_is_never_handed_to_openssl_in_plaintext(
    monkeypatch: pytest.MonkeyPatch, client: Issued
) -> None:
    handed: list[bytes] = []
    real = clienttls._key_handover

    def spy(content: bytes, *, in_memory: bool = True) -> Any:
        handed.append(content)
        return real(content, in_memory=in_memory)

    monkeypatch.setattr(clienttls, "_key_handover", spy)
    tls = parse_client_tls(body(client), NOW)
    assert tls is not None
    build_ssl_context(tls)
    assert handed
    for content in handed:
        assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in content
        key_body = "".join(client.key_pem.splitlines()[1:-1]).encode()
        assert key_body[:40] not in content.replace(b"\n", b"")


def test_the_in_memory_handover_leaves_no_file(tmp_path: Path) -> None:
    before = set(Path(os.environ.get("TMPDIR", "/tmp")).iterdir())
    with clienttls._key_handover(b"material") as path:
        assert path.startswith("/proc/self/fd/")
        assert Path(path).read_bytes() == b"material"
    assert set(Path(os.environ.get("TMPDIR", "/tmp")).iterdir()) == before


def test_the_file_handover_is_private_and_removed_at_once() -> None:
    with clienttls._key_handover(b"material", in_memory=False) as path:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode == 0o600
        assert Path(path).read_bytes() == b"material"
    assert not Path(path).exists()


def test_contexts_are_cached_per_webhook_until_its_settings_change(
    ca: Issued, client: Issued
) -> None:
    contexts = ClientTlsContexts(size=2)
    first = parse_client_tls(body(client), NOW)
    with_ca = parse_client_tls(body(client, ca), NOW)
    one = contexts.context_for("wh_1", first)
    assert one is not None
    assert contexts.context_for("wh_1", first) is one
    assert contexts.context_for("wh_1", parse_client_tls(body(client), NOW)) is one  # equal
    changed = contexts.context_for("wh_1", with_ca)
    assert changed is not None and changed is not one
    assert contexts.context_for("wh_1", None) is None
    assert len(contexts) == 0


def test_the_context_cache_is_bounded(client: Issued) -> None:
    contexts = ClientTlsContexts(size=2)
    tls = parse_client_tls(body(client), NOW)
    first = contexts.context_for("wh_1", tls)
    contexts.context_for("wh_2", tls)
    contexts.context_for("wh_3", tls)
    assert len(contexts) == 2
    assert contexts.context_for("wh_1", tls) is not first  # dropped, built again


def test_material_openssl_refuses_is_a_problem_naming_tls(
    monkeypatch: pytest.MonkeyPatch, client: Issued
) -> None:
    # Everything cryptography accepts is loaded by OpenSSL here too; a refusal there
    # (a stricter system security level, say) must still be a 422, not a crash.
    def refuse(tls: ClientTls, *, system_roots: bool) -> ssl.SSLContext:
        error = ssl.SSLError(1, "[SSL: CA_MD_TOO_WEAK] ca md too weak")
        error.reason = "CA_MD_TOO_WEAK"
        raise error

    monkeypatch.setattr(clienttls, "_ssl_context", refuse)
    assert problems(body(client)) == {"tls": "not usable for TLS: CA_MD_TOO_WEAK"}
