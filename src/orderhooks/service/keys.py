"""API keys: create and revoke them, and the admin key a process stores at start.

Only a key's hash is stored; its plaintext is returned once, by `create_key`, and never
appears in the audit trail, which names keys by id.
"""

from __future__ import annotations

from collections.abc import Sequence

from orderhooks.domain.apikeys import generate_api_key, hash_api_key
from orderhooks.domain.ids import new_id
from orderhooks.domain.model import ApiKey, Role
from orderhooks.service.audit import Actor, audit_entry
from orderhooks.service.context import ServiceContext


def _new_key(
    role: Role, accounts: Sequence[str], name: str, key_hash: str, ctx: ServiceContext
) -> ApiKey:
    return ApiKey(
        id=new_id("key"),
        role=role,
        accounts=tuple(accounts),
        name=name,
        key_hash=key_hash,
        created_at=ctx.now(),
    )


async def create_key(
    ctx: ServiceContext, actor: Actor, role: Role, accounts: Sequence[str], name: str
) -> tuple[ApiKey, str]:
    """A new key and its plaintext, shown this once."""
    plaintext = generate_api_key()
    key = _new_key(role, accounts, name, hash_api_key(plaintext), ctx)
    details = {"role": key.role.value, "accounts": list(key.accounts), "name": key.name}
    entry = audit_entry(ctx, actor, "key.created", ("key", key.id), details)
    return await ctx.store.create_key(key, audit=entry), plaintext


async def revoke_key(ctx: ServiceContext, actor: Actor, key_id: str) -> None:
    """Revoke a key (NotFound when there is none): it is refused from now on."""
    entry = audit_entry(ctx, actor, "key.revoked", ("key", key_id))
    await ctx.store.revoke_key(key_id, ctx.now(), audit=entry)


async def create_first_admin_key(ctx: ServiceContext, name: str) -> str | None:
    """A new admin key for a first start, stored by its hash unless some key exists (made
    meanwhile by another process, say); its plaintext, or None when it was not stored.
    Not audited: no one asked for it, the process's first start did."""
    plaintext = generate_api_key()
    key = _new_key(Role.ADMIN, (), name, hash_api_key(plaintext), ctx)
    return plaintext if await ctx.store.create_first_key(key) else None


async def store_admin_key(ctx: ServiceContext, key_hash: str, name: str) -> ApiKey:
    """Store an admin key known by its hash (`ORDERHOOKS_ADMIN_KEY`). Not audited: no one
    asked for it, the process's own configuration did."""
    return await ctx.store.create_key(_new_key(Role.ADMIN, (), name, key_hash, ctx))
