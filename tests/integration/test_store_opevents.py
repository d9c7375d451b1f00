"""Operational events in the store, on both engines: each transition emits exactly one
event, committed with the transition and with its deliveries to the webhooks that
listen; never to the webhook it is about, never to a webhook that does not cover its
accounts, never billed (docs/events.md)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import pytest

from orderhooks.delivery.recorder import OutcomeRecorder
from orderhooks.domain.batches import BatchSettings
from orderhooks.domain.envelope import envelope
from orderhooks.domain.ids import new_id
from orderhooks.domain.model import (
    DeliveryState,
    DisabledReason,
    Event,
    OperationalEventType,
    Scope,
    Webhook,
    WebhookState,
)
from orderhooks.exceptions import NotFound
from orderhooks.store.base import DeliveryFilter, EventFilter
from orderhooks.store.store import Store
from tests.integration.store_support import (
    ALL_TYPES,
    NOW,
    StoreFactory,
    agreement,
    delivered,
    deliveries_of,
    failed,
    new_order,
    webhook,
)

OPS = tuple(OperationalEventType)
FAILING = OperationalEventType.WEBHOOK_FAILING
RECOVERED = OperationalEventType.WEBHOOK_RECOVERED
DISABLED = OperationalEventType.WEBHOOK_DISABLED
DELIVERY_FAILED = OperationalEventType.DELIVERY_FAILED
LATER = NOW + timedelta(minutes=1)


def about(hook: Webhook) -> dict[str, Any]:
    """What every webhook.* event's data says of the webhook: its id, URL and accounts."""
    return {"webhookId": hook.id, "url": hook.url, "accounts": list(hook.accounts)}


async def op_events(store: Store, event_type: OperationalEventType) -> list[Event]:
    page = await store.list_events(EventFilter(type=event_type), 100, None)
    return page.items


async def fail_three_times(store: Store, hook_id: str) -> list[str]:
    """Three orders, each delivery claimed and failed once (retried later): the third
    failure starts probing. Returns the delivery ids."""
    await store.ingest([new_order(f"o{n}") for n in range(3)], NOW)
    claims = [c for c in await store.claim(NOW, 100, "w1") if c.webhook.id == hook_id]
    assert len(claims) == 3
    for claim in claims:
        await store.record([failed(claim.delivery.id, hook_id, retry_at=LATER)], NOW)
    return [c.delivery.id for c in claims]


async def test_failing_and_recovered_are_emitted_once_to_the_listeners(store: Store) -> None:
    w = await store.create_webhook(webhook(event_types=(*ALL_TYPES, *OPS)))
    ops_all = await store.create_webhook(webhook(accounts=("*",), event_types=OPS))
    ops_acc1 = await store.create_webhook(webhook(event_types=(FAILING, RECOVERED)))
    other_account = await store.create_webhook(webhook(accounts=("acc2",), event_types=OPS))
    orders_only = await store.create_webhook(webhook(accounts=("*",)))

    delivery_ids = await fail_three_times(store, w.id)

    [event] = await op_events(store, FAILING)
    assert event.account == "acc1" and event.order_id is None and event.sequence is None
    assert event.data == {
        **about(w),
        "consecutiveFailures": 3,
        "lastError": "http_status",
        "lastStatusCode": 500,
        "since": "2026-11-28T12:00:00.000000Z",
    }
    receivers = {ops_all.id, ops_acc1.id}
    for hook in (w, ops_all, ops_acc1, other_account, orders_only):
        ops = [d for d in await deliveries_of(store, hook.id) if d.event_type in OPS]
        assert [d.event_id for d in ops] == ([event.id] if hook.id in receivers else [])
    # A fourth failure is no new transition.
    [again] = [c for c in await store.claim(LATER, 100, "w1") if c.webhook.id == w.id]
    await store.record([failed(again.delivery.id, w.id, 2, retry_at=LATER)], LATER)
    assert len(await op_events(store, FAILING)) == 1

    # The first success after that: one `webhook.recovered`.
    [probe] = [c for c in await store.claim(LATER, 100, "w1") if c.webhook.id == w.id]
    assert probe.delivery.id in delivery_ids
    await store.record([delivered(probe.delivery.id, w.id, 2)], LATER)
    [recovered] = await op_events(store, RECOVERED)
    assert recovered.data == {
        **about(w),
        "failingSince": "2026-11-28T12:00:00.000000Z",
        "failedAttempts": 4,
    }
    ops_deliveries = [d for d in await deliveries_of(store, ops_all.id) if d.event_type in OPS]
    assert [d.event_type for d in ops_deliveries] == [FAILING, RECOVERED]
    assert all(d.order_id is None and d.sequence is None for d in ops_deliveries)


async def test_the_event_and_its_deliveries_commit_with_the_transition(
    make_store: StoreFactory,
) -> None:
    """A transaction that fails after the transition leaves neither the new health nor
    the event: the same transition emits it once when recorded again."""
    broken = {"on": False}

    def ids(prefix: str) -> str:
        if broken["on"] and prefix == "dlv":
            raise RuntimeError("the process dies mid-transaction")
        return new_id(prefix)

    store = await make_store(new_id=ids)
    w = await store.create_webhook(webhook())
    ops_all = await store.create_webhook(webhook(accounts=("*",), event_types=OPS))
    await store.ingest([new_order(f"o{n}") for n in range(3)], NOW)
    claims = [c for c in await store.claim(NOW, 100, "w1") if c.webhook.id == w.id]
    for claim in claims[:2]:
        await store.record([failed(claim.delivery.id, w.id, retry_at=LATER)], NOW)
    third = failed(claims[2].delivery.id, w.id, retry_at=LATER)
    broken["on"] = True
    with pytest.raises(RuntimeError):
        await store.record([third], NOW)
    broken["on"] = False
    assert await op_events(store, FAILING) == []
    await store.record([third], NOW)
    [event] = await op_events(store, FAILING)
    assert event.data["consecutiveFailures"] == 3  # the failed transaction counted nothing
    [delivery] = [d for d in await deliveries_of(store, ops_all.id) if d.event_id == event.id]
    assert delivery.state == DeliveryState.PENDING


async def test_delivery_failed_is_emitted_with_the_order(store: Store) -> None:
    w = await store.create_webhook(webhook())
    ops_all = await store.create_webhook(webhook(accounts=("*",), event_types=OPS))
    await store.ingest([new_order("o1")], NOW)
    [claim] = [c for c in await store.claim(NOW, 100, "w1") if c.webhook.id == w.id]
    await store.record([failed(claim.delivery.id, w.id)], NOW)  # no retry left: failed

    [event] = await op_events(store, DELIVERY_FAILED)
    assert event.data == {
        "deliveryId": claim.delivery.id,
        "webhookId": w.id,
        "eventId": claim.event.id,
        "eventType": "order.new",
        "orderId": "o1",
        "attempts": 1,
        "lastError": "http_status",
        "lastStatusCode": 500,
    }
    [sent] = [c for c in await store.claim(NOW, 100, "w1") if c.webhook.id == ops_all.id]
    assert sent.event.id == event.id
    body = envelope(sent.event)
    assert body["orderId"] == "o1" and body["location"] is None and body["sequence"] is None
    assert body["type"] == "delivery.failed" and body["account"] == "acc1"
    # Not part of the order: its event list and replays do not show it.
    view = await store.get_order("o1", Scope())
    assert [e.type for e in view.events] == ["order.new"]
    everything = await store.create_webhook(
        webhook(accounts=("*",), event_types=(*ALL_TYPES, *OPS))
    )
    queued = await store.replay_events(everything, NOW - timedelta(days=1), None, None, NOW)
    assert queued == 1  # the order.new only
    replayed = await deliveries_of(store, everything.id)
    assert [d.event_type for d in replayed] == ["order.new"]


async def test_an_operational_delivery_that_fails_emits_nothing_more(store: Store) -> None:
    w = await store.create_webhook(webhook())
    ops_a = await store.create_webhook(webhook(accounts=("*",), event_types=OPS))
    ops_b = await store.create_webhook(webhook(accounts=("*",), event_types=OPS))
    await store.ingest([new_order("o1")], NOW)
    [claim] = [c for c in await store.claim(NOW, 100, "w1") if c.webhook.id == w.id]
    await store.record([failed(claim.delivery.id, w.id)], NOW)
    sent = [c for c in await store.claim(NOW, 100, "w1") if c.webhook.id in {ops_a.id, ops_b.id}]
    assert len(sent) == 2
    await store.record([failed(c.delivery.id, c.webhook.id) for c in sent], NOW)
    # Both failed for good, yet there is still one `delivery.failed`: the one about w.
    assert len(await op_events(store, DELIVERY_FAILED)) == 1


async def test_disabling_emits_once_by_hand_or_when_gone(store: Store) -> None:
    w = await store.create_webhook(webhook(event_types=(*ALL_TYPES, *OPS)))
    gone = await store.create_webhook(webhook())
    ops_all = await store.create_webhook(webhook(accounts=("*",), event_types=OPS))

    await store.set_webhook_state(w.id, WebhookState.DISABLED, None, NOW)
    await store.set_webhook_state(w.id, WebhookState.DISABLED, None, NOW)  # no transition
    [manual] = await op_events(store, DISABLED)
    assert manual.data == {**about(w), "reason": "manual"}

    await store.ingest([new_order("o1")], NOW)
    [claim] = [c for c in await store.claim(NOW, 100, "w1") if c.webhook.id == gone.id]
    await store.record([failed(claim.delivery.id, gone.id, disable=DisabledReason.GONE)], NOW)
    events = await op_events(store, DISABLED)
    assert [e.data["reason"] for e in events] == ["manual", "gone"]
    assert events[1].data["webhookId"] == gone.id
    # The disabled w hears nothing; ops_all hears both.
    assert [d for d in await deliveries_of(store, w.id) if d.event_type in OPS] == []
    ops = [d.event_id for d in await deliveries_of(store, ops_all.id) if d.event_type in OPS]
    assert set(ops) >= {manual.id, events[1].id}


RACE_ROUNDS = 100


async def test_a_disable_by_hand_racing_a_410_emits_once(store: Store) -> None:
    """A disable by hand and a recorded 410 of the same webhook, at about the same time
    (PostgreSQL runs them side by side): one transition, one `webhook.disabled`."""
    await store.create_webhook(webhook(accounts=("*",), event_types=OPS))

    async def after(seconds: float, work: Awaitable[object]) -> None:
        await asyncio.sleep(seconds)
        await work

    twice = []
    for n in range(RACE_ROUNDS):
        w = await store.create_webhook(webhook())
        await store.ingest([new_order(f"o{n}")], NOW)
        [claim] = [c for c in await store.claim(NOW, 100, "w1") if c.webhook.id == w.id]
        gone = failed(claim.delivery.id, w.id, disable=DisabledReason.GONE)
        pause = (n % 10) / 2000  # 0 to 4.5 ms, first one side, then the other
        await asyncio.gather(
            after(pause if n % 2 else 0, store.record([gone], NOW)),
            after(
                0 if n % 2 else pause,
                store.set_webhook_state(w.id, WebhookState.DISABLED, None, NOW),
            ),
        )
        told = await store.list_events(EventFilter(type=DISABLED), 5 * RACE_ROUNDS, None)
        reasons = [e.data["reason"] for e in told.items if e.data["webhookId"] == w.id]
        if len(reasons) != 1:
            twice.append(reasons)
    assert twice == []


async def test_failing_too_long_emits_disabled(make_store: StoreFactory) -> None:
    store = await make_store(disable_after_seconds=60)
    w = await store.create_webhook(webhook())
    await store.create_webhook(webhook(accounts=("*",), event_types=OPS))
    await fail_three_times(store, w.id)
    [again] = [c for c in await store.claim(LATER, 100, "w1") if c.webhook.id == w.id]
    await store.record([failed(again.delivery.id, w.id, 2, retry_at=LATER)], LATER)
    [event] = await op_events(store, DISABLED)
    assert event.data["reason"] == "failing"


async def test_routing_needs_every_account_of_the_webhook(store: Store) -> None:
    """A partner's webhook never hears about a webhook that covers another account, and
    a partner key reads such an event only when it covers every account."""
    w = await store.create_webhook(webhook(accounts=("acc1", "acc2")))
    acc1_only = await store.create_webhook(webhook(accounts=("acc1",), event_types=OPS))
    both = await store.create_webhook(webhook(accounts=("acc2", "acc1", "acc3"), event_types=OPS))
    await store.set_webhook_state(w.id, WebhookState.DISABLED, None, NOW)

    [event] = await op_events(store, DISABLED)
    assert [d.event_id for d in await deliveries_of(store, both.id)] == [event.id]
    assert await deliveries_of(store, acc1_only.id) == []

    acc1 = Scope(frozenset({"acc1"}))
    with pytest.raises(NotFound):
        await store.get_event(event.id, acc1)
    listed = await store.list_events(EventFilter(scope=acc1, type=DISABLED), 100, None)
    assert listed.items == []
    # Without a type, an admin's list holds the order events only.
    assert (await store.list_events(EventFilter(), 100, None)).items == []
    partner = await store.list_deliveries(DeliveryFilter(scope=acc1), 100, None)
    assert partner.items == []
    covering = Scope(frozenset({"acc1", "acc2", "acc3"}))
    assert (await store.get_event(event.id, covering)).id == event.id
    seen = await store.list_deliveries(DeliveryFilter(scope=covering), 100, None)
    assert [d.event_id for d in seen.items] == [event.id]


async def test_operational_events_are_never_billed(store: Store) -> None:
    w = await store.create_webhook(webhook())
    ops_all = await store.create_webhook(webhook(accounts=("*",), event_types=OPS))
    await store.set_webhook_state(w.id, WebhookState.DISABLED, None, NOW)
    [claim] = await store.claim(NOW, 100, "w1")
    assert claim.webhook.id == ops_all.id and claim.delivery.event_type == DISABLED
    await store.record([delivered(claim.delivery.id, ops_all.id)], NOW)
    [done] = await deliveries_of(store, ops_all.id)
    assert done.state == DeliveryState.DELIVERED
    assert await store.usage(None, ["2026-11"]) == []


async def test_agreements_do_not_gate_operational_events(make_store: StoreFactory) -> None:
    store = await make_store(require_agreement=True)
    await store.put_agreement(agreement("acc1"), NOW)
    w = await store.create_webhook(webhook())
    waiting = await store.create_webhook(
        webhook(accounts=("acc1", "acc9"), event_types=(*ALL_TYPES, *OPS))
    )
    assert w.state == WebhookState.ACTIVE
    assert waiting.state == WebhookState.AWAITING_AGREEMENT
    await store.ingest([new_order("o1")], NOW)  # an order event: not for waiting
    [order_claim] = await store.claim(NOW, 100, "w1")
    assert order_claim.webhook.id == w.id
    await store.set_webhook_state(w.id, WebhookState.DISABLED, None, NOW)
    [claim] = await store.claim(NOW, 100, "w1")
    assert claim.webhook.id == waiting.id and claim.event.type == DISABLED


async def plain_and_batching(store: Store) -> tuple[Webhook, Webhook]:
    """A plain webhook, and one of every account that batches order and operational
    events (up to 10, sent as soon as they are due)."""
    plain = await store.create_webhook(webhook())
    batching = await store.create_webhook(
        webhook(
            accounts=("*",),
            event_types=(*ALL_TYPES, *OPS),
            batch=BatchSettings(max_events=10, max_wait_ms=0),
        )
    )
    return plain, batching


async def test_a_batching_webhook_takes_operational_events_in_its_batches(store: Store) -> None:
    """An operational event and an order event due together go in one batch (the
    operational one has no order to sort by)."""
    w, batching = await plain_and_batching(store)
    await store.ingest([new_order("o1")], NOW)  # one delivery to each
    [claim] = [c for c in await store.claim(NOW, 100, "w1") if c.webhook.id == w.id]
    await store.record([failed(claim.delivery.id, w.id)], NOW)
    await store.ingest([new_order("o2")], NOW)
    sent = [c for c in await store.claim(NOW, 100, "w1") if c.webhook.id == batching.id]
    assert {c.event.type for c in sent} == {"order.new", DELIVERY_FAILED}
    assert len({c.batch_id for c in sent}) == 1 and sent[0].batch_id is not None


async def test_a_batch_is_one_failed_attempt_whatever_the_recorders_write_size(
    store: Store,
) -> None:
    """Two failed batch requests are two failed attempts: no `webhook.failing` (which
    takes three), even when a batch has more events than one write of the recorder
    takes (there 2; in service 500, a batch's maximum, behind other outcomes)."""
    w = await store.create_webhook(
        webhook(event_types=ALL_TYPES, batch=BatchSettings(max_events=10, max_wait_ms=0))
    )
    await store.create_webhook(webhook(accounts=("*",), event_types=(FAILING,)))
    await store.ingest([new_order(f"o{n}") for n in range(3)], NOW)
    for due, retry_at in ((NOW, LATER), (LATER, LATER + timedelta(minutes=1))):
        batch = await store.claim(due, 100, "w1")
        assert len(batch) == 3 and {c.webhook.id for c in batch} == {w.id}
        recorder = OutcomeRecorder(store, lambda: NOW, lambda: None, batch_max=2)
        for claim in batch:
            outcome = failed(claim.delivery.id, w.id, claim.attempt, retry_at=retry_at)
            recorder.add(dataclasses.replace(outcome, batch_id=claim.batch_id))
        recorder.close()
        await asyncio.wait_for(recorder.run(), timeout=10)  # returns once all is written
    assert await op_events(store, FAILING) == []


async def test_a_retried_batch_keeps_its_operational_events_in_place(store: Store) -> None:
    """A batch with an operational event (no order) is retried with its events in the
    order of its first attempt, on either engine (SQL sorts a missing order apart)."""
    w, batching = await plain_and_batching(store)
    await store.ingest([new_order("o1")], NOW)
    first = await store.claim(NOW, 100, "w1")
    [claim] = [c for c in first if c.webhook.id == w.id]
    await store.record([failed(claim.delivery.id, w.id)], NOW)
    await store.record([delivered(c.delivery.id, batching.id) for c in first if c != claim], NOW)
    await store.ingest([new_order("o2")], NOW)
    sent = [c for c in await store.claim(NOW, 100, "w1") if c.webhook.id == batching.id]
    assert {c.event.type for c in sent} == {"order.new", DELIVERY_FAILED}
    await store.record(
        [
            dataclasses.replace(
                failed(c.delivery.id, batching.id, retry_at=LATER), batch_id=c.batch_id
            )
            for c in sent
        ],
        NOW,
    )
    retried = [c for c in await store.claim(LATER, 100, "w1") if c.webhook.id == batching.id]
    assert [(c.delivery.id, c.batch_id) for c in retried] == [
        (c.delivery.id, c.batch_id) for c in sent
    ]


async def test_a_batching_webhook_awaiting_agreement_retries_under_one_batch_id(
    make_store: StoreFactory,
) -> None:
    """Awaiting its agreement, a batching webhook is sent its operational events one per
    request; a failed one is retried with the same `webhook-id` (its batch id), which
    receivers deduplicate on."""
    store = await make_store(require_agreement=True)
    await store.put_agreement(agreement("acc1"), NOW)
    w = await store.create_webhook(webhook())
    waiting = await store.create_webhook(
        webhook(
            accounts=("acc1", "acc9"),
            event_types=OPS,
            batch=BatchSettings(max_events=10, max_wait_ms=0),
        )
    )
    assert waiting.state == WebhookState.AWAITING_AGREEMENT
    await store.set_webhook_state(w.id, WebhookState.DISABLED, None, NOW)
    [first] = await store.claim(NOW, 100, "w1")
    assert first.webhook.id == waiting.id and first.event.type == DISABLED
    assert first.batch_id is not None
    outcome = failed(first.delivery.id, waiting.id, retry_at=LATER)
    await store.record([dataclasses.replace(outcome, batch_id=first.batch_id)], NOW)
    [again] = await store.claim(LATER, 100, "w1")
    assert (again.delivery.id, again.attempt) == (first.delivery.id, 2)
    assert again.batch_id == first.batch_id


async def test_an_operational_event_leaves_its_batch_when_its_webhook_awaits_agreement(
    make_store: StoreFactory,
) -> None:
    """A batch of an operational event and an order event failed while its webhook was
    active; the webhook then awaits an agreement: the operational event goes alone under
    a batch id of its own, and the old id keeps naming only events it named."""
    store = await make_store(require_agreement=True)
    await store.put_agreement(agreement("acc1"), NOW)
    w = await store.create_webhook(webhook())
    hook = await store.create_webhook(
        webhook(event_types=(*ALL_TYPES, *OPS), batch=BatchSettings(max_events=10, max_wait_ms=0))
    )
    await store.ingest([new_order("o1")], NOW)
    first = await store.claim(NOW, 100, "w1")
    [claim] = [c for c in first if c.webhook.id == w.id]
    await store.record([failed(claim.delivery.id, w.id)], NOW)  # delivery.failed to hook
    await store.record([delivered(c.delivery.id, hook.id) for c in first if c != claim], NOW)
    await store.ingest([new_order("o2")], NOW)
    batch = [c for c in await store.claim(NOW, 100, "w1") if c.webhook.id == hook.id]
    assert {c.event.type for c in batch} == {"order.new", DELIVERY_FAILED}
    [batch_id] = {c.batch_id for c in batch}
    await store.record(
        [
            dataclasses.replace(failed(c.delivery.id, hook.id, retry_at=LATER), batch_id=batch_id)
            for c in batch
        ],
        NOW,
    )
    stored = await store.get_webhook(hook.id, Scope())
    await store.update_webhook(dataclasses.replace(stored, accounts=("acc1", "acc9")))
    [alone] = [c for c in await store.claim(LATER, 100, "w1") if c.webhook.id == hook.id]
    assert alone.event.type == DELIVERY_FAILED
    assert alone.batch_id not in (None, batch_id)
    # The old batch is dissolved: its order event waits outside any batch, to go under a
    # new id too (the old one named both events).
    waiting = [d for d in await deliveries_of(store, hook.id) if d.id != alone.delivery.id]
    assert [(d.event_type, d.batch_id) for d in waiting if d.state == "pending"] == [
        ("order.new", None)
    ]


async def test_a_partner_never_sees_an_operational_delivery_to_a_webhook_not_its_own(
    store: Store,
) -> None:
    """The delivery of an operational event about acc1's webhook to an all-accounts
    webhook (the operator's) is outside acc1's scope: not listed, not read, and not in
    acc1's activity series (its attempts and latencies are the operator's receiver's)."""
    w = await store.create_webhook(webhook())
    ops_all = await store.create_webhook(webhook(accounts=("*",), event_types=OPS))
    await store.set_webhook_state(w.id, WebhookState.DISABLED, None, NOW)
    [claim] = await store.claim(NOW, 100, "w1")
    assert claim.webhook.id == ops_all.id
    await store.record([delivered(claim.delivery.id, ops_all.id)], NOW)
    acc1 = Scope(frozenset({"acc1"}))
    assert (await store.get_event(claim.delivery.event_id, acc1)).type == DISABLED
    assert (await store.list_deliveries(DeliveryFilter(scope=acc1), 100, None)).items == []
    with pytest.raises(NotFound):
        await store.get_delivery(claim.delivery.id, acc1)
    window = (NOW, NOW + timedelta(hours=1), 60)
    assert await store.outcome_series(acc1, None, *window) == []
    assert await store.outcome_series(acc1, ops_all.id, *window) == []
    [bucket] = await store.outcome_series(Scope(), None, *window)
    assert bucket.succeeded == 1
    assert (await store.get_delivery(claim.delivery.id, Scope())).delivery.id == claim.delivery.id
