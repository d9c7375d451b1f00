"""The project's sample payloads as the events ingest makes of them (real ingest code)."""

from __future__ import annotations

from orderhooks.domain.ingest import plan_courier_update, plan_new_order, plan_status_update
from orderhooks.domain.model import Event
from tests.support.data import sample
from tests.support.factories import NOW, SequentialIds


def sample_events() -> tuple[Event, Event, Event]:
    """`order.new`, `order.status_update` and `order.courier_update` of the sample order."""
    ids = SequentialIds()
    arrival = plan_new_order(None, sample("new_order"), "hash-1", [], NOW, ids)
    status = plan_status_update(arrival.order, sample("status_update"), [], NOW, ids)
    courier = plan_courier_update(status.order, sample("courier_update"), [], NOW, ids)
    [new_order] = arrival.events
    [status_update] = status.events
    [courier_update] = courier.events
    return new_order, status_update, courier_update
