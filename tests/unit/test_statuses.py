"""Status codes of docs/events.md#status-codes."""

from __future__ import annotations

from orderhooks.domain.statuses import CourierStatus, OrderStatus, is_normal_flow, is_valid_status


def test_every_order_status_of_the_product_is_known() -> None:
    expected = {
        "PARSED": 1, "RECEIVED": 2, "NEW": 10, "ACCEPTED": 20, "SCHEDULED": 25,
        "DUPLICATE": 30, "PRINTED": 40, "PREPARING": 50, "PREPARED": 60,
        "READY_FOR_PICKUP": 70, "IN_DELIVERY": 80, "FINALIZED": 90, "AUTO_FINALIZED": 95,
        "CANCEL": 100, "CANCELED": 110, "DELIVERY_CANCELED": 115, "FAILED": 120,
        "POS_RECEIVED_FAILED": 121, "PARSE_FAILED": 124,
    }  # fmt: skip
    assert {s.name: s.value for s in OrderStatus} == expected


def test_every_courier_status_of_the_product_is_known() -> None:
    expected = {
        "COURIER_ASSIGNED": 73, "NO_COURIER_FOUND": 76, "DELIVERY_CREATED": 81,
        "EN_ROUTE_TO_PICKUP": 83, "ALMOST_AT_PICKUP": 84, "ARRIVED_AT_PICKUP": 85,
        "EN_ROUTE_TO_DROPOFF": 87, "ARRIVED_AT_DROPOFF": 89, "DELIVERED": 90,
        "DELIVERY_CANCELED": 115,
    }  # fmt: skip
    assert {s.name: s.value for s in CourierStatus} == expected


def test_normal_flow_is_below_100() -> None:
    assert is_normal_flow(0)
    assert is_normal_flow(OrderStatus.AUTO_FINALIZED)
    assert is_normal_flow(99)
    assert not is_normal_flow(OrderStatus.CANCEL)
    assert not is_normal_flow(124)
    assert not is_normal_flow(-1)


def test_valid_status_is_an_integer_from_0_to_999() -> None:
    assert is_valid_status(0)
    assert is_valid_status(999)
    assert is_valid_status(555)  # unknown statuses are legal
    assert not is_valid_status(1000)
    assert not is_valid_status(-1)
    assert not is_valid_status(True)
    assert not is_valid_status(20.0)
    assert not is_valid_status("20")
