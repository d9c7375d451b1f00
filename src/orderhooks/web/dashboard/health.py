"""A webhook's health in one word, and the order that puts trouble first."""

from __future__ import annotations

from dataclasses import dataclass

from orderhooks.domain.model import DeliveryState, DisabledReason, Webhook, WebhookState
from orderhooks.store.base import WebhookStats


@dataclass(frozen=True, slots=True)
class Health:
    """What the lists show: a label, a level for its colour, and a rank (0 = worst)."""

    label: str
    level: str  # bad, warn, off, idle, ok: also the CSS class of the badge
    rank: int


FAILING = Health("Failing", "bad", 0)
GONE = Health("Disabled: endpoint gone", "bad", 0)
DISABLED_FAILING = Health("Disabled: kept failing", "bad", 0)
AWAITING = Health("Awaiting agreement", "warn", 1)
RETRYING = Health("Retrying", "warn", 1)
DISABLED = Health("Disabled", "off", 2)
IDLE = Health("No deliveries yet", "idle", 3)
HEALTHY = Health("Healthy", "ok", 4)


def webhook_health(webhook: Webhook, stats: WebhookStats | None) -> Health:
    """The health of a webhook from its state and its latest outcomes."""
    if webhook.state == WebhookState.DISABLED:
        if webhook.disabled_reason == DisabledReason.GONE:
            return GONE
        if webhook.disabled_reason == DisabledReason.FAILING:
            return DISABLED_FAILING
        return DISABLED
    if webhook.state == WebhookState.AWAITING_AGREEMENT:
        return AWAITING
    if stats is None:
        return IDLE
    last_ok, last_bad = stats.last_success_at, stats.last_failure_at
    if last_bad is not None and (last_ok is None or last_bad > last_ok):
        # The latest attempt failed: "failing" once deliveries have given up, else retrying.
        return FAILING if stats.counts.get(DeliveryState.FAILED, 0) else RETRYING
    if last_ok is None:
        return IDLE
    return HEALTHY


def trouble_first(rows: list[tuple[Webhook, Health]]) -> list[tuple[Webhook, Health]]:
    """Rows sorted worst health first, then by id (oldest first) for a stable order."""
    return sorted(rows, key=lambda row: (row[1].rank, row[0].id))
