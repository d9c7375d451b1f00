"""A webhook's health: when it is probed instead of hammered, when it is disabled (pure)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from orderhooks.domain.model import AttemptError, DisabledReason

PROBE_AFTER_CONSECUTIVE_FAILURES = 3


@dataclass(frozen=True, slots=True)
class WebhookHealth:
    """What the store keeps of a webhook's recent outcomes.

    While `probing`, the claim gives the webhook at most one attempt in flight, the
    earliest due delivery, and only once `probe_at` has passed; the other deliveries
    wait without spending attempts. One success ends probing.

    `failing_reported_since` is the `since` of the `webhook.failing` announced for the
    current run of failures, until a success closes it with `webhook.recovered`. Enabling
    a disabled webhook starts its failure count afresh but leaves this as it is: the
    first success after a `webhook.failing` is announced however the webhook got there.
    """

    consecutive_failures: int = 0
    failing_since: datetime | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    probing: bool = False
    probe_at: datetime | None = None
    failing_reported_since: datetime | None = None


def counts_toward_health(error: AttemptError | None) -> bool:
    """Whether an attempt says something about the webhook's endpoint. An egress proxy
    that cannot be reached is the operator's failure: it neither starts probing nor
    counts toward disabling the webhook (docs/security.md); see `after_uncounted_failure`."""
    return error is not AttemptError.PROXY_ERROR


def after_uncounted_failure(health: WebhookHealth, now: datetime) -> WebhookHealth:
    """The health after a failed attempt that does not count toward it (a `proxy_error`):
    it is still the webhook's last failure, as its stats show it (docs/api.md), but the
    run of failures, probing and disabling are left as they were."""
    return dataclasses.replace(health, last_failure_at=now)


def _failing_too_long(health: WebhookHealth, now: datetime, disable_after_seconds: int) -> bool:
    if health.failing_since is None:
        return False
    if health.last_success_at is not None and health.last_success_at >= health.failing_since:
        return False
    return now - health.failing_since >= timedelta(seconds=disable_after_seconds)


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
    if succeeded:
        healthy = dataclasses.replace(
            health,
            consecutive_failures=0,
            failing_since=None,
            probing=False,
            probe_at=None,
            last_success_at=now,
            failing_reported_since=None,
        )
        return healthy, None
    failures = health.consecutive_failures + 1
    probing = failures >= PROBE_AFTER_CONSECUTIVE_FAILURES
    probe_at = None
    if probing:
        # The probe is the failed delivery's own next attempt: no extra cool-down. When
        # that delivery has just failed for good, the next waiting delivery takes over as
        # the probe at once and walks its own schedule.
        probe_at = retry_at if retry_at is not None else now
    failing_since = health.failing_since if health.failing_since is not None else now
    reported = health.failing_reported_since
    if probing and not health.probing:
        reported = failing_since  # probing starts: `webhook.failing` is announced now
    failing = dataclasses.replace(
        health,
        consecutive_failures=failures,
        failing_since=failing_since,
        last_failure_at=now,
        probing=probing,
        probe_at=probe_at,
        failing_reported_since=reported,
    )
    if _failing_too_long(failing, now, disable_after_seconds):
        return failing, DisabledReason.FAILING
    return failing, None
