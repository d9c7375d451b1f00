"""Payload shaping: validation of `fields` and `personalData`, known answers on the sample
payloads, and the properties every shaping keeps."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderhooks.domain.envelope import encode_body
from orderhooks.domain.model import EventType, PayloadFormat
from orderhooks.domain.shaping import (
    ALWAYS_KEPT_FIELDS,
    MAX_FIELD_PATH_CHARS,
    MAX_FIELD_PATHS,
    NO_SHAPING,
    PersonalData,
    compile_shaping,
    parse_fields,
    parse_personal_data,
    shape_data,
    shape_event,
)
from orderhooks.exceptions import ValidationError
from tests.unit.sample_events import sample_events

NEW, STATUS, COURIER = sample_events()
EXCLUDE = PersonalData.EXCLUDE


def shaped(data: Any, event_type: str, fields: list[str] | None, personal: str = "include") -> Any:
    shaping = compile_shaping(parse_fields(fields), parse_personal_data(personal))
    return shape_data(data, event_type, shaping)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "paths",
    [
        None,
        [],
        ["items[].plu", "items[].subItems[].plu", "payment.amount", "_id", "a_1.B2"],
        ["matrix[][]", "x" * MAX_FIELD_PATH_CHARS],
        [f"f{i}" for i in range(MAX_FIELD_PATHS)],
    ],
)
def test_valid_fields_are_accepted(paths: list[str] | None) -> None:
    assert parse_fields(paths) == (None if paths is None else tuple(paths))


def test_duplicate_paths_are_dropped_in_order() -> None:
    assert parse_fields(["b", "a", "b"]) == ("b", "a")


@pytest.mark.parametrize(
    "value",
    [
        "items",
        {"items": True},
        7,
        [f"f{i}" for i in range(MAX_FIELD_PATHS + 1)],
        [""],
        ["x" * (MAX_FIELD_PATH_CHARS + 1)],
        [1],
        [None],
        ["items."],
        [".items"],
        ["items..plu"],
        ["items[0].plu"],
        ["items[]plu"],
        ["[]"],
        ["items[].[]"],
        ["customer name"],
        ["café"],
        ["a-b"],
        ["a/b"],
        ["a\x00"],
        ["items[].plu", "ok", "no way"],
    ],
)
def test_invalid_fields_name_fields(value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_fields(value)
    assert caught.value.problems
    assert {p.field for p in caught.value.problems} == {"fields"}


def test_each_bad_path_is_reported_with_its_position() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_fields(["ok", "not ok", 3])
    assert [p.message.split(" ", 2)[:2] for p in caught.value.problems] == [
        ["path", "1"],
        ["path", "2"],
    ]


@pytest.mark.parametrize("value", ["include", "exclude"])
def test_personal_data_values(value: str) -> None:
    assert parse_personal_data(value) == value


@pytest.mark.parametrize("value", [None, "", "Exclude", "none", True, 1, ["exclude"]])
def test_invalid_personal_data_names_personal_data(value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_personal_data(value)
    assert [p.field for p in caught.value.problems] == ["personalData"]


# ---------------------------------------------------------------- known answers


def test_defaults_return_the_data_itself() -> None:
    shaping = compile_shaping(None, PersonalData.INCLUDE)
    assert shaping.is_identity
    for event in (NEW, STATUS, COURIER):
        assert shape_data(event.data, event.type, shaping) is event.data
        assert shape_event(event, shaping) is event
    assert shape_data(NEW.data, NEW.type, NO_SHAPING) is NEW.data


def test_compiled_shapings_are_shared() -> None:
    assert compile_shaping(("a",), EXCLUDE) is compile_shaping(["a"], "exclude")
    assert compile_shaping(None) is compile_shaping(None, "include")
    with pytest.raises(ValueError):
        compile_shaping(None, "maybe")


def test_projection_of_the_sample_order() -> None:
    fields = ["items[].plu", "items[].subItems[].plu", "payment.amount", "nope.deeper", "taxes"]
    assert shaped(NEW.data, NEW.type, fields) == {
        "_id": "6740a1c2e4b0a93f1c2d7e51",
        "account": "65f0c1d2a3b4c5d6e7f80912",
        "location": "65f0c1d2a3b4c5d6e7f8a001",
        "status": 10,
        "items": [
            {"plu": "BRG-01", "subItems": [{"plu": "MOD-CHS"}]},
            {"plu": "DRN-03"},
        ],
        "payment": {"amount": 3155},
        "taxes": [{"name": "VAT 6%", "taxClassId": 6, "total": 179}],
    }


def test_the_example_of_the_docs() -> None:
    assert shaped(NEW.data, NEW.type, ["items[].plu", "payment.amount"], "exclude") == {
        "_id": "6740a1c2e4b0a93f1c2d7e51",
        "account": "65f0c1d2a3b4c5d6e7f80912",
        "location": "65f0c1d2a3b4c5d6e7f8a001",
        "status": 10,
        "payment": {"amount": 3155},
        "items": [{"plu": "BRG-01"}, {"plu": "DRN-03"}],
    }


def test_only_the_ids_with_an_empty_list() -> None:
    assert shaped(STATUS.data, STATUS.type, []) == {
        "orderId": "6740a1c2e4b0a93f1c2d7e51",
        "location": "65f0c1d2a3b4c5d6e7f8a001",
        "account": "65f0c1d2a3b4c5d6e7f80912",
        "status": 20,
    }


def test_a_path_naming_an_object_keeps_it_whole_over_deeper_paths() -> None:
    result = shaped(NEW.data, NEW.type, ["deliveryAddress.city", "deliveryAddress"])
    assert result["deliveryAddress"] == NEW.data["deliveryAddress"]
    result = shaped(NEW.data, NEW.type, ["items[]", "items[].plu"])
    assert result["items"] == NEW.data["items"]


def test_keys_keep_the_order_of_the_data() -> None:
    result = shaped(NEW.data, NEW.type, ["payment", "channel", "items[].plu"])
    assert list(result) == [key for key in NEW.data if key in result]
    assert list(result) == ["_id", "account", "location", "status", "channel", "payment", "items"]


def test_paths_of_the_wrong_kind_are_missing() -> None:
    data = {
        "orderId": "o1",
        "status": 20,
        "items": {"plu": "not an array"},
        "courier": None,
        "tags": ["a", {"x": 1, "y": 2}, None, [1]],
        "name": "text",
    }
    result = shaped(data, EventType.STATUS_UPDATE, ["items[].plu", "courier.firstName", "tags[].x"])
    assert result == {"orderId": "o1", "status": 20, "tags": [None, {"x": 1}, None, None]}
    assert shaped(data, EventType.STATUS_UPDATE, ["name.first", "items.plu"]) == {
        "orderId": "o1",
        "status": 20,
        "items": {"plu": "not an array"},
    }


def test_parents_are_kept_only_for_what_is_kept_inside() -> None:
    result = shaped(NEW.data, NEW.type, ["deliveryAddress.nope", "items[].nope", "payment.tip"])
    assert result == {k: NEW.data[k] for k in ALWAYS_KEPT_FIELDS if k in NEW.data}
    data = {"orderId": "o1", "items": [{"plu": "a"}, {"name": "b"}, "c", []]}
    assert shaped(data, EventType.NEW, ["items[].plu"])["items"] == [{"plu": "a"}, {}, None, None]


def test_a_courier_left_empty_by_the_exclusion_is_dropped() -> None:
    data = {"orderId": "o1", "courier": {"firstName": "J", "phoneNumber": "+3247"}}
    assert shaped(data, EventType.COURIER_UPDATE, None, "exclude") == {"orderId": "o1"}
    assert shaped(data, EventType.NEW, ["courier.firstName"], "exclude") == {"orderId": "o1"}
    empty = {"orderId": "o1", "courier": {}}
    assert shaped(empty, EventType.NEW, None, "exclude") is empty


def test_nested_arrays_step_with_repeated_brackets() -> None:
    data = {"orderId": "o1", "grid": [[{"a": 1, "b": 2}], [], [{"a": 3}, 4]]}
    assert shaped(data, EventType.NEW, ["grid[][].a"]) == {
        "orderId": "o1",
        "grid": [[{"a": 1}], None, [{"a": 3}, None]],
    }


def test_personal_data_excluded_from_the_sample_order() -> None:
    result = shaped(NEW.data, NEW.type, None, "exclude")
    removed = {"customer", "deliveryAddress", "note"}
    assert set(NEW.data) - set(result) == removed
    assert result["courier"] == {"deliveryBy": "channel", "status": 0}
    assert {k: v for k, v in NEW.data.items() if k not in removed | {"courier"}} == {
        k: v for k, v in result.items() if k != "courier"
    }


def test_personal_data_excluded_from_the_sample_courier_update() -> None:
    result = shaped(COURIER.data, COURIER.type, None, "exclude")
    assert result == {
        "orderId": "6740a1c2e4b0a93f1c2d7e51",
        "location": "65f0c1d2a3b4c5d6e7f8a001",
        "account": "65f0c1d2a3b4c5d6e7f80912",
        "received": "2026-11-28T12:21:03.000000Z",
        "status": 83,
        "courier": {"deliveryBy": "channel", "status": 83},
        "pickupTime": "2026-11-28T12:24:00.000000Z",
        "deliveryTime": "2026-11-28T12:41:00.000000Z",
        "updatedOrigin": 6,
    }


def test_coordinates_are_personal_only_in_courier_updates() -> None:
    data = {"orderId": "o1", "coordinates": {"latitude": 1.0}, "trackingURL": "https://t"}
    assert shaped(data, EventType.STATUS_UPDATE, None, "exclude") == data
    assert shaped(data, EventType.COURIER_UPDATE, None, "exclude") == {"orderId": "o1"}


def test_the_status_update_has_no_personal_data() -> None:
    assert shaped(STATUS.data, STATUS.type, None, "exclude") is STATUS.data


def test_exclusion_applies_after_the_projection() -> None:
    fields = ["customer", "courier", "deliveryAddress.city", "payment"]
    assert shaped(NEW.data, NEW.type, fields, "exclude") == {
        "_id": "6740a1c2e4b0a93f1c2d7e51",
        "account": "65f0c1d2a3b4c5d6e7f80912",
        "location": "65f0c1d2a3b4c5d6e7f8a001",
        "status": 10,
        "courier": {"deliveryBy": "channel", "status": 0},
        "payment": NEW.data["payment"],
    }


def test_operational_events_are_never_shaped() -> None:
    data = {"webhookId": "wh_1", "url": "https://x", "note": "kept"}
    shaping = compile_shaping(("url",), EXCLUDE)
    assert shape_data(data, "webhook.failing", shaping) is data


def test_shaped_envelope_bytes_known_answer() -> None:
    shaping = compile_shaping(("previousStatus",), EXCLUDE)
    body = encode_body(shape_event(STATUS, shaping), PayloadFormat.ENVELOPE)
    assert body == (
        b'{"id":"evt_0002","type":"order.status_update","timestamp":"2026-11-28T12:00:00.123456Z",'
        b'"account":"65f0c1d2a3b4c5d6e7f80912","location":"65f0c1d2a3b4c5d6e7f8a001",'
        b'"orderId":"6740a1c2e4b0a93f1c2d7e51","sequence":2,"test":false,'
        b'"data":{"orderId":"6740a1c2e4b0a93f1c2d7e51","location":"65f0c1d2a3b4c5d6e7f8a001",'
        b'"account":"65f0c1d2a3b4c5d6e7f80912","status":20,"previousStatus":10}}'
    )
    assert encode_body(shape_event(STATUS, shaping), PayloadFormat.RAW) == (
        b'{"orderId":"6740a1c2e4b0a93f1c2d7e51","location":"65f0c1d2a3b4c5d6e7f8a001",'
        b'"account":"65f0c1d2a3b4c5d6e7f80912","status":20,"previousStatus":10}'
    )


# ---------------------------------------------------------------- properties

NAMES = st.sampled_from(["a", "b", "c", "_id", "orderId", "status", "customer", "note", "courier"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(NAMES, inner, max_size=4),
    ),
    max_leaves=12,
)
DATA = st.dictionaries(NAMES, VALUES, max_size=6)
SEGMENTS = st.builds(lambda name, arrays: name + "[]" * arrays, NAMES, st.integers(0, 2))
PATHS = st.lists(SEGMENTS, min_size=1, max_size=3).map(".".join)
FIELDS = st.one_of(st.none(), st.lists(PATHS, max_size=5))
TYPES = st.sampled_from([t.value for t in EventType])
PERSONAL = st.sampled_from(["include", "exclude"])
# The machine running the suite is shared: a slow first draw is not a defect of the test.
PROPERTY = settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])


def leaf_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Every object key path of `value`, array positions written `[]`."""
    if isinstance(value, dict):
        for key, child in value.items():
            path = f"{prefix}.{key}" if prefix else key
            yield path
            yield from leaf_paths(child, path)
    elif isinstance(value, list):
        for child in value:
            yield from leaf_paths(child, prefix + "[]")


@dataclass(frozen=True)
class ShapingCall:
    """One drawn shaping: an event's data and type, the webhook's fields and personalData."""

    data: dict[str, Any]
    event_type: str
    fields: list[str] | None
    personal: str

    def of(self, data: Any) -> Any:
        """`data` shaped as this call shapes."""
        return shaped(data, self.event_type, self.fields, self.personal)


CALLS = st.builds(ShapingCall, DATA, TYPES, FIELDS, PERSONAL)


@PROPERTY
@given(CALLS)
def test_shaping_never_adds_a_field(call: ShapingCall) -> None:
    assert set(leaf_paths(call.of(call.data))) <= set(leaf_paths(call.data))


@PROPERTY
@given(CALLS)
def test_shaping_is_idempotent(call: ShapingCall) -> None:
    once = call.of(call.data)
    assert call.of(once) == once


@PROPERTY
@given(CALLS)
def test_shaping_keeps_the_always_kept_ids(call: ShapingCall) -> None:
    result = call.of(call.data)
    for name in ALWAYS_KEPT_FIELDS:
        if name in call.data:
            assert result[name] == call.data[name]


@PROPERTY
@given(CALLS)
def test_shaping_never_changes_its_input(call: ShapingCall) -> None:
    before = copy.deepcopy(call.data)
    result = call.of(call.data)
    assert call.data == before
    if result is not call.data:
        # Shaped containers are new: changing the result cannot reach the stored event.
        result.clear()
        assert call.data == before


@PROPERTY
@given(st.builds(ShapingCall, DATA, TYPES, FIELDS, st.just("exclude")))
def test_excluded_personal_data_is_gone(call: ShapingCall) -> None:
    result = call.of(call.data)
    assert not {"customer", "note"} & set(result)
    courier = result.get("courier")
    if isinstance(courier, dict):
        assert not {"firstName", "lastName", "phoneNumber"} & set(courier)


@PROPERTY
@given(st.builds(ShapingCall, DATA, TYPES, st.lists(PATHS, max_size=5), st.just("include")))
def test_arrays_keep_their_length(call: ShapingCall) -> None:
    result = call.of(call.data)
    for key, value in result.items():
        if isinstance(value, list):
            assert len(value) == len(call.data[key])
