"""Rotating a webhook's secret (docs/api.md, "Endpoints"; docs/security.md) on both
engines: every rotation starts from the secrets the previous one left, so each secret a
rotation answered keeps signing through its grace period."""

from __future__ import annotations

import asyncio

from orderhooks.domain.model import Scope
from orderhooks.service import webhooks as webhook_service
from orderhooks.service.audit import CLI_ACTOR
from orderhooks.service.context import ServiceContext
from tests.integration.api_support import LocalApi
from tests.support.api import expect
from tests.support.data import unique

API_SETTINGS = {"require_agreement": False}
CONCURRENT_ROTATIONS = 6


async def test_concurrent_rotations_keep_every_secret_they_answered(
    api_on_each_engine: LocalApi,
) -> None:
    """Rotations at the same time each read the webhook, then wrote their new secret over
    the reading: the last write dropped the others' new secrets, which then never
    verified though the API had answered them."""
    api = api_on_each_engine
    webhook = await api.make_webhook(unique("acct"))
    path = f"/v1/webhooks/{webhook['id']}/secret/rotate"
    answers = await asyncio.gather(*(api.call("POST", path) for _ in range(CONCURRENT_ROTATIONS)))
    answered = [expect(answer, 200)["secret"] for answer in answers]
    stored = await api.store.get_webhook(webhook["id"], Scope())
    signing = [s.secret for s in stored.secrets]
    assert set(answered) | {webhook["secret"]} == set(signing)
    assert signing[0] == expect(await api.call("GET", path.removesuffix("/rotate")), 200)["secret"]


async def test_a_rotation_from_an_old_reading_keeps_the_previous_rotations_secret(
    api_on_each_engine: LocalApi,
) -> None:
    """The rotation of a caller that read the webhook before another rotation committed
    starts from the stored secrets, not from its reading."""
    api = api_on_each_engine
    created = await api.make_webhook(unique("acct"))
    reading = await api.store.get_webhook(created["id"], Scope())
    ctx = ServiceContext(api.store, api.settings)
    first = await webhook_service.rotate_secret(ctx, CLI_ACTOR, reading, 3600)
    second = await webhook_service.rotate_secret(ctx, CLI_ACTOR, reading, 3600)
    stored = await api.store.get_webhook(created["id"], Scope())
    assert [s.secret for s in stored.secrets] == [second, first, created["secret"]]
