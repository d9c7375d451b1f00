"""Webhook operations: create, patch, delete, enable and disable, rotate the secret.

Every change is audited without secrets or header values, in the change's transaction.
Callers authorize (which accounts the actor may name) and validate the shape of their
input first; the checks that hold whatever the caller (the URL, the per-account cap, the
secret's form) are here, the cap counted by the store in the write's own transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from orderhooks.delivery.clienttls import check_tls_url, parse_client_tls
from orderhooks.delivery.netguard import check_url
from orderhooks.delivery.signing import generate_secret, is_valid_secret
from orderhooks.domain.batches import parse_batch
from orderhooks.domain.ids import new_id
from orderhooks.domain.model import (
    ClientTls,
    DisabledReason,
    PayloadFormat,
    SigningSecret,
    Webhook,
    WebhookState,
)
from orderhooks.exceptions import FieldProblem, ValidationError
from orderhooks.service.audit import Actor, audit_entry
from orderhooks.service.context import ServiceContext

_WHSEC_FORM_PROBLEM = "must be whsec_ followed by standard base64 of 24 to 64 bytes"
_TICK = timedelta(microseconds=1)  # the store keeps whole microseconds


def check_webhook_url(ctx: ServiceContext, url: str) -> None:
    """422 naming `url` unless it is http(s) with a host that is not a blocked literal."""
    problem = check_url(url, ctx.settings.allowed_networks)
    if problem is not None:
        raise ValidationError([FieldProblem("url", problem)])


def _json_name(field_name: str) -> str:
    """A webhook field as the API names it: `new_order_trigger` -> `newOrderTrigger`."""
    first, *rest = field_name.split("_")
    return first + "".join(part.capitalize() for part in rest)


def _host(url: str) -> str:
    """The host of a URL: its user info, path and query may carry credentials."""
    return urlsplit(url).hostname or ""


async def client_tls(
    ctx: ServiceContext, value: object, current: ClientTls | None = None
) -> ClientTls | None:
    """A webhook's `tls` as given (JSON: null or an object) checked and in canonical form;
    ValidationError naming `tls.*`. `current`: the stored value, kept for a `"<set>"` key."""
    # Checking a key costs up to ~0.3 s of CPU: not on the event loop.
    return await asyncio.to_thread(parse_client_tls, value, ctx.now(), current)


def check_webhook_tls(url: str, tls: ClientTls | None) -> None:
    """422 naming `tls` when a client certificate is set for a URL that is not https."""
    problem = check_tls_url(url, tls)
    if problem is not None:
        raise ValidationError([problem])


async def create_webhook(
    ctx: ServiceContext, actor: Actor, fields: Mapping[str, Any]
) -> tuple[Webhook, str]:
    """A new webhook from `fields` (Webhook field names; `url`, `accounts` and
    `event_types` required; `tls` as JSON) and its signing secret, shown this once."""
    check_webhook_url(ctx, fields["url"])
    now = ctx.now()
    given = dict(fields)
    if "batch" in given:
        given["batch"] = parse_batch(
            given["batch"], given.get("payload_format", PayloadFormat.ENVELOPE)
        )
    if "tls" in given:
        given["tls"] = await client_tls(ctx, given["tls"])
        check_webhook_tls(fields["url"], given["tls"])
    given.setdefault("timeout_seconds", ctx.settings.delivery_timeout_seconds)
    secret = generate_secret()
    webhook = Webhook(
        **{
            **given,
            "id": new_id("wh"),
            "accounts": tuple(fields["accounts"]),
            "event_types": tuple(fields["event_types"]),
            "secrets": (SigningSecret(secret),),
            "created_at": now,
            "updated_at": now,
        }
    )
    details = {"host": _host(webhook.url), "accounts": list(webhook.accounts)}
    entry = audit_entry(ctx, actor, "webhook.created", ("webhook", webhook.id), details)
    # The store counts the accounts' webhooks in the insert's transaction, under a lock
    # per account: concurrent creates and changes cannot pass the cap together.
    cap = ctx.settings.max_webhooks_per_account
    stored = await ctx.store.create_webhook(webhook, max_per_account=cap, audit=entry)
    return stored, secret


async def patch_webhook(
    ctx: ServiceContext, actor: Actor, webhook: Webhook, changes: Mapping[str, Any]
) -> Webhook:
    """`webhook` with `changes` (Webhook field names; `tls` as JSON) applied; no change,
    no write. Conflict when another write changed the webhook after `webhook` was read:
    the checks above were made against that reading, so nothing is written."""
    if not changes:
        return webhook
    if "url" in changes:
        check_webhook_url(ctx, changes["url"])
    changes = {**changes, **_checked_batch(webhook, changes)}
    if "tls" in changes:
        changes = {**changes, "tls": await client_tls(ctx, changes["tls"], webhook.tls)}
    if "url" in changes or "tls" in changes:
        check_webhook_tls(changes.get("url", webhook.url), changes.get("tls", webhook.tls))
    fields = [_json_name(name) for name in sorted(changes)]
    entry = audit_entry(ctx, actor, "webhook.updated", ("webhook", webhook.id), {"fields": fields})
    # The accounts new to the webhook are counted against the cap as a create counts them.
    return await ctx.store.update_webhook(
        # Later than the reading, whatever the clock says: the next PATCH made from this
        # reading is told apart from one made from the new webhook.
        replace(webhook, **changes, updated_at=max(ctx.now(), webhook.updated_at + _TICK)),
        max_per_account=ctx.settings.max_webhooks_per_account,
        unchanged_since=webhook.updated_at,
        audit=entry,
    )


def _checked_batch(webhook: Webhook, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The `batch` a patch gives, checked against the payload format the webhook will
    have (a raw webhook cannot batch: 422 naming `batch`); nothing when neither changes."""
    if "batch" not in changes and "payload_format" not in changes:
        return {}
    payload_format = changes.get("payload_format", webhook.payload_format)
    if "batch" in changes:
        return {"batch": parse_batch(changes["batch"], payload_format)}
    if webhook.batch is not None:
        current = {"maxEvents": webhook.batch.max_events, "maxWaitMs": webhook.batch.max_wait_ms}
        parse_batch(current, payload_format)
    return {}


async def delete_webhook(ctx: ServiceContext, actor: Actor, webhook: Webhook) -> None:
    """Delete a webhook; its pending and delivering deliveries become `cancelled`."""
    entry = audit_entry(ctx, actor, "webhook.deleted", ("webhook", webhook.id))
    await ctx.store.delete_webhook(webhook.id, ctx.now(), audit=entry)


async def set_enabled(
    ctx: ServiceContext, actor: Actor, webhook: Webhook, enabled: bool
) -> Webhook:
    """Enable (active, or awaiting agreement) or disable (`manual`) a webhook."""
    state = WebhookState.ACTIVE if enabled else WebhookState.DISABLED
    reason = None if enabled else DisabledReason.MANUAL
    action = "webhook.enabled" if enabled else "webhook.disabled"
    entry = audit_entry(ctx, actor, action, ("webhook", webhook.id))
    return await ctx.store.set_webhook_state(webhook.id, state, reason, ctx.now(), audit=entry)


def rotated_secrets(
    webhook: Webhook, new_secret: str, grace_seconds: int, now: datetime
) -> tuple[SigningSecret, ...]:
    """The new secret first; the old ones keep signing until `now + grace` at the latest
    (a shorter expiry from an earlier rotation stays); expired ones are dropped."""
    grace_end = now + timedelta(seconds=grace_seconds)
    kept = []
    for old in webhook.secrets:
        expires = grace_end if old.expires_at is None else min(old.expires_at, grace_end)
        if expires > now and old.secret != new_secret:
            kept.append(SigningSecret(old.secret, expires))
    return (SigningSecret(new_secret), *kept)


async def rotate_secret(
    ctx: ServiceContext,
    actor: Actor,
    webhook: Webhook,
    grace_seconds: int,
    secret: str | None = None,
) -> str:
    """Sign with `secret` (or a new one) from now on; the old ones keep signing during the
    grace period. Returns the new secret."""
    if secret is not None and not is_valid_secret(secret):
        raise ValidationError([FieldProblem("secret", _WHSEC_FORM_PROBLEM)])
    new_secret = secret if secret is not None else generate_secret()
    now = ctx.now()
    details = {"gracePeriodSeconds": grace_seconds, "provided": secret is not None}
    entry = audit_entry(ctx, actor, "webhook.secret_rotated", ("webhook", webhook.id), details)
    # Only the secrets are written: a PATCH racing this rotation cannot put the old ones back.
    # They are rotated from the stored ones, not from `webhook` (the caller's reading): a
    # rotation committed since keeps its new secret through the grace period.
    await ctx.store.rotate_webhook_secrets(
        webhook.id,
        lambda current: rotated_secrets(current, new_secret, grace_seconds, now),
        now,
        audit=entry,
    )
    return new_secret
