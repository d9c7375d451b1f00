"""What the receiver records and how it answers: plain values shared by its parts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ReplyKind(StrEnum):
    """How the receiver answers one request."""

    STATUS = "status"  # an HTTP answer with a status code
    BLACK_HOLE = "black_hole"  # accept the request, never answer
    RESET = "reset"  # close the connection abruptly (TCP RST)


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: a status with headers and body, a black hole or a connection reset."""

    kind: ReplyKind = ReplyKind.STATUS
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def describe(self) -> str:
        """A short label recorded with each request (`200`, `black_hole`, `reset`)."""
        return str(self.status) if self.kind is ReplyKind.STATUS else self.kind.value


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What the receiver does with the next requests; replaced as a whole at runtime."""

    reply: Reply = field(default_factory=Reply)
    delay_seconds: float = 0.0
    fail_first: int = 0
    fail_first_per_delivery: bool = False
    failure: Reply = field(default_factory=lambda: Reply(status=500))
    failure_probability: float = 0.0


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request as it arrived, and what the receiver decided to answer."""

    index: int
    arrived_monotonic: float
    arrived_wall: float
    method: str
    path: str
    headers: Mapping[str, str]  # names in lower case
    body: bytes
    json: Any  # the parsed body, None when it is not JSON
    reply: str  # Reply.describe() of the answer chosen
    abandoned: bool = False  # the client hung up before the (delayed) answer was sent
    client_name: str | None = None  # common name of the client certificate (HTTPS only)

    @property
    def webhook_id(self) -> str | None:
        """The `webhook-id` header (the event id)."""
        return self.headers.get("webhook-id")

    @property
    def delivery_id(self) -> str | None:
        """The `orderhooks-delivery-id` header."""
        return self.headers.get("orderhooks-delivery-id")

    @property
    def attempt(self) -> int | None:
        """The `orderhooks-attempt` header as an integer."""
        raw = self.headers.get("orderhooks-attempt")
        return int(raw) if raw is not None and raw.isdigit() else None

    @property
    def accepted(self) -> bool:
        """Whether the receiver answered 2xx to a client still waiting for it."""
        return not self.abandoned and self.reply.isdigit() and 200 <= int(self.reply) < 300
