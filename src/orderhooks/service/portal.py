"""Portal links: make a one-time link into the dashboard, and open it once.

The caller (the API) authorizes which accounts the actor may name and validates the body;
this module makes the token, stores its hash, audits the link (never its token) and
consumes it when a browser opens it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from orderhooks.domain.ids import new_id
from orderhooks.domain.model import AuditEntry, Scope
from orderhooks.domain.portal import PortalLink, generate_portal_token, hash_portal_token
from orderhooks.service.audit import Actor, audit_entry, audit_time
from orderhooks.service.context import ServiceContext

ID_PREFIX = "plk"


async def create_portal_link(
    ctx: ServiceContext, actor: Actor, accounts: Sequence[str], expires_in_seconds: int
) -> tuple[PortalLink, str]:
    """A new link for `accounts`, valid for `expires_in_seconds`, and its token (shown
    this once, in the link's URL)."""
    now = ctx.now()
    token = generate_portal_token()
    link = PortalLink(
        id=new_id(ID_PREFIX),
        token_hash=hash_portal_token(token),
        accounts=tuple(dict.fromkeys(accounts)),
        created_by=actor.id,
        created_at=now,
        expires_at=now + timedelta(seconds=expires_in_seconds),
    )
    details = {"accounts": list(link.accounts), "expiresAt": audit_time(link.expires_at)}
    entry = audit_entry(ctx, actor, "portal_link.created", ("portal_link", link.id), details)
    return await ctx.store.create_portal_link(link, audit=entry), token


async def open_portal_link(ctx: ServiceContext, token: str) -> PortalLink | None:
    """Use a link: the link when its token is known, unused and unexpired (it is used
    from now on), else None. Of two browsers opening one link at once, one gets it."""

    def opened(link: PortalLink) -> AuditEntry:
        # A token names its link only once the store has found it: the entry is made from
        # the link the store consumed.
        actor = Actor(link.id, via="portal")
        return audit_entry(ctx, actor, "portal_link.opened", ("portal_link", link.id))

    return await ctx.store.consume_portal_link(hash_portal_token(token), ctx.now(), audit=opened)


async def revoke_portal_link(ctx: ServiceContext, actor: Actor, link_id: str, scope: Scope) -> None:
    """End a link now (NotFound unless its accounts are all within `scope`): unused, it
    can no longer be opened; opened, its dashboard session ends at the next request."""
    entry = audit_entry(ctx, actor, "portal_link.revoked", ("portal_link", link_id))
    await ctx.store.expire_portal_link(link_id, ctx.now(), scope, audit=entry)
