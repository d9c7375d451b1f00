"""A webhook's health: when it is probed instead of hammered, when it is disabled (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orderhooks.domain.model import DisabledReason

PROBE_AFTER_CONSECUTIVE_FAILURES = 3


@dataclass(frozen=True, slots=True)
class WebhookHealth:
    """What the store keeps of a webhook's recent outcomes.

    While `probing`, the claim gives the webhook at most one attempt in flight, the
    earliest due delivery, and only once `probe_at` has passed; the other deliveries
    wait without spending attempts. One success ends probing.
    """

    consecutive_failures: int = 0
    failing_since: datetime | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    probing: bool = False
    probe_at: datetime | None = None


def after_attempt(
    health: WebhookHealth,
    succeeded: bool,
    now: datetime,
    retry_at: datetime | None,
    disable_after_seconds: int,
) -> tuple[WebhookHealth, DisabledReason | None]:
    """The health after one recorded attempt, and whether to disable the webhook
    (`failing`: no success for `disable_after_seconds` while attempts keep failing).
    `retry_at` is when the failed delivery is due again (the next probe time)."""
    raise NotImplementedError
