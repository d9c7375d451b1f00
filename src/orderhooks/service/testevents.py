"""Synthetic events for `POST /v1/webhooks/{id}/test` (docs/guarantees.md, manual control):
realistic data, `"test": true`, never billed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from orderhooks.domain.envelope import format_timestamp
from orderhooks.domain.ids import new_id
from orderhooks.domain.model import ALL_ACCOUNTS, Event, EventType, Webhook

TEST_ACCOUNT = "test"
TEST_LOCATION = "test-location"
TEST_CHANNEL_LINK = "test-channel-link"
TEST_CHANNEL = 1
NEW_STATUS = 10  # NEW
ACCEPTED_STATUS = 20  # ACCEPTED
EN_ROUTE_TO_PICKUP = 83


def _order_document(order_id: str, account: str, location: str, now: datetime) -> dict[str, Any]:
    created = format_timestamp(now)
    return {
        "_id": order_id,
        "_created": created,
        "_updated": created,
        "account": account,
        "location": location,
        "channelLink": TEST_CHANNEL_LINK,
        "channelOrderId": "TEST-0001",
        "channelOrderDisplayId": "0001",
        "status": NEW_STATUS,
        "statusHistory": [
            {"timeStamp": created, "status": NEW_STATUS, "response": "", "source": 1}
        ],
        "by": "orderhooks",
        "orderType": 2,
        "channel": TEST_CHANNEL,
        "pickupTime": format_timestamp(now + timedelta(minutes=20)),
        "deliveryTime": format_timestamp(now + timedelta(minutes=40)),
        "deliveryIsAsap": True,
        "customer": {"name": "Test Customer", "phoneNumber": "+10000000000", "note": ""},
        "orderIsAlreadyPaid": True,
        "payment": {"amount": 2800, "type": 0, "due": 0, "rebate": 0},
        "taxes": [{"name": "VAT 6%", "taxClassId": 6, "total": 158}],
        "taxTotal": 158,
        "decimalDigits": 2,
        "deliveryCost": 250,
        "items": [
            {
                "plu": "TEST-01",
                "name": "Test Burger",
                "price": 1150,
                "quantity": 2,
                "productType": 1,
                "subItems": [
                    {
                        "plu": "TEST-MOD",
                        "name": "Extra cheese",
                        "price": 100,
                        "quantity": 1,
                        "productType": 2,
                        "subItems": [],
                    }
                ],
            },
            {
                "plu": "TEST-02",
                "name": "Sparkling water",
                "price": 250,
                "quantity": 1,
                "productType": 1,
                "subItems": [],
            },
        ],
        "testOrder": True,
    }


def _status_update(order_id: str, account: str, location: str, now: datetime) -> dict[str, Any]:
    return {
        "orderId": order_id,
        "channelOrderId": "TEST-0001",
        "location": location,
        "account": account,
        "status": ACCEPTED_STATUS,
        "previousStatus": NEW_STATUS,
        "timeStamp": format_timestamp(now),
        "reason": "",
        "isIgnoredPOSStatus": False,
    }


def _courier_update(order_id: str, account: str, location: str, now: datetime) -> dict[str, Any]:
    courier = {
        "firstName": "Test",
        "lastName": "Courier",
        "phoneNumber": "+10000000001",
        "deliveryBy": "channel",
        "status": EN_ROUTE_TO_PICKUP,
    }
    return {
        "orderId": order_id,
        "location": location,
        "account": account,
        "received": format_timestamp(now),
        "status": EN_ROUTE_TO_PICKUP,
        "courier": courier,
        "pickupTime": format_timestamp(now + timedelta(minutes=5)),
        "deliveryTime": format_timestamp(now + timedelta(minutes=25)),
        "trackingURL": "https://track.example.com/test",
        "coordinates": {"latitude": 51.05, "longitude": 3.72},
        "updatedOrigin": 6,
    }


def synthetic_event(webhook: Webhook, event_type: EventType, now: datetime) -> Event:
    """A test event of `event_type` for the webhook's first account (or `test`), inside
    its location, channel link and channel filters so that it looks like real traffic."""
    account = next((a for a in webhook.accounts if a != ALL_ACCOUNTS), TEST_ACCOUNT)
    location = webhook.locations[0] if webhook.locations else TEST_LOCATION
    channel_link = webhook.channel_links[0] if webhook.channel_links else TEST_CHANNEL_LINK
    channel = webhook.channels[0] if webhook.channels else TEST_CHANNEL
    order_id = new_id("test")
    status = _STATUS_OF[event_type]
    if event_type is EventType.NEW:
        data = _order_document(order_id, account, location, now)
        data.update(channelLink=channel_link, channel=channel)
    elif event_type is EventType.STATUS_UPDATE:
        data = _status_update(order_id, account, location, now)
    else:
        data = _courier_update(order_id, account, location, now)
    return Event(
        id=new_id("evt"),
        type=event_type,
        order_id=order_id,
        account=account,
        location=location,
        channel_link=channel_link,
        channel=channel,
        sequence=1,
        created_at=now,
        data=data,
        status=status,
        test=True,
    )


_STATUS_OF = {
    EventType.NEW: NEW_STATUS,
    EventType.STATUS_UPDATE: ACCEPTED_STATUS,
    EventType.COURIER_UPDATE: EN_ROUTE_TO_PICKUP,
}
