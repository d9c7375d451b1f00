"""Simulated orders: the documents, status updates and courier updates, and their pace.

Shaped like the Deliverect order model (docs/events.md, the order document). Accounts and
locations depend only on the seed; order ids are always new.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

CANCEL_PROBABILITY = 0.05
CANCELLED = 110
IN_DELIVERY = 80
FINALIZED = 90
PICKUP, DELIVERY = 1, 2
CHANNELS = (1, 7, 10, 15)  # a few ordering channels, as integers
CITY_CENTRE = (51.0543, 3.7174)  # where the simulated stores are (degrees)

# The menu: (plu, name, price in minor units, product type); type 2 are modifiers.
MENU = (
    ("BRG-01", "Classic Burger", 1150, 1),
    ("BRG-02", "Veggie Burger", 1250, 1),
    ("PIZ-01", "Margherita", 1090, 1),
    ("PIZ-02", "Diavola", 1390, 1),
    ("SAL-01", "Caesar Salad", 990, 1),
    ("FRI-01", "Fries", 350, 1),
    ("DRN-01", "Cola 33cl", 280, 1),
    ("DRN-03", "Sparkling water 33cl", 250, 1),
    ("DES-01", "Brownie", 450, 1),
)
MODIFIERS = (("MOD-CHS", "Extra cheese", 100, 2), ("MOD-BAC", "Bacon", 150, 2))
FIRST_NAMES = ("Ana", "Jonas", "Lea", "Tom", "Sofia", "Milan", "Nora", "Arne")


@dataclass(frozen=True, slots=True)
class Site:
    """One simulated store: its account, location id and channel link, and where it is."""

    account: str
    location: str
    channel_link: str
    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True)
class Step:
    """One thing that happens to an order `delay` seconds after the previous one."""

    delay: float
    event_type: str  # order.status_update or order.courier_update
    status: int


def stable_id(seed: int, *parts: object) -> str:
    """A 24-hex id (like the order platform's) that depends only on the seed and parts."""
    text = ":".join(str(p) for p in ("orderhooks-simulate", seed, *parts))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def account_ids(seed: int, count: int) -> tuple[str, ...]:
    """The simulated accounts for a seed."""
    return tuple(stable_id(seed, "account", i) for i in range(count))


def make_sites(seed: int, accounts: tuple[str, ...], per_account: int) -> tuple[Site, ...]:
    """The simulated stores: `per_account` locations of each account, spread over a city."""
    rng = random.Random(seed)
    return tuple(
        Site(
            account=account,
            location=stable_id(seed, account, "location", i),
            channel_link=stable_id(seed, account, "channel-link", i),
            latitude=round(CITY_CENTRE[0] + rng.uniform(-0.03, 0.03), 5),
            longitude=round(CITY_CENTRE[1] + rng.uniform(-0.05, 0.05), 5),
        )
        for account in accounts
        for i in range(per_account)
    )


def iso(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds, as the order platform writes timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _items(rng: random.Random) -> list[dict[str, Any]]:
    items = []
    for sort_order, (plu, name, price, product_type) in enumerate(
        rng.sample(MENU, rng.randint(1, 4))
    ):
        sub_items = [
            {"plu": m[0], "name": m[1], "price": m[2], "quantity": 1, "productType": m[3],
             "isInternal": False, "subItems": []}
            for m in MODIFIERS
            if plu.startswith("BRG") and rng.random() < 0.3
        ]  # fmt: skip
        items.append(
            {"plu": plu, "name": name, "price": price, "quantity": rng.randint(1, 3),
             "productType": product_type, "isInternal": False, "sortOrder": sort_order,
             "remark": "", "subItems": sub_items}
        )  # fmt: skip
    return items


def _subtotal(items: list[dict[str, Any]]) -> int:
    return sum(
        (item["price"] + sum(sub["price"] * sub["quantity"] for sub in item["subItems"]))
        * item["quantity"]
        for item in items
    )


def new_order_document(
    rng: random.Random, site: Site, order_id: str, now: datetime
) -> dict[str, Any]:
    """A new order (status 10) like the example in docs/events.md#a-new-order, with random
    contents."""
    order_type = DELIVERY if rng.random() < 0.6 else PICKUP
    items = _items(rng)
    delivery_cost = 299 if order_type == DELIVERY else 0
    tip, bag_fee = rng.choice((0, 0, 100, 150)), 10
    discount = -rng.choice((0, 0, 0, 200))
    total = _subtotal(items) + delivery_cost + bag_fee + tip + discount
    tax = round(total * 6 / 106)  # 6 % VAT, included in the prices
    ready = now + timedelta(minutes=rng.randint(15, 30))
    channel_order = rng.randint(10_000, 99_999)
    name = rng.choice(FIRST_NAMES)
    document: dict[str, Any] = {
        "_id": order_id, "_created": iso(now), "_updated": iso(now),
        "account": site.account, "location": site.location,
        "channelLink": site.channel_link,
        "channelOrderId": f"SIM-{channel_order}", "channelOrderDisplayId": str(channel_order),
        "posId": "", "posReceiptId": "", "posLocationId": f"store-{site.location[:4]}",
        "status": 10,
        "statusHistory": [
            {"timeStamp": iso(now), "status": 1, "response": "", "source": 5},
            {"timeStamp": iso(now), "status": 10, "response": "", "source": 1},
        ],
        "by": "app", "orderType": order_type, "channel": rng.choice(CHANNELS),
        "pickupTime": iso(ready), "deliveryTime": iso(ready + timedelta(minutes=20)),
        "deliveryIsAsap": True,
        "customer": {"name": name, "companyName": "", "phoneNumber": "+32470000000",
                     "email": f"{name.lower()}@example.com", "note": "", "tin": ""},
        "orderIsAlreadyPaid": True,
        "payment": {"amount": total, "type": 0, "due": 0, "rebate": 0},
        "taxes": [{"name": "VAT 6%", "taxClassId": 6, "total": tax}], "taxTotal": tax,
        "note": "", "decimalDigits": 2, "numberOfCustomers": 1, "serviceCharge": 0,
        "deliveryCost": delivery_cost, "bagFee": bag_fee, "tip": tip, "driverTip": 0,
        "discountTotal": discount, "items": items, "testOrder": False,
    }  # fmt: skip
    if order_type == DELIVERY:
        document["courier"] = {"deliveryBy": "channel", "firstName": "", "lastName": "",
                               "phoneNumber": "", "status": 0}  # fmt: skip
        document["deliveryAddress"] = {
            "street": "Veldstraat", "streetNumber": str(rng.randint(1, 200)), "postalCode": "9000",
            "area": "", "city": "Gent", "country": "BE", "extraAddressInfo": "",
            "coordinates": {"latitude": round(site.latitude + rng.uniform(-0.02, 0.02), 5),
                            "longitude": round(site.longitude + rng.uniform(-0.03, 0.03), 5)},
        }  # fmt: skip
    return document


def order_steps(rng: random.Random, order_type: int) -> list[Step]:
    """What happens to an order after it arrives, with delays in seconds at speed 1."""
    status, courier = "order.status_update", "order.courier_update"
    if order_type == DELIVERY:
        plan = [
            (1, 3, status, 20), (0.5, 1.5, courier, 73), (1, 2, status, 50),
            (1, 2, courier, 83), (1, 3, status, 60), (1, 2, courier, 85),
            (0.5, 1, status, 70), (0.5, 1, status, IN_DELIVERY), (0.2, 0.5, courier, 87),
            (2, 4, courier, 89), (0.5, 1, courier, 90), (0.2, 0.5, status, FINALIZED),
        ]  # fmt: skip
    else:
        plan = [(1, 3, status, 20), (1, 3, status, 50), (2, 5, status, 60),
                (1, 2, status, 70), (2, 4, status, FINALIZED)]  # fmt: skip
    steps = [Step(rng.uniform(low, high), kind, code) for low, high, kind, code in plan]
    if rng.random() < CANCEL_PROBABILITY:
        # Cancelled early in its life: accepted or not, never once it is on its way.
        cut = rng.randint(0, 2)
        steps = [*steps[:cut], Step(rng.uniform(1, 3), status, CANCELLED)]
    return steps


def status_body(code: int, now: datetime) -> dict[str, Any]:
    """A status update like the example in docs/events.md#a-status-update."""
    reason = "customer cancelled" if code == CANCELLED else ""
    return {"status": code, "timeStamp": iso(now), "reason": reason, "isIgnoredPOSStatus": False}


def courier_body(
    rng: random.Random, code: int, document: dict[str, Any], site: Site, now: datetime
) -> dict[str, Any]:
    """A courier update like the example in docs/events.md#a-courier-update, the courier moving from
    the store to the customer."""
    destination = document["deliveryAddress"]["coordinates"]
    progress = {73: 0.0, 83: 0.0, 85: 0.0, 87: 0.5, 89: 1.0, 90: 1.0}.get(code, 0.0)
    if code == 83:  # on the way to the store: somewhere around it
        latitude, longitude = site.latitude + 0.004, site.longitude - 0.006
    else:
        latitude = site.latitude + (destination["latitude"] - site.latitude) * progress
        longitude = site.longitude + (destination["longitude"] - site.longitude) * progress
    courier = dict(document.get("courier") or {})
    if not courier.get("firstName"):
        courier.update(firstName=rng.choice(FIRST_NAMES), lastName="P.",
                       phoneNumber="+32471111111", deliveryBy="channel")  # fmt: skip
    courier["status"] = code
    document["courier"] = courier
    return {
        "received": iso(now), "status": code, "updatedOrigin": 6, "courier": courier,
        "pickupTime": document["pickupTime"], "deliveryTime": document["deliveryTime"],
        "trackingURL": f"https://track.example.com/t/{document['_id'][:8]}",
        "coordinates": {"latitude": round(latitude, 5), "longitude": round(longitude, 5)},
    }  # fmt: skip
