"""`proxy_error` attempts are the egress proxy's failure, not the endpoint's: on both
engines they neither start probing nor count toward disabling the webhook, while the
same attempts answered 500 do both (the control)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from orderhooks.delivery.claims import Outcome
from orderhooks.domain.model import AttemptError, DeliveryState, Ordering, Scope, WebhookState
from orderhooks.store import Store
from tests.integration.test_store_contract import (
    DISABLE_AFTER,
    NOW,
    attempt,
    build_store,
    new_order,
    webhook,
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open, migrated store of each engine (PostgreSQL fails, never skips, when down)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'orderhooks.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    store = build_store(url)
    await store.open()
    await store.migrate()
    yield store
    await store.close()


def _failed_attempt(delivery_id: str, webhook_id: str, error: AttemptError, number: int) -> Outcome:
    later = NOW + timedelta(seconds=DISABLE_AFTER)
    status_code = 500 if error is AttemptError.HTTP_STATUS else None
    tried = attempt(delivery_id, number, status_code, error=error, started_at=later)
    return Outcome(delivery_id, webhook_id, tried, DeliveryState.PENDING, later, number)


@pytest.mark.parametrize(
    ("error", "counted"), [(AttemptError.PROXY_ERROR, False), (AttemptError.HTTP_STATUS, True)]
)
async def test_proxy_errors_do_not_count_against_the_webhook(
    any_store: Store, error: AttemptError, counted: bool
) -> None:
    store = any_store
    hook = await store.create_webhook(webhook(ordering=Ordering.NONE))
    await store.ingest([new_order(f"o{i}") for i in range(4)], NOW)
    claims = await store.claim(NOW, 10, "w1")
    assert len(claims) == 4
    # One failure at NOW, three more a whole DISABLE_AFTER later: enough to probe and to
    # disable, had they been the endpoint's failures.
    first, *rest = claims
    early = _failed_attempt(first.delivery.id, hook.id, error, 1)
    await store.record([early], NOW)
    later = NOW + timedelta(seconds=DISABLE_AFTER)
    await store.record([_failed_attempt(c.delivery.id, hook.id, error, 1) for c in rest], later)

    after = await store.get_webhook(hook.id, Scope())
    if counted:
        assert after.state == WebhookState.DISABLED
        return
    assert after.state == WebhookState.ACTIVE
    assert after.disabled_reason is None
    # Not probing either: every due delivery is claimed again, not a single probe.
    assert len(await store.claim(later + timedelta(seconds=1), 10, "w1")) == 4


async def test_a_proxy_error_is_the_webhooks_last_failure_in_its_stats(any_store: Store) -> None:
    """Proxy errors left the health record untouched, so the stats showed no failure at all
    (lastFailureAt null) while every attempt failed and the success rate was 0. They are
    failed attempts all the same (docs/api.md): the last failure, without probing."""
    store = any_store
    hook = await store.create_webhook(webhook(ordering=Ordering.NONE))
    await store.ingest([new_order(f"o{i}") for i in range(3)], NOW)
    claims = await store.claim(NOW, 10, "w1")
    later = NOW + timedelta(seconds=DISABLE_AFTER)
    failed = [_failed_attempt(c.delivery.id, hook.id, AttemptError.PROXY_ERROR, 1) for c in claims]
    await store.record(failed, later)

    stats = await store.webhook_stats(hook.id, later)
    assert stats.last_failure_at == later
    assert stats.last_success_at is None
    # Still not probing: every due delivery is claimed again, not a single probe.
    assert len(await store.claim(later + timedelta(seconds=1), 10, "w1")) == 3
