"""The Store contract, run against both engines: SQLite on a file in tmp_path and
PostgreSQL on a fresh database (the `pg_url` fixture fails, never skips, without it).

The builders are integration/store_support.py's and the store fixtures (`engine_url`,
`make_store`, `store`) integration/conftest.py's, shared with the other `test_store_*`
modules.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

from orderhooks.delivery.claims import Outcome, requests_of
from orderhooks.domain.batches import BatchSettings
from orderhooks.domain.ids import new_id
from orderhooks.domain.model import (
    ApiKey,
    AuditEntry,
    DeliveryState,
    DisabledReason,
    EventType,
    Ordering,
    PersonalData,
    Role,
    Scope,
    SigningSecret,
    Webhook,
    WebhookState,
)
from orderhooks.exceptions import (
    Conflict,
    NotFound,
    StoreError,
    UnknownOrder,
    WebhookLimitReached,
)
from orderhooks.service.testevents import synthetic_event
from orderhooks.store.base import (
    CourierItem,
    DeliveryFilter,
    EventFilter,
    MessageKey,
    PendingSummary,
    WebhookFilter,
)
from orderhooks.store.shared import claim as claim_operations
from orderhooks.store.shared import webhooks as webhook_operations
from orderhooks.store.shared.claim import CLAIMER_SEEN_SECONDS
from orderhooks.store.sql import load_migrations
from orderhooks.store.store import Store as SqlStore
from tests.integration.store_support import (
    DISABLE_AFTER,
    NOW,
    SECRET,
    StoreFactory,
    agreement,
    attempt,
    build_store,
    delivered,
    deliveries_of,
    failed,
    new_order,
    order,
    status,
    webhook,
)

# Every migration the package ships, in order; both engines ship the same names.
ALL_MIGRATIONS = [name for name, _ in load_migrations("sqlite")]
assert [name for name, _ in load_migrations("postgres")] == ALL_MIGRATIONS
assert ALL_MIGRATIONS[0] == "0001_initial"

# ---------------------------------------------------------------- helpers


async def claim_ids(store: SqlStore, at: datetime = NOW, limit: int = 100) -> list[str]:
    """The delivery ids a claim at `at` leases."""
    return [c.delivery.id for c in await store.claim(at, limit, "w1")]


# ---------------------------------------------------------------- lifecycle and ingest


async def test_migrate_is_idempotent(engine_url: str) -> None:
    store = build_store(engine_url)
    await store.open()
    try:
        assert await store.migrate() == ALL_MIGRATIONS
        assert await store.migrate() == []
        await store.ping()
    finally:
        await store.close()


async def test_new_order_creates_event_and_deliveries(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook())
    other = await store.create_webhook(webhook(accounts=("acc2",)))
    [result] = await store.ingest([new_order("o1")], NOW)
    assert result.created and not result.repeat and len(result.event_ids) == 1
    view = await store.get_order("o1", Scope())
    assert view.order.document["unknownField"] == {"kept": True}
    assert [(e.type, e.sequence) for e in view.events] == [(EventType.NEW, 1)]
    [delivery] = await deliveries_of(store, hook.id)
    assert delivery.state == DeliveryState.PENDING
    assert delivery.event_id == result.event_ids[0]
    assert delivery.next_attempt_at == NOW
    assert await deliveries_of(store, other.id) == []


async def test_repeat_newer_version_status_and_courier(store: SqlStore) -> None:
    await store.create_webhook(webhook())
    first = new_order("o1")
    await store.ingest([first], NOW)
    [repeat] = await store.ingest([first], NOW)
    assert repeat.repeat and repeat.event_ids == ()
    [newer] = await store.ingest([new_order("o1", status=20)], NOW)
    assert not newer.repeat and not newer.created and len(newer.event_ids) == 1
    [update] = await store.ingest([status("o1", 50)], NOW)
    [again] = await store.ingest([status("o1", 50)], NOW)
    assert again.repeat and again.event_ids == ()
    courier = CourierItem("o1", {"status": 83, "courier": {"firstName": "Jo"}})
    [courier_result] = await store.ingest([courier], NOW)
    view = await store.get_order("o1", Scope())
    assert [(e.type, e.sequence) for e in view.events] == [
        (EventType.NEW, 1),
        (EventType.STATUS_UPDATE, 2),
        (EventType.STATUS_UPDATE, 3),
        (EventType.COURIER_UPDATE, 4),
    ]
    assert view.events[2].id == update.event_ids[0]
    assert view.events[3].id == courier_result.event_ids[0]
    assert view.order.status == 50 and view.order.courier is not None
    assert view.order.courier["firstName"] == "Jo"
    assert [h["status"] for h in view.status_history][-1] == 50


async def test_unknown_order_rolls_back_the_whole_batch(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook())
    with pytest.raises(UnknownOrder) as caught:
        await store.ingest([new_order("o1"), status("o1", 20), status("nope", 20)], NOW)
    assert caught.value.index == 2 and caught.value.order_id == "nope"
    with pytest.raises(Exception, match="not found"):
        await store.get_order("o1", Scope())
    assert await deliveries_of(store, hook.id) == []
    # A batch may create an order and update it in the same call.
    results = await store.ingest([new_order("o1"), status("o1", 20)], NOW)
    assert [r.created for r in results] == [True, False]


async def test_a_broker_message_ingested_before_creates_nothing(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook())
    courier = CourierItem("o1", {"status": 83, "courier": {"firstName": "Jo"}})
    items = [new_order("o1"), status("o1", 20), courier]
    order_key, courier_key = MessageKey("src", "a" * 64), MessageKey("src", "b" * 64)
    keys = [order_key, order_key, courier_key]  # two messages: [order, status], [courier]
    first = await store.ingest(items, NOW, message_keys=keys)
    assert [len(r.event_ids) for r in first] == [1, 1, 1]
    assert not any(r.duplicate for r in first)
    # Redelivered (a crash between commit and acknowledgement): nothing is created.
    again = await store.ingest(items, NOW + timedelta(seconds=1), message_keys=keys)
    assert [(r.order_id, r.event_ids, r.duplicate) for r in again] == [("o1", (), True)] * 3
    [alone] = await store.ingest([courier], NOW, message_keys=[courier_key])
    assert alone.duplicate and alone.event_ids == ()
    view = await store.get_order("o1", Scope())
    assert [e.type for e in view.events] == [
        EventType.NEW,
        EventType.STATUS_UPDATE,
        EventType.COURIER_UPDATE,
    ]
    assert len(await deliveries_of(store, hook.id)) == 3
    # The same body from another source is another message; without keys (the HTTP API)
    # a courier update always creates an event.
    [other] = await store.ingest([courier], NOW, message_keys=[MessageKey("other", "b" * 64)])
    [plain] = await store.ingest([courier], NOW)
    assert len(other.event_ids) == 1 and len(plain.event_ids) == 1
    assert not other.duplicate and not plain.duplicate


async def test_a_message_key_is_kept_only_with_what_it_created(store: SqlStore) -> None:
    courier = CourierItem("o1", {"status": 83, "courier": {"firstName": "Jo"}})
    key = MessageKey("src", "c" * 64)
    # Rolled back with an unknown order: the key is not recorded either.
    with pytest.raises(UnknownOrder):
        await store.ingest([courier], NOW, message_keys=[key])
    await store.ingest([new_order("o1")], NOW)
    [result] = await store.ingest([courier], NOW - timedelta(days=40), message_keys=[key])
    assert len(result.event_ids) == 1
    [again] = await store.ingest([courier], NOW, message_keys=[key])
    assert again.duplicate
    # The retention forgets the key with the rest; the same body is then a new message.
    assert await store.purge(NOW - timedelta(days=30)) == 2  # the old event and the key
    [later] = await store.ingest([courier], NOW, message_keys=[key])
    assert len(later.event_ids) == 1 and not later.duplicate


async def test_two_consumers_of_one_message_create_it_once(make_store: StoreFactory) -> None:
    first, second = await make_store(), await make_store()
    await first.ingest([new_order("o1")], NOW)
    courier = CourierItem("o1", {"status": 83, "courier": {"firstName": "Jo"}})
    keys = [MessageKey("src", f"{n:064x}") for n in range(20)]
    results = await asyncio.gather(
        *(
            store.ingest([courier], NOW, message_keys=[key])
            for key in keys
            for store in (first, second)
        )
    )
    created = [result for [result] in results if not result.duplicate]
    assert len(created) == len(keys) and all(len(r.event_ids) == 1 for r in created)
    view = await first.get_order("o1", Scope())
    assert [e.type for e in view.events].count(EventType.COURIER_UPDATE) == len(keys)


async def test_trigger_sends_order_new_first(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook(new_order_trigger=20))
    await store.ingest([new_order("o1", status=10)], NOW)
    assert await deliveries_of(store, hook.id) == []
    [result] = await store.ingest([status("o1", 20)], NOW)
    assert len(result.event_ids) == 2
    kinds = [(d.event_type, d.sequence) for d in await deliveries_of(store, hook.id)]
    assert kinds == [(EventType.NEW, 2), (EventType.STATUS_UPDATE, 3)]
    await store.ingest([status("o1", 50)], NOW)  # fires once only
    types = [d.event_type for d in await deliveries_of(store, hook.id)]
    assert types.count(EventType.NEW) == 1


# ---------------------------------------------------------------- the queue


async def test_claim_takes_only_the_head_of_each_order(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order("o1"), status("o1", 20), status("o1", 50)], NOW)
    await store.ingest([new_order("o2")], NOW)
    claims = await store.claim(NOW, 100, "w1")
    assert sorted((c.event.order_id, c.event.sequence, c.attempt) for c in claims) == [
        ("o1", 1, 1),
        ("o2", 1, 1),
    ]
    assert all(c.webhook.id == hook.id for c in claims)
    assert all(c.lease_expires_at == NOW + timedelta(seconds=15 + 30) for c in claims)
    assert await claim_ids(store) == []
    head = next(c for c in claims if c.event.order_id == "o1")
    await store.record([delivered(head.delivery.id, hook.id)], NOW)
    [next_claim] = await store.claim(NOW, 100, "w1")
    assert (next_claim.event.order_id, next_claim.event.sequence) == ("o1", 2)


async def assert_still_routed_to(store: SqlStore, hook: Webhook, order_id: str) -> None:
    """After a rolled-back change: `hook` is active, and a new order goes to it and to a
    webhook created now (what the process caches of the webhooks is current)."""
    assert (await store.get_webhook(hook.id, Scope())).state == WebhookState.ACTIVE
    before = len(await deliveries_of(store, hook.id))
    other = await store.create_webhook(webhook())
    await store.ingest([new_order(order_id)], NOW)
    assert len(await deliveries_of(store, other.id)) == 1
    assert len(await deliveries_of(store, hook.id)) == before + 1


async def test_any_failed_looks_at_these_accounts_only(store: SqlStore) -> None:
    every = await store.create_webhook(webhook(accounts=("*",)))  # carries acc1's orders
    await store.ingest([new_order("o1")], NOW)
    claims = {c.webhook.id: c for c in await store.claim(NOW, 100, "w1")}
    assert not await store.any_failed(["acc1"])
    await store.record([failed(claims[every.id].delivery.id, every.id)], NOW)
    assert await store.any_failed(["acc1"])
    assert await store.any_failed(["acc9", "acc1"])
    assert not await store.any_failed(["acc9"])  # another account
    assert not await store.any_failed([])
    assert await store.any_failed(None)  # any account


async def test_any_failed_of_any_account_counts_deleted_webhooks(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order("o1")], NOW)
    assert not await store.any_failed(None)
    [claim] = await store.claim(NOW, 100, "w1")
    await store.record([failed(claim.delivery.id, hook.id)], NOW)
    assert await store.any_failed(None)
    await store.delete_webhook(hook.id, NOW)
    assert await store.any_failed(None)  # its failed delivery stays failed


async def test_a_partners_failed_and_pending_deliveries_stay_found_after_a_patch_of_accounts(
    store: SqlStore,
) -> None:
    """The overview's checks find what `list_deliveries` lists for a partner: deliveries
    of its account stay its own on a webhook that no longer carries the account."""
    hook = await store.create_webhook(webhook(accounts=("acc1",)))
    await store.ingest([new_order("o1"), new_order("o2")], NOW)
    [claim] = await store.claim(NOW, 1, "w1")  # the other stays pending
    await store.record([failed(claim.delivery.id, hook.id)], NOW)
    stored = await store.get_webhook(hook.id, Scope())
    await store.update_webhook(dataclasses.replace(stored, accounts=("acc2",)))
    partner = Scope(accounts=frozenset({"acc1"}))
    listed = await store.list_deliveries(DeliveryFilter(scope=partner), 10, None)
    assert len(listed.items) == 2, "the API still lists both to acc1"
    assert await store.any_failed(["acc1"])
    assert (await store.pending_of(["acc1"])).pending == 1
    assert not await store.any_failed(["acc2"])


async def test_pending_of_counts_what_these_accounts_may_list(store: SqlStore) -> None:
    """The dashboard's queue depth for a partner: its pending deliveries to its own
    webhooks and to one it shares with another account, never the other account's."""
    own = await store.create_webhook(webhook(accounts=("acc1",)))
    await store.create_webhook(webhook(accounts=("acc1", "acc2")))
    await store.create_webhook(webhook(accounts=("acc2",)))
    await store.ingest([new_order("o1"), new_order("o2", account="acc2")], NOW)
    assert await store.pending_of(["acc1"]) == PendingSummary(2, NOW)
    assert await store.pending_of(["acc2"]) == PendingSummary(2, NOW)
    assert await store.pending_of(["acc1", "acc2"]) == PendingSummary(4, NOW)
    claims = await store.claim(NOW, 100, "w1")  # in flight, no longer pending
    [mine] = [c for c in claims if c.webhook.id == own.id]
    await store.record([delivered(mine.delivery.id, own.id)], NOW)
    assert await store.pending_of(["acc1"]) == PendingSummary(0, None)
    assert await store.pending_of(["acc9"]) == PendingSummary(0, None)
    assert await store.pending_of([]) == PendingSummary(0, None)


async def test_webhooks_in_trouble_are_the_callers_that_look_worst(store: SqlStore) -> None:
    """The dashboard overview's candidates for "needs attention", among all of a caller's
    webhooks: disabled for cause or whose latest attempt failed (never those that are
    healthy, idle or disabled by hand), the disabled for cause first, then the failing
    by their run of failed attempts."""
    healthy = await store.create_webhook(webhook())
    failing = await store.create_webhook(webhook())
    shared = await store.create_webhook(webhook(accounts=("acc1", "acc2")))
    await store.create_webhook(webhook())  # idle: no attempt yet
    await store.ingest([new_order("o1")], NOW)
    claims = {c.webhook.id: c.delivery.id for c in await store.claim(NOW, 100, "w1")}
    outcomes = [
        delivered(claims[healthy.id], healthy.id),
        failed(claims[failing.id], failing.id),
        failed(claims[shared.id], shared.id),
    ]
    await store.record(outcomes, NOW)
    manual = await store.create_webhook(webhook())
    await store.set_webhook_state(manual.id, WebhookState.DISABLED, DisabledReason.MANUAL, NOW)
    gone = await store.create_webhook(webhook())
    await store.set_webhook_state(gone.id, WebhookState.DISABLED, DisabledReason.GONE, NOW)

    async def in_trouble(scope: Scope, limit: int = 10) -> list[str]:
        return [hook.id for hook in await store.webhooks_in_trouble(scope, limit)]

    assert await in_trouble(Scope()) == [gone.id, failing.id, shared.id]
    assert await in_trouble(Scope(frozenset({"acc1"}))) == [gone.id, failing.id]
    assert await in_trouble(Scope(frozenset({"acc2"}))) == []
    assert await in_trouble(Scope(), limit=1) == [gone.id]
    # A longer run of failures comes first.
    await store.ingest([new_order("o2", account="acc2")], NOW)
    [again] = [c for c in await store.claim(NOW, 100, "w1") if c.webhook.id == shared.id]
    await store.record([failed(again.delivery.id, shared.id)], NOW)
    assert await in_trouble(Scope()) == [gone.id, shared.id, failing.id]
    await store.delete_webhook(failing.id, NOW)
    assert await in_trouble(Scope()) == [gone.id, shared.id]


async def test_record_and_claim_fills_what_its_outcomes_free(store: SqlStore) -> None:
    """One transaction: the outcome is written (attempt, state), and the claim after it
    sees the slot it freed and the next event of its order, now the head."""
    hook = await store.create_webhook(webhook(max_concurrency=1))
    await store.ingest([new_order("o1"), status("o1", 20)], NOW)
    [head] = await store.claim(NOW, 100, "w1")
    assert (head.event.order_id, head.event.sequence) == ("o1", 1)
    assert await claim_ids(store) == []  # the slot is taken, the next event waits
    outcome = delivered(head.delivery.id, hook.id)
    [following] = await store.record_and_claim([outcome], NOW, 100, "w1")
    assert (following.event.order_id, following.event.sequence) == ("o1", 2)
    recorded = await store.get_delivery(head.delivery.id, Scope())
    assert recorded.delivery.state == "delivered"
    assert [a.status_code for a in recorded.attempts] == [200]
    assert await claim_ids(store) == []  # the freed slot went to `following`
    assert await store.record_and_claim([], NOW, 100, "w1") == []  # nothing to write: a claim


async def test_record_and_claim_claims_nothing_for_a_webhook_its_outcome_disabled(
    store: SqlStore,
) -> None:
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order("o1"), new_order("o2"), new_order("o3")], NOW)
    [first, *_] = await store.claim(NOW, 2, "w1")
    gone = failed(first.delivery.id, hook.id, disable=DisabledReason.GONE)
    assert await store.record_and_claim([gone], NOW, 100, "w1") == []
    assert (await store.get_webhook(hook.id, Scope())).state == WebhookState.DISABLED


async def test_a_failed_record_and_claim_leaves_routing_as_it_was(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole transaction rolls back, the disable its outcome made included, and
    what this process knows of the webhooks with it: later ingests still route."""
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order("o1"), new_order("o2")], NOW)
    [first, *_] = await store.claim(NOW, 1, "w1")

    async def failing_claim(*_args: object) -> list[object]:
        raise StoreError("the claim failed")

    monkeypatch.setattr(claim_operations, "_claim", failing_claim)
    gone = failed(first.delivery.id, hook.id, disable=DisabledReason.GONE)
    with pytest.raises(StoreError):
        await store.record_and_claim([gone], NOW, 10, "w1")
    monkeypatch.undo()
    await assert_still_routed_to(store, hook, "o3")


async def test_a_failed_disable_leaves_routing_as_it_was(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disable whose transaction rolls back (here: its operational event cannot be
    written) changes nothing, not even what this process knows of the webhooks."""
    hook = await store.create_webhook(webhook())

    async def failing_emit(*_args: object) -> None:
        raise StoreError("the event could not be written")

    monkeypatch.setattr(webhook_operations, "emit_operational_event", failing_emit)
    with pytest.raises(StoreError):
        await store.set_webhook_state(hook.id, WebhookState.DISABLED, None, NOW)
    monkeypatch.undo()
    await assert_still_routed_to(store, hook, "o1")


async def test_ordering_none_sends_in_parallel(store: SqlStore) -> None:
    await store.create_webhook(webhook(ordering=Ordering.NONE))
    await store.ingest([new_order("o1"), status("o1", 20), status("o1", 50)], NOW)
    assert len(await claim_ids(store)) == 3


async def test_max_concurrency_and_limit(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook(max_concurrency=2))
    await store.ingest([new_order(f"o{i}") for i in range(5)], NOW)
    assert len(await claim_ids(store, limit=1)) == 1
    assert await store.next_due_at() == NOW
    second = await claim_ids(store)
    assert len(second) == 1  # one slot left of two
    assert await claim_ids(store) == []
    assert await store.next_due_at() is None  # nothing claimable until a slot frees
    await store.record([delivered(second[0], hook.id)], NOW)
    assert len(await claim_ids(store)) == 1


async def test_workers_share_a_webhooks_slots_evenly(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook(max_concurrency=10))
    await store.ingest([new_order(f"o{i}") for i in range(40)], NOW)
    first = await store.claim(NOW, 100, "w1")
    assert len(first) == 10  # alone so far: every slot
    assert await store.claim(NOW, 100, "w2") == []  # none free, but w2 is known now
    await store.record([delivered(c.delivery.id, hook.id) for c in first], NOW)
    one = await store.claim(NOW, 100, "w1")
    two = await store.claim(NOW, 100, "w2")
    assert (len(one), len(two)) == (5, 5), "half of the slots for each of two workers"
    await store.record([delivered(c.delivery.id, hook.id) for c in one + two], NOW)
    # A worker that stopped claiming holds no share back.
    later = NOW + timedelta(seconds=CLAIMER_SEEN_SECONDS + 1)
    assert len(await store.claim(later, 100, "w1")) == 10


async def test_each_webhook_gets_its_own_slice(store: SqlStore) -> None:
    busy = await store.create_webhook(webhook(max_concurrency=64))
    quiet = await store.create_webhook(webhook(max_concurrency=64, accounts=("acc2",)))
    await store.ingest([new_order(f"b{i}") for i in range(30)], NOW)
    await store.ingest([new_order("q1", account="acc2")], NOW)
    claims = await store.claim(NOW, 10, "w1")
    assert len(claims) == 10
    assert {c.webhook.id for c in claims} == {busy.id, quiet.id}


# A worker whose shared capacity is full claims for its webhooks' own slots: one request
# each, for the webhooks with no attempt in flight on it (docs/guarantees.md, Isolation).


async def own_slots(
    store: SqlStore,
    busy: set[str],
    at: datetime = NOW,
    limit: int = 100,
    worker_id: str = "w1",
) -> list[list[Any]]:
    """What an own-slot claim of `worker_id` at `at` leases, request by request, when it
    has attempts in flight for the webhooks `busy`."""
    return requests_of(await store.claim(at, limit, worker_id, one_each_except=busy))


async def test_own_slots_take_one_request_each_for_webhooks_not_in_flight(
    store: SqlStore,
) -> None:
    full = await store.create_webhook(webhook(max_concurrency=10))
    first = await store.create_webhook(webhook(max_concurrency=10))
    second = await store.create_webhook(webhook(max_concurrency=10))
    await store.ingest([new_order(f"o{i}") for i in range(5)], NOW)
    requests = await own_slots(store, {full.id})
    assert sorted(r[0].webhook.id for r in requests) == sorted([first.id, second.id])
    assert all(len(r) == 1 for r in requests)
    # Each in flight now: nothing more of its own; the limit caps the claim too.
    assert await own_slots(store, {full.id, first.id, second.id}) == []
    [alone] = await own_slots(store, {full.id}, limit=1)
    assert alone[0].webhook.id in {first.id, second.id}
    # The shared claim afterwards takes the rest, as ever.
    assert len(await claim_ids(store)) == 15 - 3


async def test_own_slots_keep_max_concurrency_across_workers_and_probing(
    store: SqlStore,
) -> None:
    narrow = await store.create_webhook(webhook(max_concurrency=1))
    await store.ingest([new_order("o1"), new_order("o2")], NOW)
    [taken] = await store.claim(NOW, 100, "w2")  # another worker holds its one slot
    assert await own_slots(store, set()) == []
    await store.record([delivered(taken.delivery.id, narrow.id)], NOW)
    [[own]] = await own_slots(store, set())
    assert own.webhook.id == narrow.id and own.event.order_id == "o2"


async def test_own_slots_take_no_share_of_a_webhook_from_the_other_workers(
    store: SqlStore,
) -> None:
    """A full worker claiming its own slots is not one more worker sharing the slots of
    a webhook: the workers with free capacity keep all the rest."""
    hook = await store.create_webhook(webhook(max_concurrency=10))
    await store.ingest([new_order(f"o{i}") for i in range(40)], NOW)
    [[own]] = await own_slots(store, set(), worker_id="full")
    assert own.webhook.id == hook.id
    assert len(await claim_ids(store)) == 9, "every slot but the full worker's one"


async def test_own_slots_wait_for_a_probe_time(store: SqlStore) -> None:
    _, _, later = await probed_webhook(store, orders=5)
    assert await own_slots(store, set()) == []
    assert len(await own_slots(store, set(), at=later)) == 1
    assert await own_slots(store, set(), at=later) == []  # one probe at a time


async def test_own_slots_spend_the_rate_limit(store: SqlStore) -> None:
    await store.create_webhook(webhook(rate_limit_per_second=1.0))
    await store.ingest([new_order(f"o{i}") for i in range(5)], NOW)
    assert len(await claim_ids(store)) == 1  # the token of this second
    assert await own_slots(store, set(), worker_id="w2") == []
    assert len(await own_slots(store, set(), at=NOW + timedelta(seconds=1))) == 1


async def test_an_own_slot_of_a_batching_webhook_is_one_batch(store: SqlStore) -> None:
    hook = await store.create_webhook(batching(3, 0))
    await store.ingest([new_order(f"o{i}") for i in range(5)], NOW)
    [batch] = await own_slots(store, set())
    assert len(batch) == 3 and len({c.batch_id for c in batch}) == 1
    assert all(c.webhook.id == hook.id for c in batch)


async def test_own_slots_write_nothing_when_every_webhook_is_in_flight(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full worker is woken by every ingest and finished attempt: while every webhook
    it knows of has an attempt in flight on it, its own-slot claims cost no transaction."""
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order("o1"), new_order("o2")], NOW)
    assert len(await claim_ids(store, limit=1)) == 1
    writes: list[object] = []
    real_write = store.engine.write

    async def counting_write(*args: Any, **kwargs: Any) -> Any:
        writes.append(args)
        return await real_write(*args, **kwargs)

    monkeypatch.setattr(store.engine, "write", counting_write)
    assert await own_slots(store, {hook.id}) == []
    assert writes == []
    assert len(await own_slots(store, set())) == 1  # not in flight: a claim, as ever
    assert len(writes) == 1


async def test_own_slots_see_a_webhook_another_process_created_within_a_second(
    make_store: StoreFactory,
) -> None:
    """A webhook created by another process is seen by an own-slot claim once what the
    worker knew of the webhooks is `OWN_SLOTS_CATALOG_SECONDS` old, even when every
    webhook it knew of has an attempt in flight on it."""
    worker, api = await make_store(), await make_store()
    full = await worker.create_webhook(webhook())
    await worker.ingest([new_order("o1")], NOW)
    assert len(await claim_ids(worker)) == 1  # every webhook it knows of is in flight
    healthy = await api.create_webhook(webhook(accounts=("acc2",)))
    await api.ingest([new_order("o2", account="acc2")], NOW)
    await asyncio.sleep(claim_operations.OWN_SLOTS_CATALOG_SECONDS)
    [[own]] = await own_slots(worker, {full.id})
    assert own.webhook.id == healthy.id


async def test_record_and_claim_fills_own_slots_after_its_outcomes(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook(max_concurrency=1))
    await store.ingest([new_order("o1"), status("o1", 20)], NOW)
    [head] = await store.claim(NOW, 100, "w1")
    outcome = delivered(head.delivery.id, hook.id)
    [following] = await store.record_and_claim([outcome], NOW, 100, "w1", one_each_except=set())
    assert (following.event.order_id, following.event.sequence) == ("o1", 2)


async def test_disabled_and_awaiting_webhooks_are_not_claimed(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order("o1")], NOW)
    disabled = await store.set_webhook_state(hook.id, WebhookState.DISABLED, None, NOW)
    assert disabled.disabled_reason == DisabledReason.MANUAL and disabled.disabled_at == NOW
    assert await claim_ids(store) == []
    [waiting] = await deliveries_of(store, hook.id)
    assert waiting.state == DeliveryState.PENDING
    await store.ingest([new_order("o2")], NOW)  # nothing new for a disabled webhook
    assert len(await deliveries_of(store, hook.id)) == 1
    enabled = await store.set_webhook_state(hook.id, WebhookState.ACTIVE, None, NOW)
    assert enabled.state == WebhookState.ACTIVE and enabled.disabled_reason is None
    assert await claim_ids(store) == [waiting.id]


async def test_expired_lease_is_claimed_again(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook(timeout_seconds=5))
    await store.ingest([new_order("o1")], NOW)
    [first] = await store.claim(NOW, 10, "w1")
    assert await claim_ids(store, NOW + timedelta(seconds=34)) == []
    [again] = await store.claim(NOW + timedelta(seconds=35), 10, "w2")
    assert again.delivery.id == first.delivery.id and again.attempt == 1
    # Both attempts report; the first recorded wins and the delivery is not resurrected.
    await store.record([delivered(first.delivery.id, hook.id)], NOW)
    await store.record([failed(first.delivery.id, hook.id)], NOW)
    view = await store.get_delivery(first.delivery.id, Scope())
    assert view.delivery.state == DeliveryState.DELIVERED
    assert [a.attempt for a in view.attempts] == [1]


async def test_retry_waits_for_its_time_and_blocks_its_order(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order("o1"), status("o1", 20)], NOW)
    [claimed] = await store.claim(NOW, 10, "w1")
    later = NOW + timedelta(seconds=5)
    await store.record([failed(claimed.delivery.id, hook.id, retry_at=later)], NOW)
    view = await store.get_delivery(claimed.delivery.id, Scope())
    assert view.delivery.state == DeliveryState.PENDING
    assert view.delivery.next_attempt_at == later and view.delivery.attempt_count == 1
    assert view.delivery.schedule_position == 1
    assert view.attempts[0].status_code == 500
    assert await store.next_due_at() == later
    assert await claim_ids(store, NOW + timedelta(seconds=4)) == []
    [retry] = await store.claim(later, 10, "w1")
    assert retry.delivery.id == claimed.delivery.id and retry.attempt == 2
    await store.record([failed(retry.delivery.id, hook.id, number=2)], later)
    assert (await store.get_delivery(retry.delivery.id, Scope())).delivery.state == "failed"
    [successor] = await store.claim(later, 10, "w1")
    assert successor.event.sequence == 2


async def test_failing_webhook_is_probed_one_at_a_time(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order(f"o{i}") for i in range(6)], NOW)
    claims = await store.claim(NOW, 3, "w1")
    probe_at = NOW + timedelta(seconds=60)
    await store.record([failed(c.delivery.id, hook.id, retry_at=probe_at) for c in claims], NOW)
    assert await claim_ids(store, NOW + timedelta(seconds=59)) == []
    assert await store.next_due_at() == probe_at
    probe = await claim_ids(store, probe_at)
    assert len(probe) == 1
    assert await claim_ids(store, probe_at) == []
    await store.record([delivered(probe[0], hook.id, number=2)], probe_at)
    assert len(await claim_ids(store, probe_at)) == 5  # one success releases the backlog


async def test_final_failures_probe_the_backlog_without_cool_down(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook(retry_schedule=()))
    await store.ingest([new_order(f"o{i}") for i in range(5)], NOW)
    claims = await store.claim(NOW, 3, "w1")
    await store.record([failed(c.delivery.id, hook.id) for c in claims], NOW)
    probe = await claim_ids(store)  # the next due delivery probes at once
    assert len(probe) == 1
    assert await claim_ids(store) == []  # one at a time
    await store.record([failed(probe[0], hook.id)], NOW)
    assert len(await claim_ids(store)) == 1


async def probed_webhook(store: SqlStore, orders: int) -> tuple[Webhook, list[Any], datetime]:
    """A webhook whose first three deliveries (of `orders`) failed at NOW: it is probed,
    its next probe an hour away. The webhook, those claims, and that hour."""
    hook = await store.create_webhook(webhook(retry_schedule=(3600,)))
    await store.ingest([new_order(f"o{i}") for i in range(orders)], NOW)
    claims = await store.claim(NOW, 3, "w1")
    later = NOW + timedelta(hours=1)
    await store.record([failed(c.delivery.id, hook.id, retry_at=later) for c in claims], NOW)
    assert await claim_ids(store) == []  # probed, at the retry an hour away
    return hook, claims, later


async def test_a_delivery_made_due_by_hand_probes_a_failing_webhook_now(
    store: SqlStore,
) -> None:
    hook, claims, later = await probed_webhook(store, orders=3)
    retried = await store.retry_delivery_now(claims[0].delivery.id, NOW)
    assert await store.next_due_at() == NOW
    assert await claim_ids(store) == [retried.id]
    await store.record([failed(retried.id, hook.id, number=2, retry_at=later)], NOW)
    assert await claim_ids(store) == []
    synthetic = synthetic_event(hook, EventType.NEW, NOW)
    test_id = await store.create_test_delivery(hook, synthetic, NOW)
    assert await claim_ids(store) == [test_id]


async def test_a_new_url_is_probed_now(store: SqlStore) -> None:
    hook, _, _ = await probed_webhook(store, orders=4)
    stored = await store.get_webhook(hook.id, Scope())
    moved = dataclasses.replace(stored, url="https://elsewhere.example.com/hook", updated_at=NOW)
    await store.update_webhook(moved)
    assert len(await claim_ids(store)) == 1  # one probe, of the new endpoint, now


async def test_rate_limit_holds_in_the_database(store: SqlStore) -> None:
    await store.create_webhook(webhook(rate_limit_per_second=2.0))
    await store.ingest([new_order(f"o{i}") for i in range(10)], NOW)
    assert len(await claim_ids(store)) == 2
    assert await claim_ids(store, NOW + timedelta(milliseconds=400)) == []
    assert len(await claim_ids(store, NOW + timedelta(milliseconds=500))) == 1
    assert len(await claim_ids(store, NOW + timedelta(seconds=10))) == 2  # burst capped


async def test_gone_disables_the_webhook(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order("o1"), new_order("o2")], NOW)
    [claimed, _] = await store.claim(NOW, 10, "w1")
    await store.record([failed(claimed.delivery.id, hook.id, disable=DisabledReason.GONE)], NOW)
    gone = await store.get_webhook(hook.id, Scope())
    assert gone.state == WebhookState.DISABLED and gone.disabled_reason == DisabledReason.GONE
    assert (await store.get_delivery(claimed.delivery.id, Scope())).delivery.state == "failed"


async def test_failing_too_long_disables_the_webhook(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook(ordering=Ordering.NONE))
    await store.ingest([new_order("o1"), new_order("o2")], NOW)
    first, second = await store.claim(NOW, 10, "w1")
    await store.record([failed(first.delivery.id, hook.id, retry_at=NOW)], NOW)
    assert (await store.get_webhook(hook.id, Scope())).state == WebhookState.ACTIVE
    later = NOW + timedelta(seconds=DISABLE_AFTER)
    await store.record([failed(second.delivery.id, hook.id, retry_at=later)], later)
    disabled = await store.get_webhook(hook.id, Scope())
    assert disabled.disabled_reason == DisabledReason.FAILING
    # Enabling starts afresh: the old failures do not disable it again at once.
    await store.set_webhook_state(hook.id, WebhookState.ACTIVE, None, later)
    again = (await store.claim(later, 10, "w1"))[0]
    await store.record([failed(again.delivery.id, hook.id, number=2, retry_at=later)], later)
    assert (await store.get_webhook(hook.id, Scope())).state == WebhookState.ACTIVE


async def test_usage_counts_deliveries_once_and_replays_apart(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order("o1")], NOW)
    [claimed] = await store.claim(NOW, 10, "w1")
    await store.record([delivered(claimed.delivery.id, hook.id)], NOW)
    assert await store.replay_events(hook, NOW, None, None, NOW) == 1
    [replayed] = await store.claim(NOW, 10, "w1")
    assert replayed.delivery.replay
    await store.record([delivered(replayed.delivery.id, hook.id)], NOW)
    test_event = dataclasses.replace(claimed.event, id=new_id("evt"), order_id="test_o")
    test_id = await store.create_test_delivery(hook, test_event, NOW)
    [test_claim] = await store.claim(NOW, 10, "w1")
    assert test_claim.delivery.id == test_id and test_claim.event.test
    await store.record([delivered(test_id, hook.id)], NOW)
    rows = await store.usage(["acc1"], ["2026-11"])
    assert [(r.event_type, r.delivered, r.replayed) for r in rows] == [(EventType.NEW, 1, 1)]
    assert await store.usage(None, ["2026-10"]) == []
    delivery = (await store.get_delivery(claimed.delivery.id, Scope())).delivery
    assert delivery.delivered_at == NOW + timedelta(milliseconds=25)
    assert delivery.attempt_count == 1


# ---------------------------------------------------------------- batches


def batching(max_events: int, max_wait_ms: int, **overrides: Any) -> Any:
    """A webhook that takes up to `max_events` events per request."""
    return webhook(batch=BatchSettings(max_events, max_wait_ms), **overrides)


def in_batch(outcome: Outcome, batch_id: str | None) -> Outcome:
    """The outcome as the dispatcher reports it for a delivery sent in a batch."""
    return dataclasses.replace(outcome, batch_id=batch_id)


async def start_batching(store: SqlStore, webhook_id: str, batch: BatchSettings) -> None:
    """PATCH the webhook to batch its deliveries."""
    stored = await store.get_webhook(webhook_id, Scope())
    await store.update_webhook(dataclasses.replace(stored, batch=batch))


async def batches_of(store: SqlStore, at: datetime, limit: int = 100) -> list[list[Any]]:
    """What a claim at `at` leases, request by request."""
    return requests_of(await store.claim(at, limit, "w1"))


FULL_BATCH_WAIT_MS = 60_000  # `maxWaitMs` of the full-batch tests: longer than they run


async def assert_full_batch_goes_now(
    store: SqlStore, webhook_id: str, at: datetime, order_ids: list[str]
) -> list[Any]:
    """The webhook starts batching by `len(order_ids)` events (`FULL_BATCH_WAIT_MS`), and
    that many fresh orders come in at `at`: a claim then leases them at once, as one batch
    (its claims), whatever else is due."""
    await start_batching(store, webhook_id, BatchSettings(len(order_ids), FULL_BATCH_WAIT_MS))
    await store.ingest([new_order(order_id) for order_id in order_ids], at)
    [batch] = await batches_of(store, at)
    assert [c.event.order_id for c in batch] == order_ids
    return batch


async def failed_batch(
    store: SqlStore, max_events: int, retry_at: datetime
) -> tuple[Webhook, list[Any]]:
    """A batching webhook whose first request, three new orders, failed at NOW and is due
    again at `retry_at`: the webhook and the claims of that request."""
    hook = await store.create_webhook(batching(max_events, 0))
    await store.ingest([new_order(f"o{i}") for i in range(3)], NOW)
    [batch] = await batches_of(store, NOW)
    await store.record(
        [in_batch(failed(c.delivery.id, hook.id, retry_at=retry_at), c.batch_id) for c in batch],
        NOW,
    )
    return hook, batch


async def test_a_batch_goes_once_max_events_are_due(store: SqlStore) -> None:
    hook = await store.create_webhook(batching(3, 60_000))
    await store.ingest([new_order(f"o{i}") for i in range(5)], NOW)
    [batch] = await batches_of(store, NOW)
    assert len(batch) == 3 and {c.webhook.id for c in batch} == {hook.id}
    [batch_id] = {c.batch_id for c in batch}
    assert batch_id is not None and batch_id.startswith("bat_")
    assert all(c.delivery.batch_id == batch_id for c in batch)
    await store.record([in_batch(delivered(c.delivery.id, hook.id), batch_id) for c in batch], NOW)
    # The two left wait for company until the oldest has waited maxWaitMs.
    assert await batches_of(store, NOW + timedelta(seconds=59)) == []
    assert await store.next_due_at() == NOW + timedelta(seconds=60)
    [rest] = await batches_of(store, NOW + timedelta(seconds=60))
    assert len(rest) == 2 and rest[0].batch_id not in (None, batch_id)


async def test_a_batch_goes_once_its_oldest_event_waited_max_wait(store: SqlStore) -> None:
    await store.create_webhook(batching(10, 2_000))
    await store.ingest([new_order("o1")], NOW)
    await store.ingest([new_order("o2")], NOW + timedelta(seconds=1))
    assert await batches_of(store, NOW + timedelta(milliseconds=1_999)) == []
    assert await store.next_due_at() == NOW + timedelta(seconds=2)
    [batch] = await batches_of(store, NOW + timedelta(seconds=2))
    assert sorted(c.event.order_id for c in batch) == ["o1", "o2"]


async def test_per_order_order_holds_across_batches(store: SqlStore) -> None:
    hook = await store.create_webhook(batching(10, 0))
    await store.ingest([new_order("o1"), status("o1", 20), status("o1", 50)], NOW)
    await store.ingest([new_order("o2")], NOW)
    [first] = await batches_of(store, NOW)
    assert [(c.event.order_id, c.event.sequence) for c in first] == [("o1", 1), ("o2", 1)]
    # o1's next event waits while its predecessor is in a batch not delivered or failed.
    assert await batches_of(store, NOW) == []
    await store.record(
        [in_batch(delivered(c.delivery.id, hook.id), c.batch_id) for c in first], NOW
    )
    [second] = await batches_of(store, NOW)
    assert [(c.event.order_id, c.event.sequence) for c in second] == [("o1", 2)]
    await store.record(
        [in_batch(failed(c.delivery.id, hook.id), c.batch_id) for c in second], NOW
    )  # failed for good: the next one may go
    [third] = await batches_of(store, NOW)
    assert [(c.event.order_id, c.event.sequence) for c in third] == [("o1", 3)]


async def test_without_per_order_an_order_rides_in_sequence_order(store: SqlStore) -> None:
    await store.create_webhook(batching(10, 0, ordering=Ordering.NONE))
    await store.ingest([new_order("o2"), status("o2", 20)], NOW)
    await store.ingest([new_order("o1"), status("o1", 20), status("o1", 50)], NOW)
    [batch] = await batches_of(store, NOW)
    by_order: dict[str, list[int]] = {}
    for claim in batch:
        by_order.setdefault(claim.event.order_id, []).append(claim.event.sequence)
    assert by_order == {"o1": [1, 2, 3], "o2": [1, 2]}


async def test_a_failed_batch_is_retried_whole_with_its_id(store: SqlStore) -> None:
    later = NOW + timedelta(seconds=5)
    hook, batch = await failed_batch(store, 5, later)
    await store.ingest([new_order("o9")], NOW)  # a newcomer forms a batch of its own
    [newcomer] = await batches_of(store, NOW)
    assert [c.event.order_id for c in newcomer] == ["o9"]
    assert newcomer[0].batch_id != batch[0].batch_id
    assert await batches_of(store, later - timedelta(milliseconds=1)) == []
    [retried] = await batches_of(store, later)
    assert [c.delivery.id for c in retried] == [c.delivery.id for c in batch]
    assert {c.batch_id for c in retried} == {batch[0].batch_id}
    assert all(c.attempt == 2 for c in retried)
    # One outcome for all: 2xx delivers every event; each keeps its own attempts.
    await store.record(
        [in_batch(delivered(c.delivery.id, hook.id, number=2), c.batch_id) for c in retried],
        later,
    )
    for claim in retried:
        view = await store.get_delivery(claim.delivery.id, Scope())
        assert view.delivery.state == DeliveryState.DELIVERED
        assert view.delivery.batch_id == batch[0].batch_id
        assert [a.attempt for a in view.attempts] == [1, 2]
    rows = await store.usage(["acc1"], ["2026-11"])
    assert [(r.event_type, r.delivered) for r in rows] == [(EventType.NEW, 3)]


async def test_a_batch_holds_deliveries_at_one_point_of_their_schedule(store: SqlStore) -> None:
    """A delivery that failed alone twice before its webhook started batching is down to
    its last attempt: it never shares a batch (one decision for all) with a fresh one."""
    hook = await store.create_webhook(webhook(retry_schedule=(60, 60)))
    await store.ingest([new_order("o1")], NOW)
    due = NOW
    for number in (1, 2):
        [claim] = await store.claim(due, 10, "w1")
        retry_at = due + timedelta(seconds=60)
        outcome = failed(claim.delivery.id, hook.id, number, retry_at=retry_at, position=number)
        await store.record([outcome], due)
        due = retry_at
    await start_batching(store, hook.id, BatchSettings(10, 0))
    await store.ingest([new_order("o2"), new_order("o3")], due)
    batches = await batches_of(store, due)
    assert sorted(
        [(c.event.order_id, c.delivery.schedule_position) for c in batch] for batch in batches
    ) == [[("o1", 2)], [("o2", 0), ("o3", 0)]]


async def test_a_full_batch_goes_at_once_beside_deliveries_at_another_point(
    store: SqlStore,
) -> None:
    """`maxEvents` fresh deliveries are due: their batch goes now, even though one that
    failed before (due earlier, at another point of its schedule) takes part of what the
    claim reads; that one waits for company of its own point, `maxWaitMs` at most."""
    hook = await store.create_webhook(webhook(max_concurrency=1))
    await store.ingest([new_order("o1")], NOW)
    [claim] = await store.claim(NOW, 10, "w1")
    await store.record([failed(claim.delivery.id, hook.id, retry_at=NOW, position=1)], NOW)
    later = NOW + timedelta(seconds=1)
    batch = await assert_full_batch_goes_now(store, hook.id, later, ["o2", "o3"])
    await store.record(
        [in_batch(delivered(c.delivery.id, hook.id), c.batch_id) for c in batch], later
    )
    waited = NOW + timedelta(milliseconds=FULL_BATCH_WAIT_MS)
    assert await batches_of(store, waited - timedelta(seconds=1)) == []
    [alone] = await batches_of(store, waited)
    assert [c.event.order_id for c in alone] == ["o1"]


async def test_a_full_batch_goes_at_once_beside_deliveries_at_two_other_points(
    store: SqlStore,
) -> None:
    """`maxEvents` fresh deliveries are due behind two that failed before, each at a point
    of its schedule of its own: those two fill what the claim reads first, and the fresh
    ones, at a point it did not see, must still go now as a full batch."""
    hook = await store.create_webhook(webhook(max_concurrency=1))
    await store.ingest([new_order("o1")], NOW)
    first, second = NOW + timedelta(seconds=1), NOW + timedelta(seconds=2)
    [claim] = await store.claim(NOW, 10, "w1")
    await store.record([failed(claim.delivery.id, hook.id, retry_at=first, position=1)], NOW)
    [claim] = await store.claim(first, 10, "w1")
    await store.record([failed(claim.delivery.id, hook.id, 2, retry_at=second, position=2)], first)
    # A success between the failures: the webhook is not probed (three in a row).
    await store.ingest([new_order("o0")], first)
    [claim] = await store.claim(first, 10, "w1")
    await store.record([delivered(claim.delivery.id, hook.id)], first)
    await store.ingest([new_order("o2")], first)
    [claim] = await store.claim(first, 10, "w1")
    assert claim.event.order_id == "o2"
    await store.record([failed(claim.delivery.id, hook.id, retry_at=second, position=1)], first)
    await assert_full_batch_goes_now(store, hook.id, NOW + timedelta(seconds=3), ["o3", "o4"])


async def test_an_expired_lease_sends_the_same_batch_again(store: SqlStore) -> None:
    await store.create_webhook(batching(2, 0, timeout_seconds=5))
    await store.ingest([new_order("o1"), new_order("o2")], NOW)
    [batch] = await batches_of(store, NOW)
    [again] = await batches_of(store, NOW + timedelta(seconds=35))
    assert [(c.delivery.id, c.batch_id) for c in again] == [
        (c.delivery.id, c.batch_id) for c in batch
    ]


async def test_a_failed_batch_is_one_failed_attempt_for_health(store: SqlStore) -> None:
    await failed_batch(store, 3, NOW + timedelta(minutes=5))
    # Three failed outcomes of one request: one failure, so the webhook is not probed.
    await store.ingest([new_order("o9")], NOW)
    [fresh] = await batches_of(store, NOW)
    assert [c.event.order_id for c in fresh] == ["o9"]


async def test_max_concurrency_counts_batches(store: SqlStore) -> None:
    hook = await store.create_webhook(batching(2, 0, max_concurrency=2))
    await store.ingest([new_order(f"o{i}") for i in range(7)], NOW)
    first = await batches_of(store, NOW, limit=1)
    assert [len(b) for b in first] == [2]  # the claim's limit counts requests too
    second = await batches_of(store, NOW)
    assert [len(b) for b in second] == [2]
    assert await batches_of(store, NOW) == []
    assert await store.next_due_at() is None  # no free slot: not due
    await store.record(
        [in_batch(delivered(c.delivery.id, hook.id), c.batch_id) for c in second[0]], NOW
    )
    assert [len(b) for b in await batches_of(store, NOW)] == [2]


async def test_retry_now_in_a_batch(store: SqlStore) -> None:
    hook = await store.create_webhook(batching(2, 0))
    await store.ingest([new_order("o1"), new_order("o2")], NOW)
    [batch] = await batches_of(store, NOW)
    later = NOW + timedelta(hours=1)
    await store.record(
        [in_batch(failed(c.delivery.id, hook.id, retry_at=later), c.batch_id) for c in batch],
        NOW,
    )
    # Retry now of a pending member brings its whole batch forward, same id.
    await store.retry_delivery_now(batch[0].delivery.id, NOW)
    [retried] = await batches_of(store, NOW)
    assert [(c.delivery.id, c.batch_id) for c in retried] == [
        (c.delivery.id, c.batch_id) for c in batch
    ]
    await store.record(
        [in_batch(failed(c.delivery.id, hook.id, 2), c.batch_id) for c in retried], NOW
    )
    # Retry now of a failed member takes it out of its batch: it rides in a new one.
    view = await store.retry_delivery_now(batch[1].delivery.id, NOW)
    assert view.state == DeliveryState.PENDING and view.batch_id is None
    [alone] = await batches_of(store, NOW)
    assert [c.delivery.id for c in alone] == [batch[1].delivery.id]
    assert alone[0].batch_id not in (None, batch[0].batch_id) and alone[0].attempt == 3
    # Recover puts failed ones in new batches too.
    assert await store.recover_failed(hook.id, NOW - timedelta(hours=1), None, NOW) == 1
    [recovered] = await batches_of(store, NOW)
    assert [c.delivery.id for c in recovered] == [batch[0].delivery.id]
    assert recovered[0].batch_id not in (None, batch[0].batch_id)


def taking(outcome: Outcome, duration_ms: int) -> Outcome:
    """The outcome of an attempt that took `duration_ms`."""
    return dataclasses.replace(
        outcome, attempt=dataclasses.replace(outcome.attempt, duration_ms=duration_ms)
    )


async def test_latency_counts_a_batch_request_once(store: SqlStore) -> None:
    # The receiver answered two requests: three events in 300 ms, then one in 10 ms. Each
    # event's delivery records the attempt, but latency is the request's: two samples.
    hook = await store.create_webhook(batching(3, 0))
    await store.ingest([new_order(f"o{i}") for i in range(4)], NOW)
    big, small = sorted(await batches_of(store, NOW), key=len, reverse=True)
    assert (len(big), len(small)) == (3, 1)
    await store.record(
        [in_batch(taking(delivered(c.delivery.id, hook.id), 300), c.batch_id) for c in big]
        + [in_batch(taking(delivered(c.delivery.id, hook.id), 10), c.batch_id) for c in small],
        NOW,
    )
    stats = await store.webhook_stats(hook.id, NOW)
    assert stats.counts[DeliveryState.DELIVERED] == 4 and stats.success_rate == 1.0
    assert (stats.latency_ms_p50, stats.latency_ms_p99) == (10.0, 300.0)
    [bucket] = await store.outcome_series(Scope(), hook.id, NOW, NOW + timedelta(hours=1), 60)
    assert (bucket.succeeded, bucket.failed) == (4, 0)  # outcomes: each event's attempt
    assert (bucket.latency_ms_p50, bucket.latency_ms_p99) == (10.0, 300.0)
    # A partner sees the requests that carried its events, each once.
    [mine] = await store.outcome_series(
        Scope(frozenset({"acc1"})), None, NOW, NOW + timedelta(hours=1), 60
    )
    assert (mine.succeeded, mine.latency_ms_p50, mine.latency_ms_p99) == (4, 10.0, 300.0)


async def test_batch_settings_are_stored_and_patched(store: SqlStore) -> None:
    hook = await store.create_webhook(batching(50, 1_000))
    assert (await store.get_webhook(hook.id, Scope())).batch == BatchSettings(50, 1_000)
    updated = await store.update_webhook(dataclasses.replace(hook, batch=None))
    assert updated.batch is None
    assert (await store.get_webhook(hook.id, Scope())).batch is None


# ---------------------------------------------------------------- webhooks and agreements


async def test_agreements_gate_webhooks(make_store: StoreFactory) -> None:
    store = await make_store(require_agreement=True)
    single = await store.create_webhook(webhook())
    both = await store.create_webhook(webhook(accounts=("acc1", "acc2")))
    everyone = await store.create_webhook(webhook(accounts=("*",)))
    assert single.state == both.state == WebhookState.AWAITING_AGREEMENT
    assert everyone.state == WebhookState.ACTIVE
    await store.ingest([new_order("o1")], NOW)
    assert await deliveries_of(store, single.id) == []
    assert len(await deliveries_of(store, everyone.id)) == 1
    await store.put_agreement(agreement("acc1"), NOW)
    assert (await store.get_webhook(single.id, Scope())).state == WebhookState.ACTIVE
    assert (await store.get_webhook(both.id, Scope())).state == WebhookState.AWAITING_AGREEMENT
    await store.put_agreement(agreement("acc2"), NOW)
    assert (await store.get_webhook(both.id, Scope())).state == WebhookState.ACTIVE
    stored = await store.get_agreement("acc1")
    assert stored is not None and stored.per_thousand[EventType.NEW] == 100
    assert await store.get_agreement("acc3") is None
    late = await store.create_webhook(webhook(accounts=("acc3",)))
    await store.set_webhook_state(late.id, WebhookState.DISABLED, None, NOW)
    enabled = await store.set_webhook_state(late.id, WebhookState.ACTIVE, None, NOW)
    assert enabled.state == WebhookState.AWAITING_AGREEMENT


async def test_the_agreement_requirement_is_applied_to_stored_webhooks(
    make_store: StoreFactory,
) -> None:
    required = await make_store(require_agreement=True)
    await required.put_agreement(agreement("acc1"), NOW)
    agreed = await required.create_webhook(webhook())
    waiting = await required.create_webhook(webhook(accounts=("acc2",)))
    off = await required.create_webhook(webhook(accounts=("acc2",)))
    await required.set_webhook_state(off.id, WebhookState.DISABLED, None, NOW)
    free = await make_store(require_agreement=False)  # the same database, restarted so

    async def states(store: SqlStore) -> list[WebhookState]:
        return [(await store.get_webhook(w.id, Scope())).state for w in (agreed, waiting, off)]

    assert await free.apply_agreement_requirement(NOW) == 1
    assert await states(free) == [WebhookState.ACTIVE, WebhookState.ACTIVE, WebhookState.DISABLED]
    await free.ingest([new_order("o1", account="acc2")], NOW)
    assert len(await deliveries_of(free, waiting.id)) == 1
    assert await required.apply_agreement_requirement(NOW) == 1
    assert await required.apply_agreement_requirement(NOW) == 0
    assert await states(required) == [
        WebhookState.ACTIVE,
        WebhookState.AWAITING_AGREEMENT,
        WebhookState.DISABLED,
    ]


async def test_update_recomputes_state_and_ordering(make_store: StoreFactory) -> None:
    store = await make_store(require_agreement=True)
    await store.put_agreement(agreement("acc1"), NOW)
    hook = await store.create_webhook(webhook(ordering=Ordering.NONE))
    await store.ingest([new_order("o1"), status("o1", 20)], NOW)
    changed = await store.update_webhook(
        dataclasses.replace(hook, ordering=Ordering.PER_ORDER, description="now in order")
    )
    assert changed.description == "now in order" and changed.state == WebhookState.ACTIVE
    assert len(await claim_ids(store)) == 1  # heads recomputed
    moved = await store.update_webhook(dataclasses.replace(changed, accounts=("acc9",)))
    assert moved.state == WebhookState.AWAITING_AGREEMENT
    assert await store.count_webhooks("acc9") == 1 and await store.count_webhooks("acc1") == 0


async def test_ordering_none_releases_an_event_in_flight_that_lost_its_place(
    store: SqlStore,
) -> None:
    # The order's second event is in flight when its failed first one is retried: the
    # first is the head again. The webhook then drops per-order order; the second's
    # attempt fails and it must still be sent again (docs/api.md, PATCH `ordering`).
    hook = await store.create_webhook(webhook(retry_schedule=()))
    await store.ingest([new_order("o1"), status("o1", 20)], NOW)
    [first] = await store.claim(NOW, 10, "w1")
    await store.record([failed(first.delivery.id, hook.id)], NOW)
    [second] = await store.claim(NOW, 10, "w1")
    await store.retry_delivery_now(first.delivery.id, NOW)
    stored = await store.get_webhook(hook.id, Scope())
    await store.update_webhook(dataclasses.replace(stored, ordering=Ordering.NONE))
    later = NOW + timedelta(seconds=1)
    await store.record([failed(second.delivery.id, hook.id, retry_at=later)], NOW)
    claimed = {c.delivery.id for c in await store.claim(later, 10, "w1")}
    assert claimed == {first.delivery.id, second.delivery.id}


async def test_delete_cancels_unfinished_deliveries(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order("o1"), status("o1", 20), new_order("o2")], NOW)
    claims = await store.claim(NOW, 1, "w1")
    await store.delete_webhook(hook.id, NOW)
    with pytest.raises(Exception, match="not found"):
        await store.get_webhook(hook.id, Scope())
    states = {d.state for d in await deliveries_of(store, hook.id)}
    assert states == {DeliveryState.CANCELLED}
    # The attempt that was in flight is recorded; the delivery stays cancelled.
    await store.record([delivered(claims[0].delivery.id, hook.id)], NOW)
    view = await store.get_delivery(claims[0].delivery.id, Scope())
    assert view.delivery.state == DeliveryState.CANCELLED and len(view.attempts) == 1
    assert await store.usage(None, ["2026-11"]) == []
    assert await store.count_webhooks("acc1") == 0
    with pytest.raises(Exception, match="not found"):
        await store.delete_webhook(hook.id, NOW)


# ---------------------------------------------------------------- manual control


async def test_retry_now(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order("o1"), new_order("o2")], NOW)
    one, two = await store.claim(NOW, 10, "w1")
    await store.record([failed(one.delivery.id, hook.id, position=9)], NOW)
    later = NOW + timedelta(hours=1)
    await store.record([failed(two.delivery.id, hook.id, retry_at=later)], NOW)
    retried = await store.retry_delivery_now(one.delivery.id, NOW)
    assert retried.state == DeliveryState.PENDING and retried.schedule_position == 0
    assert retried.next_attempt_at == NOW
    due = await store.retry_delivery_now(two.delivery.id, NOW)
    assert due.next_attempt_at == NOW
    claims = {c.delivery.id: c for c in await store.claim(NOW, 10, "w1")}
    assert set(claims) == {one.delivery.id, two.delivery.id}
    assert claims[one.delivery.id].attempt == 2
    await store.record([delivered(one.delivery.id, hook.id, number=2)], NOW)
    with pytest.raises(Exception, match="delivered"):
        await store.retry_delivery_now(one.delivery.id, NOW)
    with pytest.raises(Exception, match="not found"):
        await store.retry_delivery_now("dlv_missing", NOW)


async def test_recover_failed_in_range(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook(ordering=Ordering.NONE))
    await store.ingest([new_order("o1")], NOW)
    await store.ingest([new_order("o2")], NOW + timedelta(hours=2))
    claims = await store.claim(NOW + timedelta(hours=2), 10, "w1")
    await store.record([failed(c.delivery.id, hook.id) for c in claims], NOW)
    count = await store.recover_failed(hook.id, NOW, NOW + timedelta(hours=1), NOW)
    assert count == 1
    [recovered] = await store.claim(NOW, 10, "w1")
    assert recovered.event.order_id == "o1" and recovered.attempt == 2
    assert recovered.delivery.schedule_position == 0
    assert await store.recover_failed(hook.id, NOW, None, NOW) == 1
    with pytest.raises(Exception, match="not found"):
        await store.recover_failed("wh_missing", NOW, None, NOW)


async def test_replay_matches_routing_range_and_types(store: SqlStore) -> None:
    await store.create_webhook(webhook())
    hook = await store.create_webhook(webhook(status_filter=(20,)))
    await store.ingest([new_order("o1"), status("o1", 20), status("o1", 50)], NOW)
    await store.ingest([new_order("o2", account="acc2")], NOW)
    await store.ingest([new_order("o3")], NOW + timedelta(days=1))
    before = len(await deliveries_of(store, hook.id))
    queued = await store.replay_events(hook, NOW, NOW + timedelta(hours=1), None, NOW)
    assert queued == 2  # order.new and the status 20 update of o1
    only_new = await store.replay_events(hook, NOW, None, [EventType.NEW], NOW)
    assert only_new == 2  # o1 and o3
    replays = [d for d in await deliveries_of(store, hook.id) if d.replay]
    assert len(replays) == 4 and len(await deliveries_of(store, hook.id)) == before + 4


async def test_replay_sends_each_webhook_only_the_order_new_meant_for_it(
    store: SqlStore,
) -> None:
    plain = await store.create_webhook(webhook(event_types=(EventType.NEW,)))
    triggered = await store.create_webhook(
        webhook(event_types=(EventType.NEW,), new_order_trigger=20)
    )
    # Arrival at 10 (for `plain`), then a triggered order.new at 20 (for `triggered`).
    await store.ingest([new_order("o1"), status("o1", 20), status("o1", 50)], NOW)
    assert await store.replay_events(plain, NOW, None, None, NOW) == 1
    assert await store.replay_events(triggered, NOW, None, None, NOW) == 1
    sequences = {}
    for hook in (plain, triggered):
        replays = [d for d in await deliveries_of(store, hook.id) if d.replay]
        sequences[hook.id] = [d.sequence for d in replays]
    assert sequences == {plain.id: [1], triggered.id: [2]}


async def test_replay_after_the_order_new_meant_for_a_webhook_sends_no_other(
    store: SqlStore,
) -> None:
    # The order.new a trigger chose lies before the range: a later one, made for another
    # webhook's higher trigger, is not the one meant for it (its receiver would see the
    # order as new twice, under two event ids it cannot deduplicate).
    triggered = await store.create_webhook(
        webhook(event_types=(EventType.NEW,), new_order_trigger=20)
    )
    await store.ingest([new_order("o1"), status("o1", 20)], NOW)  # its order.new: seq 2
    higher = await store.create_webhook(webhook(event_types=(EventType.NEW,), new_order_trigger=50))
    await store.ingest([status("o1", 50)], NOW + timedelta(hours=1))  # higher's: seq 4
    later = NOW + timedelta(minutes=30)
    assert await store.replay_events(triggered, later, None, None, NOW) == 0
    assert await store.replay_events(higher, later, None, None, NOW) == 1
    assert await store.replay_events(triggered, NOW, None, None, NOW) == 1
    replays = [d.sequence for d in await deliveries_of(store, triggered.id) if d.replay]
    assert replays == [2]


async def test_a_replay_of_a_pending_event_waits_behind_it(store: SqlStore) -> None:
    # The replay has the sequence of the delivery still pending: one queue, one head.
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order("o1"), status("o1", 20)], NOW)
    assert await store.replay_events(hook, NOW, None, None, NOW) == 2
    [first] = await store.claim(NOW, 10, "w1")
    assert (first.event.sequence, first.delivery.replay) == (1, False)
    assert await claim_ids(store) == []  # not the replay of sequence 1 beside it
    await store.record([delivered(first.delivery.id, hook.id)], NOW)
    [second] = await store.claim(NOW, 10, "w1")
    assert (second.event.sequence, second.delivery.replay) == (1, True)
    await store.record([delivered(second.delivery.id, hook.id)], NOW)
    [third] = await store.claim(NOW, 10, "w1")
    assert (third.event.sequence, third.delivery.replay) == (2, False)


async def test_a_replay_of_an_event_in_flight_waits_for_its_outcome(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order("o1")], NOW)
    [first] = await store.claim(NOW, 10, "w1")
    assert await store.replay_events(hook, NOW, None, None, NOW) == 1
    assert await claim_ids(store) == []
    await store.record([failed(first.delivery.id, hook.id)], NOW)
    [replayed] = await store.claim(NOW, 10, "w1")
    assert (replayed.event.id, replayed.delivery.replay) == (first.event.id, True)


async def test_a_failed_delivery_retried_while_its_replay_is_in_flight_waits_for_it(
    store: SqlStore,
) -> None:
    # The first delivery was created earlier, but the replay is the one on the wire: the
    # same event is never sent twice at once, whichever of the two came back first.
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order("o1")], NOW)
    [first] = await store.claim(NOW, 10, "w1")
    await store.record([failed(first.delivery.id, hook.id)], NOW)
    assert await store.replay_events(hook, NOW, None, None, NOW) == 1
    [replayed] = await store.claim(NOW, 10, "w1")
    assert replayed.delivery.replay is True
    await store.retry_delivery_now(first.delivery.id, NOW)
    assert await claim_ids(store) == []
    await store.record([delivered(replayed.delivery.id, hook.id)], NOW)
    assert await claim_ids(store) == [first.delivery.id]


async def per_order_with_an_event_twice_in_flight(store: SqlStore) -> tuple[Any, Any, Any]:
    """A webhook under `ordering: none` sends an event and its replay at once (the first
    at NOW, the replay 10 s later), then turns to `per_order` with both in flight."""
    hook = await store.create_webhook(webhook(ordering=Ordering.NONE))
    await store.ingest([new_order("o1")], NOW)
    [first] = await store.claim(NOW, 10, "w1")
    assert await store.replay_events(hook, NOW, None, None, NOW) == 1
    [replayed] = await store.claim(NOW + timedelta(seconds=10), 10, "w1")
    assert replayed.event.id == first.event.id
    stored = await store.get_webhook(hook.id, Scope())
    await store.update_webhook(dataclasses.replace(stored, ordering=Ordering.PER_ORDER))
    return hook, first, replayed


async def test_an_event_back_from_a_failed_attempt_waits_for_its_replay_in_flight(
    store: SqlStore,
) -> None:
    # Found by test_store_order_model.py. Once the webhook keeps per-order order, one
    # event is never sent twice at once: the one whose attempt failed waits for the
    # other's outcome, though it was created first.
    hook, first, replayed = await per_order_with_an_event_twice_in_flight(store)
    later = NOW + timedelta(seconds=11)
    await store.record([failed(first.delivery.id, hook.id, retry_at=later)], later)
    assert await claim_ids(store, later) == []
    await store.record([delivered(replayed.delivery.id, hook.id)], later)
    assert await claim_ids(store, later) == [first.delivery.id]


async def test_an_event_whose_lease_ran_out_waits_for_its_replay_in_flight(
    store: SqlStore,
) -> None:
    # The same when the first attempt's process died: its lease ends before the replay's.
    hook, first, replayed = await per_order_with_an_event_twice_in_flight(store)
    expired = first.lease_expires_at + timedelta(seconds=1)
    assert expired < replayed.lease_expires_at
    assert await claim_ids(store, expired) == []
    await store.record([delivered(replayed.delivery.id, hook.id)], expired)
    assert await claim_ids(store, expired) == [first.delivery.id]


async def test_a_replay_of_a_pending_event_never_rides_in_its_batch(store: SqlStore) -> None:
    # Both are due, and a batch has room for both: only the head of the queue joins it.
    hook = await store.create_webhook(batching(10, 0))
    await store.ingest([new_order("o1")], NOW)
    assert await store.replay_events(hook, NOW, None, None, NOW) == 1
    [[first]] = await batches_of(store, NOW)
    assert first.delivery.replay is False
    await store.record([in_batch(delivered(first.delivery.id, hook.id), first.batch_id)], NOW)
    [[second]] = await batches_of(store, NOW)
    assert (second.event.id, second.delivery.replay) == (first.event.id, True)


async def test_test_deliveries_are_not_listed_or_billed(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order("o1")], NOW)
    event = (await store.get_order("o1", Scope())).events[0]
    synthetic = dataclasses.replace(event, id=new_id("evt"), order_id="test_1")
    delivery_id = await store.create_test_delivery(hook, synthetic, NOW)
    view = await store.get_delivery(delivery_id, Scope())
    assert view.delivery.test and view.event.test
    assert (await store.get_event(synthetic.id, Scope())).test
    listed = await store.list_events(EventFilter(), 50, None)
    assert [e.id for e in listed.items] == [event.id]


# ---------------------------------------------------------------- reads


async def test_pages_filters_and_scopes(store: SqlStore) -> None:
    mine = await store.create_webhook(webhook())
    await store.create_webhook(webhook(accounts=("acc1", "acc2")))
    await store.ingest([new_order(f"o{i}") for i in range(5)], NOW)
    await store.ingest([new_order("x1", account="acc2")], NOW)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await store.list_events(EventFilter(), 2, cursor)
        seen.extend(e.id for e in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 6 and seen == sorted(seen)
    partner = Scope(frozenset({"acc1"}))
    scoped = await store.list_events(EventFilter(scope=partner), 50, None)
    assert {e.account for e in scoped.items} == {"acc1"} and len(scoped.items) == 5
    by_order = await store.list_events(EventFilter(order_id="o3"), 50, None)
    assert [e.order_id for e in by_order.items] == ["o3"]
    with pytest.raises(Exception, match="not found"):
        await store.get_order("x1", partner)
    hooks = await store.list_webhooks(WebhookFilter(scope=partner), 50, None)
    assert [w.id for w in hooks.items] == [mine.id]  # a partner sees only what is all theirs
    deliveries = await store.list_deliveries(DeliveryFilter(webhook_id=mine.id), 3, None)
    assert len(deliveries.items) == 3 and deliveries.next_cursor is not None
    ids = [d.id for d in deliveries.items]
    assert ids == sorted(ids, reverse=True)
    rest = await store.list_deliveries(
        DeliveryFilter(webhook_id=mine.id), 3, deliveries.next_cursor
    )
    assert len(rest.items) == 2 and rest.next_cursor is None
    pending = await store.list_deliveries(DeliveryFilter(state=DeliveryState.PENDING), 50, None)
    assert len(pending.items) == 5 + 6
    acc2 = await store.list_deliveries(DeliveryFilter(scope=Scope(frozenset({"acc2"}))), 50, None)
    assert {d.order_id for d in acc2.items} == {"x1"}


async def test_live_webhook_ids_leave_out_the_deleted(store: SqlStore) -> None:
    kept, deleted = [await store.create_webhook(webhook()) for _ in range(2)]
    assert await store.live_webhook_ids() == {kept.id, deleted.id}
    await store.delete_webhook(deleted.id, NOW)
    assert await store.live_webhook_ids() == {kept.id}


async def test_stats_gauges_and_wake_up(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook(ordering=Ordering.NONE))
    waiter = asyncio.create_task(store.wait_for_work(60))
    await store.ingest([new_order(f"o{i}") for i in range(4)], NOW)
    await asyncio.wait_for(waiter, 10)  # woken by the ingest, long before 60 s
    [gauge] = await store.queue_gauges()
    assert (gauge.webhook_id, gauge.pending, gauge.oldest_pending_at) == (hook.id, 4, NOW)
    claims = await store.claim(NOW, 3, "w1")
    outcomes = [
        dataclasses.replace(delivered(claims[0].delivery.id, hook.id)),
        Outcome(
            claims[1].delivery.id,
            hook.id,
            attempt(claims[1].delivery.id, duration_ms=100),
            DeliveryState.DELIVERED,
            None,
            0,
        ),
        failed(claims[2].delivery.id, hook.id),
    ]
    await store.record(outcomes, NOW)
    stats = await store.webhook_stats(hook.id, NOW)
    assert stats.counts[DeliveryState.DELIVERED] == 2 and stats.counts[DeliveryState.FAILED] == 1
    assert stats.counts[DeliveryState.PENDING] == 1
    assert stats.success_rate == pytest.approx(2 / 3)
    assert (stats.latency_ms_p50, stats.latency_ms_p99) == (25.0, 100.0)
    assert stats.last_success_at == NOW and stats.last_failure_at == NOW
    await store.wait_for_work(0)  # clears the wake-up left by the record
    [last] = await store.claim(NOW, 3, "w1")
    late = NOW + timedelta(seconds=90)
    await store.record([failed(last.delivery.id, hook.id, started_at=late)], late)
    series = await store.outcome_series(Scope(), hook.id, NOW, NOW + timedelta(hours=1), 60)
    assert [(b.start, b.succeeded, b.failed) for b in series] == [
        (NOW, 2, 1),
        (NOW + timedelta(seconds=60), 0, 1),
    ]
    assert (series[0].latency_ms_p50, series[0].latency_ms_p95) == (25.0, 100.0)
    everyone = await store.outcome_series(Scope(), None, NOW, NOW + timedelta(seconds=60), 60)
    assert [(b.succeeded, b.failed) for b in everyone] == [(2, 1)]
    elsewhere = Scope(frozenset({"acc2"}))
    assert await store.outcome_series(elsewhere, None, NOW, late, 60) == []


# ---------------------------------------------------------------- keys, audit, retention


async def test_keys(store: SqlStore) -> None:
    keys = [
        ApiKey(new_id("key"), Role.PARTNER, ("acc1",), f"k{i}", f"hash{i}", NOW) for i in range(3)
    ]
    for key in keys:
        await store.create_key(key)
    assert await store.count_keys() == 3
    found = await store.key_by_hash("hash1")
    assert found == keys[1]
    page = await store.list_keys(2, None)
    rest = await store.list_keys(2, page.next_cursor)
    assert [k.id for k in [*page.items, *rest.items]] == [k.id for k in keys]
    await store.revoke_key(keys[0].id, NOW)
    revoked = await store.key_by_hash("hash0")
    assert revoked is not None and revoked.revoked_at == NOW
    with pytest.raises(Exception, match="not found"):
        await store.revoke_key("key_missing", NOW)
    assert await store.key_by_hash("nope") is None


async def test_audit(store: SqlStore) -> None:
    entries = [
        AuditEntry(new_id("aud"), NOW, "admin", f"act{i}", "webhook", "wh_1", {"i": i})
        for i in range(3)
    ]
    for entry in entries:
        await store.add_audit(entry)
    page = await store.list_audit(2, None)
    assert [e.action for e in page.items] == ["act2", "act1"]
    rest = await store.list_audit(2, page.next_cursor)
    assert [e.details for e in rest.items] == [{"i": 0}] and rest.next_cursor is None


async def test_purge_keeps_what_is_still_needed(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook(ordering=Ordering.NONE))
    old = NOW - timedelta(days=40)
    await store.ingest([new_order("old1"), new_order("old2")], old)
    await store.ingest([new_order("new1")], NOW)
    claims = await store.claim(NOW, 10, "w1")
    finished = next(c for c in claims if c.event.order_id == "old1")
    await store.record([delivered(finished.delivery.id, hook.id)], NOW)
    for c in claims:
        if c is not finished:
            await store.record([failed(c.delivery.id, hook.id, retry_at=NOW)], NOW)
    deleted = await store.purge(NOW - timedelta(days=30), batch=1)
    assert deleted == 3  # one delivery, its attempt, its event
    with pytest.raises(Exception, match="not found"):
        await store.get_delivery(finished.delivery.id, Scope())
    remaining = {d.order_id for d in await deliveries_of(store, hook.id)}
    assert remaining == {"old2", "new1"}
    assert (await store.get_order("old1", Scope())).order.order_id == "old1"
    assert await store.purge(NOW - timedelta(days=30)) == 0


async def test_keys_with_nul_characters_name_nothing(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order("o1")], NOW)
    bad = "o1\x00"
    for lookup in (
        store.get_order(bad, Scope()),
        store.get_event(bad, Scope()),
        store.get_webhook(bad, Scope()),
        store.get_delivery(bad, Scope()),
        store.webhook_stats(bad, NOW),
        store.retry_delivery_now(bad, NOW),
        store.delete_webhook(bad, NOW),
        store.revoke_key(bad, NOW),
    ):
        with pytest.raises(Exception, match="not found"):
            await lookup
    with pytest.raises(UnknownOrder):
        await store.ingest([status(bad, 20)], NOW)
    assert (await store.list_events(EventFilter(order_id=bad), 10, None)).items == []
    assert (await store.list_events(EventFilter(), 10, bad)).items == []
    assert (await store.list_deliveries(DeliveryFilter(order_id=bad), 10, None)).items == []
    assert (await store.list_webhooks(WebhookFilter(account=bad), 10, None)).items == []
    assert await store.get_agreement(bad) is None and await store.key_by_hash(bad) is None
    assert await store.count_webhooks(bad) == 0 and await store.usage([bad], ["2026-11"]) == []
    assert len(await deliveries_of(store, hook.id)) == 1


# ---------------------------------------------------------------- races


@pytest.mark.parametrize("racers", ["creates", "updates"])
async def test_concurrent_changes_cannot_pass_the_webhook_cap(store: SqlStore, racers: str) -> None:
    cap = 3
    for _ in range(cap - 1):
        await store.create_webhook(webhook(), max_per_account=cap)
    await store.create_webhook(webhook(accounts=("acc2",)), max_per_account=cap)
    if racers == "creates":
        changes = [store.create_webhook(webhook(), max_per_account=cap) for _ in range(6)]
    else:  # six webhooks of another account, each changed to add acc1
        others = [await store.create_webhook(webhook(accounts=("acc3",))) for _ in range(6)]
        changes = [
            store.update_webhook(
                dataclasses.replace(other, accounts=("acc3", "acc1")), max_per_account=cap
            )
            for other in others
        ]
    results = await asyncio.gather(*changes, return_exceptions=True)
    refused = [r for r in results if isinstance(r, WebhookLimitReached)]
    assert len(refused) == 5 and len(results) - len(refused) == 1
    assert (
        refused[0].account == "acc1" and str(refused[0]) == "account 'acc1' already has 3 webhooks"
    )
    assert await store.count_webhooks("acc1") == cap
    # The cap counts every account of the new webhook; the refused ones left no trace.
    with pytest.raises(WebhookLimitReached):
        await store.create_webhook(webhook(accounts=("acc2", "acc1")), max_per_account=cap)
    assert await store.count_webhooks("acc2") == 1
    page = await store.list_webhooks(WebhookFilter(account="acc1"), 100, None)
    assert len(page.items) == cap


async def test_a_change_made_from_a_stale_reading_is_refused(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook())
    read = await store.get_webhook(hook.id, Scope())
    later = NOW + timedelta(minutes=1)
    await store.set_webhook_state(hook.id, WebhookState.DISABLED, DisabledReason.MANUAL, later)
    stale = dataclasses.replace(read, description="stale", updated_at=later)
    with pytest.raises(Conflict):
        await store.update_webhook(stale, unchanged_since=read.updated_at)
    kept = await store.get_webhook(hook.id, Scope())
    assert (kept.state, kept.description) == (WebhookState.DISABLED, read.description)
    # From the current reading it goes through.
    fresh = dataclasses.replace(kept, description="fresh", updated_at=later + timedelta(minutes=1))
    changed = await store.update_webhook(fresh, unchanged_since=kept.updated_at)
    assert (changed.state, changed.description) == (WebhookState.DISABLED, "fresh")


async def test_of_changes_racing_from_one_reading_exactly_one_is_written(
    store: SqlStore,
) -> None:
    hook = await store.create_webhook(webhook())
    read = await store.get_webhook(hook.id, Scope())
    later = NOW + timedelta(minutes=1)
    changes = [
        store.update_webhook(
            dataclasses.replace(read, description=f"d{n}", updated_at=later),
            unchanged_since=read.updated_at,
        )
        for n in range(6)
    ]
    results = await asyncio.gather(*changes, return_exceptions=True)
    written = [r for r in results if not isinstance(r, BaseException)]
    assert len(written) == 1, results
    assert all(isinstance(r, Conflict) for r in results if r not in written)
    stored = await store.get_webhook(hook.id, Scope())
    assert stored.description == written[0].description


async def test_a_change_racing_a_rotation_keeps_the_new_secrets(store: SqlStore) -> None:
    hook = await store.create_webhook(webhook())
    stale = await store.get_webhook(hook.id, Scope())  # a PATCH read it before the rotation
    rotated = (SigningSecret("whsec_new"), SigningSecret(SECRET, NOW + timedelta(hours=1)))
    later = NOW + timedelta(minutes=1)
    after = await store.rotate_webhook_secrets(hook.id, lambda _: rotated, later)
    assert after.secrets == rotated and after.updated_at == later
    changed = await store.update_webhook(dataclasses.replace(stale, description="patched"))
    assert changed.description == "patched" and changed.secrets == rotated
    # Both at once, many times over: the rotation always stands.
    for n in range(5):
        secrets = (SigningSecret(f"whsec_{n}"),)
        await asyncio.gather(
            store.update_webhook(dataclasses.replace(stale, description=f"d{n}")),
            store.rotate_webhook_secrets(hook.id, lambda _, s=secrets: s, later),
        )
        assert (await store.get_webhook(hook.id, Scope())).secrets == secrets
    # The claim's cached webhooks see the new secrets at once.
    await store.ingest([new_order("o1")], NOW)
    [claim] = await store.claim(NOW, 10, "w1")
    assert claim.webhook.secrets == (SigningSecret("whsec_4"),)
    with pytest.raises(NotFound):
        await store.rotate_webhook_secrets("wh_missing", lambda _: rotated, later)


async def test_rotations_at_once_each_rotate_the_secrets_the_previous_one_left(
    store: SqlStore,
) -> None:
    hook = await store.create_webhook(webhook())
    later = NOW + timedelta(minutes=1)
    await asyncio.gather(
        *(
            store.rotate_webhook_secrets(
                hook.id, lambda current, n=n: (SigningSecret(f"whsec_{n}"), *current.secrets), later
            )
            for n in range(6)
        )
    )
    stored = (await store.get_webhook(hook.id, Scope())).secrets
    assert sorted(s.secret for s in stored) == sorted([SECRET, *(f"whsec_{n}" for n in range(6))])


# ---------------------------------------------------------------- shaping and erasure


async def test_webhook_shaping_settings_round_trip(store: SqlStore) -> None:
    plain = await store.create_webhook(webhook())
    assert (plain.personal_data, plain.fields) == (PersonalData.INCLUDE, None)
    paths = ("items[].plu", "payment.amount", "items[].subItems[].plu")
    shaped = await store.create_webhook(webhook(personal_data=PersonalData.EXCLUDE, fields=paths))
    read = await store.get_webhook(shaped.id, Scope())
    assert (read.personal_data, read.fields) == (PersonalData.EXCLUDE, paths)
    listed = await store.list_webhooks(WebhookFilter(), 50, None)
    assert {w.id: w.fields for w in listed.items} == {plain.id: None, shaped.id: paths}
    # An empty projection (the always-kept ids only) is not "no projection".
    emptied = await store.update_webhook(dataclasses.replace(read, fields=()))
    assert emptied.fields == () and emptied.personal_data is PersonalData.EXCLUDE
    reset = await store.update_webhook(
        dataclasses.replace(emptied, fields=None, personal_data=PersonalData.INCLUDE)
    )
    assert (reset.personal_data, reset.fields) == (PersonalData.INCLUDE, None)
    # The claim hands the dispatcher the webhook's current settings.
    changed = await store.update_webhook(dataclasses.replace(reset, fields=("items[].plu",)))
    await store.ingest([new_order("o1")], NOW)
    claims = {c.webhook.id: c.webhook for c in await store.claim(NOW, 10, "w1")}
    assert claims[changed.id].fields == ("items[].plu",)
    assert claims[plain.id].fields is None


PERSONAL_ORDER = {
    "customer": {"name": "Ana Silva", "phoneNumber": "+32470000000", "email": "a@x.example"},
    "deliveryAddress": {"street": "Rue Haute", "city": "Bruxelles"},
    "note": "ring twice",
    "courier": {"firstName": "Jo", "lastName": "P.", "phoneNumber": "+3247", "status": 73},
}
PERSONAL_COURIER_NAMES = {"firstName", "lastName", "phoneNumber"}
PERSONAL_COURIER_UPDATE = {
    "status": 83,
    "courier": {"firstName": "Jo", "lastName": "P.", "phoneNumber": "+3247", "deliveryBy": "x"},
    "trackingURL": "https://track.example.com/t/1",
    "coordinates": {"latitude": 50.8, "longitude": 4.35},
}


async def test_erase_order_removes_personal_data_from_the_order_and_its_events(
    store: SqlStore,
) -> None:
    hook = await store.create_webhook(webhook())
    await store.ingest([new_order("o1", **PERSONAL_ORDER), status("o1", 20)], NOW)
    await store.ingest([CourierItem("o1", PERSONAL_COURIER_UPDATE)], NOW)
    await store.ingest([new_order("o2", **PERSONAL_ORDER)], NOW)

    # order.new and the courier update change; the status update has nothing personal.
    assert await store.erase_order("o1") == 2

    view = await store.get_order("o1", Scope())
    document = view.order.document
    assert not {"customer", "deliveryAddress", "note"} & set(document)
    # The courier update replaced the document's courier; its name and phone are gone.
    assert not PERSONAL_COURIER_NAMES & set(document["courier"])
    assert document["courier"]["deliveryBy"] == "x"
    assert document["items"] == order("o1")["items"] and document["status"] == 20
    assert view.order.courier is not None
    assert not PERSONAL_COURIER_NAMES & set(view.order.courier)
    assert view.order.courier["deliveryBy"] == "x"
    new, update, courier = view.events
    assert not {"customer", "deliveryAddress", "note"} & set(new.data)
    assert new.data["courier"] == {"status": 73}
    assert update.data["status"] == 20
    assert courier.data["courier"] == {"deliveryBy": "x", "status": 83}
    assert not {"trackingURL", "coordinates"} & set(courier.data)
    assert courier.data["status"] == 83
    # What is sent from now on reads the erased event.
    [claim] = [c for c in await store.claim(NOW, 10, "w1") if c.event.order_id == "o1"]
    assert claim.event.id == new.id and "customer" not in claim.event.data
    assert claim.webhook.id == hook.id
    # Another order keeps its data; a second erasure changes nothing.
    other = await store.get_order("o2", Scope())
    assert other.order.document["customer"] == PERSONAL_ORDER["customer"]
    assert other.events[0].data["note"] == "ring twice"
    assert await store.erase_order("o1") == 0
    with pytest.raises(NotFound):
        await store.erase_order("no-such-order")
    with pytest.raises(NotFound):
        await store.erase_order("o1\x00")


async def test_an_update_after_erasure_builds_on_the_erased_order(store: SqlStore) -> None:
    await store.create_webhook(webhook())
    await store.ingest([new_order("o1", **PERSONAL_ORDER)], NOW)
    await store.erase_order("o1")
    await store.ingest([status("o1", 50)], NOW)
    view = await store.get_order("o1", Scope())
    assert "customer" not in view.order.document and view.order.status == 50
    assert all("customer" not in e.data for e in view.events)
