"""The webhooks every ingest and claim needs, cached per process, and agreement checks."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping

from orderhooks.domain.model import ALL_ACCOUNTS, Webhook, WebhookState
from orderhooks.exceptions import NotFound
from orderhooks.secretbox import SecretBox
from orderhooks.store.shared.codec import webhook_from_row
from orderhooks.store.shared.tx import Tx


class WebhookCatalog:
    """The live (not deleted) webhooks by id, reloaded only when `webhooks_version` moved.

    Every change of a webhook's configuration or state bumps the version in the same
    transaction, so other processes sharing the database see it on their next read.
    """

    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self._snapshot: tuple[int, Mapping[str, Webhook]] | None = None
        self._checked_at = -math.inf  # time.monotonic() of the last version read

    async def load(self, tx: Tx) -> Mapping[str, Webhook]:
        """The live webhooks as of this transaction."""
        # The version is read before the rows: a change committed in between leaves an
        # older version next to newer rows, which only costs one extra reload.
        version = int(await tx.fetchval("webhooks_version"))
        checked_at = time.monotonic()
        snapshot = self._snapshot
        if snapshot is not None and snapshot[0] == version:
            self._checked_at = checked_at
            return snapshot[1]
        rows = await tx.fetch("live_webhooks")
        webhooks = {row["id"]: webhook_from_row(row, self._box) for row in rows}
        # One assignment, so threads reading the catalog see the old or the new snapshot.
        self._snapshot = (version, webhooks)
        self._checked_at = checked_at
        return webhooks

    def recent(self, max_age_seconds: float) -> Mapping[str, Webhook] | None:
        """The live webhooks as last loaded, without a query, when a transaction of this
        process checked them at most `max_age_seconds` ago; None otherwise. Another
        process's change may be missing, for that long at most."""
        snapshot = self._snapshot
        if snapshot is None or time.monotonic() - self._checked_at > max_age_seconds:
            return None
        return snapshot[1]

    async def active(self, tx: Tx) -> list[Webhook]:
        """The live webhooks in state `active`, oldest first."""
        webhooks = await self.load(tx)
        return [w for w in webhooks.values() if w.state == WebhookState.ACTIVE]


async def share_webhooks(tx: Tx, webhook_ids: Iterable[str]) -> list[str]:
    """Take the webhooks' share locks, held until the commit, in sorted order; returns
    the ids, sorted (PostgreSQL; SQLite's single writer needs none)."""
    ids = sorted(set(webhook_ids))
    if ids:
        await tx.fetch("share_webhooks", ids=tx.array(ids))
    return ids


async def deleted_among(tx: Tx, webhook_ids: Iterable[str]) -> set[str]:
    """Which of these webhooks are deleted, read under their share locks, held until the
    commit. Asked before deliveries to them are written: a delete (which holds its webhook
    exclusively) then either waits for this transaction and cancels what it wrote, or
    committed first and is seen here, so that no delivery is left pending for a deleted
    webhook (PostgreSQL; SQLite's single writer runs them one after the other anyway)."""
    ids = await share_webhooks(tx, webhook_ids)
    if not ids:
        return set()
    rows = await tx.fetch("deleted_webhooks_among", ids=tx.array(ids))
    return {row["id"] for row in rows}


async def refuse_deleted(tx: Tx, webhook_id: str) -> None:
    """NotFound when the webhook is deleted, read under its share lock (`deleted_among`):
    before a delivery to it is written by hand."""
    if await deleted_among(tx, [webhook_id]):
        raise NotFound(f"webhook {webhook_id} not found")


async def bump_version(tx: Tx) -> None:
    """Record that a webhook's configuration or state changed."""
    await tx.execute("bump_webhooks_version")


async def accounts_agreed(tx: Tx, accounts: Iterable[str], require_agreement: bool) -> bool:
    """Whether every account has an agreement (`*` is the operator's and always agreed)."""
    if not require_agreement:
        return True
    named = sorted({a for a in accounts if a != ALL_ACCOUNTS})
    if not named:
        return True
    rows = await tx.fetch("agreed_accounts", accounts=tx.array(named))
    return {row["account"] for row in rows} >= set(named)


async def enabled_state(tx: Tx, accounts: Iterable[str], require_agreement: bool) -> WebhookState:
    """The state of a webhook that is not disabled: active, or awaiting an agreement."""
    if await accounts_agreed(tx, accounts, require_agreement):
        return WebhookState.ACTIVE
    return WebhookState.AWAITING_AGREEMENT
