"""`SqlStore`: the Store contract written once over `Tx`; engines add transactions.

An engine implements `_write` (one write transaction, committed durably before it
returns, waking workers when asked), `_read` (one consistent read), and the lifecycle
methods. Everything else, including every decision, lives here and in the modules of
`store.shared`, so SQLite and PostgreSQL cannot drift apart.
"""

from __future__ import annotations

import asyncio
import itertools
from abc import abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from orderhooks.domain import ids
from orderhooks.domain.ids import IdFactory
from orderhooks.domain.model import (
    Agreement,
    ApiKey,
    AuditEntry,
    Delivery,
    DisabledReason,
    Event,
    EventType,
    UsageRow,
    Webhook,
    WebhookState,
)
from orderhooks.store.base import (
    Claim,
    DeliveryFilter,
    DeliveryView,
    EventFilter,
    IngestItem,
    IngestResult,
    OrderView,
    Outcome,
    OutcomeBucket,
    Page,
    QueueGauge,
    Scope,
    Store,
    WebhookFilter,
    WebhookStats,
)
from orderhooks.store.shared import admin, claim, ingest, manual, reads, record, webhooks
from orderhooks.store.shared.catalog import WebhookCatalog
from orderhooks.store.shared.codec import unstorable
from orderhooks.store.shared.tx import Job, Tx

T = TypeVar("T")


class SqlStore(Store):
    """The engine-neutral half of both engines."""

    def __init__(
        self,
        *,
        require_agreement: bool,
        disable_after_seconds: int,
        new_id: IdFactory = ids.new_id,
    ) -> None:
        self._require_agreement = require_agreement
        self._disable_after_seconds = disable_after_seconds
        self._new_id = new_id
        self._catalog = WebhookCatalog()
        self._work = asyncio.Event()
        self._rotation = itertools.count()

    # -- what an engine provides

    @abstractmethod
    async def _write(self, job: Job[T], *, wake: bool = False, durable: bool = True) -> T:
        """Run `job` in one write transaction, durable when this returns; with `wake`,
        wake the delivery workers (of every process) after the commit.

        `durable=False` is for the delivery bookkeeping (claims, outcomes): committed and
        visible at once, on disk no later than the next durable commit or a short bound
        (PRODUCT 4.4 lets what finished within the last commit interval be sent again)."""

    @abstractmethod
    async def _read(self, job: Job[T]) -> T:
        """Run `job` in one read-only transaction that sees one snapshot."""

    def _wake_workers(self) -> None:
        """Wake `wait_for_work` in this process."""
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 - the contract's name
        """Return after a wake-up (ingest, enable, retry, ...) or after `timeout` seconds."""
        try:
            if timeout > 0:
                await asyncio.wait_for(self._work.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._work.clear()

    # -- ingest, orders and events

    async def ingest(self, items: Sequence[IngestItem], now: datetime) -> list[IngestResult]:
        """Apply the items in one transaction (see `store.shared.ingest`)."""

        async def job(tx: Tx) -> list[IngestResult]:
            active = await self._catalog.active(tx)
            return await ingest.ingest(tx, items, now, active, self._new_id)

        return await self._write(job, wake=True)

    async def get_order(self, order_id: str, scope: Scope) -> OrderView:
        """The order with its history and events."""
        return await self._read(lambda tx: reads.get_order(tx, order_id, scope))

    async def get_event(self, event_id: str, scope: Scope) -> Event:
        """One event."""
        return await self._read(lambda tx: reads.get_event(tx, event_id, scope))

    async def list_events(self, flt: EventFilter, limit: int, cursor: str | None) -> Page[Event]:
        """Events, oldest first (test events are not listed)."""
        return await self._read(lambda tx: reads.list_events(tx, flt, limit, cursor))

    # -- webhooks and agreements

    async def create_webhook(self, webhook: Webhook) -> Webhook:
        """Store a new webhook, its state set from its accounts' agreements."""
        return await self._write(
            lambda tx: webhooks.create_webhook(tx, webhook, self._require_agreement)
        )

    async def get_webhook(self, webhook_id: str, scope: Scope) -> Webhook:
        """One live webhook."""
        return await self._read(lambda tx: reads.get_webhook(tx, webhook_id, scope))

    async def list_webhooks(
        self, flt: WebhookFilter, limit: int, cursor: str | None
    ) -> Page[Webhook]:
        """Live webhooks, oldest first."""
        return await self._read(lambda tx: reads.list_webhooks(tx, flt, limit, cursor))

    async def update_webhook(self, webhook: Webhook) -> Webhook:
        """Replace a webhook's configuration."""
        return await self._write(
            lambda tx: webhooks.update_webhook(tx, webhook, self._require_agreement), wake=True
        )

    async def delete_webhook(self, webhook_id: str, now: datetime) -> None:
        """Delete a webhook and cancel its unfinished deliveries."""
        await self._write(lambda tx: webhooks.delete_webhook(tx, webhook_id, now))

    async def set_webhook_state(
        self,
        webhook_id: str,
        state: WebhookState,
        reason: DisabledReason | None,
        now: datetime,
    ) -> Webhook:
        """Enable or disable a webhook."""
        return await self._write(
            lambda tx: webhooks.set_webhook_state(
                tx, webhook_id, state, reason, now, self._require_agreement
            ),
            wake=state != WebhookState.DISABLED,
        )

    async def count_webhooks(self, account: str) -> int:
        """Live webhooks installed on `account`."""
        if unstorable(account):
            return 0
        return await self._read(lambda tx: _count(tx, "count_webhooks_of", account))

    async def put_agreement(self, agreement: Agreement, now: datetime) -> Agreement:
        """Record an agreement and activate the webhooks it completes."""
        await self._write(
            lambda tx: webhooks.put_agreement(tx, agreement, now, self._require_agreement),
            wake=True,
        )
        return agreement

    async def get_agreement(self, account: str) -> Agreement | None:
        """The account's agreement, if recorded."""
        return await self._read(lambda tx: reads.get_agreement(tx, account))

    # -- deliveries

    async def list_deliveries(
        self, flt: DeliveryFilter, limit: int, cursor: str | None
    ) -> Page[Delivery]:
        """Deliveries, newest first."""
        return await self._read(lambda tx: reads.list_deliveries(tx, flt, limit, cursor))

    async def get_delivery(self, delivery_id: str, scope: Scope) -> DeliveryView:
        """One delivery with its event and attempts."""
        return await self._read(lambda tx: reads.get_delivery(tx, delivery_id, scope))

    async def retry_delivery_now(self, delivery_id: str, now: datetime) -> Delivery:
        """Make a pending or failed delivery due now."""

        async def job(tx: Tx) -> Delivery:
            live = await self._catalog.load(tx)
            return await manual.retry_delivery_now(tx, delivery_id, now, live)

        return await self._write(job, wake=True)

    async def recover_failed(
        self, webhook_id: str, since: datetime, until: datetime | None, now: datetime
    ) -> int:
        """Failed deliveries created in the range go back to pending, due now."""

        async def job(tx: Tx) -> int:
            live = await self._catalog.load(tx)
            return await manual.recover_failed(tx, webhook_id, since, until, now, live)

        return await self._write(job, wake=True)

    async def replay_events(
        self,
        webhook: Webhook,
        since: datetime,
        until: datetime | None,
        event_types: Sequence[EventType] | None,
        now: datetime,
    ) -> int:
        """New replay deliveries of the stored events in the range the webhook wants."""
        return await self._write(
            lambda tx: manual.replay_events(
                tx, webhook, since, until, event_types, now, self._new_id
            ),
            wake=True,
        )

    async def create_test_delivery(self, webhook: Webhook, event: Event, now: datetime) -> str:
        """Store a test event and its delivery; returns the delivery id."""
        return await self._write(
            lambda tx: manual.create_test_delivery(tx, webhook, event, now, self._new_id),
            wake=True,
        )

    async def webhook_stats(self, webhook_id: str, now: datetime) -> WebhookStats:
        """Counts by state, success rate and latency percentiles."""
        return await self._read(lambda tx: reads.webhook_stats(tx, webhook_id))

    async def outcome_series(
        self,
        scope: Scope,
        webhook_id: str | None,
        since: datetime,
        until: datetime,
        bucket_seconds: int,
    ) -> list[OutcomeBucket]:
        """Attempt outcomes and latency percentiles per time bucket, for the charts."""
        return await self._read(
            lambda tx: reads.outcome_series(tx, scope, webhook_id, since, until, bucket_seconds)
        )

    async def queue_gauges(self) -> list[QueueGauge]:
        """Pending depth and oldest pending time per webhook."""
        return await self._read(reads.queue_gauges)

    # -- the delivery queue

    async def claim(self, now: datetime, limit: int, worker_id: str) -> list[Claim]:
        """Lease up to `limit` due deliveries (see `store.shared.claim`)."""
        rotation = next(self._rotation)

        async def job(tx: Tx) -> list[Claim]:
            live = await self._catalog.load(tx)
            return await claim.claim(tx, live, now, limit, worker_id, rotation)

        # A lost lease only puts its deliveries back in `pending`: no fsync needed.
        return await self._write(job, durable=False)

    async def record(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        """Store a batch of outcomes (see `store.shared.record`)."""
        if not outcomes:
            return

        async def job(tx: Tx) -> bool:
            live = await self._catalog.load(tx)
            return await record.record(tx, outcomes, now, live, self._disable_after_seconds)

        # A lost outcome only means its delivery is sent again (at least once).
        if await self._write(job, durable=False):
            # The next event of a finished delivery's order may be claimable now.
            self._wake_workers()

    async def next_due_at(self) -> datetime | None:
        """When the earliest claimable delivery falls due."""
        return await self._read(claim.next_due_at)

    # -- usage, keys, audit

    async def usage(self, accounts: Sequence[str] | None, months: Sequence[str]) -> list[UsageRow]:
        """Usage rows of the accounts and months."""
        return await self._read(lambda tx: reads.usage(tx, accounts, months))

    async def create_key(self, key: ApiKey) -> ApiKey:
        """Store a key (its hash only)."""
        return await self._write(lambda tx: admin.create_key(tx, key))

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key whose hash this is."""
        return await self._read(lambda tx: admin.key_by_hash(tx, key_hash))

    async def list_keys(self, limit: int, cursor: str | None) -> Page[ApiKey]:
        """Keys, oldest first."""
        return await self._read(lambda tx: admin.list_keys(tx, limit, cursor))

    async def revoke_key(self, key_id: str, now: datetime) -> None:
        """Revoke a key."""
        await self._write(lambda tx: admin.revoke_key(tx, key_id, now))

    async def count_keys(self) -> int:
        """How many keys exist."""
        return await self._read(lambda tx: _count(tx, "count_keys"))

    async def add_audit(self, entry: AuditEntry) -> None:
        """Append to the audit trail."""
        await self._write(lambda tx: admin.add_audit(tx, entry))

    async def list_audit(self, limit: int, cursor: str | None) -> Page[AuditEntry]:
        """The audit trail, newest first."""
        return await self._read(lambda tx: admin.list_audit(tx, limit, cursor))

    # -- retention

    async def purge(self, before: datetime, batch: int = 5000) -> int:
        """Delete finished deliveries and their attempts, then the events no delivery
        needs, created before `before`; one transaction per batch so that ingest and
        delivery never wait long behind it. Orders are kept."""
        deleted = 0
        while True:
            deliveries, attempts = await self._write(
                lambda tx: admin.purge_deliveries(tx, before, batch)
            )
            deleted += deliveries + attempts
            if deliveries == 0:
                break
        while True:
            events = await self._write(lambda tx: admin.purge_events(tx, before, batch))
            deleted += events
            if events == 0:
                break
        return deleted


async def _count(tx: Tx, query: str, *args: object) -> int:
    return int(await tx.fetchval(query, *args) or 0)
