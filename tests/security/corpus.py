"""The hostile-input corpus: requests every one of which must be refused with a clear 4xx
in the error JSON of docs/api.md, and store nothing; and hostile list filters.

Parts 1 and 2 (`corpus_syntax`, `corpus_fields`) break bodies; this module adds
injection-looking, traversing, NUL and overlong ids in bodies, paths and query filters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from tests.security.corpus_base import (
    INJECTIONS,
    LONG_ID_CHARS,
    Bad,
    dumps,
    spoiled_order,
)
from tests.security.corpus_fields import (
    bad_admin_bodies,
    bad_portal_links,
    bad_tls_bodies,
    batches,
    null_bytes,
    out_of_range,
    wrong_types,
)
from tests.security.corpus_syntax import (
    content_types,
    deep_nesting,
    huge_arrays,
    invalid_utf8,
    malformed_json,
    oversized,
)


def injection_ids() -> Iterator[Bad]:
    """Injection-looking and overlong order ids in bodies: 422 naming `_id`."""
    # "_" alone is a valid order id; every other entry breaks the id pattern.
    invalid_ids = [value for value in INJECTIONS if value != "_"]
    for n, value in enumerate((*invalid_ids, "a" * 65, "a" * LONG_ID_CHARS)):
        yield spoiled_order(f"inject-id-{n}", "_id", value, field="_id")
    for n, value in enumerate(INJECTIONS):
        item = {"type": "order.status_update", "orderId": value, "data": {"status": 20}}
        yield Bad(f"inject-batch-{n}", "POST", "/v1/events", dumps([item]), expect=(422,))


# The routes with an id in their path: (name, method, path with `{}` for the id, body,
# the statuses that may refuse a hostile id).
ID_ROUTES: tuple[tuple[str, str, str, bytes | None, tuple[int, ...]], ...] = (
    ("order", "GET", "/v1/orders/{}", None, (404, 414, 422)),
    ("status", "POST", "/v1/orders/{}/status", dumps({"status": 20}), (404, 405, 414, 422)),
    ("secret", "GET", "/v1/webhooks/{}/secret", None, (404, 414, 422)),
    ("event", "GET", "/v1/events/{}", None, (404, 414, 422)),
    ("retry", "POST", "/v1/deliveries/{}/retry", None, (404, 405, 414, 422)),
    ("key", "DELETE", "/v1/keys/{}", None, (404, 414, 422)),
    ("erase", "POST", "/v1/orders/{}/erase", None, (404, 405, 414, 422)),
)


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
        for name, method, path, content, expect in ID_ROUTES:
            yield Bad(f"path-{name}-{n}", method, path.format(segment), content, expect=expect)
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
        bad_tls_bodies,
        batches,
        bad_portal_links,
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
