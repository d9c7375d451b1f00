"""Webhook lifecycle and agreements: creation (within the per-account cap), changes,
secrets, enabling, deletion."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime

from orderhooks.domain.model import (
    ALL_ACCOUNTS,
    Agreement,
    DisabledReason,
    Ordering,
    SigningSecret,
    Webhook,
    WebhookState,
)
from orderhooks.domain.opevents import OperationalEventType, webhook_disabled_data
from orderhooks.exceptions import (
    Conflict,
    FieldProblem,
    NotFound,
    ValidationError,
    WebhookLimitReached,
)
from orderhooks.secretbox import SecretBox
from orderhooks.store.shared.audit import Audit, audited
from orderhooks.store.shared.catalog import accounts_agreed, bump_version, enabled_state
from orderhooks.store.shared.codec import (
    agreement_from_row,
    secrets_param,
    webhook_from_row,
    webhook_params,
)
from orderhooks.store.shared.core import StoreCore, reading, writing
from orderhooks.store.shared.heads import lock_ordering, lock_orders, refresh_heads
from orderhooks.store.shared.opevents import emit_operational_event, share_receivers
from orderhooks.store.shared.tx import Tx, lookup
from orderhooks.store.shared.values import dumps, micros, micros_or_none, unstorable


async def stored_webhook(tx: Tx, webhook_id: str, box: SecretBox) -> Webhook:
    """The live webhook with that id; NotFound when absent or deleted."""
    row = await lookup(tx, "webhook_by_id", id=webhook_id)
    if row is None:
        raise NotFound(f"webhook {webhook_id} not found")
    return webhook_from_row(row, box)


async def _write_accounts(tx: Tx, webhook: Webhook) -> None:
    """The webhook's accounts now, and in its history (which keeps the ones it loses)."""
    await tx.execute("delete_webhook_accounts", webhook_id=webhook.id)
    rows = [{"webhook_id": webhook.id, "account": a} for a in sorted(set(webhook.accounts))]
    await tx.executemany("insert_webhook_account", rows)
    await tx.executemany("remember_webhook_account", rows)


async def _count(tx: Tx, account: str) -> int:
    return int(await tx.fetchval("count_webhooks_of", account=account) or 0)


async def _check_cap(tx: Tx, accounts: Sequence[str], cap: int) -> None:
    """WebhookLimitReached when one more webhook would give an account more than `cap`.
    The caller holds the accounts' locks (`_lock_account_keys`) until the commit
    (PostgreSQL; SQLite has one writer), so that concurrent creations and changes are
    counted one after the other."""
    # An account PostgreSQL cannot store has no webhooks to count (`count_webhooks`).
    for account in sorted({a for a in accounts if not unstorable(a)}):
        if await _count(tx, account) >= cap:
            raise WebhookLimitReached(account, cap)


async def _lock_account_keys(tx: Tx, accounts: Sequence[str]) -> None:
    """Take the accounts' locks (`lock_account`) in sorted order, the lock order."""
    for account in sorted({a for a in accounts if not unstorable(a)}):
        await tx.fetch("lock_account", account=account)


def _agreement_accounts(webhook: Webhook, enabled: bool) -> list[str]:
    """The accounts whose agreements give the webhook's state (`_lock_accounts`): none
    for a webhook that stays disabled."""
    return [a for a in webhook.accounts if a != ALL_ACCOUNTS] if enabled else []


async def _lock_accounts(tx: Tx, accounts: Sequence[str]) -> None:
    """Hold the accounts' locks until the commit (PostgreSQL; SQLite has one writer), in
    one order: a webhook's state is computed from its accounts' agreements, and an
    agreement activates the webhooks awaiting it, so the two must not run side by side
    (each would miss the other's uncommitted write, leaving a webhook awaiting an
    agreement that exists)."""
    await _lock_account_keys(tx, [a for a in accounts if a != ALL_ACCOUNTS])


async def _reorder(tx: Tx, webhook: Webhook) -> None:
    """Recompute the heads of every queue of a webhook whose `ordering` changed."""
    if webhook.ordering == Ordering.NONE:
        await tx.execute("ready_all", webhook_id=webhook.id)
        return
    rows = await tx.fetch("queues_of_webhook", webhook_id=webhook.id)
    # An operational event's delivery belongs to no order: it has no queue (always ready).
    queues = [(webhook.id, row["order_id"]) for row in rows if row["order_id"] is not None]
    await lock_orders(tx, [order_id for _, order_id in queues])
    await refresh_heads(tx, queues, {webhook.id: webhook})


async def probe_now(tx: Tx, webhook_id: str, now: datetime) -> None:
    """When the webhook is probed, make its next probe due `now`: a delivery was made due
    by hand, or the webhook was pointed at another URL. The probe would otherwise wait for
    the schedule's retry of the last failed delivery, hours away maybe, while the receiver
    may be fine now; a probe that succeeds releases the rest at once."""
    await tx.execute("probe_now", webhook_id=webhook_id, now=micros(now))


async def _set_enabled_state(tx: Tx, webhook_id: str, state: WebhookState, now: datetime) -> int:
    """Set a webhook to `state` (active or awaiting its agreement) unless it was disabled
    or deleted meanwhile; 1 when it changed, else 0."""
    return await tx.execute(
        "set_enabled_state", id=webhook_id, state=str(state), updated_at=micros(now)
    )


class WebhookOperations(StoreCore):
    """Creating, changing, enabling and deleting webhooks; agreements."""

    @writing()
    async def create_webhook(
        self,
        tx: Tx,
        webhook: Webhook,
        *,
        max_per_account: int | None = None,
        audit: Audit[Webhook] | None = None,
    ) -> Webhook:
        """Store a new webhook, active or awaiting an agreement (or disabled, if asked).
        With `max_per_account`, raises WebhookLimitReached instead when one of its
        accounts already has that many webhooks: counted in the same transaction, so
        concurrent creations and changes cannot pass the cap together."""
        enabled = webhook.state != WebhookState.DISABLED
        # The accounts counted for the cap and those whose agreements give the state, in
        # one sorted pass (the lock order).
        counted = webhook.accounts if max_per_account is not None else []
        await _lock_account_keys(tx, [*counted, *_agreement_accounts(webhook, enabled)])
        if max_per_account is not None:
            await _check_cap(tx, webhook.accounts, max_per_account)
        if enabled:
            state = await enabled_state(tx, webhook.accounts, self._require_agreement)
            webhook = dataclasses.replace(
                webhook, state=state, disabled_reason=None, disabled_at=None
            )
        await tx.execute("insert_webhook", **webhook_params(webhook, self.box))
        await _write_accounts(tx, webhook)
        await tx.execute("insert_runtime", webhook_id=webhook.id)
        await bump_version(tx)
        return await audited(tx, await stored_webhook(tx, webhook.id, self.box), audit)

    @writing(wake=True)
    async def update_webhook(
        self,
        tx: Tx,
        webhook: Webhook,
        *,
        max_per_account: int | None = None,
        unchanged_since: datetime | None = None,
        audit: Audit[Webhook] | None = None,
    ) -> Webhook:
        """Replace a webhook's configuration, all but its secrets (`rotate_webhook_secrets`).
        A disabled webhook stays disabled; any other is active or awaiting according to
        the agreements of its (possibly new) accounts. With `max_per_account`, raises
        WebhookLimitReached instead when an account it is new to already has that many
        webhooks, counted as `create_webhook` counts. With `unchanged_since` (the
        `updated_at` the change was made from), raises Conflict and writes nothing when
        another write has changed the webhook since: no change is lost to a later one
        made from the same reading."""
        stored = await stored_webhook(tx, webhook.id, self.box)
        if webhook.ordering != stored.ordering:
            # Waits for the transactions marking heads by the old ordering (`_reorder`
            # then sees their deliveries); later ones read the new ordering.
            await lock_ordering(tx)
        added = [a for a in webhook.accounts if a not in stored.accounts]
        enabled = stored.state != WebhookState.DISABLED
        # The accounts counted for the cap and those whose agreements give the state, in
        # one sorted pass (the lock order).
        counted = added if max_per_account is not None else []
        await _lock_account_keys(tx, [*counted, *_agreement_accounts(webhook, enabled)])
        if max_per_account is not None:
            await _check_cap(tx, added, max_per_account)
        state, reason, disabled_at = stored.state, stored.disabled_reason, stored.disabled_at
        if enabled:
            state = await enabled_state(tx, webhook.accounts, self._require_agreement)
            reason, disabled_at = None, None
        updated = dataclasses.replace(
            webhook,
            state=state,
            disabled_reason=reason,
            disabled_at=disabled_at,
            created_at=stored.created_at,
        )
        params = webhook_params(updated, self.box)
        del params["secrets"]
        since = micros_or_none(unchanged_since)
        if not await tx.execute("update_webhook", **params, unchanged_since=since):
            raise Conflict(f"webhook {webhook.id} was changed meanwhile: read it again")
        await _write_accounts(tx, updated)
        if updated.ordering != stored.ordering:
            await _reorder(tx, updated)
        if updated.url != stored.url:
            # The failures that made it probed were another endpoint's.
            await probe_now(tx, webhook.id, updated.updated_at)
        await bump_version(tx)
        return await audited(tx, await stored_webhook(tx, webhook.id, self.box), audit)

    @writing()
    async def rotate_webhook_secrets(
        self,
        tx: Tx,
        webhook_id: str,
        rotate: Callable[[Webhook], tuple[SigningSecret, ...]],
        now: datetime,
        *,
        audit: Audit[Webhook] | None = None,
    ) -> Webhook:
        """Replace only the webhook's secrets, by `rotate` of the webhook as stored (newest
        first), and its `updated_at`."""
        # Read under the row's lock: a rotation committed meanwhile is in the reading, so
        # its new secret is kept, never written over by secrets from an older reading.
        await tx.fetch("lock_webhook", id=webhook_id)
        current = await stored_webhook(tx, webhook_id, self.box)
        await tx.execute(
            "set_webhook_secrets",
            id=webhook_id,
            secrets=secrets_param(webhook_id, rotate(current), self.box),
            updated_at=micros(now),
        )
        await bump_version(tx)
        return await audited(tx, await stored_webhook(tx, webhook_id, self.box), audit)

    @writing()
    async def delete_webhook(
        self, tx: Tx, webhook_id: str, now: datetime, *, audit: Audit[None] | None = None
    ) -> None:
        """Delete a webhook; its pending and delivering deliveries become `cancelled` and
        stay readable."""
        await stored_webhook(tx, webhook_id, self.box)
        # Taken before any write: the transactions writing deliveries of this webhook finish
        # first (and their deliveries are cancelled below), later ones read it deleted.
        await tx.fetch("hold_webhook", id=webhook_id)
        await tx.execute("mark_webhook_deleted", id=webhook_id, deleted_at=micros(now))
        await tx.execute("cancel_deliveries", webhook_id=webhook_id)
        await bump_version(tx)
        await audited(tx, None, audit)

    async def set_webhook_state(
        self,
        webhook_id: str,
        state: WebhookState,
        reason: DisabledReason | None,
        now: datetime,
        *,
        audit: Audit[Webhook] | None = None,
    ) -> Webhook:
        """Disable (with a reason, `manual` by default) or enable: active, or awaiting
        when an account has no agreement. Disabling an enabled webhook emits
        `webhook.disabled` in the same transaction (docs/events.md)."""

        async def job(tx: Tx) -> tuple[Webhook, list[str]]:
            live: list[Webhook] = []
            if state == WebhookState.DISABLED:
                # The receivers of its `webhook.disabled` first (the lock order).
                live = list((await self._catalog.load(tx)).values())
                await share_receivers(tx, live)
                # Read as it is once a concurrent disable (a 410...) has committed.
                await tx.fetch("lock_webhook", id=webhook_id)
            before = await stored_webhook(tx, webhook_id, self.box)
            stored = await self._set_state(tx, webhook_id, state, reason, now)
            await audited(tx, stored, audit)
            if before.state == WebhookState.DISABLED or stored.state != WebhookState.DISABLED:
                return stored, []
            why = stored.disabled_reason or DisabledReason.MANUAL
            event_type = OperationalEventType.WEBHOOK_DISABLED
            data = webhook_disabled_data(before, why)
            await emit_operational_event(tx, self._new_id, event_type, before, data, live, now)
            return stored, [event_type]

        stored, emitted = await self._write(job, wake=state != WebhookState.DISABLED)
        self._emitted(emitted)
        return stored

    async def _set_state(
        self,
        tx: Tx,
        webhook_id: str,
        state: WebhookState,
        reason: DisabledReason | None,
        now: datetime,
    ) -> Webhook:
        stored = await stored_webhook(tx, webhook_id, self.box)
        if state == WebhookState.DISABLED and stored.state == WebhookState.DISABLED:
            # Already disabled: why and since when stay what `webhook.disabled` told.
            new_state = WebhookState.DISABLED
            new_reason = stored.disabled_reason or reason or DisabledReason.MANUAL
            disabled_at: datetime | None = stored.disabled_at
        elif state == WebhookState.DISABLED:
            new_state, new_reason = WebhookState.DISABLED, reason or DisabledReason.MANUAL
            disabled_at = now
        else:
            await _lock_accounts(tx, stored.accounts)
            new_state = await enabled_state(tx, stored.accounts, self._require_agreement)
            new_reason, disabled_at = None, None
            if stored.state == WebhookState.DISABLED:
                # A fresh start: the failures that disabled it must not disable it again.
                await tx.execute("reset_health", webhook_id=webhook_id)
        await tx.execute(
            "set_webhook_state",
            id=webhook_id,
            state=str(new_state),
            disabled_reason=None if new_reason is None else str(new_reason),
            disabled_at=micros_or_none(disabled_at),
            updated_at=micros(now),
        )
        await bump_version(tx)
        return await stored_webhook(tx, webhook_id, self.box)

    @writing(wake=True)
    async def apply_agreement_requirement(self, tx: Tx, now: datetime) -> int:
        """Put every live webhook that is not disabled in the state the agreements give
        under this store's `require_agreement` (the setting may have changed since the
        webhook was last written): awaiting ones become active when every account is
        treated as agreed, active ones awaiting when an account has no agreement. Returns
        how many changed."""
        changed = 0
        for webhook in (await self._catalog.load(tx)).values():
            if webhook.state == WebhookState.DISABLED:
                continue
            state = await enabled_state(tx, webhook.accounts, self._require_agreement)
            if state != webhook.state:
                changed += await _set_enabled_state(tx, webhook.id, state, now)
        if changed:
            await bump_version(tx)
        return changed

    async def count_webhooks(self, account: str) -> int:
        """Webhooks (not deleted) installed on `account`."""
        if unstorable(account):
            return 0
        return await self._read(lambda tx: _count(tx, account))

    @writing(wake=True)
    async def put_agreement(
        self, tx: Tx, agreement: Agreement, now: datetime, *, audit: Audit[Agreement] | None = None
    ) -> Agreement:
        """Record an agreement; the account's awaiting webhooks whose accounts all agreed
        become active."""
        if unstorable(agreement.account, agreement.signed_by, agreement.currency):
            problem = FieldProblem("account", "must not contain NUL characters")
            raise ValidationError([problem], "an agreement must not contain NUL characters")
        # Every account of the webhooks it may activate, with its own, locked in one
        # sorted pass (the lock order): taken one webhook at a time, an agreement of
        # another of their accounts recorded at the same time would deadlock with it.
        awaiting = await tx.fetch("awaiting_webhooks_of", account=agreement.account)
        others = [a for row in awaiting for a in webhook_from_row(row, self.box).accounts]
        await _lock_accounts(tx, [agreement.account, *others])
        await tx.execute(
            "upsert_agreement",
            account=agreement.account,
            signed_by=agreement.signed_by,
            signed_at=micros(agreement.signed_at),
            currency=agreement.currency,
            per_thousand=dumps({str(k): v for k, v in agreement.per_thousand.items()}),
            recorded_at=micros(now),
        )
        activated = 0
        for row in await tx.fetch("awaiting_webhooks_of", account=agreement.account):
            webhook = webhook_from_row(row, self.box)
            # Its other accounts too: an agreement recorded for one of them at the same
            # time must not miss this one, nor this one that. Held already, but for a
            # webhook created since the first read.
            await _lock_accounts(tx, webhook.accounts)
            if await accounts_agreed(tx, webhook.accounts, self._require_agreement):
                activated += await _set_enabled_state(tx, webhook.id, WebhookState.ACTIVE, now)
        if activated:
            await bump_version(tx)
        return await audited(tx, agreement, audit)

    @reading
    async def get_agreement(self, tx: Tx, account: str) -> Agreement | None:
        """The account's agreement, if recorded."""
        row = await lookup(tx, "agreement_of", account=account)
        return None if row is None else agreement_from_row(row)
