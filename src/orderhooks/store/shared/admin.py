"""API keys, the audit trail, and retention."""

from __future__ import annotations

from datetime import datetime

from orderhooks.domain.model import ApiKey, AuditEntry
from orderhooks.exceptions import NotFound
from orderhooks.store.base import Page
from orderhooks.store.shared.audit import Audit, audited, write_audit
from orderhooks.store.shared.codec import audit_from_row, key_from_row, key_params
from orderhooks.store.shared.core import StoreCore, reading, writing
from orderhooks.store.shared.reads import FIRST_ASCENDING, FIRST_DESCENDING, fetch_page
from orderhooks.store.shared.tx import Tx, lookup
from orderhooks.store.shared.values import micros


class AdminOperations(StoreCore):
    """Keys, audit and retention."""

    @writing()
    async def create_key(
        self, tx: Tx, key: ApiKey, *, audit: Audit[ApiKey] | None = None
    ) -> ApiKey:
        """Store a key (its hash only)."""
        await tx.execute("insert_key", **key_params(key))
        return await audited(tx, key, audit)

    @reading
    async def key_by_hash(self, tx: Tx, key_hash: str) -> ApiKey | None:
        """The key (revoked ones included) whose hash this is."""
        row = await lookup(tx, "key_by_hash", key_hash=key_hash)
        return None if row is None else key_from_row(row)

    @reading
    async def list_keys(self, tx: Tx, limit: int, cursor: str | None) -> Page[ApiKey]:
        """Keys, oldest first (revoked ones included, marked)."""
        return await fetch_page(
            tx, "list_keys", limit, key_from_row, after=cursor or FIRST_ASCENDING
        )

    @writing()
    async def revoke_key(
        self, tx: Tx, key_id: str, now: datetime, *, audit: Audit[None] | None = None
    ) -> None:
        """Revoke a key (a second revoke keeps the first time); NotFound when absent."""
        if await lookup(tx, "key_by_id", id=key_id) is None:
            raise NotFound(f"key {key_id} not found")
        await tx.execute("revoke_key", id=key_id, revoked_at=micros(now))
        await audited(tx, None, audit)

    @writing()
    async def create_first_key(self, tx: Tx, key: ApiKey) -> bool:
        """Store `key` if there is no key at all; whether it was stored. The keys are locked
        from the check to the commit, so of processes starting together on a new database
        one makes the first key and the others see it."""
        await tx.execute("lock_keys")
        if await tx.fetchval("count_keys"):
            return False
        await tx.execute("insert_key", **key_params(key))
        return True

    @reading
    async def count_keys(self, tx: Tx) -> int:
        """How many keys exist, revoked ones included. A start asks it first, so that only
        a start on a database without keys takes the keys' lock (`create_first_key`, which
        counts again under it)."""
        return int(await tx.fetchval("count_keys") or 0)

    @writing()
    async def add_audit(self, tx: Tx, entry: AuditEntry) -> None:
        """Append to the audit trail (an audited change writes its entry itself)."""
        await write_audit(tx, entry)

    @reading
    async def list_audit(self, tx: Tx, limit: int, cursor: str | None) -> Page[AuditEntry]:
        """The audit trail, newest first."""
        return await fetch_page(
            tx, "list_audit", limit, audit_from_row, before=cursor or FIRST_DESCENDING
        )

    async def purge(self, before: datetime, batch: int = 5000) -> int:
        """Delete finished deliveries and their attempts, then the events no delivery
        needs, created before `before`, then the broker message keys recorded before it;
        returns rows deleted. One transaction per batch so that ingest and delivery
        never wait long behind it. Orders are kept."""
        deleted = 0
        while True:
            deliveries, attempts = await self._write(
                lambda tx: _purge_deliveries(tx, before, batch)
            )
            deleted += deliveries + attempts
            if deliveries == 0:
                break
        while True:
            events = await self._write(lambda tx: _purge_events(tx, before, batch))
            deleted += events
            if events == 0:
                break
        while True:
            keys = await self._write(
                lambda tx: tx.execute("purge_consumed_messages", before=micros(before), limit=batch)
            )
            deleted += keys
            if keys == 0:
                break
        return deleted


async def _purge_deliveries(tx: Tx, before: datetime, batch: int) -> tuple[int, int]:
    """Delete one batch of finished deliveries created before `before` and their
    attempts; returns (deliveries, attempts) deleted."""
    rows = await tx.fetch("finished_before", before=micros(before), limit=batch)
    if not rows:
        return 0, 0
    ids = tx.array([row["id"] for row in rows])
    attempts = await tx.execute("delete_attempts_of", delivery_ids=ids)
    deliveries = await tx.execute("delete_deliveries", ids=ids)
    return deliveries, attempts


async def _purge_events(tx: Tx, before: datetime, batch: int) -> int:
    """Delete one batch of events created before `before` that no delivery needs."""
    rows = await tx.fetch("orphan_events_before", before=micros(before), limit=batch)
    if not rows:
        return 0
    return await tx.execute("delete_events", ids=tx.array([row["id"] for row in rows]))
