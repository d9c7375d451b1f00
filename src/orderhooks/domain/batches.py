"""The body of a batched delivery (docs/events.md): several envelopes in one request.

The envelopes arrive already encoded (each shaped for its webhook): the batch body joins
their bytes as they are, so every event in a batch is byte for byte the envelope the
webhook would get alone, and nothing is encoded twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from orderhooks.domain.ids import IdFactory
from orderhooks.domain.model import PayloadFormat
from orderhooks.exceptions import FieldProblem, ValidationError

BATCH_ID_PREFIX = "bat"
MIN_BATCH_EVENTS = 2
MAX_BATCH_EVENTS = 500
MAX_BATCH_WAIT_MS = 60_000


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """A webhook's `batch`: send once `max_events` are due or the oldest due one has
    waited `max_wait_ms`, whichever comes first."""

    max_events: int
    max_wait_ms: int


_BATCH_LIMITS = {
    "maxEvents": (MIN_BATCH_EVENTS, MAX_BATCH_EVENTS),
    "maxWaitMs": (0, MAX_BATCH_WAIT_MS),
}


def parse_batch(value: Any, payload_format: PayloadFormat) -> BatchSettings | None:
    """The webhook field `batch` checked: null, or `{maxEvents, maxWaitMs}` with a
    webhook whose `payloadFormat` is `envelope`. ValidationError naming the field."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError([FieldProblem("batch", "must be null or an object")])
    if payload_format is not PayloadFormat.ENVELOPE:
        raise ValidationError([FieldProblem("batch", "needs payloadFormat 'envelope'")])
    problems = [
        FieldProblem(f"batch.{name}", "is not a known field")
        for name in value
        if name not in _BATCH_LIMITS
    ]
    for name, (low, high) in _BATCH_LIMITS.items():
        number = value.get(name)
        # bool is an int in Python, but `true` is not an integer in JSON.
        if not isinstance(number, int) or isinstance(number, bool) or not low <= number <= high:
            problems.append(
                FieldProblem(f"batch.{name}", f"must be an integer from {low} to {high}")
            )
    if problems:
        raise ValidationError(problems)
    return BatchSettings(max_events=value["maxEvents"], max_wait_ms=value["maxWaitMs"])


def new_batch_id(new_id: IdFactory) -> str:
    """A batch id, `bat_…`: the `webhook-id` of every attempt of that batch."""
    return new_id(BATCH_ID_PREFIX)


def encode_batch(batch_id: str, envelopes: Sequence[bytes]) -> bytes:
    """`{"type":"batch","id":…,"events":[…]}` from encoded envelopes, in the given order."""
    if not envelopes:
        raise ValueError("a batch carries at least one event")
    return b"".join(
        (
            b'{"type":"batch","id":',
            orjson.dumps(batch_id),
            b',"events":[',
            b",".join(envelopes),
            b"]}",
        )
    )
