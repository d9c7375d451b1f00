"""Routing (docs/api.md, webhooks): type, scope, filters, state and newOrderTrigger."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderhooks.domain.model import ALL_ACCOUNTS, EventType, WebhookState
from orderhooks.domain.routing import (
    replay_selection,
    route_event,
    trigger_fires,
    triggered_webhooks,
    wants,
    wants_new_order,
)
from tests.support.factories import ALL_TYPES, event, webhook

names = st.sampled_from(["a", "b", "c", "d"])
small_ints = st.integers(min_value=0, max_value=5)
statuses = st.integers(min_value=0, max_value=999)
event_types = st.sampled_from(ALL_TYPES)


@st.composite
def events(draw: st.DrawFn) -> Any:
    """Any event with a drawn type, scope and status (None for some courier updates)."""
    kind = draw(event_types)
    status = draw(st.none() | statuses) if kind == EventType.COURIER_UPDATE else draw(statuses)
    return event(
        type=kind,
        account=draw(names),
        location=draw(names),
        channel_link=draw(names),
        channel=draw(small_ints),
        status=status,
    )


# ---------------------------------------------------------------- properties


@given(events())
def test_empty_filters_and_matching_scope_always_want_the_event(evt: Any) -> None:
    hook = webhook(accounts=(evt.account,), event_types=(evt.type,))
    assert wants(hook, evt)
    assert wants(webhook(accounts=(ALL_ACCOUNTS,), event_types=(evt.type,)), evt)


@given(
    events(),
    st.lists(names, max_size=3),
    st.lists(names, max_size=3),
    st.lists(names, max_size=3),
    st.lists(small_ints, max_size=3),
    st.lists(event_types, min_size=1, max_size=3),
    st.lists(statuses, max_size=3),
    st.lists(statuses, max_size=3),
)
def test_wants_is_exactly_set_membership(
    evt: Any,
    accounts: list[str],
    locations: list[str],
    channel_links: list[str],
    channels: list[int],
    types: list[EventType],
    status_filter: list[int],
    courier_filter: list[int],
) -> None:
    hook = webhook(
        accounts=tuple(accounts),
        locations=tuple(locations),
        channel_links=tuple(channel_links),
        channels=tuple(channels),
        event_types=tuple(types),
        status_filter=tuple(status_filter),
        courier_status_filter=tuple(courier_filter),
    )
    expected_filter: list[int] = []
    if evt.type == EventType.STATUS_UPDATE:
        expected_filter = status_filter
    elif evt.type == EventType.COURIER_UPDATE:
        expected_filter = courier_filter
    expected = (
        evt.type in types
        and evt.account in accounts
        and (not locations or evt.location in locations)
        and (not channel_links or evt.channel_link in channel_links)
        and (not channels or evt.channel in channels)
        and (not expected_filter or evt.status in expected_filter)
    )
    assert wants(hook, evt) == expected


@given(events(), st.sampled_from(list(WebhookState)))
def test_only_active_webhooks_get_events(evt: Any, state: WebhookState) -> None:
    hook = webhook(accounts=(evt.account,), state=state)
    assert (route_event(evt, [hook]) == [hook]) == (state == WebhookState.ACTIVE)


@given(st.integers(0, 99), st.lists(st.integers(0, 999), max_size=12), st.integers(0, 999))
def test_a_trigger_fires_at_most_once_along_any_status_path(
    trigger: int, path: list[int], arrival: int
) -> None:
    # On arrival the order.new goes out when the trigger is already satisfied; after that
    # the trigger may fire once, and never again, whatever the statuses do.
    sent = 1 if wants_new_order(webhook(new_order_trigger=trigger), event(status=arrival)) else 0
    max_flow = arrival if arrival < 100 else -1
    for status in path:
        if trigger_fires(trigger, max_flow, status):
            sent += 1
        if status < 100:
            max_flow = max(max_flow, status)
    assert sent <= 1
    reached = max([s for s in [arrival, *path] if s < 100], default=-1)
    assert sent == (1 if reached >= trigger else 0)


@given(st.integers(0, 999), st.integers(-1, 99), st.integers(100, 999))
def test_problem_statuses_never_fire_a_trigger(trigger: int, previous: int, status: int) -> None:
    assert not trigger_fires(trigger, previous, status)


# ---------------------------------------------------------------- examples


def test_type_must_be_subscribed() -> None:
    hook = webhook(event_types=(EventType.NEW,))
    assert not wants(hook, event(type=EventType.STATUS_UPDATE))
    assert wants(hook, event(type=EventType.NEW))


def test_account_scope_and_wildcard() -> None:
    assert not wants(webhook(accounts=("other",)), event(account="acc1"))
    assert wants(webhook(accounts=("other", "acc1")), event(account="acc1"))
    assert wants(webhook(accounts=(ALL_ACCOUNTS,)), event(account="anything"))


@pytest.mark.parametrize(
    ("narrowing", "matching", "other"),
    [
        ({"locations": ("loc1",)}, {"location": "loc1"}, {"location": "loc2"}),
        ({"channel_links": ("cl1",)}, {"channel_link": "cl1"}, {"channel_link": "cl2"}),
        ({"channels": (7,)}, {"channel": 7}, {"channel": 8}),
    ],
)
def test_narrowing_lists(
    narrowing: dict[str, Any], matching: dict[str, Any], other: dict[str, Any]
) -> None:
    hook = webhook(**narrowing)
    assert wants(hook, event(**matching))
    assert not wants(hook, event(**other))


def test_status_filter_applies_to_status_updates_only() -> None:
    hook = webhook(status_filter=(20, 90))
    assert wants(hook, event(type=EventType.STATUS_UPDATE, status=20))
    assert not wants(hook, event(type=EventType.STATUS_UPDATE, status=50))
    assert wants(hook, event(type=EventType.NEW, status=50))
    assert wants(hook, event(type=EventType.COURIER_UPDATE, status=50))


def test_courier_filter_applies_to_courier_updates_only() -> None:
    hook = webhook(courier_status_filter=(83,))
    assert wants(hook, event(type=EventType.COURIER_UPDATE, status=83))
    assert not wants(hook, event(type=EventType.COURIER_UPDATE, status=90))
    assert not wants(hook, event(type=EventType.COURIER_UPDATE, status=None))
    assert wants(webhook(), event(type=EventType.COURIER_UPDATE, status=None))
    assert wants(hook, event(type=EventType.STATUS_UPDATE, status=90))


def test_arriving_order_new_respects_the_trigger() -> None:
    untriggered = webhook(id="wh_none")
    accepted = webhook(id="wh_20", new_order_trigger=20)
    ready = webhook(id="wh_70", new_order_trigger=70)
    arrival = event(type=EventType.NEW, status=50)
    assert route_event(arrival, [untriggered, accepted, ready]) == [untriggered, accepted]


def test_arriving_order_new_at_a_problem_status_satisfies_no_trigger() -> None:
    hooks = [webhook(id="wh_none"), webhook(id="wh_20", new_order_trigger=20)]
    assert [h.id for h in route_event(event(type=EventType.NEW, status=110), hooks)] == ["wh_none"]


def test_trigger_does_not_affect_other_event_types() -> None:
    hook = webhook(new_order_trigger=70)
    assert route_event(event(type=EventType.STATUS_UPDATE, status=20), [hook]) == [hook]


def test_route_keeps_the_webhooks_order() -> None:
    hooks = [webhook(id=f"wh_{n}") for n in range(5)]
    assert route_event(event(), hooks) == hooks


@pytest.mark.parametrize(
    ("trigger", "previous", "new", "fires"),
    [
        (20, -1, 20, True),
        (20, 10, 20, True),
        (20, 10, 50, True),  # a later normal-flow status satisfies it too
        (20, 10, 95, True),
        (20, 10, 10, False),
        (20, 20, 50, False),  # already reached: fired (or sent on arrival) before
        (20, 50, 30, False),
        (20, 10, 100, False),
        (20, 10, 110, False),
        (0, -1, 0, True),
    ],
)
def test_trigger_fires_examples(trigger: int, previous: int, new: int, fires: bool) -> None:
    assert trigger_fires(trigger, previous, new) is fires


def test_triggered_webhooks_need_active_state_scope_type_and_a_firing_trigger() -> None:
    hooks = [
        webhook(id="fires", new_order_trigger=20),
        webhook(id="no_trigger"),
        webhook(id="later", new_order_trigger=60),
        webhook(id="off", new_order_trigger=20, state=WebhookState.DISABLED),
        webhook(id="other_account", new_order_trigger=20, accounts=("acc2",)),
        webhook(id="no_new", new_order_trigger=20, event_types=(EventType.STATUS_UPDATE,)),
        webhook(id="filtered", new_order_trigger=20, status_filter=(90,)),
    ]
    triggered = event(type=EventType.NEW, status=50)
    fired = triggered_webhooks(triggered, 10, hooks)
    assert [h.id for h in fired] == ["fires", "filtered"]
    assert triggered_webhooks(triggered, 50, hooks) == []


def _order_history() -> list[Any]:
    """One order: arrival at 10, a triggered order.new at 50 (for a trigger-50 webhook),
    its status update, and a later status update."""
    return [
        event(id="e1", type=EventType.NEW, sequence=1, status=10),
        event(id="e2", type=EventType.NEW, sequence=2, status=50),
        event(id="e3", type=EventType.STATUS_UPDATE, sequence=3, status=50),
        event(id="e4", type=EventType.STATUS_UPDATE, sequence=4, status=90),
    ]


def test_replay_sends_a_webhook_without_trigger_only_the_arrival() -> None:
    picked = replay_selection(webhook(), _order_history(), set())
    assert [e.id for e in picked] == ["e1", "e3", "e4"]


@pytest.mark.parametrize("trigger", [20, 50])
def test_replay_sends_a_triggered_webhook_its_one_order_new(trigger: int) -> None:
    picked = replay_selection(webhook(new_order_trigger=trigger), _order_history(), set())
    assert [e.id for e in picked] == ["e2", "e3", "e4"]


def test_replay_remembers_chosen_order_news_across_pages() -> None:
    seen: set[str] = set()
    hook = webhook(new_order_trigger=20)
    first = replay_selection(hook, [event(id="a", type=EventType.NEW, sequence=2, status=20)], seen)
    later = replay_selection(hook, [event(id="b", type=EventType.NEW, sequence=4, status=50)], seen)
    assert [e.id for e in first] == ["a"]
    assert later == []
