"""Synthetic events for the "send test" button: shaped like real ones, marked `test`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orderhooks.domain.envelope import format_timestamp
from orderhooks.domain.ids import new_id
from orderhooks.domain.model import ALL_ACCOUNTS, Event, EventType, Webhook
from orderhooks.domain.statuses import CourierStatus, OrderStatus

TEST_ACCOUNT = "test-account"
TEST_LOCATION = "test-location"
TEST_CHANNEL_LINK = "test-channel-link"
_TEST_ITEM = {
    "plu": "TEST-01",
    "name": "Test item",
    "price": 1000,
    "quantity": 1,
    "productType": 1,
    "subItems": [],
}


def _scope_of(webhook: Webhook) -> tuple[str, str, str, int]:
    """An account, location, channel link and channel the webhook's filters accept."""
    accounts = [a for a in webhook.accounts if a != ALL_ACCOUNTS]
    return (
        accounts[0] if accounts else TEST_ACCOUNT,
        webhook.locations[0] if webhook.locations else TEST_LOCATION,
        webhook.channel_links[0] if webhook.channel_links else TEST_CHANNEL_LINK,
        webhook.channels[0] if webhook.channels else 1,
    )


def _order_document(
    order_id: str, scope: tuple[str, str, str, int], status: int, stamp: str
) -> dict[str, Any]:
    account, location, channel_link, channel = scope
    return {
        "_id": order_id,
        "account": account,
        "location": location,
        "channelLink": channel_link,
        "channel": channel,
        "channelOrderId": "TEST-1",
        "channelOrderDisplayId": "TEST-1",
        "status": status,
        "statusHistory": [{"timeStamp": stamp, "status": status, "response": "", "source": 1}],
        "orderType": 2,
        "decimalDigits": 2,
        "items": [_TEST_ITEM],
        "payment": {"amount": 1000, "type": 0, "due": 0, "rebate": 0},
        "testOrder": True,
    }


def test_event(webhook: Webhook, event_type: EventType, now: datetime) -> Event:
    """A test event of `event_type` that the webhook's filters would accept."""
    scope = _scope_of(webhook)
    order_id = new_id("test").replace("_", "-")
    stamp = format_timestamp(now)
    status: int
    data: dict[str, Any]
    if event_type == EventType.NEW:
        status = webhook.new_order_trigger or OrderStatus.NEW
        data = _order_document(order_id, scope, status, stamp)
    elif event_type == EventType.STATUS_UPDATE:
        status = webhook.status_filter[0] if webhook.status_filter else OrderStatus.ACCEPTED
        data = {
            "orderId": order_id, "channelOrderId": "TEST-1", "location": scope[1],
            "account": scope[0], "status": status, "previousStatus": OrderStatus.NEW,
            "timeStamp": stamp, "reason": "", "isIgnoredPOSStatus": False,
        }  # fmt: skip
    else:
        status = (
            webhook.courier_status_filter[0]
            if webhook.courier_status_filter
            else CourierStatus.COURIER_ASSIGNED
        )
        courier = {"firstName": "Test", "lastName": "Courier", "phoneNumber": "",
                   "deliveryBy": "channel", "status": status}  # fmt: skip
        data = {
            "orderId": order_id, "location": scope[1], "account": scope[0], "received": stamp,
            "status": status, "courier": courier, "updatedOrigin": 0,
        }  # fmt: skip
    return Event(
        id=new_id("evt"),
        type=event_type,
        order_id=order_id,
        account=scope[0],
        location=scope[1],
        channel_link=scope[2],
        channel=scope[3],
        sequence=1,
        created_at=now,
        data=data,
        status=int(status),
        test=True,
    )
