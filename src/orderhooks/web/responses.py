"""JSON responses encoded with orjson (the encoder the rest of orderhooks uses)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import JSONResponse


def _mapping_as_dict(value: object) -> dict[str, Any]:
    # Stored documents come back as read-only Mappings; orjson encodes dicts only.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


class OrjsonResponse(JSONResponse):
    """A JSON response rendered by orjson; Mappings are encoded as objects."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """The body bytes of `content`."""
        return orjson.dumps(content, default=_mapping_as_dict, option=orjson.OPT_NON_STR_KEYS)
