"""Agreements: who signed for an account, when, and the prices of its usage."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from orderhooks.domain.model import ALL_ACCOUNTS, Agreement, EventType
from orderhooks.exceptions import FieldProblem, ValidationError
from orderhooks.service.audit import Actor, audit_entry
from orderhooks.service.context import ServiceContext


def check_account(account: str) -> None:
    """422 naming `account` for `*`, which means every account and is not one."""
    if account == ALL_ACCOUNTS:
        raise ValidationError([FieldProblem("account", '"*" is not an account')])


async def record_agreement(
    ctx: ServiceContext,
    actor: Actor,
    account: str,
    *,
    signed_by: str,
    signed_at: datetime,
    currency: str,
    per_thousand: Mapping[EventType, int],
) -> Agreement:
    """Record (or replace) the account's agreement; its awaiting webhooks become active."""
    check_account(account)
    agreement = Agreement(
        account=account,
        signed_by=signed_by,
        signed_at=signed_at,
        currency=currency,
        per_thousand=dict(per_thousand),
    )
    details = {"signedBy": agreement.signed_by, "currency": agreement.currency}
    entry = audit_entry(ctx, actor, "agreement.recorded", ("account", account), details)
    return await ctx.store.put_agreement(agreement, ctx.now(), audit=entry)
