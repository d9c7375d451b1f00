"""API keys, the audit trail, and retention."""

from __future__ import annotations

from datetime import datetime

from orderhooks.domain.model import ApiKey, AuditEntry
from orderhooks.exceptions import NotFound
from orderhooks.store.base import Page
from orderhooks.store.shared.codec import (
    audit_from_row,
    dumps,
    key_from_row,
    micros,
    unstorable,
)
from orderhooks.store.shared.reads import FIRST_ASCENDING, FIRST_DESCENDING, page
from orderhooks.store.shared.tx import Tx


async def create_key(tx: Tx, key: ApiKey) -> ApiKey:
    """Store a key (its hash only)."""
    await tx.execute(
        "insert_key",
        key.id,
        str(key.role),
        dumps(list(key.accounts)),
        key.name,
        key.key_hash,
        micros(key.created_at),
    )
    return key


async def key_by_hash(tx: Tx, key_hash: str) -> ApiKey | None:
    """The key whose hash this is, revoked or not."""
    row = None if unstorable(key_hash) else await tx.fetchrow("key_by_hash", key_hash)
    return None if row is None else key_from_row(row)


async def list_keys(tx: Tx, limit: int, cursor: str | None) -> Page[ApiKey]:
    """Keys, oldest first."""
    rows = await tx.fetch("list_keys", cursor or FIRST_ASCENDING, limit + 1)
    return page(rows, limit, key_from_row)


async def revoke_key(tx: Tx, key_id: str, now: datetime) -> None:
    """Revoke a key (a second revoke keeps the first time); NotFound when absent."""
    if unstorable(key_id) or await tx.fetchrow("key_by_id", key_id) is None:
        raise NotFound(f"key {key_id} not found")
    await tx.execute("revoke_key", key_id, micros(now))


async def add_audit(tx: Tx, entry: AuditEntry) -> None:
    """Append to the audit trail."""
    await tx.execute(
        "insert_audit",
        entry.id,
        micros(entry.at),
        entry.actor,
        entry.action,
        entry.target_type,
        entry.target_id,
        dumps(dict(entry.details)),
    )


async def list_audit(tx: Tx, limit: int, cursor: str | None) -> Page[AuditEntry]:
    """The audit trail, newest first."""
    rows = await tx.fetch("list_audit", cursor or FIRST_DESCENDING, limit + 1)
    return page(rows, limit, audit_from_row)


async def purge_deliveries(tx: Tx, before: datetime, batch: int) -> tuple[int, int]:
    """Delete one batch of finished deliveries created before `before` and their
    attempts; returns (deliveries, attempts) deleted."""
    rows = await tx.fetch("finished_before", micros(before), batch)
    if not rows:
        return 0, 0
    ids = tx.array([row["id"] for row in rows])
    attempts = await tx.execute("delete_attempts_of", ids)
    deliveries = await tx.execute("delete_deliveries", ids)
    return deliveries, attempts


async def purge_events(tx: Tx, before: datetime, batch: int) -> int:
    """Delete one batch of events created before `before` that no delivery needs."""
    rows = await tx.fetch("orphan_events_before", micros(before), batch)
    if not rows:
        return 0
    return await tx.execute("delete_events", tx.array([row["id"] for row in rows]))
