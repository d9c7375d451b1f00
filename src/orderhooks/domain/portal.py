"""Portal links: one-time URLs that open a partner's view of some accounts in the
dashboard, without an API key (see docs/dashboard.md and docs/security.md).

A link carries a random token; only its SHA-256 hash is stored, like an API key's. The
link is used once (the store consumes it atomically) and its dashboard session ends at
the link's expiry.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

TOKEN_PREFIX = "ohp_"  # noqa: S105 - a prefix, not a secret
TOKEN_RANDOM_BYTES = 32
MIN_EXPIRES_IN_SECONDS = 60
MAX_EXPIRES_IN_SECONDS = 86_400
DEFAULT_EXPIRES_IN_SECONDS = 3600
MAX_ACCOUNTS = 100


@dataclass(frozen=True, slots=True)
class PortalLink:
    """A portal link as stored: never its token, only the token's hash."""

    id: str
    token_hash: str
    accounts: tuple[str, ...]
    created_by: str  # the id of the key that asked for it
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None

    def usable(self, now: datetime) -> bool:
        """Whether the link may still be opened: not used yet and not expired."""
        return self.used_at is None and now < self.expires_at

    def session_open(self, now: datetime) -> bool:
        """Whether the dashboard session the link opened may go on (it ends at expiry)."""
        return self.used_at is not None and now < self.expires_at


def generate_portal_token() -> str:
    """A new link token, shown once in the URL: `ohp_` + 43 URL-safe characters."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)


def hash_portal_token(token: str) -> str:
    """The stored form of a token. Tokens are 256 random bits, so one SHA-256 suffices."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
