"""The event catalog over HTTP (docs/api.md, docs/events.md): `GET /v1/event-types` for
any key, and the same schemas in the `webhooks` section of `/openapi.json`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from orderhooks.domain.catalog import BATCH_DESCRIPTION, BATCH_TYPE, batch_schema, event_catalog
from orderhooks.domain.model import Role
from orderhooks.web.auth import Caller, require_role
from orderhooks.web.openapi import answers, ref, register_raw, register_webhook
from orderhooks.web.responses import OrjsonResponse

router = APIRouter(tags=["event types"])

AnyCaller = Annotated[Caller, Depends(require_role(*Role))]

_EVENT_TYPE_LIST = register_raw(
    "EventTypeList",
    {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["type", "description", "schema"],
                    "properties": {
                        "type": {"type": "string"},
                        "description": {"type": "string"},
                        "schema": {
                            "type": "object",
                            "description": "JSON Schema (2020-12) of the envelope",
                        },
                    },
                },
            }
        },
    },
)
_ANSWERS = answers(200, None, "Every event type with its description and schema", 401, 422, 429)
_ANSWERS[200]["content"] = {"application/json": {"schema": ref(_EVENT_TYPE_LIST)}}


@router.get(
    "/v1/event-types",
    summary="The event catalog: every event type and its JSON Schema",
    responses=_ANSWERS,
)
async def list_event_types(caller: AnyCaller) -> OrjsonResponse:
    """Every event type a webhook can receive, with the JSON Schema (2020-12) of its
    envelope, `data` included."""
    return OrjsonResponse({"data": event_catalog()})


# ---------------------------------------------------------------- OpenAPI `webhooks`

_HEADERS = (
    ("webhook-id", "The event id (a batch: the batch id), the same on every attempt"),
    ("webhook-timestamp", "Unix seconds of this attempt"),
    ("webhook-signature", "`v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}`"),
    ("x-server-authorization-hmac-sha256", "Hex HMAC-SHA256 of the raw body"),
    ("orderhooks-event-type", "The event type (`batch` for a batch)"),
    ("orderhooks-delivery-id", "The delivery id (a batch: its delivery ids, comma-separated)"),
    ("orderhooks-attempt", "1 for the first attempt, then 2, 3, ..."),
)


def _path_item(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    headers = list(_HEADERS)
    if name == BATCH_TYPE:
        headers.append(("orderhooks-batch-size", "How many events the batch carries"))
    return {
        "post": {
            "operationId": f"receive_{name.replace('.', '_')}",
            "summary": f"{name} delivered to your endpoint",
            "description": description,
            "parameters": [
                {"name": header, "in": "header", "required": True, "schema": {"type": "string"}}
                | {"description": text}
                for header, text in headers
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": schema}},
            },
            "responses": {
                "2XX": {"description": "Received: any 2xx answer within the timeout"},
                "default": {"description": "Not received: the attempt is retried"},
            },
        }
    }


for _entry in event_catalog():
    register_webhook(
        _entry["type"], _path_item(_entry["type"], _entry["description"], _entry["schema"])
    )
register_webhook(BATCH_TYPE, _path_item(BATCH_TYPE, BATCH_DESCRIPTION, batch_schema()))
