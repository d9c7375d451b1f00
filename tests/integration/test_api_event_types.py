"""The event catalog over HTTP on a real SQLite store: `GET /v1/event-types` for any key,
and the same schemas in the `webhooks` section of `/openapi.json`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import jsonschema
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31

from orderhooks.domain.apikeys import generate_api_key
from orderhooks.domain.catalog import batch_schema, event_catalog
from tests.integration.api_support import LocalApi as Api
from tests.integration.api_support import running_api
from tests.support.data import EVENT_TYPES, unique


@pytest.fixture()
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(tmp_path) as api:
        yield api


async def test_every_role_reads_the_catalog(api: Api) -> None:
    account = unique("acct")
    keys = {
        "admin": api.admin_key,
        "ingest": await api.make_key("ingest"),
        "partner": await api.make_key("partner", [account]),
    }
    for role, key in keys.items():
        response = await api.call("GET", "/v1/event-types", key)
        assert response.status_code == 200, (role, response.text)
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert set(body) == {"data"}
        assert [entry["type"] for entry in body["data"]] == EVENT_TYPES
        assert body["data"] == event_catalog()
        for entry in body["data"]:
            jsonschema.Draft202012Validator.check_schema(entry["schema"])


async def test_the_catalog_needs_a_valid_key(api: Api) -> None:
    revoked = await api.make_key("partner", [unique("acct")])
    assert (await api.call("DELETE", f"/v1/keys/{api.key_ids[revoked]}")).status_code == 204
    for key in (None, generate_api_key(), revoked):
        response = await api.call("GET", "/v1/event-types", key)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"]
        assert "schema" not in response.text


async def test_the_answer_matches_its_published_schema(api: Api) -> None:
    document = (await api.call("GET", "/openapi.json", None)).json()
    operation = document["paths"]["/v1/event-types"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    body = (await api.call("GET", "/v1/event-types")).json()
    jsonschema.validate(
        body,
        {**schema, "components": document["components"]},
        cls=jsonschema.Draft202012Validator,
    )


async def test_openapi_webhooks_carry_the_same_schemas(api: Api) -> None:
    document = (await api.call("GET", "/openapi.json", None)).json()
    assert document["openapi"].startswith("3.1.")
    webhooks = document["webhooks"]
    assert list(webhooks) == [*EVENT_TYPES, "batch"]
    published = {
        name: item["post"]["requestBody"]["content"]["application/json"]["schema"]
        for name, item in webhooks.items()
    }
    assert published == {
        **{entry["type"]: entry["schema"] for entry in event_catalog()},
        "batch": batch_schema(),
    }
    for name, item in webhooks.items():
        operation = item["post"]
        assert operation["description"]
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= headers
        assert ("orderhooks-batch-size" in headers) == (name == "batch")
        jsonschema.Draft202012Validator.check_schema(published[name])
    operation_ids = [item["post"]["operationId"] for item in webhooks.values()]
    assert len(set(operation_ids)) == len(operation_ids)


async def test_the_document_is_valid_openapi_3_1(api: Api) -> None:
    # The OpenAPI 3.1 meta-schema as schemathesis (a dev dependency) ships it.
    document = (await api.call("GET", "/openapi.json", None)).json()
    validator = jsonschema.Draft202012Validator(OPENAPI_31)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []
    broken = {**document, "webhooks": {"order.new": {"post": {"responses": "nope"}}}}
    assert not validator.is_valid(broken)
