"""Hostile-input corpus, part 1: bodies broken below the level of fields (syntax,
encoding, content type, size, nesting, array lengths)."""

from __future__ import annotations

from collections.abc import Iterator

from tests.security.corpus_base import (
    ACCOUNT,
    HUGE_ARRAY_ENTRIES,
    MAX_BODY_BYTES,
    NESTING_LEVELS,
    Bad,
    dumps,
    order_case,
    spoiled_order,
)
from tests.security.support import with_value
from tests.support.data import new_order


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
    order = dumps(new_order(ACCOUNT, order_id="bad-utf8"))
    yield order_case(
        "utf8-note", order.replace(b'"Ana Silva"', b'"\xff\xfe"'), "bad-utf8", expect=(400,)
    )
    yield order_case(
        "utf8-overlong", order.replace(b'"loc-1"', b'"\xc0\xaf"'), "bad-utf8", expect=(400,)
    )
    yield order_case(
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
    order = dumps(new_order(ACCOUNT, order_id="bad-ctype"))
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
        yield order_case(
            f"ctype-{name}", order, "bad-ctype", content_type=content_type, expect=(415,)
        )
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
    order = new_order(ACCOUNT, order_id="bad-big", note=big_note)
    yield order_case("size-order", order, "bad-big", expect=(413,))
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
    small = dumps(new_order(ACCOUNT, order_id="bad-length"))
    for name, value in (("huge", b"99999999999999999999999"), ("not-a-number", b"12abc")):
        yield order_case(
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
    yield order_case("nest-arrays", arrays, None, expect=(400,))
    yield order_case("nest-objects", objects, None, expect=(400,))
    yield Bad("nest-batch", "POST", "/v1/events", arrays, expect=(400,))
    yield Bad("nest-webhook", "POST", "/v1/webhooks", objects, expect=(400,))
    yield Bad("nest-status", "POST", "/v1/orders/<order>/status", objects, expect=(400,))
    inner = b'{"a":' * 200 + b"1" + b"}" * 200
    order = new_order(ACCOUNT, order_id="bad-nest-unknown")
    body = dumps(with_value(order, "extra", "__RAW__")).replace(b'"__RAW__"', inner)
    yield order_case("nest-unknown-field", body, "bad-nest-unknown", expect=(400, 422))


def huge_arrays() -> Iterator[Bad]:
    """Arrays over their limits: batches over 1,000 items, 100k-entry arrays: 422."""
    item = {"type": "order.new", "data": new_order(ACCOUNT, order_id="bad-batch-1001")}
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
    yield spoiled_order("array-items-100k", "items", [0] * HUGE_ARRAY_ENTRIES)
    yield spoiled_order("array-history-100k", "statusHistory", [1] * HUGE_ARRAY_ENTRIES)
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
