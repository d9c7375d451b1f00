"""The API fuzzed from its own OpenAPI document with schemathesis (issue 5, item 3).

A real server (`python -m orderhooks serve`, SQLite in a temporary data dir) is fuzzed
operation by operation, with valid and invalid generated requests:

- with the admin key: no 5xx, and every answer's status code, content type, headers and
  body conform to what `/openapi.json` documents; error answers have the error shape;
- without a key, or with a wrong one: every protected operation answers 401 before it
  looks at the request (PRODUCT 6).

The budget is `FUZZ_EXAMPLES` generated requests per operation and method of generation
(raise it with `ORDERHOOKS_FUZZ_EXAMPLES` for a longer local run). Generation is
derandomized so that CI runs are repeatable; each run explores the same cases.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import DataGenerationMethod, GenerationConfig
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from orderhooks.testing.server import ServerProcess
from tests.security import hypothesis_compat

FUZZ_EXAMPLES = int(os.environ.get("ORDERHOOKS_FUZZ_EXAMPLES", "15"))
UNAUTHENTICATED_EXAMPLES = 5
REQUEST_TIMEOUT_SECONDS = 30
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
CONFORMANCE_CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)
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


@pytest.fixture(scope="module")
def api_schema(fuzz_server: ServerProcess) -> Any:
    """The server's own OpenAPI document, loaded by schemathesis."""
    return schemathesis.from_uri(
        f"{fuzz_server.base_url}/openapi.json",
        base_url=fuzz_server.base_url,
        data_generation_methods=[DataGenerationMethod.positive, DataGenerationMethod.negative],
    )


hypothesis_compat.install()
# FastAPI publishes OpenAPI 3.1, which schemathesis 3.x reads only when asked to.
schemathesis.experimental.OPEN_API_3_1.enable()

schema = schemathesis.from_pytest_fixture(
    "api_schema",
    data_generation_methods=[DataGenerationMethod.positive, DataGenerationMethod.negative],
    # The tests set Authorization themselves; generated security headers would only add
    # invalid header bytes that the HTTP parser refuses before the app sees the request.
    generation_config=GenerationConfig(with_security_parameters=False),
)


def _assert_error_shape(response: Any) -> None:
    """An error answer is `{"error": {"code", "message", "details"}}`."""
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    assert {"code", "message", "details"} <= set(body["error"]), body


def _without_authorization(headers: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}


def _path_may_not_route(case: Any) -> bool:
    """Whether a generated path parameter can make the path match no route at all
    (a `/` or a dot segment once decoded), which is a 404 before any authentication."""
    values = [str(v) for v in (case.path_parameters or {}).values()]
    return any(v in ("", ".", "..") or "/" in v or "%2f" in v.lower() for v in values)


@schema.parametrize()
@settings(HYPOTHESIS, max_examples=FUZZ_EXAMPLES)
def test_api_conforms_to_its_openapi_document(case: Any, fuzz_server: ServerProcess) -> None:
    """With the admin key: no 5xx, and status, content type, headers and body as documented."""
    case.headers = _without_authorization(case.headers)
    response = case.call(headers=fuzz_server.headers(), timeout=REQUEST_TIMEOUT_SECONDS)
    case.validate_response(response, checks=CONFORMANCE_CHECKS)
    if response.status_code >= 400 and case.path not in PUBLIC_PATHS:
        _assert_error_shape(response)


@schema.parametrize()
@settings(HYPOTHESIS, max_examples=UNAUTHENTICATED_EXAMPLES)
def test_protected_operations_answer_401_without_a_key(case: Any) -> None:
    """No Authorization header: every protected operation answers 401, whatever the request."""
    case.headers = _without_authorization(case.headers)
    response = case.call(timeout=REQUEST_TIMEOUT_SECONDS)
    case.validate_response(response, checks=(not_a_server_error,))
    if case.path in PUBLIC_PATHS:
        return
    if response.status_code == 404 and _path_may_not_route(case):
        return
    assert response.status_code == 401, (case.method, case.formatted_path, response.text[:500])
    _assert_error_shape(response)
    assert response.headers.get("WWW-Authenticate", "").lower().startswith("bearer")


@schema.parametrize()
@settings(HYPOTHESIS, max_examples=UNAUTHENTICATED_EXAMPLES)
def test_protected_operations_answer_401_with_a_wrong_key(case: Any) -> None:
    """A wrong key, in the right scheme or another one, is a 401 as well."""
    case.headers = _without_authorization(case.headers)
    for authorization in ("Bearer ohk_not_a_key_of_this_server", "Basic b2hrOm5vcGU="):
        response = case.call(
            headers={"Authorization": authorization}, timeout=REQUEST_TIMEOUT_SECONDS
        )
        case.validate_response(response, checks=(not_a_server_error,))
        if case.path in PUBLIC_PATHS or (response.status_code == 404 and _path_may_not_route(case)):
            continue
        assert response.status_code == 401, (authorization, case.method, response.text[:500])
        _assert_error_shape(response)
