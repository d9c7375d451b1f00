"""The body of a batched delivery (docs/events.md): several envelopes in one request.

The envelopes arrive already encoded (each shaped for its webhook): the batch body joins
their bytes as they are, so every event in a batch is byte for byte the envelope the
webhook would get alone, and nothing is encoded twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from orderhooks.domain.ids import IdFactory

BATCH_ID_PREFIX = "bat"
MIN_BATCH_EVENTS = 2
MAX_BATCH_EVENTS = 500
MAX_BATCH_WAIT_MS = 60_000


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
