"""The audit trail: who changed what, and when. The one place an entry is built.

An operation builds the entry of its change and hands it to the store operation that
makes the change, which writes both in one transaction (`store/shared/audit.py`): a
change is never made without its entry. Details never carry a secret, a key or a header
value (static headers often carry the receiver's credentials), and name times in RFC 3339
UTC like every answer of the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orderhooks.domain.envelope import format_timestamp
from orderhooks.domain.ids import new_id
from orderhooks.domain.model import AuditEntry
from orderhooks.service.context import ServiceContext

VIA_DASHBOARD = "dashboard"
VIA_CLI = "cli"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for a change: a key id (or `cli`), and where from when not the API."""

    id: str
    via: str | None = None


CLI_ACTOR = Actor("cli", via=VIA_CLI)
"""The operator at the command line: the CLI works on the database, without a key."""


def audit_time(moment: datetime | None) -> str | None:
    """A time as audit details name it: RFC 3339 UTC, or None."""
    return None if moment is None else format_timestamp(moment)


def audit_entry(
    ctx: ServiceContext,
    actor: Actor,
    action: str,
    target: tuple[str, str],
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """The entry of a change, for the store operation making the change to write."""
    target_type, target_id = target
    via = {} if actor.via is None else {"via": actor.via}
    return AuditEntry(
        id=new_id("aud"),
        at=ctx.now(),
        actor=actor.id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details={**via, **(details or {})},
    )
