"""An order's life as people read it: status timeline, milestones and courier progress."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from orderhooks.domain.lenient import int_or_none, timestamp_or_none
from orderhooks.domain.model import Event, EventType
from orderhooks.domain.statuses import PROBLEM_STATUS_MIN, CourierStatus, OrderStatus

# The moments that split an order's life into the spans kitchens and couriers care about.
RECEIVED = "received"
ACCEPTED = "accepted"
PREPARED = "prepared"
PICKED_UP = "picked up"
DELIVERED = "delivered"
MILESTONE_ORDER = (RECEIVED, ACCEPTED, PREPARED, PICKED_UP, DELIVERED)
_ORDER_MILESTONES: dict[int, str] = {
    OrderStatus.ACCEPTED: ACCEPTED,
    OrderStatus.PREPARED: PREPARED,
    OrderStatus.IN_DELIVERY: PICKED_UP,
    OrderStatus.FINALIZED: DELIVERED,
    OrderStatus.AUTO_FINALIZED: DELIVERED,
}
_COURIER_MILESTONES: dict[int, str] = {
    CourierStatus.EN_ROUTE_TO_DROPOFF: PICKED_UP,
    CourierStatus.DELIVERED: DELIVERED,
}


def _label(enum: type[OrderStatus] | type[CourierStatus], code: int | None) -> str:
    if code is None:
        return "—"
    try:
        name = enum(code).name.replace("_", " ").capitalize()
    except ValueError:
        return f"Status {code}"
    return f"{name} ({code})"


def status_label(code: int | None) -> str:
    """`Accepted (20)`; unknown statuses are legal and shown by number."""
    return _label(OrderStatus, code)


def courier_label(code: int | None) -> str:
    """`En route to pickup (83)`."""
    return _label(CourierStatus, code)


@dataclass(frozen=True, slots=True)
class TimelineStep:
    """One status the order went through and the time spent since the previous one."""

    status: int | None
    label: str
    at: datetime | None
    since_previous: timedelta | None
    problem: bool


@dataclass(frozen=True, slots=True)
class CourierStep:
    """One courier update: its status, who, when, and where to follow it."""

    status: int | None
    label: str
    at: datetime | None
    courier_name: str
    tracking_url: str | None
    since_previous: timedelta | None


@dataclass(frozen=True, slots=True)
class Span:
    """The time between two milestones, such as accepted → prepared."""

    start: str
    end: str
    duration: timedelta


def status_timeline(history: Sequence[Mapping[str, Any]]) -> list[TimelineStep]:
    """The status history in order, each step with the time since the one before."""
    steps: list[TimelineStep] = []
    previous: datetime | None = None
    for entry in history:
        status = int_or_none(entry.get("status"))
        at = timestamp_or_none(entry.get("timeStamp"))
        since = at - previous if at is not None and previous is not None else None
        steps.append(
            TimelineStep(
                status=status,
                label=status_label(status),
                at=at,
                since_previous=since,
                problem=status is not None and status >= PROBLEM_STATUS_MIN,
            )
        )
        previous = at if at is not None else previous
    return steps


def _courier_name(courier: Any) -> str:
    if not isinstance(courier, Mapping):
        return ""
    parts = (courier.get("firstName"), courier.get("lastName"))
    return " ".join(p for p in parts if isinstance(p, str) and p)


def courier_progress(events: Sequence[Event]) -> list[CourierStep]:
    """The order's courier updates in sequence order."""
    steps: list[CourierStep] = []
    previous: datetime | None = None
    for event in sorted(events, key=lambda e: e.sequence or 0):
        if event.type != EventType.COURIER_UPDATE:
            continue
        data = event.data
        status = int_or_none(data.get("status"))
        at = timestamp_or_none(data.get("received")) or event.created_at
        url = data.get("trackingURL")
        steps.append(
            CourierStep(
                status=status,
                label=courier_label(status),
                at=at,
                courier_name=_courier_name(data.get("courier")),
                tracking_url=url if isinstance(url, str) and url.startswith("https://") else None,
                since_previous=at - previous if previous is not None else None,
            )
        )
        previous = at
    return steps


def milestones(
    steps: Sequence[TimelineStep], courier: Sequence[CourierStep]
) -> dict[str, datetime]:
    """The first time the order reached each milestone it reached."""
    reached: dict[str, datetime] = {}
    timed = [s for s in steps if s.at is not None]
    if timed and timed[0].at is not None:
        reached[RECEIVED] = timed[0].at
    candidates: list[tuple[str, datetime]] = []
    for step in timed:
        name = _ORDER_MILESTONES.get(step.status) if step.status is not None else None
        if name and step.at is not None:
            candidates.append((name, step.at))
    for c in courier:
        name = _COURIER_MILESTONES.get(c.status) if c.status is not None else None
        if name and c.at is not None:
            candidates.append((name, c.at))
    for name, at in sorted(candidates, key=lambda pair: pair[1]):
        reached.setdefault(name, at)
    return reached


def milestone_spans(reached: Mapping[str, datetime]) -> list[Span]:
    """Time between consecutive milestones the order reached, in the order of its life."""
    present = [name for name in MILESTONE_ORDER if name in reached]
    spans = []
    for start, end in pairwise(present):
        duration = reached[end] - reached[start]
        if duration >= timedelta(0):
            spans.append(Span(start=start, end=end, duration=duration))
    return spans
