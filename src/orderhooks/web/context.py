"""What every request handler needs, attached once to the app: settings, store, clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from fastapi import Request

from orderhooks.clock import utc_now
from orderhooks.config import Settings
from orderhooks.metrics import Metrics
from orderhooks.service.context import ServiceContext
from orderhooks.store import Store
from orderhooks.tracing import TRACING_OFF, Tracing
from orderhooks.web.ratelimit import KeyRateLimiter

if TYPE_CHECKING:
    from orderhooks.web.auth import KeyCache


@dataclass(frozen=True, slots=True)
class ApiContext:
    """The collaborators of the HTTP API of one process."""

    settings: Settings
    store: Store
    metrics: Metrics
    keys: KeyCache
    limiter: KeyRateLimiter
    clock: Callable[[], datetime] = utc_now
    tracing: Tracing = TRACING_OFF

    # What the operations of `orderhooks.service` need, from this API's parts: made once,
    # not for every request.
    service: ServiceContext = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        service = ServiceContext(
            self.store, self.settings, self.clock, self.metrics, tracing=self.tracing
        )
        object.__setattr__(self, "service", service)

    def now(self) -> datetime:
        """The current time from this API's clock."""
        return self.clock()


def get_context(request: Request) -> ApiContext:
    """The ApiContext of the app serving `request`."""
    ctx = request.app.state.orderhooks
    assert isinstance(ctx, ApiContext)
    return ctx
