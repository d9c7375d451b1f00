"""Signed session tokens and CSRF tokens of the dashboard.

The session cookie never holds the API key: it holds the key's id, an expiry and a
random nonce, signed with HMAC-SHA256. The signing secret lives in the data dir (mode
0600) so that every process sharing the data dir accepts the same sessions and a
restart does not sign everybody out; when the data dir cannot be written, a random
secret of this process is used instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from orderhooks.private_files import make_private_dir

SESSION_COOKIE = "orderhooks_session"
SIGNIN_COOKIE = "orderhooks_signin"
SESSION_LIFETIME_SECONDS = 8 * 3600
SIGNIN_NONCE_LIFETIME_SECONDS = 3600
SECRET_FILE_NAME = "dashboard-session.key"  # noqa: S105 - a file name, not a secret
SECRET_BYTES = 32
NONCE_BYTES = 16
TOKEN_VERSION = "v1"  # noqa: S105 - a format version, not a secret

log = structlog.get_logger("orderhooks.dashboard")


@dataclass(frozen=True, slots=True)
class Session:
    """What a valid session cookie says: whose key, until when, and its own nonce."""

    key_id: str
    expires_at: int  # Unix seconds
    nonce: str


def _same(presented: str, expected: str) -> bool:
    """Whether a token a browser sent is the expected one, in constant time. Compared as
    bytes: `hmac.compare_digest` refuses str with non-ASCII characters with a TypeError,
    and anyone can post such a token."""
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogateescape"), expected.encode("ascii")
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def load_session_secret(data_dir: Path) -> bytes:
    """The signing secret kept in `data_dir`, created on first use; a random one of this
    process when the data dir cannot hold it."""
    path = data_dir / SECRET_FILE_NAME
    try:
        make_private_dir(data_dir)
        try:
            # O_EXCL: two processes starting together must not write two secrets.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            secret = path.read_bytes()
            if len(secret) >= SECRET_BYTES:
                return secret
            raise OSError(f"{path} is too short to be a session secret") from None
        secret = secrets.token_bytes(SECRET_BYTES)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secret)
            handle.flush()
            os.fsync(handle.fileno())
        return secret
    except OSError as exc:
        log.warning("dashboard_session_secret_not_persisted", reason=type(exc).__name__)
        return secrets.token_bytes(SECRET_BYTES)


class SessionSigner:
    """Issues and checks session, sign-in and CSRF tokens with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: str, message: str) -> str:
        digest = hmac.new(self._secret, f"{purpose}|{message}".encode(), hashlib.sha256)
        return _b64(digest.digest())

    def issue(self, key_id: str, now: datetime, expires_at: int | None = None) -> str:
        """A new session token for `key_id`, valid for SESSION_LIFETIME_SECONDS or until
        `expires_at` (Unix seconds) when given."""
        if expires_at is None:
            expires_at = int(now.timestamp()) + SESSION_LIFETIME_SECONDS
        body = f"{TOKEN_VERSION}.{key_id}.{expires_at}.{_b64(secrets.token_bytes(NONCE_BYTES))}"
        return f"{body}.{self._mac('session', body)}"

    def read(self, token: str | None, now: datetime) -> Session | None:
        """The session a token stands for, or None when it is forged, malformed or expired."""
        if not token:
            return None
        parts = token.split(".")
        if len(parts) != 5 or parts[0] != TOKEN_VERSION:
            return None
        body, mac = ".".join(parts[:4]), parts[4]
        if not _same(mac, self._mac("session", body)):
            return None
        try:
            expires_at = int(parts[2])
        except ValueError:
            return None
        if expires_at <= now.timestamp():
            return None
        return Session(key_id=parts[1], expires_at=expires_at, nonce=parts[3])

    def csrf_token(self, session: Session) -> str:
        """The CSRF token of a session: every form of that session carries it."""
        return self._mac("csrf", session.nonce)

    def check_csrf(self, session: Session, presented: str | None) -> bool:
        """Whether a form carried the CSRF token of its session."""
        return bool(presented) and _same(str(presented), self.csrf_token(session))

    def new_signin_nonce(self) -> str:
        """A random nonce for the sign-in form, set as a cookie beside the form."""
        return _b64(secrets.token_bytes(NONCE_BYTES))

    def signin_token(self, nonce: str) -> str:
        """The hidden field of the sign-in form that goes with its nonce cookie."""
        return self._mac("signin", nonce)

    def check_signin(self, nonce: str | None, presented: str | None) -> bool:
        """Whether the sign-in form came from our page (its field matches its cookie)."""
        if not nonce or not presented:
            return False
        return _same(str(presented), self.signin_token(nonce))
