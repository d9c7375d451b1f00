"""The OpenAPI document (`/openapi.json`): bodies are read by hand after authentication,
so their schemas are declared here and attached to the routes with `openapi_extra`.

Every component a route names through `ref` is registered and published under
`#/components/schemas`; request models are described in validation mode, answers in
serialization mode.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from orderhooks.web.answer_models import ErrorBody

_REF = "#/components/schemas/{model}"
_models: dict[str, tuple[type[BaseModel], str]] = {}
_raw: dict[str, dict[str, Any]] = {}
_webhooks: dict[str, dict[str, Any]] = {}

_ERROR_DESCRIPTIONS = {
    400: "Malformed JSON or request",
    401: "Missing, unknown or revoked API key",
    403: "The key's role or accounts do not allow this",
    404: "No such object, or not visible to this key",
    409: "Conflicts with the stored state",
    413: "The body is larger than ORDERHOOKS_MAX_BODY_BYTES",
    415: "The body is not application/json, or is compressed (Content-Encoding)",
    422: "Validation failed; `details` name the fields",
    429: "Rate limit of this key exceeded; see Retry-After",
    503: "Not ready: the database cannot be reached, or cannot write (disk full)",
}
AUTH_ERRORS = (401, 403, 422, 429, 503)
BODY_ERRORS = (400, 413, 415, 422)


def ref(model: type[BaseModel] | str) -> dict[str, str]:
    """A `$ref` to `model` (or to a raw schema registered with `register_raw`)."""
    if isinstance(model, str):
        if model not in _raw:
            raise KeyError(f"no raw schema named {model!r}")
        return {"$ref": _REF.format(model=model)}
    mode = "serialization" if _is_answer(model) else "validation"
    _models[model.__name__] = (model, mode)
    return {"$ref": _REF.format(model=model.__name__)}


def _is_answer(model: type[BaseModel]) -> bool:
    return model.__module__.endswith(".answer_models")


def register_raw(name: str, schema: dict[str, Any]) -> str:
    """Publish a hand-written JSON schema under `name`; returns the name."""
    _raw[name] = schema
    return name


def register_webhook(name: str, path_item: dict[str, Any]) -> None:
    """Publish what orderhooks sends to receivers under the document's `webhooks`."""
    _webhooks[name] = path_item


def json_body(
    model: type[BaseModel] | str, *, required: bool = True, description: str = ""
) -> dict[str, Any]:
    """`openapi_extra` declaring a JSON request body."""
    body: dict[str, Any] = {
        "required": required,
        "content": {"application/json": {"schema": ref(model)}},
    }
    if description:
        body["description"] = description
    return {"requestBody": body}


def answers(
    status: int,
    model: type[BaseModel] | None,
    description: str,
    *errors: int,
    content_type: str = "application/json",
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: its success answer and the error answers it can give."""
    out: dict[int | str, dict[str, Any]] = {}
    ok: dict[str, Any] = {"description": description}
    if model is not None:
        ok["content"] = {content_type: {"schema": ref(model)}}
    out[status] = ok
    for code in sorted(set(errors)):
        out[code] = {
            "description": _ERROR_DESCRIPTIONS[code],
            "content": {"application/json": {"schema": ref(ErrorBody)}},
        }
    return out


def _component_schemas() -> dict[str, Any]:
    pairs: Iterable[tuple[type[BaseModel], Any]] = list(_models.values())
    _, top = models_json_schema(list(pairs), ref_template=_REF, by_alias=True)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    schemas.update(_raw)
    return schemas


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` publish the registered schemas next to FastAPI's own."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = document.setdefault("components", {})
            components.setdefault("schemas", {}).update(_component_schemas())
            if _webhooks:
                document["webhooks"] = dict(_webhooks)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
