"""The API fuzzed from its own OpenAPI document with schemathesis (issue 5, item 3).

A real server (`python -m orderhooks serve`, SQLite in a temporary data dir) is fuzzed
operation by operation, with valid and invalid generated requests:

- with the admin key: no 5xx, and every answer's status code, content type, headers and
  body conform to what `/openapi.json` documents; error answers have the error shape;
- without a key, or with a wrong one: every protected operation answers 401 before it
  looks at the request (docs/api.md, authentication).

The budget is `FUZZ_EXAMPLES` generated requests per operation with the admin key and
`UNAUTHENTICATED_EXAMPLES` without (raise the first with `ORDERHOOKS_FUZZ_EXAMPLES` for a
longer local run). Hypothesis is derandomized, but schemathesis varies some of its own
choices from run to run, so each run explores slightly different cases; what a run finds
is pinned below as a known-answer test.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from orderhooks.testing.server import ServerProcess
from tests.support.data import ALL_TYPES

FUZZ_EXAMPLES = int(os.environ.get("ORDERHOOKS_FUZZ_EXAMPLES", "25"))
UNAUTHENTICATED_EXAMPLES = 5
REQUEST_TIMEOUT_SECONDS = 30
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
CONFORMANCE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
HYPOTHESIS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    # Shrinking a failure costs many requests; the failing example is reported as found.
    phases=[Phase.explicit, Phase.generate],
)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The server under fuzzing; killed by pid at the end of the module."""
    base = tmp_path_factory.mktemp("fuzz")
    # Agreements required: webhooks the fuzzer creates wait instead of sending anywhere.
    env = {"ORDERHOOKS_REQUIRE_AGREEMENT": "true"}
    with ServerProcess(base / "data", log_path=base / "server.log", env=env) as server:
        yield server


def bounded_recursion(document: dict[str, Any], levels: int = 2) -> dict[str, Any]:
    """The document with each self-referencing component unrolled `levels` deep.

    An order item nests `subItems` of its own shape; a generator that follows the
    reference without bound draws ever deeper documents and spends the budget there.
    """
    out = copy.deepcopy(document)
    schemas: dict[str, Any] = out.get("components", {}).get("schemas", {})
    for name, schema in list(schemas.items()):
        ref = f"#/components/schemas/{name}"
        if ref not in repr(schema):
            continue
        leaf: Any = {"type": "array", "maxItems": 0}  # the last level nests nothing
        for _ in range(levels):
            leaf = _replace_ref(copy.deepcopy(schema), ref, leaf)
        schemas[name] = _replace_ref(schema, ref, leaf)
    return out


def _replace_ref(node: Any, ref: str, replacement: Any) -> Any:
    if isinstance(node, dict):
        if node.get("items") == {"$ref": ref}:
            return {**node, "items": replacement.get("items", replacement)}
        return {k: _replace_ref(v, ref, replacement) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_ref(v, ref, replacement) for v in node]
    return node


@pytest.fixture(scope="module")
def api_schema(fuzz_server: ServerProcess) -> Any:
    """The server's own OpenAPI document, loaded by schemathesis."""
    document = httpx.get(f"{fuzz_server.base_url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(bounded_recursion(document))
    schema.config.update(base_url=fuzz_server.base_url, request_timeout=REQUEST_TIMEOUT_SECONDS)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        deterministic=True,
        # The tests set Authorization themselves; generated security headers would only
        # add header bytes that the HTTP parser refuses before the app sees the request.
        with_security_parameters=False,
    )
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


def _assert_error_shape(response: Any) -> None:
    """An error answer is `{"error": {"code", "message", "details"}}`."""
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    assert {"code", "message", "details"} <= set(body["error"]), body


def _without_authorization(headers: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}


def _answered_before_auth(case: Any, response: Any) -> bool:
    """Whether routing refused the request before authentication could: a method the
    path does not have (405), or a path parameter that makes the path match no route
    (a `/` or a dot segment once decoded: 404). Both still answer the error shape."""
    if case.method.upper() != case.operation.method.upper() and response.status_code == 405:
        _assert_error_shape(response)
        return True
    return response.status_code == 404 and _path_may_not_route(case)


def _path_may_not_route(case: Any) -> bool:
    """Whether a generated path parameter can make the path match no route at all."""
    values = [str(v) for v in (case.path_parameters or {}).values()]
    return any(v in ("", ".", "..") or "/" in v or "%2f" in v.lower() for v in values)


@schema.parametrize()
@settings(HYPOTHESIS, max_examples=FUZZ_EXAMPLES)
@pytest.mark.slow
def test_api_conforms_to_its_openapi_document(case: Any, fuzz_server: ServerProcess) -> None:
    """With the admin key: no 5xx, and status, content type, headers and body as documented."""
    case.headers = _without_authorization(case.headers)
    response = case.call(headers=fuzz_server.headers(), timeout=REQUEST_TIMEOUT_SECONDS)
    case.validate_response(response, checks=CONFORMANCE_CHECKS)
    if response.status_code >= 400 and case.path not in PUBLIC_PATHS:
        _assert_error_shape(response)


@schema.parametrize()
@settings(HYPOTHESIS, max_examples=UNAUTHENTICATED_EXAMPLES)
@pytest.mark.slow
def test_protected_operations_answer_401_without_a_key(case: Any) -> None:
    """No Authorization header: every protected operation answers 401, whatever the request."""
    case.headers = _without_authorization(case.headers)
    response = case.call(timeout=REQUEST_TIMEOUT_SECONDS)
    case.validate_response(response, checks=[not_a_server_error])
    if case.path in PUBLIC_PATHS or _answered_before_auth(case, response):
        return
    assert response.status_code == 401, (case.method, case.formatted_path, response.text[:500])
    _assert_error_shape(response)
    assert response.headers.get("www-authenticate", [""])[0].lower().startswith("bearer")


@schema.parametrize()
@settings(HYPOTHESIS, max_examples=UNAUTHENTICATED_EXAMPLES)
@pytest.mark.slow
def test_protected_operations_answer_401_with_a_wrong_key(case: Any) -> None:
    """A wrong key, in the right scheme or another one, is a 401 as well."""
    case.headers = _without_authorization(case.headers)
    for authorization in ("Bearer ohk_not_a_key_of_this_server", "Basic b2hrOm5vcGU="):
        response = case.call(
            headers={"Authorization": authorization}, timeout=REQUEST_TIMEOUT_SECONDS
        )
        case.validate_response(response, checks=[not_a_server_error])
        if case.path in PUBLIC_PATHS or _answered_before_auth(case, response):
            continue
        assert response.status_code == 401, (authorization, case.method, response.text[:500])
        _assert_error_shape(response)


def _agreement(signed_at: str) -> dict[str, Any]:
    """An agreement body signed at `signed_at`."""
    return {
        "signedBy": "Fuzz",
        "signedAt": signed_at,
        "pricing": {"currency": "EUR", "perThousand": dict.fromkeys(ALL_TYPES, 100)},
    }


@pytest.mark.parametrize(
    ("signed_at", "answered"),
    [
        ("0001-01-02T01:01:04Z", "0001-01-02T01:01:04.000000Z"),
        ("0320-08-17T16:59:29+14:23", "0320-08-17T02:36:29.000000Z"),
        ("0999-12-31T23:59:59.5Z", "0999-12-31T23:59:59.500000Z"),
    ],
)
def test_early_years_are_answered_as_rfc3339(
    fuzz_server: ServerProcess, signed_at: str, answered: str
) -> None:
    """A timestamp the API accepts comes back as RFC 3339, four-digit year included
    (found by the fuzzer: years before 1000 came back as `1-01-02T…`)."""
    body = _agreement(signed_at)
    with fuzz_server.client() as client:
        put = client.put("/v1/accounts/acct-early-years/agreement", json=body)
        assert put.status_code == 200, put.text
        assert put.json()["signedAt"] == answered
        got = client.get("/v1/accounts/acct-early-years/agreement")
        assert got.json()["signedAt"] == answered


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_times_outside_the_utc_range_are_refused(fuzz_server: ServerProcess, moment: str) -> None:
    """An offset that moves year 1 or 9999 out of range in UTC is a 422, in a body and in a
    query (Python raises OverflowError there, not ValueError)."""
    body = _agreement(moment)
    with fuzz_server.client() as client:
        put = client.put("/v1/accounts/acct-overflow/agreement", json=body)
        assert put.status_code == 422, put.text
        assert put.json()["error"]["details"][0]["field"] == "signedAt"
        for path in ("/v1/events", "/v1/deliveries"):
            listed = client.get(path, params={"since": moment})
            assert listed.status_code == 422, listed.text
            assert listed.json()["error"]["details"][0]["field"] == "since"
