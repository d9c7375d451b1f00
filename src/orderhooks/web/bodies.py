"""Reading request bodies by hand, after authentication (docs/api.md, authentication: 401, 403 and
404 come before the body is looked at), with the size limit, the content type and strict JSON."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import orjson
from fastapi import Request
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from orderhooks.exceptions import FieldProblem
from orderhooks.web.errors import ApiError
from orderhooks.web.request_models import validate_body

if TYPE_CHECKING:
    from orderhooks.web.auth import Caller

M = TypeVar("M", bound=BaseModel)

# orjson reads up to 1024 levels but writes only 254; the store writes what we accept,
# so deeper documents are refused here rather than failing after validation.
MAX_JSON_DEPTH = 128
# Integers outside signed 64 bits cannot be stored in an integer column of either engine.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# The fast structure check's tables (see `_check_structure_fast`).
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_NINETEEN_DIGITS = b"0" * 19
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_NOT_QUOTES_OR_BRACKETS = bytes(byte for byte in range(256) if byte not in b'"[]{}')
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
# An integer literal of 19 digits or more (with the strings removed): not part of a
# fraction or an exponent, and not followed by one.
_LONG_INTEGER = re.compile(rb"(?<![\d.eE+-])-?\d{19,}(?![\d.eE])")
_INNERMOST = re.compile(rb"\[\]|\{\}")

# The path of a value inside an item of an array body (a batch): `[3].data.note`.
_ITEM_PATH = re.compile(r"\[(\d+)\]\.?(.*)", re.DOTALL)
_NUL_MESSAGE = "must not contain NUL characters"

NO_BODY = object()  # sentinel: the request carried no body at all
# Closing the connection after a 413 stops the server from reading (and discarding) the
# rest of an oversized body just to keep the connection alive.
_CLOSE = {"connection": "close"}


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the body is larger than {limit} bytes", headers=_CLOSE)


def _content_length(request: Request, limit: int) -> None:
    raw = request.headers.get("content-length")
    if raw is None:
        return
    try:
        length = int(raw)
    except ValueError:
        raise ApiError(400, "invalid Content-Length header") from None
    if length > limit:
        raise _too_large(limit)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 once it exceeds `limit` bytes (declared or streamed)."""
    _content_length(request, limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                # Stop reading at the limit: a body without Content-Length is never
                # buffered whole.
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody is left to answer; a plain refusal keeps it out of the error log.
        raise ApiError(400, "the client disconnected before sending the whole body") from None
    return b"".join(chunks)


def is_json_content_type(value: str | None) -> bool:
    """Whether a Content-Type header names `application/json` (parameters allowed)."""
    if not value:
        return False
    return value.split(";", 1)[0].strip().lower() == "application/json"


def _has_long_digit_run(raw: bytes) -> bool:
    """Whether 19 digits follow each other anywhere in `raw` (in a string or not)."""
    return _NINETEEN_DIGITS in raw.translate(_DIGITS_AS_ZERO)


def _check_integer_literals(raw: bytes) -> None:
    """Refuse integer literals outside signed 64 bits, read from the bytes: orjson reads
    one beyond 2**64 - 1 as a float (99999999999999999999999 becomes 1e+23), which the
    walk of the parsed value cannot tell from a float the body wrote, and which would be
    stored and sent as another number than the one posted."""
    for literal in _LONG_INTEGER.finditer(_STRING.sub(b"", raw)):
        if not INT64_MIN <= int(literal[0]) <= INT64_MAX:
            raise ApiError(400, "a number is outside the 64-bit integer range")


def _check_structure_fast(raw: bytes) -> bool:
    """Whether a document orjson parsed is surely within both limits, judged from its
    bytes at C speed (walking every value cost three times the parse on a batch of 100
    orders). False when it cannot tell: then `_check_structure` walks the value.

    - Integers: orjson reads integers up to 2**64 - 1, so one outside signed 64 bits
      has at least 19 digits; without a run of 19 digits anywhere there is none.
    - Depth: no deeper than the number of opening brackets; when there are more than
      MAX_JSON_DEPTH of them, the strings are removed, leaving only the brackets of the
      containers, balanced, and each pass of one `re.sub` removes the innermost level
      (a pair that becomes adjacent only after a removal is not matched in that pass).
    """
    if _has_long_digit_run(raw):
        return False
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return True
    if b"\\" in raw:
        brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    else:
        # Without escapes every second quote closes a string, so a bracket is inside one
        # when an odd number of quotes comes before it. Keep only quotes and brackets, drop
        # adjacent pairs of quotes (which changes no bracket's count), and the few quotes
        # left enclose the brackets inside strings: the even pieces are outside. (Splitting
        # the whole body at every quote cost more than parsing it.)
        marks = raw.translate(None, _NOT_QUOTES_OR_BRACKETS).replace(b'""', b"")
        brackets = b"".join(marks.split(b'"')[0::2])
    for _ in range(MAX_JSON_DEPTH):
        if not brackets:
            return True
        brackets = _INNERMOST.sub(b"", brackets)
    return not brackets


def _check_structure(value: Any) -> None:
    """Refuse documents nested deeper than MAX_JSON_DEPTH or with out-of-range integers.

    Iterative, so a hostile document cannot exhaust the Python stack.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            if type(item) is int and not INT64_MIN <= item <= INT64_MAX:
                raise ApiError(400, "a number is outside the 64-bit integer range")
            continue
        if depth > MAX_JSON_DEPTH:
            raise ApiError(400, f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def _nul_field(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) holding a NUL character, if any."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return where or "body"
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{where}.{key}" if where else str(key)
                if "\x00" in key:
                    return child_path
                stack.append((child, child_path))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
    return None


def _nul_problem(field: str) -> FieldProblem:
    """The problem of a NUL at `field`; inside an item of an array body (a batch, the only
    one), named by the item's `index` and the path within it, as every batch problem is
    (docs/api.md, ingest)."""
    item = _ITEM_PATH.fullmatch(field)
    if item is None:
        return FieldProblem(field, _NUL_MESSAGE)
    return FieldProblem(item[2] or "item", _NUL_MESSAGE, int(item[1]))


def parse_json(raw: bytes) -> Any:
    """Parse JSON strictly (valid UTF-8, no NaN, bounded depth, no NUL characters); 400 when
    malformed, 422 naming the field for a NUL."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc.msg}") from None
    if not _check_structure_fast(raw):
        _check_structure(value)
        if _has_long_digit_run(raw):
            _check_integer_literals(raw)
    # JSON can only carry a NUL escaped; neither engine can store one in text, and no
    # order field needs one. The cheap byte test keeps the walk off the common path.
    if b"\\u0000" in raw:
        field = _nul_field(value)
        if field is not None:
            problem = _nul_problem(field)
            raise ApiError(422, f"{field}: {_NUL_MESSAGE}", details=[problem.as_dict()])
    return value


async def read_json_bytes(request: Request, limit: int) -> tuple[bytes, Any]:
    """The raw body and its parsed JSON; a body is required (422 when empty)."""
    raw = await read_body(request, limit)
    if not raw:
        raise ApiError(
            422,
            "a JSON body is required",
            details=[{"field": "body", "message": "a JSON body is required"}],
        )
    return raw, _parse_typed(request, raw)


async def read_json(request: Request, limit: int, *, required: bool = True) -> Any:
    """The parsed JSON body; NO_BODY when it is empty and not `required`.

    An empty body needs no content type; any other body must be `application/json` (415).
    """
    if required:
        return (await read_json_bytes(request, limit))[1]
    raw = await read_body(request, limit)
    return NO_BODY if not raw else _parse_typed(request, raw)


async def read_model(request: Request, model: type[M], limit: int, *, required: bool = True) -> M:
    """The JSON body validated as `model` (422 naming each bad field); an empty body that
    is not `required` is `model()`, its defaults."""
    body = await read_json(request, limit, required=required)
    return model() if body is NO_BODY else validate_body(model, body)


class _NamesAccounts(Protocol):
    """A body with an `accounts` field."""

    accounts: list[str]


async def read_accounts_body(request: Request, model: type[M], limit: int, caller: Caller) -> M:
    """The JSON body validated as `model`, whose `accounts` the caller may name: 403 for a
    foreign account (or `*`) before the rest of the body is validated (docs/api.md,
    authentication), and again for the validated accounts when the body gave them."""
    body = await read_json(request, limit)
    caller.require_body_accounts(body)
    spec = validate_body(model, body)
    if "accounts" in spec.model_fields_set:
        caller.require_accounts(cast(_NamesAccounts, spec).accounts)
    return spec


def _is_plain_content_encoding(value: str | None) -> bool:
    """Whether a Content-Encoding header leaves the body as it is (absent or `identity`)."""
    return value is None or value.strip().lower() in ("", "identity")


def _parse_typed(request: Request, raw: bytes) -> Any:
    if not is_json_content_type(request.headers.get("content-type")):
        raise ApiError(415, "the body must be application/json")
    # No content coding is decoded: a gzip body would be read as (malformed) JSON, and a
    # plain one labelled gzip as if the label were not there (RFC 9110: 415 for a coding
    # the server does not take).
    if not _is_plain_content_encoding(request.headers.get("content-encoding")):
        raise ApiError(415, "the body must not be compressed: send it without Content-Encoding")
    return parse_json(raw)
