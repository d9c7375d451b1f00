"""Webhook lifecycle and agreements: creation, changes, enabling, deletion."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from orderhooks.domain.model import (
    Agreement,
    DisabledReason,
    Ordering,
    Webhook,
    WebhookState,
)
from orderhooks.exceptions import FieldProblem, NotFound, ValidationError
from orderhooks.store.shared.catalog import accounts_agreed, bump_version, enabled_state
from orderhooks.store.shared.codec import (
    dumps,
    micros,
    micros_or_none,
    unstorable,
    webhook_from_row,
    webhook_params,
)
from orderhooks.store.shared.heads import lock_orders, refresh_heads
from orderhooks.store.shared.tx import Tx


async def stored_webhook(tx: Tx, webhook_id: str) -> Webhook:
    """The live webhook with that id; NotFound when absent or deleted."""
    row = None if unstorable(webhook_id) else await tx.fetchrow("webhook_by_id", webhook_id)
    if row is None:
        raise NotFound(f"webhook {webhook_id} not found")
    return webhook_from_row(row)


async def _write_accounts(tx: Tx, webhook: Webhook) -> None:
    await tx.execute("delete_webhook_accounts", webhook.id)
    await tx.executemany(
        "insert_webhook_account", [(webhook.id, a) for a in sorted(set(webhook.accounts))]
    )


async def create_webhook(tx: Tx, webhook: Webhook, require_agreement: bool) -> Webhook:
    """Store a new webhook, active or awaiting an agreement (or disabled, if asked)."""
    if webhook.state != WebhookState.DISABLED:
        state = await enabled_state(tx, webhook.accounts, require_agreement)
        webhook = dataclasses.replace(webhook, state=state, disabled_reason=None, disabled_at=None)
    await tx.execute("insert_webhook", *webhook_params(webhook))
    await _write_accounts(tx, webhook)
    await tx.execute("insert_runtime", webhook.id)
    await bump_version(tx)
    return await stored_webhook(tx, webhook.id)


async def update_webhook(tx: Tx, webhook: Webhook, require_agreement: bool) -> Webhook:
    """Replace a webhook's configuration. A disabled webhook stays disabled; any other is
    active or awaiting according to the agreements of its (possibly new) accounts."""
    stored = await stored_webhook(tx, webhook.id)
    state, reason, disabled_at = stored.state, stored.disabled_reason, stored.disabled_at
    if stored.state != WebhookState.DISABLED:
        state = await enabled_state(tx, webhook.accounts, require_agreement)
        reason, disabled_at = None, None
    updated = dataclasses.replace(
        webhook,
        state=state,
        disabled_reason=reason,
        disabled_at=disabled_at,
        created_at=stored.created_at,
    )
    await tx.execute("update_webhook", *webhook_params(updated))
    await _write_accounts(tx, updated)
    if updated.ordering != stored.ordering:
        await _reorder(tx, updated)
    await bump_version(tx)
    return await stored_webhook(tx, webhook.id)


async def _reorder(tx: Tx, webhook: Webhook) -> None:
    """Recompute the heads of every queue of a webhook whose `ordering` changed."""
    if webhook.ordering == Ordering.NONE:
        await tx.execute("ready_all", webhook.id)
        return
    rows = await tx.fetch("queues_of_webhook", webhook.id)
    queues = [(webhook.id, row["order_id"]) for row in rows]
    await lock_orders(tx, [order_id for _, order_id in queues])
    await refresh_heads(tx, queues, {webhook.id: webhook})


async def delete_webhook(tx: Tx, webhook_id: str, now: datetime) -> None:
    """Delete a webhook; its pending and delivering deliveries become `cancelled` and stay
    readable."""
    await stored_webhook(tx, webhook_id)
    await tx.execute("mark_webhook_deleted", webhook_id, micros(now))
    await tx.execute("cancel_deliveries", webhook_id)
    await bump_version(tx)


async def set_webhook_state(
    tx: Tx,
    webhook_id: str,
    state: WebhookState,
    reason: DisabledReason | None,
    now: datetime,
    require_agreement: bool,
) -> Webhook:
    """Disable (with a reason, `manual` by default) or enable (active or awaiting)."""
    stored = await stored_webhook(tx, webhook_id)
    if state == WebhookState.DISABLED:
        new_state, new_reason = WebhookState.DISABLED, reason or DisabledReason.MANUAL
        disabled_at: datetime | None = now
    else:
        new_state = await enabled_state(tx, stored.accounts, require_agreement)
        new_reason, disabled_at = None, None
        if stored.state == WebhookState.DISABLED:
            # A fresh start: the failures that disabled it must not disable it again.
            await tx.execute("reset_health", webhook_id)
    await tx.execute(
        "set_webhook_state",
        webhook_id,
        str(new_state),
        None if new_reason is None else str(new_reason),
        micros_or_none(disabled_at),
        micros(now),
    )
    await bump_version(tx)
    return await stored_webhook(tx, webhook_id)


async def put_agreement(
    tx: Tx, agreement: Agreement, now: datetime, require_agreement: bool
) -> int:
    """Record an agreement and activate the awaiting webhooks whose accounts all agreed
    now; returns how many were activated."""
    if unstorable(agreement.account, agreement.signed_by, agreement.currency):
        problem = FieldProblem("account", "must not contain NUL characters")
        raise ValidationError([problem], "an agreement must not contain NUL characters")
    prices = {str(k): v for k, v in agreement.per_thousand.items()}
    await tx.execute(
        "upsert_agreement",
        agreement.account,
        agreement.signed_by,
        micros(agreement.signed_at),
        agreement.currency,
        dumps(prices),
        micros(now),
    )
    activated = 0
    for row in await tx.fetch("awaiting_webhooks_of", agreement.account):
        webhook = webhook_from_row(row)
        if await accounts_agreed(tx, webhook.accounts, require_agreement):
            await tx.execute(
                "set_webhook_state", webhook.id, str(WebhookState.ACTIVE), None, None, micros(now)
            )
            activated += 1
    if activated:
        await bump_version(tx)
    return activated
