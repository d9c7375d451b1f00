"""The audit trail's one insert, in the transaction of the change it records.

An audited operation takes `audit`, the entry of its change (the service builds it:
`service/audit.py`), and ends with `audited(tx, result, audit)`: the change and its entry
are committed together or not at all, so a change is never made without its entry, nor
an entry written for a change that was not made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias, TypeVar

from orderhooks.domain.model import AuditEntry
from orderhooks.store.shared.codec import audit_params
from orderhooks.store.shared.tx import Tx

T = TypeVar("T")

Audit: TypeAlias = AuditEntry | Callable[[T], AuditEntry]
"""The entry of a change: built before it, or from the operation's result when the entry
names what only the change finds out (how many deliveries it requeued, which link a token
opened)."""


async def write_audit(tx: Tx, entry: AuditEntry) -> None:
    """Append `entry` to the audit trail in `tx`."""
    await tx.execute("insert_audit", **audit_params(entry))


async def audited(tx: Tx, result: T, audit: Audit[T] | None) -> T:
    """`result`, once the entry of the change that made it (if any) is written in `tx`."""
    if audit is not None:
        await write_audit(tx, audit if isinstance(audit, AuditEntry) else audit(result))
    return result
