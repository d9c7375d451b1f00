"""What every operation needs: the store, the settings and the clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from orderhooks.clock import Clock, utc_now

if TYPE_CHECKING:  # annotations only: the command line's `--help` need not load them
    from datetime import datetime

    from orderhooks.config import Settings
    from orderhooks.metrics import Metrics
    from orderhooks.store import Store
    from orderhooks.tracing import Tracing


@dataclass(frozen=True, slots=True)
class ServiceContext:
    """The collaborators of the operations; `metrics`, when given, counts ingested events;
    `tracing`, when given and on, traces ingests."""

    store: Store
    settings: Settings
    clock: Clock = utc_now
    metrics: Metrics | None = None
    tracing: Tracing | None = None

    def now(self) -> datetime:
        """The current time from this context's clock."""
        return self.clock()
