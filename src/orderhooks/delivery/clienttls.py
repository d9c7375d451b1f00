"""Client certificates (mTLS) for webhooks whose receivers demand them.

A webhook's `tls` is `null` or::

    {"clientCertificate": "<PEM>", "clientKey": "<PEM>", "caCertificate": "<PEM>"?}

`parse_client_tls` validates it at create and change time and refuses, each with a
problem naming the field (422): malformed PEM, a private key pasted into a certificate
field, a passphrase-protected key, an unsupported key type, a certificate not valid now
(expired or not yet valid: a certificate that cannot work is refused rather than stored
to fail every delivery later), a certificate whose extended key usage excludes client
authentication, and a key that does not match the certificate. Values are stored in a
canonical form: certificates re-encoded, the key as unencrypted PKCS#8 (the store seals
it at rest).

The key is write-only: answers carry `"clientKey": "<set>"`, and a `PATCH` that sends
`"<set>"` back keeps the stored key.

`build_ssl_context` makes the `ssl.SSLContext` a request to the webhook uses:
`caCertificate`, when given, replaces the system roots. Python's `ssl` loads a key
only from a path, so the key is handed over through an anonymous in-memory file
(`memfd_create`) that never touches a disk; where that does not exist, through a file
of mode 0600 removed at once. Either way the key in it is encrypted with a one-time
passphrase, so the plaintext key is never written anywhere. `ClientTlsContexts`
keeps one context per webhook while its settings stay the same: connections are pooled
per context, so a fresh one per request would cost a handshake each time.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import sys
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InternalError, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from orderhooks.domain.model import ClientTls
from orderhooks.exceptions import FieldProblem, ValidationError

FIELD = "tls"
CERT_FIELD = "clientCertificate"
KEY_FIELD = "clientKey"
CA_FIELD = "caCertificate"
KEY_PLACEHOLDER = "<set>"  # what answers show instead of the key
MAX_PEM_CHARS = 65_536  # a long chain is a few KiB; anything near this is not a chain
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 4096  # checking a key takes ~0.3 s at 4096 bits and grows steeply beyond
SUPPORTED_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
SUPPORTED_KEYS = "RSA of 2048 to 4096 bits, ECDSA on P-256, P-384 or P-521, or Ed25519"
CONTEXT_CACHE_SIZE = 1024  # webhooks with client certificates held at once

_PEM_BEGIN = "-----BEGIN "
_PRIVATE_KEY_MARK = "PRIVATE KEY-----"
_TIME = "%Y-%m-%dT%H:%M:%SZ"


def client_tls_json(tls: ClientTls | None) -> dict[str, Any] | None:
    """The `tls` field of a webhook answer: the key masked as `"<set>"`."""
    if tls is None:
        return None
    return {
        CERT_FIELD: tls.client_certificate,
        KEY_FIELD: KEY_PLACEHOLDER,
        CA_FIELD: tls.ca_certificate,
    }


def check_tls_url(url: str, tls: ClientTls | None) -> FieldProblem | None:
    """A problem naming `tls` when client certificates are set for a URL that is not https."""
    if tls is not None and urlsplit(url).scheme.lower() != "https":
        return FieldProblem(FIELD, "client certificates need an https url")
    return None


def parse_client_tls(
    value: object, now: datetime, current: ClientTls | None = None
) -> ClientTls | None:
    """A webhook's `tls` validated at `now` (aware UTC); ValidationError naming each bad field.

    `current` is the stored value when a webhook is changed: a `clientKey` of `"<set>"`
    then means "keep the stored key". Checking an RSA key takes up to ~0.3 s of CPU:
    call this off the event loop (`asyncio.to_thread`).
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError([FieldProblem(FIELD, "must be null or an object")])
    problems = [
        FieldProblem(f"{FIELD}.{name}", "unknown field")
        for name in value
        if name not in (CERT_FIELD, KEY_FIELD, CA_FIELD)
    ]
    chain = _certificates(value, CERT_FIELD, now, problems, required=True)
    key = _private_key(value, current, problems)
    authorities = _certificates(value, CA_FIELD, now, problems, required=False)
    if chain and key is not None:
        problems.extend(_pair_problems(chain[0], key))
    if problems:
        raise ValidationError(problems)
    assert chain and key is not None  # no problems means both were read
    tls = ClientTls(
        client_certificate=_pem_of(chain),
        client_key=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        ca_certificate=_pem_of(authorities) if authorities else None,
    )
    try:
        # What OpenSSL refuses must not be stored either; the system roots, slow to
        # load, have nothing to do with that question.
        _ssl_context(tls, system_roots=False)
    except ssl.SSLError as exc:
        raise ValidationError([FieldProblem(FIELD, f"not usable for TLS: {exc.reason}")]) from None
    return tls


def _pem_text(value: Mapping[str, Any], name: str, problems: list[FieldProblem]) -> str | None:
    """The field's text when it is a string of sensible size, else None (and a problem)."""
    text = value[name]
    where = f"{FIELD}.{name}"
    if not isinstance(text, str):
        problems.append(FieldProblem(where, "must be a PEM string"))
        return None
    if len(text) > MAX_PEM_CHARS:
        problems.append(FieldProblem(where, f"must be at most {MAX_PEM_CHARS} characters"))
        return None
    if _PEM_BEGIN not in text:
        problems.append(FieldProblem(where, "is not PEM (no -----BEGIN line)"))
        return None
    return text


def _certificates(
    value: Mapping[str, Any],
    name: str,
    now: datetime,
    problems: list[FieldProblem],
    *,
    required: bool,
) -> list[x509.Certificate]:
    """The certificates of a PEM field, each valid at `now`; [] with problems otherwise."""
    where = f"{FIELD}.{name}"
    if value.get(name) is None:
        if required:
            problems.append(FieldProblem(where, "is required"))
        return []
    text = _pem_text(value, name, problems)
    if text is None:
        return []
    if _PRIVATE_KEY_MARK in text:
        problems.append(
            FieldProblem(where, f"holds a private key; only the key goes in {FIELD}.{KEY_FIELD}")
        )
        return []
    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
    except (ValueError, x509.InvalidVersion):
        problems.append(FieldProblem(where, "is not a valid PEM certificate"))
        return []
    if not all(map(_readable, certificates)):
        problems.append(FieldProblem(where, "is not a valid PEM certificate"))
        return []
    found = len(problems)
    for position, certificate in enumerate(certificates, start=1):
        which = "the certificate" if len(certificates) == 1 else f"certificate {position}"
        if certificate.not_valid_after_utc <= now:
            expired = certificate.not_valid_after_utc.strftime(_TIME)
            problems.append(FieldProblem(where, f"{which} expired at {expired}"))
        elif certificate.not_valid_before_utc > now:
            starts = certificate.not_valid_before_utc.strftime(_TIME)
            problems.append(FieldProblem(where, f"{which} is not valid before {starts}"))
    if name == CERT_FIELD and not _allows_client_auth(certificates[0]):
        problems.append(
            FieldProblem(where, "is not for client authentication (extended key usage)")
        )
    return certificates if len(problems) == found else []


def _readable(certificate: x509.Certificate) -> bool:
    """Whether the parts of a certificate read lazily, its public key and extensions,
    can be read: a damaged one loads, then raises when they are first used."""
    try:
        certificate.public_key()
        certificate.extensions  # noqa: B018
    except (ValueError, UnsupportedAlgorithm, x509.DuplicateExtension):
        # DuplicateExtension: one extension twice (not a ValueError).
        return False
    return True


def _allows_client_auth(certificate: x509.Certificate) -> bool:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True  # no restriction stated
    return ExtendedKeyUsageOID.CLIENT_AUTH in usage or (
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usage
    )


def _private_key(
    value: Mapping[str, Any], current: ClientTls | None, problems: list[FieldProblem]
) -> PrivateKeyTypes | None:
    """The key of `clientKey` (or the stored one for `"<set>"`); None with a problem."""
    where = f"{FIELD}.{KEY_FIELD}"
    given = value.get(KEY_FIELD)
    if given is None:
        problems.append(FieldProblem(where, "is required"))
        return None
    if given == KEY_PLACEHOLDER:
        if current is None:
            problems.append(
                FieldProblem(
                    where,
                    f'"{KEY_PLACEHOLDER}" keeps a stored key; '
                    "this webhook has none, send the PEM key",
                )
            )
            return None
        given = current.client_key
    text = _pem_text({KEY_FIELD: given}, KEY_FIELD, problems)
    if text is None:
        return None
    if text.count(_PEM_BEGIN) != 1 or _PRIVATE_KEY_MARK not in text:
        problems.append(FieldProblem(where, "must hold exactly one PEM private key, nothing else"))
        return None
    try:
        # Type and size first: checking an RSA key's primes costs time that grows
        # steeply with its size, so a huge key is refused before that work is done.
        key = _load_key(text, checked=False)
    except TypeError:
        problems.append(FieldProblem(where, "is protected by a passphrase; send it without one"))
        return None
    except (ValueError, InternalError):
        # InternalError: OpenSSL failed on it without saying why (an Ed25519 key labelled
        # as Ed448, for one).
        problems.append(FieldProblem(where, "is not a valid PEM private key"))
        return None
    except UnsupportedAlgorithm:
        # An algorithm or curve OpenSSL does not know (or a damaged identifier of one).
        problems.append(FieldProblem(where, f"is a key of an unknown type; use {SUPPORTED_KEYS}"))
        return None
    problem = _key_type_problem(key)
    if problem is None and isinstance(key, rsa.RSAPrivateKey):
        try:
            _load_key(text, checked=True)
        except ValueError:
            problem = "is not a valid RSA key (its numbers are inconsistent)"
    if problem is not None:
        problems.append(FieldProblem(where, problem))
        return None
    return key


def _load_key(pem: str, *, checked: bool) -> PrivateKeyTypes:
    """The key of a PEM text; `checked=False` skips the RSA consistency check, for keys
    read back from storage, which were checked on the way in."""
    return serialization.load_pem_private_key(
        pem.encode(), password=None, unsafe_skip_rsa_key_validation=not checked
    )


def _key_type_problem(key: PrivateKeyTypes) -> str | None:
    if isinstance(key, rsa.RSAPrivateKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            return f"is an RSA key of {key.key_size} bits; use {SUPPORTED_KEYS}"
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in SUPPORTED_CURVES:
            return f"is an ECDSA key on {key.curve.name}; use {SUPPORTED_KEYS}"
        return None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    kind = type(key).__name__.removesuffix("PrivateKey") or "unknown"
    return f"is a {kind} key; use {SUPPORTED_KEYS}"


def _pair_problems(certificate: x509.Certificate, key: PrivateKeyTypes) -> list[FieldProblem]:
    """A problem naming `clientKey` unless it is the key of the certificate."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if certificate.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki):
        return []
    message = f"does not match {FIELD}.{CERT_FIELD} (the first certificate there)"
    return [FieldProblem(f"{FIELD}.{KEY_FIELD}", message)]


def _pem_of(certificates: list[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


# ---------------------------------------------------------------- SSL contexts


def build_ssl_context(tls: ClientTls) -> ssl.SSLContext:
    """An SSL context presenting the client certificate, verifying the server against
    `caCertificate` when given, else against the system roots. ssl.SSLError when
    OpenSSL refuses the material."""
    return _ssl_context(tls, system_roots=True)


def _ssl_context(tls: ClientTls, *, system_roots: bool) -> ssl.SSLContext:
    if tls.ca_certificate is not None or system_roots:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=tls.ca_certificate)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The key travels encrypted under a passphrase used once, so even the file fallback
    # of `_key_handover` never holds the plaintext key.
    passphrase = secrets.token_urlsafe(32).encode()
    key = _load_key(tls.client_key, checked=False)
    wrapped = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    with _key_handover(tls.client_certificate.encode() + wrapped) as path:
        context.load_cert_chain(path, password=passphrase)
    return context


@contextlib.contextmanager
def _key_handover(content: bytes, *, in_memory: bool = True) -> Iterator[str]:
    """A path holding `content` for as long as the block runs, then gone."""
    if in_memory and sys.platform == "linux" and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("orderhooks-client-tls", os.MFD_CLOEXEC)
        try:
            _write_all(fd, content)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(prefix="orderhooks-tls-")  # created with mode 0600
    try:
        _write_all(fd, content)
        os.close(fd)
        fd = -1
        yield path
    finally:
        if fd >= 0:
            os.close(fd)
        os.unlink(path)


def _write_all(fd: int, content: bytes) -> None:
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]


class ClientTlsContexts:
    """The SSL context of each webhook with client certificates, built once per settings.

    A webhook whose `tls` changes gets a new context (the old one goes, with its
    pooled connections); at most `size` webhooks are held, the oldest dropped first.
    """

    def __init__(self, size: int = CONTEXT_CACHE_SIZE) -> None:
        self._size = size
        self._contexts: dict[str, tuple[str, ssl.SSLContext]] = {}

    def context_for(self, webhook_id: str, tls: ClientTls | None) -> ssl.SSLContext | None:
        """The context for a request to the webhook; None when it has no client certificate."""
        if tls is None:
            self._contexts.pop(webhook_id, None)
            return None
        fingerprint = tls.fingerprint
        held = self._contexts.get(webhook_id)
        if held is not None and held[0] == fingerprint:
            return held[1]
        context = build_ssl_context(tls)
        self._contexts.pop(webhook_id, None)
        if len(self._contexts) >= self._size:
            del self._contexts[next(iter(self._contexts))]
        self._contexts[webhook_id] = (fingerprint, context)
        return context

    def __len__(self) -> int:
        return len(self._contexts)


__all__ = [
    "KEY_PLACEHOLDER",
    "ClientTls",
    "ClientTlsContexts",
    "build_ssl_context",
    "check_tls_url",
    "client_tls_json",
    "parse_client_tls",
]
