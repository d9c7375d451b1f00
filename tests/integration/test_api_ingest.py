"""The ingest API on a real SQLite store: orders, status and courier updates, batches,
repeats, validation, and the body rules of docs/api.md."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from orderhooks.domain.orders import validate_order
from orderhooks.store.base import NewOrderItem
from tests.integration.api_support import LocalApi
from tests.support.api import Api, expect
from tests.support.data import new_order, sample, unique

MAX_BODY = 64_000  # room for a batch of 1001 small items, not for 100 KB
API_SETTINGS = {"max_body_bytes": MAX_BODY, "require_agreement": False}


@pytest.fixture()
async def ingest_key(api: Api) -> str:
    return await api.make_key("ingest")


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return dict(body["error"])


def counter(metrics_text: str, event_type: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(f'orderhooks_events_ingested_total{{type="{event_type}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_new_order_then_byte_identical_repeat(api: Api, ingest_key: str) -> None:
    account = unique("acct")
    raw = json.dumps(new_order(account, order_id="ord-1")).encode()
    headers = {"content-type": "application/json"}
    first = await api.call("POST", "/v1/orders", ingest_key, content=raw, headers=headers)
    assert first.status_code == 202
    assert first.json()["orderId"] == "ord-1"
    assert len(first.json()["eventIds"]) == 1
    assert first.json()["eventIds"][0].startswith("evt_")
    repeat = await api.call("POST", "/v1/orders", ingest_key, content=raw, headers=headers)
    assert repeat.status_code == 200
    assert repeat.json() == {"orderId": "ord-1", "eventIds": []}
    event = await api.call("GET", f"/v1/events/{first.json()['eventIds'][0]}")
    assert event.status_code == 200
    assert event.json()["type"] == "order.new"
    assert event.json()["account"] == account
    assert event.json()["data"]["packaging"] == {"includeCutlery": False}  # unknown field kept


async def test_an_order_posted_again_through_another_path_is_a_repeat(
    api: LocalApi, ingest_key: str
) -> None:
    # The order platform posts an order, then its status; when an answer is lost it sends
    # the same order again in a batch (or a broker message, which is read as one), or the
    # other way round, written by another JSON encoder. Read as a newer version, the old
    # document would have put the order back to its first status with an
    # `order.status_update` going backwards and a history without the update.
    headers = {"content-type": "application/json"}
    spaced, compact = new_order(unique("acct")), new_order(unique("acct"))
    raw = json.dumps(spaced, indent=2).encode()
    assert (
        await api.call("POST", "/v1/orders", ingest_key, content=raw, headers=headers)
    ).status_code == 202
    batch = [{"type": "order.new", "data": compact}]
    assert (
        len(
            expect(await api.call("POST", "/v1/events", ingest_key, json_body=batch), 202)[
                "eventIds"
            ]
        )
        == 1
    )
    for order in (spaced, compact):
        await api.status(order["_id"], 20, timeStamp="2026-11-28T12:00:00Z")
    again = await api.call(
        "POST", "/v1/events", ingest_key, json_body=[{"type": "order.new", "data": spaced}]
    )
    assert expect(again, 202) == {"eventIds": []}
    raw_again = json.dumps(compact, separators=(",", ":"), ensure_ascii=True).encode()
    repeat = await api.call("POST", "/v1/orders", ingest_key, content=raw_again, headers=headers)
    assert expect(repeat, 200) == {"orderId": compact["_id"], "eventIds": []}
    for order in (spaced, compact):
        stored = expect(await api.call("GET", f"/v1/orders/{order['_id']}"), 200)
        assert stored["status"] == 20
        assert [e["type"] for e in stored["events"]] == ["order.new", "order.status_update"]


async def test_an_order_stored_with_the_hash_of_its_bytes_is_still_repeated_by_them(
    api: LocalApi, ingest_key: str
) -> None:
    # Before the repeat key was the document's encoding, POST /v1/orders stored the
    # SHA-256 of the body's bytes: an order stored then is repeated by the same bytes.
    order = new_order(unique("acct"))
    raw = json.dumps(order, indent=2).encode()
    item = NewOrderItem(validate_order(order), hashlib.sha256(raw).hexdigest())
    await api.store.ingest([item], datetime.now(UTC))
    await api.status(order["_id"], 20, timeStamp="2026-11-28T12:00:00Z")
    headers = {"content-type": "application/json"}
    repeat = await api.call("POST", "/v1/orders", ingest_key, content=raw, headers=headers)
    assert expect(repeat, 200) == {"orderId": order["_id"], "eventIds": []}
    assert expect(await api.call("GET", f"/v1/orders/{order['_id']}"), 200)["status"] == 20


async def test_newer_version_with_another_status_creates_a_status_update(
    api: Api, ingest_key: str
) -> None:
    account = unique("acct")
    await api.call("POST", "/v1/orders", ingest_key, json_body=new_order(account, order_id="o-v"))
    newer = new_order(account, order_id="o-v", status=20)
    response = await api.call("POST", "/v1/orders", ingest_key, json_body=newer)
    assert response.status_code == 202
    assert len(response.json()["eventIds"]) >= 1
    last = await api.call("GET", f"/v1/events/{response.json()['eventIds'][-1]}")
    assert last.json()["type"] == "order.status_update"


async def test_status_and_courier_updates(api: Api, ingest_key: str) -> None:
    account = unique("acct")
    order = await api.post_order(account)
    order_id = order["orderId"]
    update = sample("status_update")
    first = await api.call("POST", f"/v1/orders/{order_id}/status", ingest_key, json_body=update)
    assert first.status_code == 202
    assert len(first.json()["eventIds"]) == 1
    repeat = await api.call("POST", f"/v1/orders/{order_id}/status", ingest_key, json_body=update)
    assert repeat.status_code == 200
    assert repeat.json() == {"eventIds": []}
    courier = await api.call(
        "POST", f"/v1/orders/{order_id}/courier", ingest_key, json_body=sample("courier_update")
    )
    assert courier.status_code == 202
    assert len(courier.json()["eventIds"]) == 1
    view = (await api.call("GET", f"/v1/orders/{order_id}")).json()
    assert view["status"] == 20
    assert view["courier"]["firstName"] == "Jonas"
    assert [e["type"] for e in view["events"]] == [
        "order.new",
        "order.status_update",
        "order.courier_update",
    ]
    assert [e["sequence"] for e in view["events"]] == [1, 2, 3]
    assert {"status": 20, "timeStamp": "2026-11-28T11:59:10.500000Z"} in view["statusHistory"]


async def test_updates_of_an_unknown_order_are_404(api: Api, ingest_key: str) -> None:
    for kind, body in (("status", {"status": 20}), ("courier", {"status": 83})):
        response = await api.call("POST", f"/v1/orders/nope/{kind}", ingest_key, json_body=body)
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"


async def test_ingested_events_are_counted_by_type(api: Api, ingest_key: str) -> None:
    before = (await api.call("GET", "/metrics", None)).text
    order = await api.post_order(unique("acct"))
    await api.call(
        "POST", f"/v1/orders/{order['orderId']}/status", ingest_key, json_body={"status": 20}
    )
    after = (await api.call("GET", "/metrics", None)).text
    assert counter(after, "order.new") == counter(before, "order.new") + 1
    assert counter(after, "order.status_update") == counter(before, "order.status_update") + 1


async def test_an_invalid_order_names_the_field_and_stores_nothing(
    api: Api, ingest_key: str
) -> None:
    document = new_order(unique("acct"), order_id="bad-1")
    document["items"][0]["price"] = "11.50"
    document["channel"] = True
    response = await api.call("POST", "/v1/orders", ingest_key, json_body=document)
    assert response.status_code == 422
    fields = {d["field"] for d in error_of(response)["details"]}
    assert {"items[0].price", "channel"} <= fields
    assert (await api.call("GET", "/v1/orders/bad-1")).status_code == 404


async def test_a_batch_creates_every_event_in_item_order(api: Api, ingest_key: str) -> None:
    account = unique("acct")
    batch = [
        {"type": "order.new", "data": new_order(account, order_id="b-1")},
        {"type": "order.status_update", "orderId": "b-1", "data": {"status": 20}},
        {"type": "order.courier_update", "orderId": "b-1", "data": sample("courier_update")},
        {"type": "order.new", "orderId": "b-2", "data": new_order(account, order_id="b-2")},
    ]
    response = await api.call("POST", "/v1/events", ingest_key, json_body=batch)
    assert response.status_code == 202, response.text
    ids = response.json()["eventIds"]
    assert len(ids) == 4
    types = [(await api.call("GET", f"/v1/events/{i}")).json()["type"] for i in ids]
    assert types == ["order.new", "order.status_update", "order.courier_update", "order.new"]
    again = await api.call("POST", "/v1/events", ingest_key, json_body=batch[:1])
    assert again.status_code == 202
    assert again.json() == {"eventIds": []}  # a repeat adds none


async def test_a_batch_with_invalid_items_names_each_and_stores_nothing(
    api: Api, ingest_key: str
) -> None:
    account = unique("acct")
    bad_order = new_order(account, order_id="c-2")
    bad_order["items"][0]["price"] = 1.5
    batch = [
        {"type": "order.new", "data": new_order(account, order_id="c-1")},
        {"type": "order.new", "data": bad_order},
        {"type": "order.status_update", "data": {"status": 20}},
        {"type": "order.nope", "data": {}},
        "not an object",
        {"type": "order.status_update", "orderId": "c-1", "data": {"status": "20"}},
        {"type": "order.new", "orderId": "c-9", "data": new_order(account, order_id="c-3")},
    ]
    response = await api.call("POST", "/v1/events", ingest_key, json_body=batch)
    assert response.status_code == 422
    details = error_of(response)["details"]
    assert {"index": 1, "field": "data.items[0].price"} in [
        {"index": d["index"], "field": d["field"]} for d in details
    ]
    by_index = {d["index"]: d["field"] for d in details}
    assert by_index[2] == "orderId"
    assert by_index[3] == "type"
    assert by_index[4] == "item"
    assert by_index[5] == "data.status"
    assert (by_index[6], details[-1]["message"]) == ("orderId", "must equal data._id")
    assert 0 not in by_index
    assert (await api.call("GET", "/v1/orders/c-1")).status_code == 404


async def test_a_batch_naming_an_unknown_order_stores_nothing(api: Api, ingest_key: str) -> None:
    account = unique("acct")
    batch = [
        {"type": "order.new", "data": new_order(account, order_id="d-1")},
        {"type": "order.status_update", "orderId": "missing", "data": {"status": 20}},
    ]
    response = await api.call("POST", "/v1/events", ingest_key, json_body=batch)
    assert response.status_code == 422
    assert error_of(response)["details"][0] == {
        "index": 1,
        "field": "orderId",
        "message": "unknown order",
    }
    assert (await api.call("GET", "/v1/orders/d-1")).status_code == 404


async def test_a_nul_in_a_batch_item_is_named_by_its_index(api: Api, ingest_key: str) -> None:
    # The NUL check runs on the parsed body before the batch is looked at: it named the
    # item's value `[1].data.note`, without the `index` every other batch problem has.
    account = unique("acct")
    batch = [
        {"type": "order.new", "data": new_order(account, order_id="n-1")},
        {"type": "order.status_update", "orderId": "n-1", "data": {"status": 20, "note": "a\0"}},
    ]
    response = await api.call("POST", "/v1/events", ingest_key, json_body=batch)
    assert response.status_code == 422, response.text
    assert error_of(response)["details"] == [
        {"index": 1, "field": "data.note", "message": "must not contain NUL characters"}
    ]
    assert (await api.call("GET", "/v1/orders/n-1")).status_code == 404
    batch[1] = "a\0"
    response = await api.call("POST", "/v1/events", ingest_key, json_body=batch)
    assert error_of(response)["details"] == [
        {"index": 1, "field": "item", "message": "must not contain NUL characters"}
    ]


@pytest.mark.parametrize(
    "body",
    [[], {"type": "order.new"}, [{"type": "order.new", "data": {}}] * 1001, "x"],
    ids=["empty", "object", "too-many", "string"],
)
async def test_a_batch_must_be_an_array_of_1_to_1000_items(
    api: Api, ingest_key: str, body: Any
) -> None:
    response = await api.call("POST", "/v1/events", ingest_key, json_body=body)
    assert response.status_code == 422
    assert error_of(response)["details"][0]["field"] == "body"


async def test_ingest_keys_may_ingest_for_any_account(api: Api, ingest_key: str) -> None:
    for account in (unique("x"), unique("y")):
        response = await api.call("POST", "/v1/orders", ingest_key, json_body=new_order(account))
        assert response.status_code == 202


# ---------------------------------------------------------------- body rules


async def test_a_body_must_be_application_json(api: Api, ingest_key: str) -> None:
    raw = json.dumps(new_order(unique("acct"))).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {} if content_type is None else {"content-type": content_type}
        response = await api.call("POST", "/v1/orders", ingest_key, content=raw, headers=headers)
        assert response.status_code == 415
        assert error_of(response)["code"] == "unsupported_media_type"
    headers = {"content-type": "application/json; charset=utf-8"}
    response = await api.call("POST", "/v1/orders", ingest_key, content=raw, headers=headers)
    assert response.status_code == 202


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP", "gzip, identity"])
async def test_a_compressed_body_is_415_and_stores_nothing(
    api: Api, ingest_key: str, encoding: str
) -> None:
    # No content coding is decoded: a gzip body answered 400 "malformed JSON: str is not
    # valid UTF-8", and a plain body labelled gzip was stored as if unlabelled.
    document = new_order(unique("acct"), order_id=unique("ord"))
    raw = json.dumps(document).encode()
    for body in (gzip.compress(raw), raw):
        headers = {"content-type": "application/json", "content-encoding": encoding}
        response = await api.call("POST", "/v1/orders", ingest_key, content=body, headers=headers)
        assert response.status_code == 415, response.text
        assert error_of(response)["code"] == "unsupported_media_type"
    assert (await api.call("GET", f"/v1/orders/{document['_id']}")).status_code == 404
    headers = {"content-type": "application/json", "content-encoding": "identity"}
    response = await api.call("POST", "/v1/orders", ingest_key, content=raw, headers=headers)
    assert response.status_code == 202, response.text


async def test_a_body_over_the_limit_is_413_by_content_length(api: Api, ingest_key: str) -> None:
    document = new_order(unique("acct"), note="x" * MAX_BODY)
    response = await api.call("POST", "/v1/orders", ingest_key, json_body=document)
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


async def test_a_streamed_body_over_the_limit_is_413(api: Api, ingest_key: str) -> None:
    chunks_sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        yield b'{"note": "'
        for _ in range(100):
            chunks_sent += 1
            yield b"x" * 1000
        yield b'"}'

    response = await api.call(
        "POST",
        "/v1/orders",
        ingest_key,
        content=stream(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert chunks_sent < 100  # reading stopped at the limit


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"a": NaN}', b'"\xff\xfe"', b'{"a": "\\ud800"}', b"[" * 2000 + b"]" * 2000],
    ids=["truncated", "nan", "bad-utf8", "lone-surrogate", "too-deep"],
)
async def test_malformed_json_is_400(api: Api, ingest_key: str, raw: bytes) -> None:
    response = await api.call(
        "POST", "/v1/orders", ingest_key, content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_request"


async def test_nesting_the_store_could_not_write_is_400_not_500(api: Api, ingest_key: str) -> None:
    document = new_order(unique("acct"))
    nested: Any = "leaf"
    for _ in range(300):
        nested = {"n": nested}
    document["extra"] = nested
    response = await api.call("POST", "/v1/orders", ingest_key, json_body=document)
    assert response.status_code == 400


async def test_integers_beyond_64_bits_are_refused(api: Api, ingest_key: str) -> None:
    raw = json.dumps(new_order(unique("acct"))).replace(
        '"channel": 7', '"channel": 18446744073709551615'
    )
    response = await api.call(
        "POST",
        "/v1/orders",
        ingest_key,
        content=raw.encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code in (400, 422)


async def test_integers_beyond_what_orjson_reads_as_integers_are_refused_not_stored(
    api: Api, ingest_key: str
) -> None:
    # orjson reads an integer beyond 2**64 - 1 as a float: an unknown field holding one was
    # accepted and stored (and sent) as 1e+23, another number than the one posted.
    document = new_order(unique("acct"), order_id=unique("ord"))
    raw = json.dumps({**document, "extra": 7}).replace(
        '"extra": 7', '"extra": 99999999999999999999999'
    )
    headers = {"content-type": "application/json"}
    response = await api.call("POST", "/v1/orders", ingest_key, content=raw, headers=headers)
    assert response.status_code == 400, response.text
    assert error_of(response)["code"] == "bad_request"
    assert (await api.call("GET", f"/v1/orders/{document['_id']}")).status_code == 404
    tip = json.dumps({**document, "tip": 0}).replace('"tip": 0', '"tip": -9223372036854775809')
    response = await api.call("POST", "/v1/orders", ingest_key, content=tip, headers=headers)
    assert response.status_code == 400, response.text


async def test_an_empty_body_is_422(api: Api, ingest_key: str) -> None:
    response = await api.call("POST", "/v1/orders", ingest_key)
    assert response.status_code == 422
    assert error_of(response)["details"][0]["field"] == "body"


@pytest.mark.parametrize("channel", [2**31, 2**62, -1])
async def test_a_channel_outside_what_webhooks_filter_on_is_422_on_each_engine(
    api_on_each_engine: Api, channel: int
) -> None:
    # A webhook's `channels` filter takes 0 to 2^31 - 1, and PostgreSQL stores a channel in
    # 32 bits: a bigger one answered 500 there (and 202 on SQLite).
    api = api_on_each_engine
    document = new_order(unique("acct"), order_id=unique("ord"), channel=channel)
    response = await api.call("POST", "/v1/orders", json_body=document)
    assert response.status_code == 422, response.text
    assert [d["field"] for d in error_of(response)["details"]] == ["channel"]
    assert (await api.call("GET", f"/v1/orders/{document['_id']}")).status_code == 404
    largest = new_order(unique("acct"), order_id=unique("ord"), channel=2**31 - 1)
    assert (await api.call("POST", "/v1/orders", json_body=largest)).status_code == 202


async def test_an_account_is_at_most_128_characters_on_each_engine(
    api_on_each_engine: Api,
) -> None:
    # As long as keys, webhooks and agreements name accounts; PostgreSQL's usage index
    # could not hold a much longer one (tests/e2e/test_postgres.py).
    api = api_on_each_engine
    too_long = new_order("a" * 129, order_id=unique("ord"))
    response = await api.call("POST", "/v1/orders", json_body=too_long)
    assert response.status_code == 422, response.text
    assert [d["field"] for d in error_of(response)["details"]] == ["account"]
    assert (await api.call("GET", f"/v1/orders/{too_long['_id']}")).status_code == 404
    longest = new_order("a" * 128, order_id=unique("ord"))
    assert (await api.call("POST", "/v1/orders", json_body=longest)).status_code == 202


@pytest.mark.parametrize(
    ("account", "message"),
    [("*", '"*" is not an account'), ("", "must be 1 to 128 characters")],
)
async def test_an_order_of_no_single_account_is_refused(
    api: Api, account: str, message: str
) -> None:
    # "*" names every account in webhooks and keys, and "" none: no agreement can be
    # recorded for either, and no webhook or partner key can name "", so such an order
    # could never be delivered where agreements are required.
    order = new_order(account, order_id=unique("ord"))
    response = await api.call("POST", "/v1/orders", json_body=order)
    assert response.status_code == 422, response.text
    assert [(d["field"], d["message"]) for d in error_of(response)["details"]] == [
        ("account", message)
    ]
    batch = [{"type": "order.new", "data": order}]
    refused = await api.call("POST", "/v1/events", json_body=batch)
    assert refused.status_code == 422, refused.text
    assert [(d["index"], d["field"]) for d in error_of(refused)["details"]] == [(0, "data.account")]
    assert (await api.call("GET", f"/v1/orders/{order['_id']}")).status_code == 404


async def test_the_openapi_document_names_only_the_answers_each_update_can_give(
    api: Api, ingest_key: str
) -> None:
    # A courier update is never a repeat (docs/api.md): the document promised a 200 "A
    # repeat: nothing created" that no courier update answers.
    paths = (await api.call("GET", "/openapi.json", None)).json()["paths"]
    assert set(paths["/v1/orders/{orderId}/status"]["post"]["responses"]) >= {"200", "202"}
    courier = paths["/v1/orders/{orderId}/courier"]["post"]["responses"]
    assert "202" in courier and "200" not in courier
    order = await api.post_order(unique("acct"))
    path = f"/v1/orders/{order['orderId']}/courier"
    for _ in range(2):
        response = await api.call("POST", path, ingest_key, json_body={"status": 83})
        assert response.status_code == 202, response.text


async def test_a_newer_version_cannot_move_an_order_to_another_account(
    api_on_each_engine: Api,
) -> None:
    # An order's account is whose data it is: a version naming another account moved the
    # order, and with it its earlier events, into that account's view (its partner read
    # them in GET /v1/orders/{id}) while the first account's partner lost the order.
    api = api_on_each_engine
    account, other = unique("acct"), unique("acct")
    order_id = unique("ord")
    created = await api.call("POST", "/v1/orders", json_body=new_order(account, order_id=order_id))
    assert created.status_code == 202, created.text
    moved = new_order(other, order_id=order_id, status=20)
    response = await api.call("POST", "/v1/orders", json_body=moved)
    assert response.status_code == 422, response.text
    assert [d["field"] for d in error_of(response)["details"]] == ["account"]
    batch = [
        {"type": "order.status_update", "orderId": order_id, "data": {"status": 30}},
        {"type": "order.new", "data": moved},
    ]
    refused = await api.call("POST", "/v1/events", json_body=batch)
    assert refused.status_code == 422, refused.text
    assert [(d["index"], d["field"]) for d in error_of(refused)["details"]] == [(1, "data.account")]
    view = (await api.call("GET", f"/v1/orders/{order_id}")).json()
    assert (view["account"], view["status"]) == (account, 10)
    assert [e["type"] for e in view["events"]] == ["order.new"]
    # A newer version of the same account is still taken.
    newer = new_order(account, order_id=order_id, status=20)
    assert (await api.call("POST", "/v1/orders", json_body=newer)).status_code == 202


@pytest.mark.parametrize("kind", ["status", "courier"])
async def test_an_update_of_an_unknown_order_is_404_whatever_its_body(
    api: Api, ingest_key: str, kind: str
) -> None:
    # docs/api.md, authentication: an object that does not exist is 404 before the body
    # is read and validated (413, 415, 400, 422 come after).
    path = f"/v1/orders/{unique('ghost')}/{kind}"
    bodies: list[dict[str, Any]] = [
        {"json_body": {}},
        {"json_body": {"status": "20"}},
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        {"content": b"status=20", "headers": {"content-type": "text/plain"}},
        {},
        {"content": b"x" * (MAX_BODY + 1), "headers": {"content-type": "application/json"}},
    ]
    for body in bodies:
        response = await api.call("POST", path, ingest_key, **body)
        assert response.status_code == 404, (body, response.text)
        assert error_of(response)["code"] == "not_found"
    order = await api.post_order(unique("acct"))
    known = await api.call(
        "POST", f"/v1/orders/{order['orderId']}/{kind}", ingest_key, json_body={"status": "20"}
    )
    assert known.status_code == 422, known.text
