"""Authentication and roles (docs/api.md, authentication): `Authorization: Bearer <key>`, checked
before the body is read.

Lookups are cached for KEY_CACHE_SECONDS. Revoking through this process's API drops the
key from the cache at once; a revocation made elsewhere (the CLI, another API process)
takes effect within KEY_CACHE_SECONDS. Unknown keys are never cached, so a key created
elsewhere works at once.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from orderhooks.domain.apikeys import hash_api_key, header_key
from orderhooks.domain.model import ALL_ACCOUNTS, ApiKey, Role, Scope
from orderhooks.service.audit import Actor
from orderhooks.store import Store
from orderhooks.web.context import get_context
from orderhooks.web.errors import ApiError

KEY_CACHE_SECONDS = 2.0
KEY_CACHE_MAX_ENTRIES = 1024


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated key behind a request."""

    key_id: str
    role: Role
    accounts: frozenset[str]

    @property
    def is_admin(self) -> bool:
        """Whether the caller may do everything."""
        return self.role is Role.ADMIN

    @property
    def scope(self) -> Scope:
        """The accounts the caller may see (all for admin and ingest)."""
        return Scope(None) if self.role is not Role.PARTNER else Scope(self.accounts)

    @property
    def actor(self) -> Actor:
        """How the audit trail names this caller: its key id."""
        return Actor(self.key_id)

    def require_accounts(self, accounts: Iterable[str]) -> None:
        """403 when a partner names an account not its own (or all accounts, `*`)."""
        if self.role is not Role.PARTNER:
            return
        for account in accounts:
            if account == ALL_ACCOUNTS:
                raise ApiError(403, 'only an admin key may name all accounts ("*")')
            if account not in self.accounts:
                raise ApiError(403, f"account {account!r} is not one of this key's accounts")

    def require_body_accounts(self, body: object) -> None:
        """403 when a JSON body's `accounts` names an account not the caller's, before the
        rest of the body is validated (docs/api.md, authentication)."""
        if isinstance(body, dict) and isinstance(body.get("accounts"), list):
            self.require_accounts(a for a in body["accounts"] if isinstance(a, str))


class KeyCache:
    """Key lookups by hash, cached briefly and bounded (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        ttl_seconds: float = KEY_CACHE_SECONDS,
        max_entries: int = KEY_CACHE_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[ApiKey, float]] = OrderedDict()

    async def lookup(self, plaintext: str) -> ApiKey | None:
        """The stored key for a plaintext, or None when unknown."""
        digest = hash_api_key(plaintext)
        now = self._clock()
        cached = self._entries.get(digest)
        if cached is not None and cached[1] > now:
            key = cached[0]
        else:
            self._entries.pop(digest, None)
            found = await self._store.key_by_hash(digest)
            if found is None:
                return None
            key = found
            self._entries[digest] = (key, now + self._ttl)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        # The store matched on the hash; comparing again in constant time keeps a
        # lookup that matched loosely (collation, prefix index) from letting a key in.
        if not hmac.compare_digest(key.key_hash, digest):
            return None
        return key

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (it was revoked here)."""
        for digest in [d for d, (k, _) in self._entries.items() if k.id == key_id]:
            del self._entries[digest]


bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An orderhooks API key: `Authorization: Bearer ohk_…`.",
)

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request, credentials: Credentials) -> Caller:
    """The caller of a request; 401 for a missing, unknown or revoked key, 429 over the
    per-key rate limit."""
    if credentials is None or not credentials.credentials:
        raise _unauthenticated("an API key is required: Authorization: Bearer <key>")
    ctx = get_context(request)
    key = await ctx.keys.lookup(header_key(credentials.credentials))
    if key is None or key.revoked_at is not None:
        raise _unauthenticated("the API key is not valid")
    wait = ctx.limiter.acquire(key.id)
    if wait is not None:
        raise ApiError(429, "too many requests for this key", headers={"Retry-After": str(wait)})
    return Caller(key_id=key.id, role=key.role, accounts=frozenset(key.accounts))


def _refuse_nul(request: Request) -> None:
    """No id or filter may hold a NUL character (PostgreSQL refuses them in text): a path
    with one names nothing (404), a query with one is invalid (422). Checked after the
    caller's key and role, like every other property of the request."""
    if "\x00" in request.scope["path"]:
        raise ApiError(404, "no such resource")
    query = request.scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        message = "query parameters must not contain NUL characters"
        raise ApiError(422, message, details=[{"field": "query", "message": message}])


def require_role(*roles: Role) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the authenticated caller, 403 unless its role is one of `roles`."""

    # One dependency with the credentials as its only sub-dependency, not one more on
    # `authenticate`: each level FastAPI solves costs every request about 20 µs of CPU.
    async def dependency(request: Request, credentials: Credentials) -> Caller:
        caller = await authenticate(request, credentials)
        if caller.role not in roles:
            raise ApiError(403, f"the {caller.role.value} role may not call this endpoint")
        _refuse_nul(request)
        return caller

    return dependency


AdminCaller = Annotated[Caller, Depends(require_role(Role.ADMIN))]
IngestCaller = Annotated[Caller, Depends(require_role(Role.ADMIN, Role.INGEST))]
PartnerCaller = Annotated[Caller, Depends(require_role(Role.ADMIN, Role.PARTNER))]
