"""The consumer loop every broker source shares: fetch, validate, ingest, then acknowledge.

One round takes what a fetch returned (up to a batch of messages), checks each message on
its own, stores all those that can be accepted in ONE ingest call (one transaction), then
dead-letters the others, and only then acknowledges every message of the round.
A crash anywhere before the acknowledgement lets the broker deliver the messages again.
Each message's key (the source and the SHA-256 of its body) is recorded in the ingest's
own transaction, and a message whose key is recorded already creates nothing: it is
acknowledged and counted as `duplicate`, so a redelivery creates nothing twice, courier
updates included (docs/guarantees.md, docs/operations.md).

While the store is unavailable the round waits and tries again: nothing is acknowledged
or dead-lettered meanwhile. When the broker goes away, the loop reconnects with backoff.
The broker-specific halves (`nats.py`, `amqp.py`) implement `Broker` and `BrokerSession`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from orderhooks.exceptions import OrderAccountChanged, StoreError, UnknownOrder
from orderhooks.logging import get_logger
from orderhooks.metrics import Metrics
from orderhooks.sources.config import SourceConfig
from orderhooks.sources.messages import (
    MessageRejected,
    account_changed_rejection,
    message_items,
    unknown_order_rejection,
)
from orderhooks.store.base import IngestItem, IngestResult, MessageKey

SourceState = Literal["connected", "reconnecting"]
# Stores items in one transaction; the second argument is each item's message key.
IngestCall = Callable[[Sequence[IngestItem], Sequence[MessageKey]], Awaitable[list[IngestResult]]]
# Raises StoreError unless the store answers.
StoreCheck = Callable[[], Awaitable[None]]

RECONNECT_FIRST = 0.5  # seconds before the second connection attempt, doubling
RECONNECT_MAX = 5.0  # seconds between connection attempts at most
STORE_RETRY_FIRST = 0.5  # seconds before retrying a round the store refused, doubling
STORE_RETRY_MAX = 5.0
BACKOFF_JITTER = 0.2
STOP_TIMEOUT_SECONDS = 10.0

log = get_logger("orderhooks.sources")


def backoff_delay(
    attempt: int, first: float, ceiling: float, jitter: float = BACKOFF_JITTER
) -> float:
    """Seconds to wait before try number `attempt` (0-based): doubling from `first` up to
    `ceiling`, spread by +-`jitter` so that many consumers do not return in step."""
    base: float = min(ceiling, first * 2.0 ** min(attempt, 30))
    return base * random.uniform(1 - jitter, 1 + jitter)


@dataclass(slots=True)
class SourceMessage:
    """One message as fetched: its body, its subject (NATS) and the broker's handle."""

    body: bytes
    handle: Any
    subject: str = ""
    skip: bool = False  # a NATS dead letter seen again by its own stream's consumer


class BrokerLost(Exception):
    """The connection to the broker is gone; the loop reconnects."""


class BrokerSession(Protocol):
    """One live connection to a broker, consuming one source."""

    async def fetch(self) -> list[SourceMessage]:
        """The next messages, waiting a short while for the first; [] when none came."""
        ...

    async def dead_letter(self, message: SourceMessage, code: str, text: str) -> None:
        """Publish the message's body unchanged to the dead-letter destination."""
        ...

    async def ack(self, messages: Sequence[SourceMessage]) -> None:
        """Acknowledge the messages to the broker."""
        ...

    async def retry_later(self, message: SourceMessage) -> bool:
        """Hand a message naming an unknown order back for a later delivery, when the
        broker counts deliveries and this one has not come back often; True if so."""
        ...

    async def lag(self) -> int | None:
        """Messages waiting at the broker, when it reports it."""
        ...

    async def close(self) -> None:
        """Close the connection; unacknowledged messages go back to the broker."""
        ...


class Broker(Protocol):
    """Opens sessions to one source's broker."""

    async def connect(self) -> BrokerSession:
        """Connect and start consuming; raises when the broker cannot be reached."""
        ...


@dataclass(slots=True)
class SourceStatus:
    """What `GET /v1/sources` shows of one source (docs/api.md)."""

    config: SourceConfig
    state: SourceState = "reconnecting"
    consumed: int = 0
    dead_lettered: int = 0
    lag: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The answer's entry: never the credentials."""
        return {
            "id": self.config.id,
            "url": self.config.display_url,
            "state": self.state,
            "consumed": self.consumed,
            "deadLettered": self.dead_lettered,
            "lag": self.lag,
        }


@dataclass(slots=True)
class _Pending:
    message: SourceMessage
    items: list[IngestItem]
    single: bool
    key: MessageKey


@dataclass
class SourceConsumer:
    """Consumes one source until `stop()`."""

    broker: Broker
    status: SourceStatus
    ingest: IngestCall
    metrics: Metrics
    max_message_bytes: int
    store_check: StoreCheck | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _failures: int = 0  # failed connects and lost sessions since a session last worked

    @property
    def source_id(self) -> str:
        """The source's id, the `source` label of its metrics."""
        return self.status.config.id

    def stop(self) -> None:
        """Finish the current round, then leave the loop."""
        self._stopping.set()

    async def run(self) -> None:
        """Connect, consume, reconnect with backoff; until stopped.

        The backoff grows with every failed connect and every lost session, and starts
        over once a session has done a round (or waited idle): a session lost at once,
        every time, must not have the loop reconnect as fast as the broker answers.
        """
        while not self._stopping.is_set():
            try:
                session = await self.broker.connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._sleep(self._session_failed("source unreachable", exc))
                continue
            self._set_state("connected")
            log.info("source connected", source=self.source_id, url=self.status.config.display_url)
            delay = 0.0
            try:
                await self._consume(session)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = self._session_failed("source connection lost", exc)
            finally:
                with contextlib.suppress(Exception):
                    await session.close()
            if delay:
                await self._sleep(delay)
        self._set_state("reconnecting")

    def _session_failed(self, event: str, exc: Exception) -> float:
        """Note a failed connect or a lost session (the source is reconnecting; `event` is
        logged); the wait before the next connect, longer after each failure in a row."""
        self._set_state("reconnecting")
        delay = backoff_delay(self._failures, RECONNECT_FIRST, RECONNECT_MAX)
        self._failures += 1
        log.warning(
            event, source=self.source_id, error=self._describe(exc), retry_in=round(delay, 2)
        )
        return delay

    async def _consume(self, session: BrokerSession) -> None:
        while not self._stopping.is_set():
            messages = await session.fetch()
            if messages and not await self.handle_round(session, messages):
                return  # stopped while the store was unavailable: nothing acknowledged
            self._failures = 0  # a round done, or an idle wait: the session works
            lag = await session.lag()
            self.status.lag = lag
            if lag is not None:
                self.metrics.source_lag.labels(source=self.source_id).set(lag)

    async def handle_round(self, session: BrokerSession, messages: Sequence[SourceMessage]) -> bool:
        """Validate, ingest, dead-letter and acknowledge one fetch; False when stopped
        before the messages could be stored (they are left unacknowledged, and nothing is
        dead-lettered: the broker delivers the round again, and its dead letters would be
        published twice)."""
        pending: list[_Pending] = []
        rejected: list[tuple[SourceMessage, MessageRejected]] = []
        skipped = 0
        repeated = 0  # the same body twice in this round: the first one counts
        seen: set[MessageKey] = set()
        for message in messages:
            if message.skip:
                skipped += 1
                continue
            key = MessageKey(self.source_id, hashlib.sha256(message.body).hexdigest())
            if key in seen:
                repeated += 1
                continue
            try:
                items, single = message_items(message.body, self.max_message_bytes)
            except MessageRejected as rejection:
                rejected.append((message, rejection))
                continue
            seen.add(key)
            pending.append(_Pending(message, items, single, key))
        stored = await self._ingest_all(session, pending, rejected)
        if stored is None:
            return False
        retried, duplicates = stored
        for bad, reason in rejected:
            await self._dead_letter(session, bad, reason)
        done = [m for m in messages if not any(m is r for r in retried)]
        await session.ack(done)
        self.status.consumed += len(done)
        self._count("ingested", len(pending) - duplicates)
        self._count("duplicate", duplicates + repeated)
        self._count("skipped", skipped)
        self._count("retried", len(retried))
        return True

    async def _ingest_all(
        self,
        session: BrokerSession,
        pending: list[_Pending],
        rejected: list[tuple[SourceMessage, MessageRejected]],
    ) -> tuple[list[SourceMessage], int] | None:
        """Store every pending message's items in one call. A message naming an unknown
        order is left out: handed back for a later delivery while the broker allows (its
        order may be in a message another process is storing right now), else added to
        `rejected`, as is one moving an order to another account: they are dead-lettered
        once the round is stored. Returns the messages handed back and how many of those
        stored were ingested before (duplicates); None when stopped first."""
        attempt = 0
        retried: list[SourceMessage] = []
        # A round with nothing to store still dead-letters only once the store answers:
        # nothing is dead-lettered or acknowledged while it is unavailable.
        check_only = self.store_check if not pending and rejected else None
        while pending or check_only is not None:
            items = [item for entry in pending for item in entry.items]
            keys = [entry.key for entry in pending for _ in entry.items]
            try:
                if check_only is not None:
                    await check_only()
                    return retried, 0
                results = await self.ingest(items, keys)
                return retried, _duplicates(pending, results)
            except UnknownOrder as exc:
                entry, local_index = _owner(pending, exc.index)
                pending.remove(entry)
                if await session.retry_later(entry.message):
                    retried.append(entry.message)
                    continue
                rejection = unknown_order_rejection(exc.order_id, local_index, entry.single)
                rejected.append((entry.message, rejection))
            except OrderAccountChanged as exc:
                # Never acceptable, whenever it comes back: dead-lettered with the round.
                entry, local_index = _owner(pending, exc.index)
                pending.remove(entry)
                rejection = account_changed_rejection(exc, local_index, entry.single)
                rejected.append((entry.message, rejection))
            except Exception as exc:
                # Unavailable or failing: wait and try the same messages again; nothing is
                # acknowledged or dead-lettered meanwhile (docs/guarantees.md). An error that
                # is not the store's (a bug) pauses the same way, with backoff, instead of
                # passing for a lost connection and spinning on the same round.
                delay = backoff_delay(attempt, STORE_RETRY_FIRST, STORE_RETRY_MAX)
                event = (
                    "store unavailable: consuming paused"
                    if isinstance(exc, StoreError)
                    else "ingest failed: consuming paused"
                )
                (log.warning if isinstance(exc, StoreError) else log.error)(
                    event,
                    source=self.source_id,
                    error=describe_error(exc, ()),
                    retry_in=round(delay, 2),
                )
                attempt += 1
                await self._sleep(delay)
                if self._stopping.is_set():
                    return None
        return retried, 0

    async def _dead_letter(
        self, session: BrokerSession, message: SourceMessage, rejected: MessageRejected
    ) -> None:
        await session.dead_letter(message, rejected.code, rejected.message)
        self.status.dead_lettered += 1
        self._count("dead_lettered", 1)
        log.info(
            "message dead-lettered",
            source=self.source_id,
            code=rejected.code,
            reason=rejected.message,
        )

    def _describe(self, exc: BaseException) -> str:
        return describe_error(exc, self.status.config.secrets)

    def _count(self, outcome: str, amount: int) -> None:
        if amount:
            self.metrics.source_messages.labels(source=self.source_id, outcome=outcome).inc(amount)

    def _set_state(self, state: SourceState) -> None:
        self.status.state = state
        if state == "reconnecting":
            # No broker reports a lag while the source is away (`GET /v1/sources` shows
            # null); the gauge keeps the last one seen (docs/operations.md, "Metrics").
            self.status.lag = None

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)


def _duplicates(pending: Sequence[_Pending], results: Sequence[IngestResult]) -> int:
    """How many pending messages the store found ingested before (their items, all
    marked `duplicate`, created nothing)."""
    count = 0
    start = 0
    for entry in pending:
        mine = results[start : start + len(entry.items)]
        start += len(entry.items)
        if mine and all(result.duplicate for result in mine):
            count += 1
    return count


def _owner(pending: Sequence[_Pending], index: int) -> tuple[_Pending, int]:
    """The pending message holding flat item `index`, and the item's index within it."""
    for entry in pending:
        if index < len(entry.items):
            return entry, index
        index -= len(entry.items)
    raise IndexError(index)


def describe_error(exc: BaseException, secrets: Sequence[str]) -> str:
    """An error for the log, with the source's password or token blotted out."""
    text = f"{type(exc).__name__}: {exc}"
    for secret in secrets:
        text = text.replace(secret, "***")
    return text[:300]
