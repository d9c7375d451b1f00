"""Who is looking: API keys behind dashboard sessions, checked again on every request."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from orderhooks.domain.apikeys import hash_api_key
from orderhooks.domain.model import ApiKey, Role, Scope
from orderhooks.domain.portal import PortalLink
from orderhooks.service.audit import VIA_DASHBOARD, Actor
from orderhooks.service.portal import ID_PREFIX as PORTAL_ID_PREFIX
from orderhooks.store import Store
from orderhooks.web.dashboard.session import Session

KEY_LIST_PAGE = 500
DASHBOARD_ROLES = frozenset({Role.ADMIN, Role.PARTNER})


class SignInRefusal(StrEnum):
    """Why a key cannot open the dashboard."""

    UNKNOWN = "unknown"  # no such key, or revoked: the sign-in page says the same for both
    ROLE = "role"  # an ingest key: it may post orders, not read them


@dataclass(frozen=True, slots=True)
class Viewer:
    """A signed-in key and its session; what it sees follows the API's scoping rules."""

    key: ApiKey
    session: Session
    csrf_token: str
    # Set when a portal link opened the session: `key` is then the link's partner view.
    portal_link: PortalLink | None = None

    @property
    def is_admin(self) -> bool:
        """Whether the key is an admin key (sees every account)."""
        return self.key.role == Role.ADMIN

    @property
    def scope(self) -> Scope:
        """The accounts this viewer may see: all for admin, its own for a partner."""
        return Scope() if self.is_admin else Scope(frozenset(self.key.accounts))

    @property
    def actor(self) -> Actor:
        """How the audit trail names this viewer: its key id, via the dashboard."""
        return Actor(self.key.id, via=VIA_DASHBOARD)


PORTAL_VIEWER_NAME = "Portal link"


def is_portal_session(session: Session) -> bool:
    """Whether a session was opened by a portal link (it names the link, not a key)."""
    return session.key_id.startswith(f"{PORTAL_ID_PREFIX}_")


def portal_principal(link: PortalLink) -> ApiKey:
    """What a portal link's session acts as: a partner of exactly the link's accounts,
    named by the link's id (no key exists: its hash is empty and matches nothing)."""
    return ApiKey(
        id=link.id,
        role=Role.PARTNER,
        accounts=link.accounts,
        name=PORTAL_VIEWER_NAME,
        key_hash="",
        created_at=link.created_at,
    )


class KeyDirectory:
    """Finds keys by their plaintext (sign-in) or id (sessions), rejecting revoked ones.

    The store finds keys by hash; sessions carry only the id. Ids seen at sign-in map to
    their hash in memory; an id this process has not seen (another process signed the
    user in, or a restart) is found once by walking the key list.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._hash_by_id: dict[str, str] = {}

    async def sign_in(self, plaintext: str) -> ApiKey | SignInRefusal:
        """The key for a plaintext, or why it may not sign in."""
        key = await self._store.key_by_hash(hash_api_key(plaintext.strip()))
        if key is None or key.revoked_at is not None:
            return SignInRefusal.UNKNOWN
        if key.role not in DASHBOARD_ROLES:
            return SignInRefusal.ROLE
        self._hash_by_id[key.id] = key.key_hash
        return key

    async def current(self, key_id: str) -> ApiKey | None:
        """The key of a session, if it still exists, is not revoked and may use the dashboard."""
        key_hash = self._hash_by_id.get(key_id) or await self._find_hash(key_id)
        if key_hash is None:
            return None
        key = await self._store.key_by_hash(key_hash)
        if key is None or key.id != key_id or key.revoked_at is not None:
            return None
        return key if key.role in DASHBOARD_ROLES else None

    async def _find_hash(self, key_id: str) -> str | None:
        cursor: str | None = None
        while True:
            page = await self._store.list_keys(KEY_LIST_PAGE, cursor)
            for key in page.items:
                if key.id == key_id:
                    self._hash_by_id[key.id] = key.key_hash
                    return key.key_hash
            if page.next_cursor is None:
                return None
            cursor = page.next_cursor
