"""The exception tree of orderhooks.

::

    OrderhooksError
    ├── ConfigError            bad configuration; the process refuses to start
    │   └── SecretUnreadable   stored ciphertext that no key of ORDERHOOKS_ENCRYPTION_KEYS opens
    ├── ValidationError        client input breaks the contract (HTTP 422), carries field details
    ├── NotFound               no such object, or not visible to the caller (HTTP 404)
    ├── Conflict               the request clashes with stored state (HTTP 409)
    ├── LimitExceeded          a quota such as webhooks per account (HTTP 422 / 429)
    └── StoreError             the database failed; third-party errors are wrapped here
        └── StoreUnavailable   the database cannot be reached right now (HTTP 503)

The web layer maps this tree to the error JSON of PRODUCT 7 in one place
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


class NotFound(OrderhooksError):
    """The object does not exist or the caller may not see it."""


class Conflict(OrderhooksError):
    """The request clashes with the stored state."""


class LimitExceeded(OrderhooksError):
    """A configured quota would be exceeded."""


class StoreError(OrderhooksError):
    """The store failed."""


class StoreUnavailable(StoreError):
    """The store cannot be reached right now."""
