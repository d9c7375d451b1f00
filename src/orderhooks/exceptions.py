"""The exception tree of orderhooks.

::

    OrderhooksError
    ├── ConfigError            bad configuration; the process refuses to start
    │   └── SecretUnreadable   stored ciphertext that no key of ORDERHOOKS_ENCRYPTION_KEYS opens
    ├── StartError             the process cannot start serving: its address cannot be had
    ├── ValidationError        client input breaks the contract (HTTP 422), carries field details
    │   └── OrderAccountChanged   a newer version of a known order names another account
    ├── NotFound               no such object, or not visible to the caller (HTTP 404)
    │   └── UnknownOrder       an ingested update names an unknown order (404, with its index)
    ├── Conflict               the request clashes with stored state (HTTP 409)
    ├── LimitExceeded          a quota such as webhooks per account (HTTP 422 / 429)
    │   └── WebhookLimitReached   an account already has the most webhooks allowed (422)
    └── StoreError             the database failed; third-party errors are wrapped here
        └── StoreUnavailable   the database cannot be reached right now (HTTP 503)
            └── StorageFull    the database cannot write: its disk is full (HTTP 503,
                               `storage_unavailable`); writes succeed again once space returns

The web layer maps this tree to the error JSON of docs/api.md in one place
(``orderhooks.web.errors``); nothing below the web layer knows about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class OrderhooksError(Exception):
    """Root of every error orderhooks raises on purpose."""


class ConfigError(OrderhooksError):
    """The configuration is invalid."""


class SecretUnreadable(ConfigError):
    """A stored secret does not open with any key of `ORDERHOOKS_ENCRYPTION_KEYS`."""


class StartError(OrderhooksError):
    """The process cannot start serving (a port in use, a host that does not resolve);
    its message is a sentence for the operator."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One reason a request was refused: where (dotted field path, or batch index) and why."""

    field: str
    message: str
    index: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The `details` entry of the error JSON."""
        out: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.index is not None:
            out = {"index": self.index, **out}
        return out


@dataclass
class ValidationError(OrderhooksError):
    """Client input breaks the contract; `problems` name each field."""

    problems: list[FieldProblem] = field(default_factory=list)
    message: str = "the request is invalid"

    def __str__(self) -> str:
        return self.message + "".join(f"; {p.field}: {p.message}" for p in self.problems)


class OrderAccountChanged(ValidationError):
    """A newer version of a known order names another account (an order never moves
    between accounts); `index` is the item's position in its ingest batch."""

    def __init__(self, order_id: str, account: str, index: int) -> None:
        problem = FieldProblem("account", f"must be {account!r}, the account of the order", index)
        super().__init__([problem], f"order {order_id!r} belongs to account {account!r}")
        self.order_id = order_id
        self.account = account
        self.index = index


class NotFound(OrderhooksError):
    """The object does not exist or the caller may not see it."""


class UnknownOrder(NotFound):
    """A status or courier update named an order the store does not know; `index` is the
    update's position in its ingest batch."""

    def __init__(self, order_id: str, index: int) -> None:
        super().__init__(order_id)
        self.order_id = order_id
        self.index = index


class Conflict(OrderhooksError):
    """The request clashes with the stored state."""


class LimitExceeded(OrderhooksError):
    """A configured quota would be exceeded."""


class WebhookLimitReached(LimitExceeded):
    """A new webhook would give `account` more than `cap` webhooks."""

    def __init__(self, account: str, cap: int) -> None:
        super().__init__(f"account {account!r} already has {cap} webhooks")
        self.account = account
        self.cap = cap


class StoreError(OrderhooksError):
    """The store failed."""


class StoreUnavailable(StoreError):
    """The store cannot be reached right now."""


class StorageFull(StoreUnavailable):
    """The database cannot write because its disk is full (SQLite SQLITE_FULL or ENOSPC,
    PostgreSQL disk_full 53100); nothing of the failed write was stored."""
