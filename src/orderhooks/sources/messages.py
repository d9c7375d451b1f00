"""A broker message's body checked exactly as a `POST /v1/events` body would be.

A body is one batch item or an array of them (docs/api.md); it becomes the ingest items
of one batch, or a `MessageRejected` carrying the error code that goes into the
dead letter's `orderhooks-error` header (docs/operations.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orderhooks.exceptions import FieldProblem, OrderAccountChanged, ValidationError
from orderhooks.service.ingest import batch_items
from orderhooks.store.base import IngestItem
from orderhooks.web.bodies import parse_json
from orderhooks.web.errors import ApiError

# The error codes of dead letters: the API's codes for the same refusals, plus
# `unknown_order`, which the API reports as a 422 naming the item.
BAD_REQUEST = "bad_request"
PAYLOAD_TOO_LARGE = "payload_too_large"
VALIDATION_ERROR = "validation_error"
UNKNOWN_ORDER = "unknown_order"
ERROR_MESSAGE_MAX_CHARS = 1000  # header values stay small; the body is kept anyway


@dataclass(frozen=True, slots=True)
class MessageRejected(Exception):
    """A message that can never be accepted: its dead-letter code and reason."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def _problem_text(problem: FieldProblem, single: bool) -> str:
    if single or problem.index is None:
        return f"{problem.field}: {problem.message}"
    return f"[{problem.index}].{problem.field}: {problem.message}"


def rejection_text(exc: ValidationError, single: bool) -> str:
    """A ValidationError as one header-safe line naming each field."""
    text = "; ".join(_problem_text(p, single) for p in exc.problems) or exc.message
    return _one_line(text)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:ERROR_MESSAGE_MAX_CHARS]


def message_items(body: bytes, max_bytes: int) -> tuple[list[IngestItem], bool]:
    """The ingest items of one message, and whether it held a single item (not an array);
    MessageRejected when it can never be accepted."""
    if len(body) > max_bytes:
        raise MessageRejected(PAYLOAD_TOO_LARGE, f"the message is larger than {max_bytes} bytes")
    if not body:
        raise MessageRejected(BAD_REQUEST, "the message is empty")
    try:
        parsed: Any = parse_json(body)
    except ApiError as exc:
        code = BAD_REQUEST if exc.status == 400 else VALIDATION_ERROR
        raise MessageRejected(code, _one_line(exc.message)) from None
    single = not isinstance(parsed, list)
    try:
        return batch_items([parsed] if single else parsed), single
    except ValidationError as exc:
        raise MessageRejected(VALIDATION_ERROR, rejection_text(exc, single)) from None


def unknown_order_rejection(order_id: str, item_index: int, single: bool) -> MessageRejected:
    """The rejection of a message whose update names an order the store does not know."""
    where = "orderId" if single else f"[{item_index}].orderId"
    return MessageRejected(UNKNOWN_ORDER, _one_line(f"{where}: unknown order {order_id!r}"))


def account_changed_rejection(
    exc: OrderAccountChanged, item_index: int, single: bool
) -> MessageRejected:
    """The rejection of a message whose newer order version names another account."""
    problems = [FieldProblem(f"data.{p.field}", p.message, item_index) for p in exc.problems]
    return MessageRejected(VALIDATION_ERROR, rejection_text(ValidationError(problems), single))
