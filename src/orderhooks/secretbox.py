"""Secrets at rest: AES-256-GCM sealing of the values a stolen database must not reveal.

`ORDERHOOKS_ENCRYPTION_KEYS` holds comma-separated keys, each 32 random bytes in standard
base64. The first key seals; every key opens, so a key can be added, everything resealed
(`orderhooks secrets reencrypt`) and the old key removed. A sealed value reads::

    enc:v1:<key id>:<standard base64 of nonce (12 bytes) + ciphertext + tag (16 bytes)>

The key id is the first 8 hex digits of the SHA-256 of the raw key: it says which key
opens the value without revealing anything of use about it. The associated data binds
the ciphertext to its format, its key id and a caller-given *context* naming what the
value is and where it lives (`webhook_secret:wh_…`), so a ciphertext copied into another
row or column does not open there.

Without keys the box passes values through unchanged (the caller logs a warning at
start). A value stored that way that happens to look like a sealed one is marked
`enc:v0:` so it reads back exactly; every other plaintext is stored as given, which is
also how values written before encryption was turned on read back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orderhooks.exceptions import ConfigError, SecretUnreadable

ENV_VAR = "ORDERHOOKS_ENCRYPTION_KEYS"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96 bits, the size GCM is defined for; random per value
TAG_BYTES = 16
KEY_ID_HEX_DIGITS = 8

SEALED_V1 = "enc:v1:"
# A value stored unencrypted that would otherwise be mistaken for a sealed one.
VERBATIM = "enc:v0:"
# Everything of the form `enc:v<digits>:` belongs to this module, including versions a
# newer orderhooks may write: an unknown version is an error, never read as plaintext.
_TAGGED = re.compile(r"enc:v[0-9]+:")
_SEALED_V1 = re.compile(r"enc:v1:([0-9a-f]{8}):([A-Za-z0-9+/]+={0,2})")
_CONTEXT_PART = re.compile(r"[^:\s]+")


def key_id(key: bytes) -> str:
    """The id a sealed value names its key by: 8 hex digits of the key's SHA-256."""
    return hashlib.sha256(key).hexdigest()[:KEY_ID_HEX_DIGITS]


def seal_context(purpose: str, *where: str) -> str:
    """The context of a value: its purpose and where it lives, `:`-joined
    (`seal_context("webhook_header", "wh_1", "x-api-key")`)."""
    parts = (purpose, *where)
    for part in parts:
        if not _CONTEXT_PART.fullmatch(part):
            raise ValueError(f"context part {part!r} must be non-empty, without ':' or spaces")
    return ":".join(parts)


def webhook_secret_context(webhook_id: str) -> str:
    """The context of a webhook's signing secrets (every entry of its rotation list)."""
    return seal_context("webhook_secret", webhook_id)


def webhook_header_context(webhook_id: str, header_name: str) -> str:
    """The context of one static header value of a webhook; names are case-insensitive."""
    return seal_context("webhook_header", webhook_id, header_name.lower())


def webhook_client_key_context(webhook_id: str) -> str:
    """The context of a webhook's client certificate key (`tls.clientKey`)."""
    return seal_context("webhook_client_key", webhook_id)


@dataclass(frozen=True, slots=True)
class SealingKey:
    """One key of the ring; its bytes never appear in a repr."""

    id: str
    secret: bytes = field(repr=False)


def parse_keys(raw: str | None) -> tuple[SealingKey, ...]:
    """The keys of `ORDERHOOKS_ENCRYPTION_KEYS`, first (sealing) key first; () when unset.

    ConfigError names the variable and the 1-based position of a bad key, never the key.
    Set but empty is an error: a variable meant to hold keys that lost them on the way
    must not quietly turn encryption off.
    """
    if raw is None:
        return ()
    if not raw.strip():
        raise ConfigError(f"{ENV_VAR} is set but empty; unset it to store secrets unencrypted")
    keys: list[SealingKey] = []
    for position, text in enumerate(raw.split(","), start=1):
        secret = _decode_key(text.strip(), position)
        kid = key_id(secret)
        for earlier, other in enumerate(keys, start=1):
            if other.id == kid:
                raise ConfigError(
                    f"{ENV_VAR}: keys {earlier} and {position} have the same key id {kid} "
                    "(the same key twice?); list each key once"
                )
        keys.append(SealingKey(kid, secret))
    return tuple(keys)


def _decode_key(text: str, position: int) -> bytes:
    where = f"{ENV_VAR}: key {position}"
    if not text:
        raise ConfigError(f"{where} is empty")
    try:
        secret = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        # The decoder's message is dropped: the key must not reach a log by any route.
        raise ConfigError(
            f"{where} is not standard base64 (A-Z, a-z, 0-9, +, / with = padding)"
        ) from None
    if len(secret) != KEY_BYTES:
        raise ConfigError(
            f"{where} is {len(secret)} bytes; each key must be exactly {KEY_BYTES} random "
            "bytes in base64 (44 characters)"
        )
    return secret


class SecretBox:
    """Seals and opens stored secrets with the configured keys; passes them through
    when there are none."""

    def __init__(self, keys: tuple[SealingKey, ...] = ()) -> None:
        self._keys = keys
        self._ciphers = {k.id: AESGCM(k.secret) for k in keys}

    @classmethod
    def from_env(cls, raw: str | None) -> SecretBox:
        """The box of an `ORDERHOOKS_ENCRYPTION_KEYS` value (None: unset)."""
        return cls(parse_keys(raw))

    def __repr__(self) -> str:
        return f"SecretBox(key_ids={list(self.key_ids)!r})"

    @property
    def encrypts(self) -> bool:
        """Whether values are sealed (at least one key is configured)."""
        return bool(self._keys)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of the configured keys, the sealing key first."""
        return tuple(k.id for k in self._keys)

    def seal(self, plaintext: str, context: str) -> str:
        """The stored form of `plaintext` in `context`: sealed with the first key, or the
        plaintext itself when there are no keys."""
        if not self._keys:
            return VERBATIM + plaintext if _TAGGED.match(plaintext) else plaintext
        first = self._keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[first.id].encrypt(
            nonce, plaintext.encode(), _associated_data(first.id, context)
        )
        return f"{SEALED_V1}{first.id}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def open(self, stored: str, context: str) -> str:
        """The plaintext of a stored value read in `context`.

        SecretUnreadable when the value is sealed and no configured key opens it: its key
        is missing, it was altered, or it was copied from another context.
        """
        if not _TAGGED.match(stored):
            return stored  # stored without encryption (no keys then, or before them)
        if stored.startswith(VERBATIM):
            return stored[len(VERBATIM) :]
        match = _SEALED_V1.fullmatch(stored)
        if match is None:
            raise SecretUnreadable(
                f"a stored secret ({context}) is in a format this version cannot read "
                f"(written by a newer orderhooks, or damaged); {ENV_VAR} cannot open it"
            )
        kid, payload = match.groups()
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SecretUnreadable(
                f"a stored secret ({context}) is sealed with key {kid}, which is not in "
                f"{ENV_VAR} (configured: {', '.join(self.key_ids) or 'no keys'})"
            )
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise SecretUnreadable(f"a stored secret ({context}) is damaged (truncated)")
        try:
            plaintext = cipher.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(kid, context)
            )
        except InvalidTag:
            raise SecretUnreadable(
                f"a stored secret ({context}) does not open with key {kid} of {ENV_VAR}: "
                "it was altered or copied from another row"
            ) from None
        return plaintext.decode()

    def is_sealed(self, stored: str) -> bool:
        """Whether `stored` is an encrypted value (of any key, any format version)."""
        return _TAGGED.match(stored) is not None and not stored.startswith(VERBATIM)

    def needs_reseal(self, stored: str) -> bool:
        """Whether `reseal` would change how `stored` is protected: with keys, a value not
        sealed with the first key (plaintext included); without keys, never."""
        if not self._keys:
            return False
        match = _SEALED_V1.fullmatch(stored)
        return match is None or match.group(1) != self._keys[0].id

    def reseal(self, stored: str, context: str) -> str:
        """`stored` opened and sealed again with the first key (for rotation)."""
        return self.seal(self.open(stored, context), context)


def _associated_data(kid: str, context: str) -> bytes:
    # The format and key id are bound too: a value cannot be relabelled as another
    # version or key without failing to open.
    return f"{SEALED_V1}{kid}:{context}".encode()


__all__ = [
    "ENV_VAR",
    "KEY_BYTES",
    "SealingKey",
    "SecretBox",
    "key_id",
    "parse_keys",
    "seal_context",
    "webhook_client_key_context",
    "webhook_header_context",
    "webhook_secret_context",
]
