"""Order and courier status codes (PRODUCT 2.2)."""

from __future__ import annotations

from enum import IntEnum

PROBLEM_STATUS_MIN = 100  # statuses from here on are problems and never trigger order.new
MAX_STATUS = 999


class OrderStatus(IntEnum):
    """Known order statuses; any other integer 0-999 is legal too."""


class CourierStatus(IntEnum):
    """Known courier statuses."""


def is_normal_flow(status: int) -> bool:
    """Whether `status` belongs to the normal flow (below 100)."""
    raise NotImplementedError
