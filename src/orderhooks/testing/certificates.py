"""Certificates made on the spot for tests of client certificates (mTLS).

`make_ca` makes a self-signed authority; `issue` signs a server certificate (for
`127.0.0.1`) or a client certificate with it. Everything lives in memory; `Issued.write`
puts a pair in files for `ssl.SSLContext.load_cert_chain` on the server side of a test.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_VALIDITY = timedelta(days=30)
# Backdated a little, as real authorities do, so a clock a second behind still accepts it.
BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes

    @property
    def cert_pem(self) -> str:
        """The certificate in PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        """The private key in unencrypted PKCS#8 PEM."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """Write `<name>.crt` and `<name>.key` (mode 0600) into `directory`."""
        cert_path = directory / f"{name}.crt"
        key_path = directory / f"{name}.key"
        cert_path.write_text(self.cert_pem)
        key_path.touch(mode=0o600)
        key_path.write_text(self.key_pem)
        return cert_path, key_path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(not_before: datetime | None, not_after: datetime | None) -> tuple[datetime, datetime]:
    start = not_before or datetime.now(UTC) - BACKDATE
    return start, not_after or start + DEFAULT_VALIDITY


def make_ca(
    common_name: str = "orderhooks test CA",
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> Issued:
    """A self-signed certificate authority with a P-256 key."""
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _validity(not_before, not_after)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate, key)


def issue(
    ca: Issued,
    common_name: str,
    *,
    server_address: str | None = None,
    dns_names: tuple[str, ...] = (),
    usages: tuple[x509.ObjectIdentifier, ...] | None = None,
    key: CertificateIssuerPrivateKeyTypes | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> Issued:
    """A certificate signed by `ca`: for a server at the IP `server_address` (and the host
    names `dns_names`), else for a client. `usages` overrides the extended key usage (an
    empty one makes a damaged certificate, whose extension holds no usage); `key`
    defaults to a new P-256 key."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    start, end = _validity(not_before, not_after)
    if usages is None:
        usages = (
            (ExtendedKeyUsageOID.SERVER_AUTH,)
            if server_address is not None
            else (ExtendedKeyUsageOID.CLIENT_AUTH,)
        )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_extended_key_usage(usages), critical=False)
    )
    if server_address is not None:
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        names.append(x509.IPAddress(ipaddress.ip_address(server_address)))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def _extended_key_usage(usages: tuple[x509.ObjectIdentifier, ...]) -> x509.ExtensionType:
    """The extended key usage extension; with no usage, its raw form (an empty DER
    sequence), which newer `cryptography` releases no longer build from the typed one."""
    if usages:
        return x509.ExtendedKeyUsage(list(usages))
    return x509.UnrecognizedExtension(x509.oid.ExtensionOID.EXTENDED_KEY_USAGE, b"\x30\x00")


__all__ = ["Issued", "issue", "make_ca"]
