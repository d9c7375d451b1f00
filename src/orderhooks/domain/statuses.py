"""Order and courier status codes (docs/events.md, status codes)."""

from __future__ import annotations

from enum import IntEnum

PROBLEM_STATUS_MIN = 100  # statuses from here on are problems and never trigger order.new
MAX_STATUS = 999


class OrderStatus(IntEnum):
    """Known order statuses; any other integer 0-999 is legal too."""

    PARSED = 1
    RECEIVED = 2
    NEW = 10
    ACCEPTED = 20
    SCHEDULED = 25
    DUPLICATE = 30
    PRINTED = 40
    PREPARING = 50
    PREPARED = 60
    READY_FOR_PICKUP = 70
    IN_DELIVERY = 80
    FINALIZED = 90
    AUTO_FINALIZED = 95
    CANCEL = 100
    CANCELED = 110
    DELIVERY_CANCELED = 115
    FAILED = 120
    POS_RECEIVED_FAILED = 121
    PARSE_FAILED = 124


class CourierStatus(IntEnum):
    """Known courier statuses."""

    COURIER_ASSIGNED = 73
    NO_COURIER_FOUND = 76
    DELIVERY_CREATED = 81
    EN_ROUTE_TO_PICKUP = 83
    ALMOST_AT_PICKUP = 84
    ARRIVED_AT_PICKUP = 85
    EN_ROUTE_TO_DROPOFF = 87
    ARRIVED_AT_DROPOFF = 89
    DELIVERED = 90
    DELIVERY_CANCELED = 115


def is_normal_flow(status: int) -> bool:
    """Whether `status` belongs to the normal flow (below 100)."""
    return 0 <= status < PROBLEM_STATUS_MIN


def is_valid_status(value: object) -> bool:
    """Whether `value` is a legal status code: an int (not a bool) from 0 to 999."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_STATUS
