"""Test data every folder uses: fresh names, the one order builder, update bodies, the
product's sample payloads and a price list."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The product's sample payloads, as kept in the repository for the tests.
SAMPLES = Path(__file__).resolve().parents[1] / "unit" / "fixtures"
ALL_TYPES = ["order.new", "order.status_update", "order.courier_update"]
# Every event type a webhook can subscribe to: the order events, then the operational ones.
EVENT_TYPES = [
    *ALL_TYPES,
    "webhook.failing",
    "webhook.recovered",
    "webhook.disabled",
    "delivery.failed",
]
# The top-level fields of an envelope payload, in the order the envelope has them.
ENVELOPE_KEYS = (
    "id",
    "type",
    "timestamp",
    "account",
    "location",
    "orderId",
    "sequence",
    "test",
    "data",
)
PER_THOUSAND = {"order.new": 500, "order.status_update": 100, "order.courier_update": 100}
PRICING = {"currency": "EUR", "perThousand": PER_THOUSAND}


def unique(prefix: str) -> str:
    """A fresh name made of characters every id field accepts, so that tests sharing a
    server or a store never see each other's data."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def stamp(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_now() -> str:
    """Now, RFC 3339 UTC with microseconds."""
    return stamp(datetime.now(UTC))


def sample(name: str) -> dict[str, Any]:
    """A fresh copy of a sample payload of the product (`new_order`, `status_update`, ...)."""
    return copy.deepcopy(json.loads((SAMPLES / f"{name}.json").read_text()))


def new_order(account: str, order_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """A valid new order of `account` (Deliverect's order model), small enough for a batch
    of 1,000 under the default body limit: location `loc-1`, channel link `cl-1`, channel
    7, status 10, a status history, two items (one with a sub-item), and a field orderhooks
    does not know (`packaging`), which it must pass through. `fields` replace top-level
    fields."""
    order: dict[str, Any] = {
        "_id": order_id or uuid.uuid4().hex[:24],
        "account": account,
        "location": "loc-1",
        "channelLink": "cl-1",
        "channel": 7,
        "status": 10,
        "statusHistory": [
            {"timeStamp": "2026-11-28T11:58:01.902000Z", "status": 1, "response": "", "source": 5},
            {"timeStamp": "2026-11-28T11:58:02.114000Z", "status": 10, "response": "", "source": 1},
        ],
        "orderType": 2,
        "channelOrderId": "UE-7781-40392",
        "channelOrderDisplayId": "40392",
        "decimalDigits": 2,
        "deliveryIsAsap": True,
        "pickupTime": "2026-11-28T12:20:00.000000Z",
        "customer": {"name": "Ana Silva", "phoneNumber": "+32470000000"},
        "payment": {"amount": 2650, "type": 0, "due": 0, "rebate": 0},
        "items": [
            {
                "plu": "BRG-01",
                "name": "Classic Burger",
                "price": 1150,
                "quantity": 2,
                "productType": 1,
                "subItems": [
                    {
                        "plu": "MOD-CHS",
                        "name": "Extra cheese",
                        "price": 100,
                        "quantity": 1,
                        "productType": 2,
                        "subItems": [],
                    }
                ],
            },
            {
                "plu": "DRN-03",
                "name": "Sparkling water",
                "price": 250,
                "quantity": 1,
                "productType": 1,
                "subItems": [],
            },
        ],
        "packaging": {"includeCutlery": False},  # unknown to orderhooks: passed through
    }
    order.update(fields)
    return order


def courier_body(status: int = 83, received: str | None = None) -> dict[str, Any]:
    """A valid courier update body, received now unless told."""
    return {
        "status": status,
        "received": received or iso_now(),
        "courier": {
            "firstName": "Jonas",
            "lastName": "P.",
            "phoneNumber": "+32471111111",
            "deliveryBy": "channel",
            "status": status,
        },
        "trackingURL": "https://track.example.com/t/8f2c",
    }
