"""Validation of ingest bodies: the project's samples pass, every strictness rule bites."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderhooks.domain.orders import (
    MAX_ARRAY_ITEMS,
    MAX_STRING_CHARS,
    MAX_SUB_ITEM_DEPTH,
    validate_courier_update,
    validate_order,
    validate_status_update,
)
from orderhooks.exceptions import FieldProblem, ValidationError
from tests.support.data import sample
from tests.support.factories import order_document


def problems(call: Any, body: Any) -> dict[str, str]:
    """The problems a validator raises, as {field: message}."""
    with pytest.raises(ValidationError) as caught:
        call(body)
    assert all(isinstance(p, FieldProblem) for p in caught.value.problems)
    return {p.field: p.message for p in caught.value.problems}


def with_path(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `document` with the value at a dotted path (`items[0].price`) set."""
    out = copy.deepcopy(document)
    target: Any = out
    parts = path.replace("[", ".").replace("]", "").split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return out


# ---------------------------------------------------------------- the samples


def test_sample_order_is_valid_and_returned_unchanged() -> None:
    body = sample("new_order")
    pristine = copy.deepcopy(body)
    result = validate_order(body)
    assert result is body
    assert result == pristine
    assert result["packaging"] == {"includeCutlery": False}  # unknown field kept


def test_sample_status_update_is_valid() -> None:
    body = sample("status_update")
    assert validate_status_update(body) is body


def test_sample_courier_update_is_valid() -> None:
    body = sample("courier_update")
    assert validate_courier_update(body) is body


def test_minimal_order_is_valid() -> None:
    assert validate_order(order_document())["_id"] == "o1"


def test_unknown_fields_anywhere_are_kept() -> None:
    body = sample("new_order")
    body["brandNewField"] = {"nested": [1, "two"]}
    body["items"][0]["kitchenNote"] = 3
    body["customer"]["loyaltyTier"] = "gold"
    assert validate_order(body) == body


# ---------------------------------------------------------------- shape of the body


@pytest.mark.parametrize("body", [[], "order", 5, None, True])
def test_a_body_that_is_not_an_object_names_body(body: Any) -> None:
    for call in (validate_order, validate_status_update, validate_courier_update):
        assert problems(call, body) == {"body": "must be a JSON object"}


@pytest.mark.parametrize(
    "name", ["_id", "account", "location", "channelLink", "channel", "status", "orderType", "items"]
)
def test_required_order_fields(name: str) -> None:
    body = order_document()
    del body[name]
    assert problems(validate_order, body) == {name: "is required"}


@pytest.mark.parametrize("name", ["account", "channel", "status", "items"])
def test_required_fields_refuse_null(name: str) -> None:
    body = order_document(**{name: None})
    assert name in problems(validate_order, body)


def test_optional_fields_may_be_null() -> None:
    body = order_document(note=None, customer=None, pickupTime=None, taxTotal=None)
    assert validate_order(body) is body


def test_every_problem_is_reported_at_once() -> None:
    body = order_document(channel="7", status=True)
    body["items"][0]["price"] = 11.5
    found = problems(validate_order, body)
    assert set(found) == {"channel", "status", "items[0].price"}


def test_error_message_names_the_fields() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_order(order_document(channel="7"))
    assert "channel: must be an integer" in str(caught.value)
    assert caught.value.problems[0].as_dict() == {
        "field": "channel",
        "message": "must be an integer",
    }


# ---------------------------------------------------------------- integers

INTEGER_PATHS = [
    "channel",
    "orderType",
    "items[0].price",
    "items[0].quantity",
    "items[0].productType",
    "items[0].subItems[0].price",
    "taxTotal",
    "discountTotal",
    "deliveryCost",
    "bagFee",
    "tip",
    "driverTip",
    "serviceCharge",
    "numberOfCustomers",
    "payment.amount",
    "payment.rebate",
    "taxes[0].total",
    "discounts[0].amount",
    "statusHistory[0].source",
]


@pytest.mark.parametrize("path", INTEGER_PATHS)
@pytest.mark.parametrize("bad", ["20", True, False, 2.0, 11.5, [1], {"v": 1}])
def test_integer_fields_refuse_strings_booleans_and_floats(path: str, bad: Any) -> None:
    body = with_path(sample("new_order"), path, bad)
    assert problems(validate_order, body) == {path: "must be an integer"}


@given(
    st.one_of(
        st.text(max_size=5),
        st.booleans(),
        st.floats(allow_nan=False),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )
)
def test_item_price_accepts_nothing_but_an_integer(bad: Any) -> None:
    body = order_document()
    body["items"][0]["price"] = bad
    assert problems(validate_order, body) == {"items[0].price": "must be an integer"}


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_money_amounts_accept_any_integer(amount: int) -> None:
    body = order_document(discountTotal=amount, tip=amount)
    body["items"][0]["price"] = amount
    assert validate_order(body) is body


def test_discount_total_may_be_negative() -> None:
    assert validate_order(order_document(discountTotal=-200))["discountTotal"] == -200


# ---------------------------------------------------------------- statuses


@pytest.mark.parametrize("status", [0, 1, 20, 95, 110, 124, 555, 999])
def test_any_status_from_0_to_999_is_legal(status: int) -> None:
    assert validate_order(order_document(status=status))["status"] == status


@pytest.mark.parametrize("status", [-1, 1000, 10**6])
def test_status_out_of_range_is_refused(status: int) -> None:
    assert problems(validate_order, order_document(status=status)) == {
        "status": "must be from 0 to 999"
    }


def test_status_history_status_is_checked() -> None:
    body = with_path(sample("new_order"), "statusHistory[1].status", "10")
    assert set(problems(validate_order, body)) == {"statusHistory[1].status"}


# ---------------------------------------------------------------- strings

STRING_PATHS = [
    "account",
    "location",
    "channelLink",
    "channelOrderId",
    "posId",
    "note",
    "by",
    "items[0].plu",
    "items[0].name",
    "customer.name",
    "customer.email",
    "deliveryAddress.city",
    "courier.firstName",
    "taxes[0].name",
    "discounts[0].provider",
    "statusHistory[0].response",
]


@pytest.mark.parametrize("path", STRING_PATHS)
@pytest.mark.parametrize("bad", [5, 5.5, True, ["a"], {"a": "b"}])
def test_string_fields_refuse_numbers_and_other_types(path: str, bad: Any) -> None:
    body = with_path(sample("new_order"), path, bad)
    assert problems(validate_order, body) == {path: "must be a string"}


def test_strings_up_to_the_bound_pass_and_longer_ones_do_not() -> None:
    assert validate_order(order_document(note="x" * MAX_STRING_CHARS))
    found = problems(validate_order, order_document(note="x" * (MAX_STRING_CHARS + 1)))
    assert found == {"note": f"must be at most {MAX_STRING_CHARS} characters"}


# ---------------------------------------------------------------- the order id


@pytest.mark.parametrize("good", ["a", "abc_-XYZ09", "6740a1c2e4b0a93f1c2d7e51", "z" * 64])
def test_order_ids_that_pass(good: str) -> None:
    assert validate_order(order_document(_id=good))["_id"] == good


@pytest.mark.parametrize("bad", ["", "z" * 65, "a b", "a/b", "ä", "a.b", 123, None])
def test_order_ids_that_are_refused(bad: Any) -> None:
    assert set(problems(validate_order, order_document(_id=bad))) == {"_id"}


# ---------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    "path",
    [
        "_created",
        "_updated",
        "pickupTime",
        "deliveryTime",
        "estimatedPickupTime",
        "statusHistory[0].timeStamp",
    ],
)
@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01T00:00:00Z", "", 1795867200])
def test_timestamps_must_parse_as_iso_8601(path: str, bad: Any) -> None:
    body = with_path(sample("new_order"), path, bad)
    assert set(problems(validate_order, body)) == {path}


@pytest.mark.parametrize(
    "bad",
    [
        "2026-11-28x12:00:00Z",
        "2026-11-28\n12:00:00Z",
        "2026-11-28\u00e912:00Z",
        "2026-11-28512:00",
        "2026-11-28_12",
        "2026-11-28T12:00:00+01:00:30",
        "2026-11-28T12:00:00.5+01:00:30.25",
        " 2026-11-28T12:00:00Z",
    ],
)
def test_what_python_reads_but_is_no_iso_8601_time_is_refused(bad: str) -> None:
    # datetime.fromisoformat takes any character between date and time, and offsets with
    # seconds; such strings were accepted and passed on to receivers as times.
    assert problems(validate_order, order_document(pickupTime=bad)) == {
        "pickupTime": "must be an ISO 8601 timestamp"
    }
    assert problems(validate_status_update, {"status": 20, "timeStamp": bad}) == {
        "timeStamp": "must be an ISO 8601 timestamp"
    }


@pytest.mark.parametrize(
    "good",
    [
        "2026-11-28T12:00:00Z",
        "2026-11-28T12:00:00.123456Z",
        "2026-11-28T13:00:00+01:00",
        "2026-11-28t12:00:00Z",
        "2026-11-28 12:00:00Z",
        "2026-11-28T12:00:00,5-0130",
        "2026-11-28",
        "20261128T120000Z",
        "2026-W48-6T12:00+01",
    ],
)
def test_iso_8601_forms_that_pass(good: str) -> None:
    assert validate_order(order_document(pickupTime=good))["pickupTime"] == good


# ---------------------------------------------------------------- booleans, numbers, objects


@pytest.mark.parametrize("path", ["deliveryIsAsap", "orderIsAlreadyPaid", "testOrder"])
@pytest.mark.parametrize("bad", ["true", 1, 0, None])
def test_boolean_fields_refuse_other_types(path: str, bad: Any) -> None:
    body = with_path(sample("new_order"), path, bad)
    if bad is None:  # optional fields may be null
        assert validate_order(body) is body
    else:
        assert problems(validate_order, body) == {path: "must be a boolean"}


def test_coordinates_take_floats_and_integers_but_not_strings() -> None:
    body = with_path(sample("new_order"), "deliveryAddress.coordinates.latitude", 51)
    assert validate_order(body) is body
    body = with_path(body, "deliveryAddress.coordinates.longitude", "3.72")
    assert problems(validate_order, body) == {
        "deliveryAddress.coordinates.longitude": "must be a number"
    }


@pytest.mark.parametrize("path", ["customer", "deliveryAddress", "payment", "courier"])
def test_nested_objects_must_be_objects(path: str) -> None:
    body = with_path(sample("new_order"), path, "not an object")
    assert problems(validate_order, body) == {path: "must be an object"}


@pytest.mark.parametrize("path", ["items", "taxes", "discounts", "statusHistory"])
def test_arrays_must_be_arrays(path: str) -> None:
    body = with_path(sample("new_order"), path, {"0": {}})
    assert problems(validate_order, body) == {path: "must be an array"}


def test_array_entries_must_be_objects() -> None:
    body = with_path(sample("new_order"), "items[1]", "burger")
    assert problems(validate_order, body) == {"items[1]": "must be an object"}


def test_item_fields_are_required_inside_items() -> None:
    body = sample("new_order")
    del body["items"][0]["subItems"][0]["plu"]
    assert problems(validate_order, body) == {"items[0].subItems[0].plu": "is required"}


def test_items_are_bounded() -> None:
    item = {"plu": "P", "name": "n", "price": 1, "quantity": 1}
    assert validate_order(order_document(items=[item] * MAX_ARRAY_ITEMS))
    found = problems(validate_order, order_document(items=[item] * (MAX_ARRAY_ITEMS + 1)))
    assert found == {"items": f"must have at most {MAX_ARRAY_ITEMS} entries"}


def nested_item(levels: int, price: Any = 1) -> dict[str, Any]:
    """An item with `levels` levels of subItems below it; the deepest has `price`."""
    item: dict[str, Any] = {"plu": "P", "name": "n", "price": price, "quantity": 1}
    for _ in range(levels):
        item = {"plu": "P", "name": "n", "price": 1, "quantity": 1, "subItems": [item]}
    return item


def test_sub_items_nest_up_to_the_bound() -> None:
    body = order_document(items=[nested_item(MAX_SUB_ITEM_DEPTH)])
    assert validate_order(body) is body


def test_sub_items_nested_deeper_are_refused() -> None:
    found = problems(validate_order, order_document(items=[nested_item(MAX_SUB_ITEM_DEPTH + 1)]))
    path = "items[0]" + ".subItems[0]" * MAX_SUB_ITEM_DEPTH + ".subItems"
    assert list(found) == [path]


def test_deep_sub_item_problems_carry_the_full_path() -> None:
    found = problems(validate_order, order_document(items=[nested_item(3, price="1")]))
    assert found == {"items[0].subItems[0].subItems[0].subItems[0].price": "must be an integer"}


# ---------------------------------------------------------------- status updates


def test_status_update_needs_only_a_status() -> None:
    assert validate_status_update({"status": 20}) == {"status": 20}
    assert problems(validate_status_update, {"reason": "x"}) == {"status": "is required"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "20"}, "status"),
        ({"status": 20.0}, "status"),
        ({"status": True}, "status"),
        ({"status": 1000}, "status"),
        ({"status": 20, "timeStamp": "soon"}, "timeStamp"),
        ({"status": 20, "timeStamp": 1795867200}, "timeStamp"),
        ({"status": 20, "reason": 5}, "reason"),
        ({"status": 20, "isIgnoredPOSStatus": "false"}, "isIgnoredPOSStatus"),
        ({"status": 20, "source": "pos"}, "source"),
    ],
)
def test_status_update_types_are_strict(body: dict[str, Any], field: str) -> None:
    assert set(problems(validate_status_update, body)) == {field}


def test_status_update_keeps_unknown_fields() -> None:
    body = {"status": 20, "operator": {"name": "kim"}}
    assert validate_status_update(body) == {"status": 20, "operator": {"name": "kim"}}


# ---------------------------------------------------------------- courier updates


def test_courier_update_needs_courier_or_status() -> None:
    assert problems(validate_courier_update, {"trackingURL": "https://t"}) == {
        "courier": "courier or status is required"
    }
    assert validate_courier_update({"status": 83}) == {"status": 83}
    assert validate_courier_update({"courier": {"firstName": "J"}}) == {
        "courier": {"firstName": "J"}
    }


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("status", "83"),
        ("courier.status", 83.0),
        ("courier.phoneNumber", 32471111111),
        ("received", "later"),
        ("pickupTime", 12),
        ("trackingURL", 5),
        ("coordinates.latitude", "51.0"),
        ("updatedOrigin", "6"),
    ],
)
def test_courier_update_types_are_strict(path: str, bad: Any) -> None:
    body = with_path(sample("courier_update"), path, bad)
    assert set(problems(validate_courier_update, body)) == {path}
