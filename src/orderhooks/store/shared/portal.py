"""Portal links: stored by the hash of their token, used at most once."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from orderhooks.domain.model import Scope
from orderhooks.domain.portal import PortalLink
from orderhooks.exceptions import NotFound
from orderhooks.store.shared.audit import Audit, audited
from orderhooks.store.shared.core import StoreCore, reading, writing
from orderhooks.store.shared.tx import Row, Tx, lookup
from orderhooks.store.shared.values import (
    dumps,
    loads,
    micros,
    moment,
    moment_or_none,
    unstorable,
)


def portal_link_params(link: PortalLink) -> dict[str, object]:
    """The parameters of `insert_portal_link` (the token's hash, never the token)."""
    return {
        "id": link.id,
        "token_hash": link.token_hash,
        "accounts": dumps(list(link.accounts)),
        "created_by": link.created_by,
        "created_at": micros(link.created_at),
        "expires_at": micros(link.expires_at),
    }


def portal_link_from_row(row: Row) -> PortalLink:
    """A PortalLink from a `portal_links` row."""
    return PortalLink(
        id=row["id"],
        token_hash=row["token_hash"],
        accounts=tuple(loads(row["accounts"])),
        created_by=row["created_by"],
        created_at=moment(row["created_at"]),
        expires_at=moment(row["expires_at"]),
        used_at=moment_or_none(row["used_at"]),
    )


class PortalOperations(StoreCore):
    """Create, look up and consume portal links."""

    @writing()
    async def create_portal_link(
        self, tx: Tx, link: PortalLink, *, audit: Audit[PortalLink] | None = None
    ) -> PortalLink:
        """Store a new link (its token's hash only)."""
        await tx.execute("insert_portal_link", **portal_link_params(link))
        return await audited(tx, link, audit)

    @reading
    async def portal_link_by_token(self, tx: Tx, token_hash: str) -> PortalLink | None:
        """The link whose token has this hash, used or not, expired or not."""
        row = await lookup(tx, "portal_link_by_token", token_hash=token_hash)
        return None if row is None else portal_link_from_row(row)

    @reading
    async def portal_link_by_id(self, tx: Tx, link_id: str) -> PortalLink | None:
        """The link with this id, if any."""
        row = await lookup(tx, "portal_link_by_id", id=link_id)
        return None if row is None else portal_link_from_row(row)

    @writing()
    async def consume_portal_link(
        self,
        tx: Tx,
        token_hash: str,
        now: datetime,
        *,
        audit: Audit[PortalLink] | None = None,
    ) -> PortalLink | None:
        """Mark the link used and return it, when it is unused and unexpired at `now`;
        None otherwise (and nothing audited). Of concurrent calls for one link, exactly
        one gets it."""
        if unstorable(token_hash):
            return None
        row = await tx.fetchrow("consume_portal_link", token_hash=token_hash, now=micros(now))
        if row is None:
            return None
        return await audited(tx, portal_link_from_row(row), audit)

    @writing()
    async def expire_portal_link(
        self,
        tx: Tx,
        link_id: str,
        at: datetime,
        scope: Scope,
        *,
        audit: Audit[PortalLink] | None = None,
    ) -> PortalLink:
        """End a link, and the session it opened, at `at` (never later than its own
        expiry); NotFound when there is no such link of accounts all within `scope`."""
        row = None if unstorable(link_id) else await lookup(tx, "portal_link_by_id", id=link_id)
        link = None if row is None else portal_link_from_row(row)
        if link is None or not scope.allows_all(link.accounts):
            raise NotFound(f"portal link {link_id} not found")
        await tx.execute("expire_portal_link", id=link_id, at=micros(at))
        ended = dataclasses.replace(link, expires_at=min(link.expires_at, at))
        return await audited(tx, ended, audit)
