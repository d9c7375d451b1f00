"""The hostile-input corpus: requests every one of which must be refused with a clear 4xx
in the error JSON of PRODUCT 7, and store nothing.

Paths may name `<order>` and `<webhook>`: an order and a webhook that exist, so that a bad
body reaches the validation of a known object rather than stopping at 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from tests.security.support import valid_order, with_value, without

ACCOUNT = "acct-hostile"
MAX_BODY_BYTES = 1_048_576  # the product default, ORDERHOOKS_MAX_BODY_BYTES
NESTING_LEVELS = 10_000
HUGE_ARRAY_ENTRIES = 100_000
LONG_ID_CHARS = 10_000
INJECTIONS = ("' OR 1=1 --", "../../etc/passwd", "%00", "\x00", "*", "%", "_", "'; DROP TABLE x;--")
JSON = "application/json"


@dataclass(frozen=True)
class Bad:
    """One hostile request and the statuses that may refuse it."""

    id: str
    method: str
    path: str
    content: bytes | None = None
    content_type: str | None = JSON
    expect: tuple[int, ...] = (422,)
    field: str | None = None  # a `details` entry must name this field
    index: int | None = None  # ... at this batch index
    order_id: str | None = None  # an order the request names: it must not exist afterwards
    headers: tuple[tuple[str, bytes], ...] = ()


def dumps(value: Any) -> bytes:
    """JSON bytes of a test body."""
    return orjson.dumps(value)


def _field_name(path: str) -> str:
    """`items.0.price` -> `items[0].price` (the naming of PRODUCT's `details`)."""
    out = ""
    for part in path.split("."):
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def _raw_value(body: dict[str, Any], path: str, literal: bytes) -> bytes:
    """`body` with the field at `path` set to raw JSON text (numbers orjson cannot write)."""
    return dumps(with_value(body, path, "__RAW__")).replace(b'"__RAW__"', literal)


def _order(case_id: str, body: bytes | dict[str, Any], order_id: str | None, **kw: Any) -> Bad:
    content = body if isinstance(body, bytes) else dumps(body)
    return Bad(case_id, "POST", "/v1/orders", content, order_id=order_id, **kw)


def _spoiled_order(case_id: str, path: str, value: Any, **kw: Any) -> Bad:
    order = valid_order(ACCOUNT, order_id=f"bad-{case_id}")
    kw.setdefault("field", _field_name(path))
    return _order(case_id, with_value(order, path, value), order["_id"], **kw)


def malformed_json() -> Iterator[Bad]:
    """Bodies that are not JSON at all: 400."""
    bodies = {
        "truncated": b'{"_id": "abc", "items": [',
        "single-quotes": b"{'_id': 'abc'}",
        "trailing-comma": b'{"_id": "abc",}',
        "nan": b'{"status": NaN}',
        "two-documents": b"{} {}",
        "bom": b"\xef\xbb\xbf{}",
        "raw-control-char": b'{"_id": "a\x00b"}',
        "lone-surrogate": b'{"_id": "\\ud800"}',
        "bare-word": b"orders",
    }
    for name, body in bodies.items():
        yield Bad(f"json-{name}", "POST", "/v1/orders", body, expect=(400,))
    yield Bad("json-status", "POST", "/v1/orders/<order>/status", b'{"status": 20', expect=(400,))
    yield Bad("json-courier", "POST", "/v1/orders/<order>/courier", b"[}", expect=(400,))
    yield Bad("json-batch", "POST", "/v1/events", b'[{"type": "order.new",]', expect=(400,))
    yield Bad("json-webhook", "POST", "/v1/webhooks", b'{"url": }', expect=(400,))
    yield Bad("json-key", "POST", "/v1/keys", b"{role: admin}", expect=(400,))
    yield Bad("json-agreement", "PUT", f"/v1/accounts/{ACCOUNT}/agreement", b"{", expect=(400,))
    yield Bad("json-rotate", "POST", "/v1/webhooks/<webhook>/secret/rotate", b"{", expect=(400,))
    yield Bad("json-empty-order", "POST", "/v1/orders", b"", content_type=None, expect=(422,))


def invalid_utf8() -> Iterator[Bad]:
    """Bytes that are not UTF-8, in bodies, the path and a header."""
    order = dumps(valid_order(ACCOUNT, order_id="bad-utf8"))
    yield _order(
        "utf8-note", order.replace(b'"Ana Silva"', b'"\xff\xfe"'), "bad-utf8", expect=(400,)
    )
    yield _order(
        "utf8-overlong", order.replace(b'"loc-1"', b'"\xc0\xaf"'), "bad-utf8", expect=(400,)
    )
    yield _order(
        "utf8-truncated", order.replace(b'"cl-1"', b'"\xe2\x82"'), "bad-utf8", expect=(400,)
    )
    yield Bad(
        "utf8-webhook", "POST", "/v1/webhooks", b'{"description": "\xed\xa0\x80"}', expect=(400,)
    )
    yield Bad("utf8-path", "GET", "/v1/orders/%FF%FE", expect=(404,))
    yield Bad(
        "utf8-authorization",
        "GET",
        "/v1/webhooks",
        expect=(401,),
        headers=(("authorization", b"Bearer \xff\xfe\xfd"),),
    )


def content_types() -> Iterator[Bad]:
    """A JSON body under a content type that is not `application/json`: 415."""
    order = dumps(valid_order(ACCOUNT, order_id="bad-ctype"))
    kinds = {
        "text-plain": "text/plain",
        "form": "application/x-www-form-urlencoded",
        "multipart": "multipart/form-data; boundary=x",
        "xml": "application/xml",
        "json-lookalike": "application/jsonx",
        "json-patch": "application/json-patch+json",
        "missing": None,
    }
    for name, content_type in kinds.items():
        yield _order(f"ctype-{name}", order, "bad-ctype", content_type=content_type, expect=(415,))
    yield Bad(
        "ctype-status",
        "POST",
        "/v1/orders/<order>/status",
        b'{"status": 20}',
        content_type="text/plain",
        expect=(415,),
    )
    yield Bad("ctype-batch", "POST", "/v1/events", b"[]", content_type="text/csv", expect=(415,))
    yield Bad(
        "ctype-webhook", "POST", "/v1/webhooks", b"{}", content_type="text/html", expect=(415,)
    )
    yield Bad(
        "ctype-key",
        "POST",
        "/v1/keys",
        b'{"role": "admin", "name": "x"}',
        content_type=None,
        expect=(415,),
    )


def oversized() -> Iterator[Bad]:
    """Bodies over ORDERHOOKS_MAX_BODY_BYTES, declared by Content-Length: 413."""
    big_note = "x" * MAX_BODY_BYTES
    order = valid_order(ACCOUNT, order_id="bad-big", note=big_note)
    yield _order("size-order", order, "bad-big", expect=(413,))
    yield Bad(
        "size-status",
        "POST",
        "/v1/orders/<order>/status",
        dumps({"status": 20, "reason": big_note}),
        expect=(413,),
    )
    yield Bad(
        "size-batch",
        "POST",
        "/v1/events",
        dumps([{"type": "order.new", "data": order}]),
        expect=(413,),
    )
    yield Bad(
        "size-webhook", "POST", "/v1/webhooks", dumps({"description": big_note}), expect=(413,)
    )
    small = dumps(valid_order(ACCOUNT, order_id="bad-length"))
    for name, value in (("huge", b"99999999999999999999999"), ("not-a-number", b"12abc")):
        yield _order(
            f"size-content-length-{name}",
            small,
            "bad-length",
            expect=(400, 413),
            headers=(("content-length", value),),
        )


def deep_nesting() -> Iterator[Bad]:
    """Documents nested far deeper than any order: 400, without exhausting a stack."""
    arrays = b"[" * NESTING_LEVELS + b"]" * NESTING_LEVELS
    objects = b'{"a":' * NESTING_LEVELS + b"1" + b"}" * NESTING_LEVELS
    yield _order("nest-arrays", arrays, None, expect=(400,))
    yield _order("nest-objects", objects, None, expect=(400,))
    yield Bad("nest-batch", "POST", "/v1/events", arrays, expect=(400,))
    yield Bad("nest-webhook", "POST", "/v1/webhooks", objects, expect=(400,))
    yield Bad("nest-status", "POST", "/v1/orders/<order>/status", objects, expect=(400,))
    inner = b'{"a":' * 200 + b"1" + b"}" * 200
    order = valid_order(ACCOUNT, order_id="bad-nest-unknown")
    body = dumps(with_value(order, "extra", "__RAW__")).replace(b'"__RAW__"', inner)
    yield _order("nest-unknown-field", body, "bad-nest-unknown", expect=(400, 422))


def huge_arrays() -> Iterator[Bad]:
    """Arrays over their limits: batches over 1,000 items, 100k-entry arrays: 422."""
    item = {"type": "order.new", "data": valid_order(ACCOUNT, order_id="bad-batch-1001")}
    yield Bad(
        "array-batch-1001",
        "POST",
        "/v1/events",
        dumps([item] * 1001),
        field="body",
        order_id="bad-batch-1001",
    )
    yield Bad("array-batch-100k", "POST", "/v1/events", dumps([{}] * HUGE_ARRAY_ENTRIES))
    yield Bad("array-batch-empty", "POST", "/v1/events", b"[]", field="body")
    yield _spoiled_order("array-items-100k", "items", [0] * HUGE_ARRAY_ENTRIES)
    yield _spoiled_order("array-history-100k", "statusHistory", [1] * HUGE_ARRAY_ENTRIES)
    yield Bad(
        "array-webhook-accounts",
        "POST",
        "/v1/webhooks",
        dumps(
            {
                "url": "http://127.0.0.1:9/",
                "eventTypes": ["order.new"],
                "accounts": [f"a{i}" for i in range(HUGE_ARRAY_ENTRIES)],
            }
        ),
    )


def wrong_types() -> Iterator[Bad]:
    """Each field class given a value of another type: 422 naming the field."""
    spoils: list[tuple[str, Any]] = [
        ("status", "20"),
        ("status", True),
        ("status", 20.0),
        ("status", 20.5),
        ("orderType", None),
        ("channel", 7.5),
        ("channel", "7"),
        ("account", 5),
        ("location", ["loc-1"]),
        ("channelLink", {}),
        ("_id", 12345),
        ("deliveryIsAsap", "true"),
        ("deliveryIsAsap", 1),
        ("items", {}),
        ("items", "burger"),
        ("items.0", "burger"),
        ("items.0.price", "11.50"),
        ("items.0.price", 11.5),
        ("items.0.quantity", False),
        ("items.0.subItems.0.price", None),
        ("items.0.subItems", {}),
        ("customer", "Ana"),
        ("payment", []),
        ("payment.amount", "31.55"),
        ("pickupTime", "tomorrow"),
        ("pickupTime", 1764332400),
        ("decimalDigits", 10),
    ]
    for n, (path, value) in enumerate(spoils):
        yield _spoiled_order(f"type-{n}-{path}", path, value)
    order = valid_order(ACCOUNT, order_id="bad-missing")
    for name in ("_id", "account", "items", "status"):
        yield _order(f"type-missing-{name}", without(order, name), None, field=name)
    for name, body in (("array", b"[]"), ("string", b'"order"'), ("null", b"null")):
        yield _order(f"type-body-{name}", body, None, expect=(400, 422))
    updates: list[tuple[str, str, dict[str, Any], str]] = [
        ("status-missing", "status", {"reason": "x"}, "status"),
        ("status-string", "status", {"status": "20"}, "status"),
        ("status-time", "status", {"status": 20, "timeStamp": 12}, "timeStamp"),
        ("status-flag", "status", {"status": 20, "isIgnoredPOSStatus": "no"}, "isIgnoredPOSStatus"),
        ("courier-empty", "courier", {"trackingURL": "https://t.example/x"}, "courier"),
        ("courier-status", "courier", {"courier": {"status": "83"}}, "courier.status"),
        (
            "courier-coords",
            "courier",
            {"status": 83, "coordinates": {"latitude": "51"}},
            "coordinates.latitude",
        ),
    ]
    for name, kind, update, field in updates:
        yield Bad(f"type-{name}", "POST", f"/v1/orders/<order>/{kind}", dumps(update), field=field)


def out_of_range() -> Iterator[Bad]:
    """Numbers outside their ranges, of int64, or of a double: 400 or 422."""
    order = valid_order(ACCOUNT, order_id="bad-range")
    for name, value in (("1000", 1000), ("minus-1", -1)):
        yield _spoiled_order(f"range-status-{name}", "status", value)
    literals = {
        "status-2p63": ("status", b"9223372036854775808"),
        "status-2p64": ("status", b"18446744073709551616"),
        "status-1e400": ("status", b"1e400"),
        "channel-1e400": ("channel", b"-1e400"),
        "price-2p63": ("items.0.price", b"9223372036854775808"),
        "amount-below-int64": ("payment.amount", b"-9223372036854775809"),
        "digits-2p63": ("decimalDigits", b"9223372036854775808"),
    }
    for name, (path, literal) in literals.items():
        body = _raw_value(order, path, literal)
        yield _order(f"range-{name}", body, "bad-range", expect=(400, 422))
    yield Bad(
        "range-update-status",
        "POST",
        "/v1/orders/<order>/status",
        dumps({"status": 1000}),
        field="status",
    )
    yield Bad(
        "range-courier-lat",
        "POST",
        "/v1/orders/<order>/courier",
        b'{"status": 83, "coordinates": {"latitude": 1e400}}',
        expect=(400,),
    )
    yield Bad(
        "range-webhook-timeout",
        "POST",
        "/v1/webhooks",
        b'{"url": "http://127.0.0.1:9/", "accounts": ["a"], "eventTypes": ["order.new"],'
        b' "timeoutSeconds": 9223372036854775808}',
        expect=(400, 422),
    )


def null_bytes() -> Iterator[Bad]:
    """NUL characters in ids and strings (PostgreSQL cannot store them in text): 4xx."""
    yield _spoiled_order("nul-id", "_id", "ord\u0000x", field="_id")
    yield _spoiled_order("nul-account", "account", "acct\u0000", expect=(400, 422))
    yield _spoiled_order("nul-location", "location", "\u0000", expect=(400, 422))
    yield _spoiled_order("nul-note", "customer.name", "Ana\u0000Silva", expect=(400, 422))
    yield Bad(
        "nul-status-reason",
        "POST",
        "/v1/orders/<order>/status",
        dumps({"status": 20, "reason": "late\u0000"}),
        expect=(400, 422),
    )
    yield Bad(
        "nul-webhook-description",
        "POST",
        "/v1/webhooks",
        dumps(
            {
                "url": "http://127.0.0.1:9/hook",
                "accounts": [ACCOUNT],
                "eventTypes": ["order.new"],
                "description": "a\u0000b",
            }
        ),
        expect=(400, 422),
    )
    yield Bad(
        "nul-webhook-account",
        "POST",
        "/v1/webhooks",
        dumps(
            {"url": "http://127.0.0.1:9/hook", "accounts": ["a\u0000"], "eventTypes": ["order.new"]}
        ),
        expect=(400, 422),
    )
    yield Bad(
        "nul-key-name",
        "POST",
        "/v1/keys",
        dumps({"role": "ingest", "name": "k\u0000"}),
        expect=(400, 422),
    )


def injection_ids() -> Iterator[Bad]:
    """Injection-looking and overlong order ids in bodies: 422 naming `_id`."""
    # "_" alone is a valid order id; every other entry breaks the id pattern.
    invalid_ids = [value for value in INJECTIONS if value != "_"]
    for n, value in enumerate((*invalid_ids, "a" * 65, "a" * LONG_ID_CHARS)):
        yield _spoiled_order(f"inject-id-{n}", "_id", value, field="_id")
    for n, value in enumerate(INJECTIONS):
        item = {"type": "order.status_update", "orderId": value, "data": {"status": 20}}
        yield Bad(f"inject-batch-{n}", "POST", "/v1/events", dumps([item]), expect=(404, 422))


def injection_paths() -> Iterator[Bad]:
    """Injection-looking, traversing, NUL and overlong path parameters: 404 (or 422)."""
    quoted = (
        "%27%20OR%201%3D1%20--",
        "..%2F..%2Fetc%2Fpasswd",
        "%00",
        "%2A",
        "%25",
        "<order>%27%20OR%20%271%27%3D%271",
        "a" * LONG_ID_CHARS,
    )
    for n, segment in enumerate(quoted):
        yield Bad(f"path-order-{n}", "GET", f"/v1/orders/{segment}", expect=(404, 414, 422))
        yield Bad(
            f"path-status-{n}",
            "POST",
            f"/v1/orders/{segment}/status",
            dumps({"status": 20}),
            expect=(404, 405, 414, 422),
        )
        yield Bad(
            f"path-secret-{n}", "GET", f"/v1/webhooks/{segment}/secret", expect=(404, 414, 422)
        )
        yield Bad(f"path-event-{n}", "GET", f"/v1/events/{segment}", expect=(404, 414, 422))
        yield Bad(
            f"path-retry-{n}",
            "POST",
            f"/v1/deliveries/{segment}/retry",
            expect=(404, 405, 414, 422),
        )
        yield Bad(f"path-key-{n}", "DELETE", f"/v1/keys/{segment}", expect=(404, 414, 422))
    yield Bad("path-webhook-delete", "DELETE", "/v1/webhooks/<webhook>%00", expect=(404,))
    yield Bad(
        "path-webhook-patch",
        "PATCH",
        "/v1/webhooks/%27%20OR%201%3D1%20--",
        dumps({"description": "x"}),
        expect=(404,),
    )
    yield Bad(
        "path-agreement-long",
        "PUT",
        "/v1/accounts/" + "a" * 200 + "/agreement",
        dumps(
            {
                "signedBy": "x",
                "signedAt": "2026-11-28T12:00:00Z",
                "pricing": {
                    "currency": "EUR",
                    "perThousand": {
                        "order.new": 1,
                        "order.status_update": 1,
                        "order.courier_update": 1,
                    },
                },
            }
        ),
        expect=(422,),
    )


def bad_admin_bodies() -> Iterator[Bad]:
    """Webhook, key, agreement and webhook-action bodies that break their contracts."""
    hook = {"url": "http://127.0.0.1:9/hook", "accounts": [ACCOUNT], "eventTypes": ["order.new"]}
    spoils: list[tuple[str, Any, str]] = [
        ("url", 5, "url"),
        ("url", "ftp://example.com/x", "url"),
        ("url", "http://169.254.169.254/latest/meta-data", "url"),
        ("url", "http://[::ffff:10.0.0.1]/", "url"),
        ("url", "javascript:alert(1)", "url"),
        ("accounts", ACCOUNT, "accounts"),
        ("eventTypes", [], "eventTypes"),
        ("eventTypes", ["order.bogus"], "eventTypes[0]"),
        ("timeoutSeconds", 0, "timeoutSeconds"),
        ("timeoutSeconds", 31, "timeoutSeconds"),
        ("timeoutSeconds", "15", "timeoutSeconds"),
        ("maxConcurrency", 65, "maxConcurrency"),
        ("newOrderTrigger", 120, "newOrderTrigger"),
        ("statusFilter", [1000], "statusFilter[0]"),
        ("ordering", "random", "ordering"),
        ("payloadFormat", "xml", "payloadFormat"),
        ("retrySchedule", [-1], "retrySchedule[0]"),
        ("headers", {"webhook-signature": "v1,forged"}, "headers"),
        ("headers", {"X-Token": "a\r\nInjected: 1"}, "headers"),
        ("secret", "whsec_AAAA", "secret"),
    ]
    for n, (name, value, field) in enumerate(spoils):
        yield Bad(
            f"webhook-{n}-{name}", "POST", "/v1/webhooks", dumps({**hook, name: value}), field=field
        )
    yield Bad(
        "webhook-patch-url",
        "PATCH",
        "/v1/webhooks/<webhook>",
        dumps({"url": "http://10.0.0.5/admin"}),
        field="url",
    )
    keys: list[tuple[dict[str, Any], str]] = [
        ({"role": "root", "name": "x"}, "role"),
        ({"role": "partner", "name": "x"}, "accounts"),
        ({"role": "partner", "name": "x", "accounts": ["*"]}, "accounts"),
        ({"role": "ingest", "name": ""}, "name"),
        ({"role": "ingest", "name": "x", "accounts": "a"}, "accounts"),
    ]
    for n, (body, field) in enumerate(keys):
        yield Bad(f"key-{n}-{field}", "POST", "/v1/keys", dumps(body), field=field)
    pricing = {"order.new": 1, "order.status_update": 1, "order.courier_update": -1}
    agreement = {
        "signedBy": "x",
        "signedAt": "yesterday",
        "pricing": {"currency": "euro", "perThousand": pricing},
    }
    yield Bad(
        "agreement", "PUT", f"/v1/accounts/{ACCOUNT}/agreement", dumps(agreement), field="signedAt"
    )
    actions: list[tuple[str, dict[str, Any], str]] = [
        ("secret/rotate", {"secret": "whsec_short"}, "secret"),
        ("secret/rotate", {"gracePeriodSeconds": -1}, "gracePeriodSeconds"),
        ("test", {"type": "order.bogus"}, "type"),
        ("replay", {"since": "last week"}, "since"),
        ("recover", {}, "since"),
    ]
    for n, (action, body, field) in enumerate(actions):
        yield Bad(
            f"action-{n}-{field}",
            "POST",
            f"/v1/webhooks/<webhook>/{action}",
            dumps(body),
            field=field,
        )


def batches() -> Iterator[Bad]:
    """Batches with one bad item: all refused, the valid items before it included."""
    order = valid_order(ACCOUNT, order_id="bad-batch-mixed")
    items = [
        {"type": "order.new", "data": order},
        {"type": "order.status_update", "orderId": order["_id"], "data": {"status": "x"}},
    ]
    yield Bad(
        "batch-bad-item",
        "POST",
        "/v1/events",
        dumps(items),
        field="data.status",
        index=1,
        order_id=order["_id"],
    )
    unknown = [
        {"type": "order.new", "data": valid_order(ACCOUNT, order_id="bad-batch-unknown")},
        {"type": "order.courier_update", "orderId": "no-such-order", "data": {"status": 83}},
    ]
    yield Bad(
        "batch-unknown-order",
        "POST",
        "/v1/events",
        dumps(unknown),
        expect=(404,),
        order_id="bad-batch-unknown",
    )
    yield Bad(
        "batch-item-shape",
        "POST",
        "/v1/events",
        dumps([{"type": "order.new"}, 5]),
        field="data",
        index=0,
    )


def corpus() -> list[Bad]:
    """Every case of the corpus."""
    groups = (
        malformed_json,
        invalid_utf8,
        content_types,
        oversized,
        deep_nesting,
        huge_arrays,
        wrong_types,
        out_of_range,
        null_bytes,
        injection_ids,
        injection_paths,
        bad_admin_bodies,
        batches,
    )
    return [case for group in groups for case in group()]


@dataclass(frozen=True)
class BadQuery:
    """A list request with a hostile filter: refused (4xx), or answered with no rows."""

    id: str
    path: str
    strict: bool  # True: must be refused with 4xx; False: 4xx or 200 with an empty list


def queries() -> list[BadQuery]:
    """Hostile query filters of the list endpoints."""
    out: list[BadQuery] = []
    lenient = {
        "orderId": ("/v1/events", "/v1/deliveries"),
        "account": ("/v1/events", "/v1/webhooks"),
        "webhookId": ("/v1/deliveries",),
    }
    for name, paths in lenient.items():
        for path in paths:
            for n, value in enumerate(
                (
                    "%27%20OR%201%3D1%20--",
                    "%25",
                    "_",
                    "%2A",
                    "%00",
                    "..%2F..%2Fetc%2Fpasswd",
                    "%FF%FE",
                    "<order>%27--",
                )
            ):
                out.append(BadQuery(f"{path}-{name}-{n}", f"{path}?{name}={value}", False))
    strict = [
        "/v1/events?type=order.new%27%20OR%20%271%27%3D%271",
        "/v1/events?since=2026-01-01%27%20OR%201%3D1",
        "/v1/events?until=%00",
        "/v1/events?orderId=" + "a" * 129,
        "/v1/events?account=" + "a" * LONG_ID_CHARS,
        "/v1/deliveries?state=delivered;DROP%20TABLE%20deliveries",
        "/v1/deliveries?eventType=*",
        "/v1/webhooks?state=active%27",
        "/v1/usage?format=xml",
        "/v1/usage?from=garbage",
        "/v1/keys?limit=0",
        "/v1/audit?limit=501",
        "/v1/events?limit=-1",
        "/v1/events?limit=abc",
        "/v1/events?limit=9223372036854775808",
        "/v1/deliveries?limit=1e400",
        "/v1/events?cursor=" + "a" * LONG_ID_CHARS,
    ]
    out.extend(BadQuery(f"strict-{n}", path, True) for n, path in enumerate(strict))
    return out
