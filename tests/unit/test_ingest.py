"""Ingest planners: events, sequences, triggers, repeats and the stored order state."""

from __future__ import annotations

import copy
import itertools
from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orderhooks.domain.envelope import format_timestamp
from orderhooks.domain.ingest import (
    IngestPlan,
    plan_courier_update,
    plan_new_order,
    plan_status_update,
)
from orderhooks.domain.model import EventType, OrderState, Webhook, WebhookState
from tests.support.data import sample
from tests.support.factories import NOW, SequentialIds, order_document, order_state, webhook

LATER = NOW + timedelta(minutes=1)


def arrive(
    document: dict[str, Any], webhooks: list[Webhook], ids: SequentialIds | None = None
) -> IngestPlan:
    """Plan the arrival of a new order."""
    return plan_new_order(None, document, "hash-1", webhooks, NOW, ids or SequentialIds())


def delivered_to(plan: IngestPlan) -> list[tuple[int, str, str]]:
    """(sequence, event type, webhook id) of each planned delivery, in plan order."""
    return [(d.event.sequence, d.event.type.value, d.webhook_id) for d in plan.deliveries]


# ---------------------------------------------------------------- new orders


def test_a_new_order_creates_one_order_new_event() -> None:
    document = sample("new_order")
    ids = SequentialIds()
    plan = arrive(document, [webhook(accounts=(document["account"],))], ids)
    assert plan.created and not plan.repeat
    [event] = plan.events
    assert event.type == EventType.NEW
    assert event.sequence == 1
    assert event.data is document
    assert event.status == 10
    assert event.created_at == NOW
    assert (event.order_id, event.account, event.location, event.channel_link, event.channel) == (
        document["_id"],
        document["account"],
        document["location"],
        document["channelLink"],
        document["channel"],
    )
    assert [d.id for d in plan.deliveries] == ["dlv_0002"]
    assert event.id == "evt_0001"
    assert ids.made == ["evt_0001", "dlv_0002"]


def test_a_new_order_state_comes_from_the_document() -> None:
    document = sample("new_order")
    state = arrive(document, []).order
    assert state == OrderState(
        order_id=document["_id"],
        account=document["account"],
        location=document["location"],
        channel_link=document["channelLink"],
        channel=7,
        status=10,
        document=document,
        body_hash="hash-1",
        courier=document["courier"],
        next_sequence=2,
        max_flow_status=10,
        created_at=NOW,
        updated_at=NOW,
    )


def test_a_new_order_at_a_problem_status_has_no_flow_status() -> None:
    plan = arrive(order_document(status=110), [])
    assert plan.order.max_flow_status == -1
    assert plan.order.courier is None


def test_a_new_order_goes_to_untriggered_and_satisfied_webhooks_only() -> None:
    hooks = [
        webhook(id="wh_plain"),
        webhook(id="wh_10", new_order_trigger=10),
        webhook(id="wh_20", new_order_trigger=20),
        webhook(id="wh_off", state=WebhookState.DISABLED),
        webhook(id="wh_wait", state=WebhookState.AWAITING_AGREEMENT),
        webhook(id="wh_other", accounts=("acc2",)),
        webhook(id="wh_status_only", event_types=(EventType.STATUS_UPDATE,)),
    ]
    plan = arrive(order_document(status=10), hooks)
    assert delivered_to(plan) == [(1, "order.new", "wh_plain"), (1, "order.new", "wh_10")]


def test_a_byte_identical_repeat_changes_nothing() -> None:
    current = order_state()
    plan = plan_new_order(current, order_document(), "hash-1", [webhook()], LATER, SequentialIds())
    assert plan == IngestPlan(order=current, events=(), deliveries=(), repeat=True, created=False)


def test_the_hash_of_the_bytes_repeats_an_order_stored_under_it() -> None:
    # Earlier versions stored the hash of the body's bytes (docs/api.md, ingest).
    current = order_state()
    plan = plan_new_order(
        current, order_document(), "hash-2", [webhook()], LATER, SequentialIds(), raw_hash="hash-1"
    )
    assert plan == IngestPlan(order=current, events=(), deliveries=(), repeat=True, created=False)
    newer = plan_new_order(
        current, order_document(), "hash-2", [webhook()], LATER, SequentialIds(), raw_hash="hash-3"
    )
    assert not newer.repeat and newer.order.body_hash == "hash-2"


def test_a_newer_version_with_the_same_status_replaces_the_document_silently() -> None:
    current = order_state(next_sequence=4, max_flow_status=20)
    newer = order_document(note="extra sauce")
    plan = plan_new_order(current, newer, "hash-2", [webhook()], LATER, SequentialIds())
    assert not plan.repeat and not plan.created
    assert plan.events == () and plan.deliveries == ()
    assert plan.order.document is newer
    assert plan.order.body_hash == "hash-2"
    assert plan.order.next_sequence == 4
    assert plan.order.max_flow_status == 20
    assert plan.order.created_at == NOW and plan.order.updated_at == LATER


def test_a_newer_version_with_a_new_status_acts_like_a_status_update() -> None:
    current = order_state(next_sequence=2, max_flow_status=10)
    history = [{"timeStamp": "2026-11-28T12:00:30Z", "status": 20, "response": "", "source": 1}]
    newer = order_document(status=20, statusHistory=history, channelOrderId="UE-1")
    hooks = [webhook(id="wh_plain"), webhook(id="wh_20", new_order_trigger=20)]
    plan = plan_new_order(current, newer, "hash-2", hooks, LATER, SequentialIds())
    assert [(e.type, e.sequence) for e in plan.events] == [
        (EventType.NEW, 2),
        (EventType.STATUS_UPDATE, 3),
    ]
    triggered, update = plan.events
    assert triggered.data is newer
    assert update.data == {
        "orderId": "o1",
        "channelOrderId": "UE-1",
        "location": "loc1",
        "account": "acc1",
        "status": 20,
        "timeStamp": "2026-11-28T12:00:30Z",
        "reason": "",
        "isIgnoredPOSStatus": False,
        "previousStatus": 10,
    }
    assert plan.order.document is newer  # its own history, nothing appended
    assert plan.order.status == 20
    assert plan.order.next_sequence == 4
    assert plan.order.max_flow_status == 20
    assert delivered_to(plan) == [
        (2, "order.new", "wh_20"),
        (3, "order.status_update", "wh_plain"),
        (3, "order.status_update", "wh_20"),
    ]


def test_a_newer_version_without_a_matching_history_entry_is_stamped_now() -> None:
    current = order_state()
    plan = plan_new_order(current, order_document(status=50), "hash-2", [], LATER, SequentialIds())
    assert plan.events[-1].data["timeStamp"] == format_timestamp(LATER)


# ---------------------------------------------------------------- status updates


def test_status_update_data_is_product_2_3() -> None:
    current = order_state(document=order_document(channelOrderId="UE-7"))
    update = {"status": 20, "timeStamp": "2026-11-28T12:00:30Z", "reason": "busy", "by": "pos"}
    plan = plan_status_update(current, update, [webhook()], LATER, SequentialIds())
    [event] = plan.events
    assert event.type == EventType.STATUS_UPDATE
    assert event.status == 20
    assert event.sequence == 2
    assert event.data == {
        "orderId": "o1",
        "channelOrderId": "UE-7",
        "location": "loc1",
        "account": "acc1",
        "status": 20,
        "timeStamp": "2026-11-28T12:00:30Z",
        "reason": "busy",
        "isIgnoredPOSStatus": False,
        "previousStatus": 10,
        "by": "pos",  # unknown body fields are kept
    }


def test_status_update_defaults() -> None:
    plan = plan_status_update(order_state(), {"status": 20}, [], LATER, SequentialIds())
    data = plan.events[0].data
    assert data["timeStamp"] == format_timestamp(LATER)
    assert data["reason"] == ""
    assert data["isIgnoredPOSStatus"] is False
    assert data["channelOrderId"] == ""


def test_the_order_identity_comes_from_the_store_not_the_body() -> None:
    update = {"status": 20, "account": "someone-else", "orderId": "x", "previousStatus": 99}
    data = plan_status_update(order_state(), update, [], LATER, SequentialIds()).events[0].data
    assert (data["account"], data["orderId"], data["previousStatus"]) == ("acc1", "o1", 10)


def test_status_update_changes_the_stored_document() -> None:
    document = sample("new_order")
    current = order_state(document=document)
    pristine = copy.deepcopy(document)
    update = {"status": 20, "timeStamp": "2026-11-28T11:59:10.500000Z"}
    plan = plan_status_update(current, update, [], LATER, SequentialIds())
    assert document == pristine  # the current state is not mutated
    stored = plan.order.document
    assert stored["status"] == 20
    assert stored["statusHistory"] == [
        *pristine["statusHistory"],
        {"timeStamp": "2026-11-28T11:59:10.500000Z", "status": 20, "response": "", "source": 0},
    ]
    assert {k: v for k, v in stored.items() if k not in ("status", "statusHistory")} == {
        k: v for k, v in pristine.items() if k not in ("status", "statusHistory")
    }
    assert plan.order.status == 20
    assert plan.order.next_sequence == 3
    assert plan.order.max_flow_status == 20
    assert plan.order.updated_at == LATER


def test_history_entry_keeps_reason_response_and_source_when_given() -> None:
    update = {"status": 110, "timeStamp": "t", "reason": "closed", "source": 3, "response": "ok"}
    plan = plan_status_update(order_state(), update, [], LATER, SequentialIds())
    assert plan.order.document["statusHistory"][-1] == {
        "timeStamp": "t",
        "status": 110,
        "response": "ok",
        "source": 3,
        "reason": "closed",
    }
    assert plan.order.max_flow_status == 10  # problem statuses do not move the flow


def test_exact_repeat_of_the_last_history_entry_is_a_repeat() -> None:
    update = {"status": 20, "timeStamp": "2026-11-28T12:00:30Z"}
    first = plan_status_update(order_state(), update, [webhook()], LATER, SequentialIds())
    again = plan_status_update(first.order, update, [webhook()], LATER, SequentialIds())
    assert again == IngestPlan(
        order=first.order, events=(), deliveries=(), repeat=True, created=False
    )


def test_an_earlier_update_coming_back_after_later_ones_is_a_repeat() -> None:
    accepted = {"status": 20, "timeStamp": "2026-11-28T12:00:30Z"}
    first = plan_status_update(order_state(), accepted, [webhook()], LATER, SequentialIds())
    preparing = {"status": 50, "timeStamp": "2026-11-28T12:01:00Z"}
    second = plan_status_update(first.order, preparing, [webhook()], LATER, SequentialIds())
    again = plan_status_update(second.order, accepted, [webhook()], LATER, SequentialIds())
    assert again.repeat and not again.events
    assert again.order == second.order


def test_other_timestamps_or_none_are_not_repeats() -> None:
    first = plan_status_update(
        order_state(), {"status": 20, "timeStamp": "a"}, [], LATER, SequentialIds()
    )
    for update in (
        {"status": 20, "timeStamp": "b"},
        {"status": 20},
        {"status": 30, "timeStamp": "a"},
    ):
        plan = plan_status_update(first.order, update, [], LATER, SequentialIds())
        assert not plan.repeat
        assert len(plan.events) == 1


def test_status_updates_are_routed_with_the_status_filter() -> None:
    hooks = [
        webhook(id="wh_all"),
        webhook(id="wh_90", status_filter=(90,)),
        webhook(id="wh_20", status_filter=(20, 90)),
        webhook(id="wh_new_only", event_types=(EventType.NEW,)),
    ]
    plan = plan_status_update(order_state(), {"status": 20}, hooks, LATER, SequentialIds())
    assert [d.webhook_id for d in plan.deliveries] == ["wh_all", "wh_20"]


# ---------------------------------------------------------------- triggers


def test_a_trigger_creates_one_shared_order_new_just_before_the_update() -> None:
    hooks = [
        webhook(id="wh_a", new_order_trigger=20),
        webhook(id="wh_b", new_order_trigger=20),
        webhook(id="wh_plain"),
        webhook(id="wh_updates", event_types=(EventType.STATUS_UPDATE,)),
    ]
    ids = SequentialIds()
    plan = plan_status_update(order_state(), {"status": 20}, hooks, LATER, ids)
    triggered, update = plan.events
    assert (triggered.type, triggered.sequence, triggered.status) == (EventType.NEW, 2, 20)
    assert (update.type, update.sequence) == (EventType.STATUS_UPDATE, 3)
    assert triggered.data == plan.order.document  # the document at the triggering status
    assert triggered.data["status"] == 20
    assert triggered.id < update.id
    assert delivered_to(plan) == [
        (2, "order.new", "wh_a"),
        (2, "order.new", "wh_b"),
        (3, "order.status_update", "wh_a"),
        (3, "order.status_update", "wh_b"),
        (3, "order.status_update", "wh_plain"),
        (3, "order.status_update", "wh_updates"),
    ]
    assert plan.order.next_sequence == 4


def test_a_trigger_fires_once_on_a_jump_past_it_and_never_again() -> None:
    hooks = [webhook(id="wh_20", new_order_trigger=20)]
    jump = plan_status_update(order_state(), {"status": 50}, hooks, LATER, SequentialIds())
    assert [e.type for e in jump.events] == [EventType.NEW, EventType.STATUS_UPDATE]
    later = plan_status_update(jump.order, {"status": 90}, hooks, LATER, SequentialIds())
    assert [e.type for e in later.events] == [EventType.STATUS_UPDATE]
    back = plan_status_update(later.order, {"status": 20}, hooks, LATER, SequentialIds())
    assert [e.type for e in back.events] == [EventType.STATUS_UPDATE]


def test_no_trigger_on_problem_statuses() -> None:
    hooks = [webhook(new_order_trigger=20)]
    plan = plan_status_update(order_state(), {"status": 110}, hooks, LATER, SequentialIds())
    assert [e.type for e in plan.events] == [EventType.STATUS_UPDATE]


def test_no_triggered_event_without_an_active_webhook_that_has_the_trigger() -> None:
    hooks = [
        webhook(id="wh_off", new_order_trigger=20, state=WebhookState.DISABLED),
        webhook(id="wh_other", new_order_trigger=20, accounts=("acc2",)),
        webhook(id="wh_plain"),
    ]
    ids = SequentialIds()
    plan = plan_status_update(order_state(), {"status": 20}, hooks, LATER, ids)
    assert [(e.type, e.sequence) for e in plan.events] == [(EventType.STATUS_UPDATE, 2)]
    assert [d.webhook_id for d in plan.deliveries] == ["wh_plain"]
    assert ids.made == ["evt_0001", "dlv_0002"]  # no id spent on an event never made


def test_a_webhook_whose_trigger_was_met_on_arrival_gets_no_second_order_new() -> None:
    hooks = [webhook(id="wh_10", new_order_trigger=10)]
    arrival = arrive(order_document(status=10), hooks)
    assert delivered_to(arrival) == [(1, "order.new", "wh_10")]
    plan = plan_status_update(arrival.order, {"status": 20}, hooks, LATER, SequentialIds())
    assert [e.type for e in plan.events] == [EventType.STATUS_UPDATE]


# ---------------------------------------------------------------- courier updates


def test_courier_update_data_is_product_2_3() -> None:
    body = sample("courier_update")
    current = order_state(document=sample("new_order"), courier=sample("new_order")["courier"])
    plan = plan_courier_update(current, body, [webhook(accounts=("*",))], LATER, SequentialIds())
    [event] = plan.events
    assert event.type == EventType.COURIER_UPDATE
    assert event.status == 83
    assert event.sequence == 2
    assert event.data == {
        "orderId": current.order_id,
        "location": current.location,
        "account": current.account,
        "received": "2026-11-28T12:21:03.000000Z",
        "status": 83,
        "courier": {
            "deliveryBy": "channel",
            "firstName": "Jonas",
            "lastName": "P.",
            "phoneNumber": "+32471111111",
            "status": 83,
        },
        "pickupTime": "2026-11-28T12:24:00.000000Z",
        "deliveryTime": "2026-11-28T12:41:00.000000Z",
        "trackingURL": "https://track.example.com/t/8f2c",
        "coordinates": {"latitude": 51.0499, "longitude": 3.7301},
        "updatedOrigin": 6,
    }
    assert plan.order.courier == event.data["courier"]
    assert plan.order.document["courier"] == event.data["courier"]
    assert plan.order.next_sequence == 3
    assert [d.webhook_id for d in plan.deliveries] == ["wh_1"]


def test_courier_update_fills_what_the_body_lacks() -> None:
    document = order_document(pickupTime="2026-11-28T12:20:00Z")
    current = order_state(document=document, courier={"firstName": "Ana", "status": 73})
    plan = plan_courier_update(current, {"status": 85}, [], LATER, SequentialIds())
    data = plan.events[0].data
    assert data["received"] == format_timestamp(LATER)
    assert data["courier"] == {"firstName": "Ana", "status": 85}
    assert data["pickupTime"] == "2026-11-28T12:20:00Z"
    assert data["deliveryTime"] is None
    assert data["trackingURL"] is None


def test_courier_status_comes_from_the_courier_when_the_body_has_none() -> None:
    plan = plan_courier_update(
        order_state(), {"courier": {"status": 87, "firstName": "J"}}, [], LATER, SequentialIds()
    )
    assert plan.events[0].status == 87
    assert plan.events[0].data["status"] == 87


def test_courier_update_without_any_status_passes_only_empty_filters() -> None:
    hooks = [webhook(id="wh_all"), webhook(id="wh_83", courier_status_filter=(83,))]
    update = {"courier": {"firstName": "J"}}
    plan = plan_courier_update(order_state(), update, hooks, LATER, SequentialIds())
    assert plan.events[0].status is None
    assert [d.webhook_id for d in plan.deliveries] == ["wh_all"]


def test_courier_update_keeps_the_order_status_and_extra_fields() -> None:
    plan = plan_courier_update(order_state(), {"status": 90, "eta": 5}, [], LATER, SequentialIds())
    assert plan.order.status == 10
    assert plan.order.max_flow_status == 10
    assert plan.events[0].data["eta"] == 5


# ---------------------------------------------------------------- properties

updates = st.lists(
    st.one_of(
        st.tuples(st.just("status"), st.sampled_from([1, 10, 20, 25, 50, 70, 90, 95, 110, 120])),
        st.tuples(st.just("courier"), st.sampled_from([73, 83, 90, 115])),
    ),
    max_size=12,
)


@given(st.sampled_from([1, 10, 20, 50, 110]), updates)
def test_sequences_run_from_one_without_gaps_and_triggers_fire_once(
    arrival: int, steps: list[tuple[str, int]]
) -> None:
    hooks = [
        webhook(id="wh_plain"),
        webhook(id="wh_20", new_order_trigger=20),
        webhook(id="wh_70", new_order_trigger=70),
    ]
    ids = SequentialIds()
    plan = plan_new_order(None, order_document(status=arrival), "h", hooks, NOW, ids)
    events = list(plan.events)
    deliveries = list(plan.deliveries)
    for kind, status in steps:
        planner = plan_status_update if kind == "status" else plan_courier_update
        plan = planner(plan.order, {"status": status}, hooks, LATER, ids)
        events.extend(plan.events)
        deliveries.extend(plan.deliveries)

    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert plan.order.next_sequence == len(events) + 1
    assert [e.id for e in events] == sorted(e.id for e in events)
    for before, after in itertools.pairwise(events):
        if before.type == EventType.NEW and before.sequence > 1:
            # a triggered order.new comes right before the status update that caused it
            assert after.type == EventType.STATUS_UPDATE
            assert after.status == before.status
    for hook in hooks:
        news = [d for d in deliveries if d.webhook_id == hook.id and d.event.type == "order.new"]
        assert len(news) <= 1
        reached = [arrival, *(s for kind, s in steps if kind == "status")]
        flow = [s for s in reached if s < 100]
        trigger = hook.new_order_trigger
        expected = 1 if trigger is None or (flow and max(flow) >= trigger) else 0
        assert len(news) == expected
