"""Hostile-input corpus, part 2: well-formed JSON whose fields break the contract (wrong
types, out-of-range numbers, NUL characters, bad webhook, key, agreement and action
bodies, batches with one bad item)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from orderhooks.testing.certificates import issue, make_ca
from tests.security.corpus_base import (
    ACCOUNT,
    Bad,
    dumps,
    order_case,
    raw_value,
    spoiled_order,
)
from tests.security.support import without
from tests.support.data import new_order


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
        yield spoiled_order(f"type-{n}-{path}", path, value)
    order = new_order(ACCOUNT, order_id="bad-missing")
    for name in ("_id", "account", "items", "status"):
        yield order_case(f"type-missing-{name}", without(order, name), None, field=name)
    for name, body in (("array", b"[]"), ("string", b'"order"'), ("null", b"null")):
        yield order_case(f"type-body-{name}", body, None, expect=(400, 422))
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
    order = new_order(ACCOUNT, order_id="bad-range")
    for name, value in (("1000", 1000), ("minus-1", -1)):
        yield spoiled_order(f"range-status-{name}", "status", value)
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
        body = raw_value(order, path, literal)
        yield order_case(f"range-{name}", body, "bad-range", expect=(400, 422))
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
    yield spoiled_order("nul-id", "_id", "ord\u0000x", field="_id")
    yield spoiled_order("nul-account", "account", "acct\u0000", expect=(400, 422))
    yield spoiled_order("nul-location", "location", "\u0000", expect=(400, 422))
    yield spoiled_order("nul-note", "customer.name", "Ana\u0000Silva", expect=(400, 422))
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
        ("eventTypes", ["webhook.bogus"], "eventTypes[0]"),
        ("eventTypes", ["delivery.failed", {"type": "x"}], "eventTypes[1]"),
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
        ("personalData", "none", "personalData"),
        ("personalData", True, "personalData"),
        ("personalData", None, "personalData"),
        ("personalData", "EXCLUDE", "personalData"),
        ("fields", "items[].plu", "fields"),
        ("fields", {"items": True}, "fields"),
        ("fields", [5], "fields"),
        ("fields", [""], "fields"),
        ("fields", ["items..plu"], "fields"),
        ("fields", ["items[0].plu"], "fields"),
        ("fields", ["items[]plu"], "fields"),
        ("fields", ["customer.*"], "fields"),
        ("fields", ["' OR 1=1 --"], "fields"),
        ("fields", ["note\u0000"], "fields"),
        ("fields", ["a" * 201], "fields"),
        ("fields", [f"f{n}" for n in range(101)], "fields"),
        ("fields", ["items[].plu", None], "fields"),
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
    batch_spoils: list[tuple[dict[str, Any], str]] = [
        ({"batch": {"maxEvents": 1, "maxWaitMs": 0}}, "batch.maxEvents"),
        ({"batch": {"maxEvents": 10**12, "maxWaitMs": 0}}, "batch.maxEvents"),
        ({"batch": {"maxEvents": 5, "maxWaitMs": -1}}, "batch.maxWaitMs"),
        ({"batch": {"maxEvents": 5, "maxWaitMs": "0"}}, "batch.maxWaitMs"),
        ({"batch": {"maxEvents": 5, "maxWaitMs": 0, "x": 1}}, "batch.x"),
        ({"batch": [5, 0]}, "batch"),
        ({"batch": {"maxEvents": 5, "maxWaitMs": 0}, "payloadFormat": "raw"}, "batch"),
    ]
    for n, (spoil, field) in enumerate(batch_spoils):
        yield Bad(
            f"webhook-batch-{n}", "POST", "/v1/webhooks", dumps({**hook, **spoil}), field=field
        )
    yield Bad(
        "webhook-patch-batch",
        "PATCH",
        "/v1/webhooks/<webhook>",
        dumps({"batch": {"maxEvents": 501, "maxWaitMs": 0}}),
        field="batch.maxEvents",
    )
    patches: list[tuple[str, Any]] = [
        ("personalData", "hidden"),
        ("fields", ["items[].plu", "items[].$where"]),
        ("fields", "all"),
    ]
    for n, (name, value) in enumerate(patches):
        yield Bad(
            f"webhook-patch-{n}-{name}",
            "PATCH",
            "/v1/webhooks/<webhook>",
            dumps({name: value, "description": "changed"}),
            field=name,
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
    order = new_order(ACCOUNT, order_id="bad-batch-mixed")
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
        {"type": "order.new", "data": new_order(ACCOUNT, order_id="bad-batch-unknown")},
        {"type": "order.courier_update", "orderId": "no-such-order", "data": {"status": 83}},
    ]
    yield Bad(
        "batch-unknown-order",
        "POST",
        "/v1/events",
        dumps(unknown),
        expect=(422,),
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


def bad_portal_links() -> Iterator[Bad]:
    """Portal-link bodies that break their contract: 422 naming the field."""
    spoils: list[tuple[dict[str, Any], str]] = [
        ({}, "accounts"),
        ({"accounts": []}, "accounts"),
        ({"accounts": "acct"}, "accounts"),
        ({"accounts": ["*"]}, "accounts"),
        ({"accounts": [""]}, "accounts"),
        ({"accounts": [5]}, "accounts"),
        ({"accounts": ["a" * 129]}, "accounts"),
        ({"accounts": [f"acct-{n}" for n in range(101)]}, "accounts"),
        ({"accounts": [ACCOUNT], "expiresInSeconds": 59}, "expiresInSeconds"),
        ({"accounts": [ACCOUNT], "expiresInSeconds": 86_401}, "expiresInSeconds"),
        ({"accounts": [ACCOUNT], "expiresInSeconds": 0}, "expiresInSeconds"),
        ({"accounts": [ACCOUNT], "expiresInSeconds": -3600}, "expiresInSeconds"),
        ({"accounts": [ACCOUNT], "expiresInSeconds": "3600"}, "expiresInSeconds"),
        ({"accounts": [ACCOUNT], "expiresInSeconds": 3600.5}, "expiresInSeconds"),
        ({"accounts": [ACCOUNT], "expiresInSeconds": True}, "expiresInSeconds"),
        ({"accounts": [ACCOUNT], "expiresInSeconds": None}, "expiresInSeconds"),
        ({"accounts": [ACCOUNT], "url": "https://evil.example.com/"}, "url"),
    ]
    for n, (body, field) in enumerate(spoils):
        yield Bad(f"portal-link-{n}-{field}", "POST", "/v1/portal-links", dumps(body), field=field)
    huge = b'{"accounts": ["' + ACCOUNT.encode() + b'"], "expiresInSeconds": ' + b"9" * 40 + b"}"
    # An integer outside signed 64 bits is malformed JSON to orderhooks (docs/api.md): 400.
    yield Bad("portal-link-huge-expiry", "POST", "/v1/portal-links", huge, expect=(400,))
    yield Bad(
        "portal-link-nul-account",
        "POST",
        "/v1/portal-links",
        dumps({"accounts": ["acct\u0000"]}),
        expect=(400, 422),
    )


def bad_tls_bodies() -> Iterator[Bad]:
    """Webhook `tls` values that cannot work (docs/security.md, "Client certificates"):
    422 naming the `tls` field at fault."""
    ca = make_ca()
    client, other = issue(ca, "partner"), issue(ca, "other")
    long_ago = datetime.now(UTC) - timedelta(days=400)
    expired = issue(ca, "expired", not_before=long_ago, not_after=long_ago + timedelta(days=30))
    # Too weak on purpose: it must be refused.
    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    weak = issue(ca, "weak", key=weak_key)
    locked_key = client.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()
    good = {"clientCertificate": client.cert_pem, "clientKey": client.key_pem}
    hook = {"url": "https://127.0.0.1:9/hook", "accounts": [ACCOUNT], "eventTypes": ["order.new"]}
    spoils: list[tuple[str, Any, str]] = [
        ("not-an-object", "-----BEGIN CERTIFICATE-----", "tls"),
        ("unknown-field", {**good, "clientPassword": "x"}, "tls"),
        ("no-key", {"clientCertificate": client.cert_pem}, "tls.clientKey"),
        (
            "cert-garbage",
            {**good, "clientCertificate": "not a certificate"},
            "tls.clientCertificate",
        ),
        (
            "key-garbage",
            {**good, "clientKey": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
            "tls.clientKey",
        ),
        (
            "ca-garbage",
            {**good, "caCertificate": "-----BEGIN CERTIFICATE-----\n"},
            "tls.caCertificate",
        ),
        (
            "key-in-cert-field",
            {**good, "clientCertificate": client.key_pem},
            "tls.clientCertificate",
        ),
        ("mismatched-pair", {**good, "clientKey": other.key_pem}, "tls"),
        (
            "expired",
            {"clientCertificate": expired.cert_pem, "clientKey": expired.key_pem},
            "tls.clientCertificate",
        ),
        (
            "weak-rsa",
            {"clientCertificate": weak.cert_pem, "clientKey": weak.key_pem},
            "tls.clientKey",
        ),
        ("passphrase-key", {**good, "clientKey": locked_key}, "tls.clientKey"),
        ("placeholder-on-create", {**good, "clientKey": "<set>"}, "tls.clientKey"),
    ]
    for name, value, field in spoils:
        yield Bad(f"tls-{name}", "POST", "/v1/webhooks", dumps({**hook, "tls": value}), field=field)
    http_hook = {**hook, "url": "http://127.0.0.1:9/hook", "tls": good}
    yield Bad("tls-http-url", "POST", "/v1/webhooks", dumps(http_hook), field="tls")
    yield Bad(
        "tls-patch-http-webhook",
        "PATCH",
        "/v1/webhooks/<webhook>",
        dumps({"tls": good}),
        field="tls",
    )
