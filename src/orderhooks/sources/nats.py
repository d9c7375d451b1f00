"""NATS JetStream sources: a durable pull consumer, batched fetch, explicit acknowledgements.

Several processes naming the same durable share its messages: JetStream hands each
message to one of them. Dead letters go to `<subject>.dead`; a message whose subject
ends in `.dead` is acknowledged and left alone (a filter such as `orders.>` matches its
own dead letters), so a work-queue stream, which deletes what is acknowledged, is refused
when the filter would take its own dead letters. See docs/operations.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy
from nats.js.client import JetStreamContext

from orderhooks.logging import get_logger
from orderhooks.sources.config import DEAD_LETTER_SUFFIX, SourceConfig
from orderhooks.sources.consumer import BrokerLost, SourceMessage, describe_error

FETCH_BATCH_MESSAGES = 500  # at most this many messages per round (one transaction)
FETCH_WAIT_SECONDS = 1.0  # how long a fetch waits for the first message
CONNECT_TIMEOUT_SECONDS = 3
ACK_WAIT_SECONDS = 30.0  # unacknowledged for this long: JetStream delivers again
MAX_ACK_PENDING = 5000
# An update whose order is unknown is delivered this many times, a delay apart, before it
# is dead-lettered: processes sharing the durable may be storing its order right now.
UNKNOWN_ORDER_DELIVERIES = 5
UNKNOWN_ORDER_RETRY_SECONDS = 1.0
ERROR_HEADER = "orderhooks-error"
ERROR_MESSAGE_HEADER = "orderhooks-error-message"
STREAM_MESSAGE_TOO_LARGE = 10054  # JetStream's error code: over the stream's max_msg_size

log = get_logger("orderhooks.sources.nats")


async def connect_nats(source: SourceConfig) -> Client:
    """A connection that does not reconnect by itself: the consumer loop owns that."""

    async def on_error(exc: Exception) -> None:
        log.debug("nats client error", source=source.id, error=describe_error(exc, source.secrets))

    # nats-py tries a first connection again and again, never giving up, while a
    # server's tries stay within max_reconnect_attempts: 0 puts no bound on them. 1 with
    # no wait gives up after a second try at once, so an unreachable server is an error
    # here, which the consumer logs, waits on with its own backoff, and can stop during.
    return await nats.connect(
        servers=[source.connect_url],
        allow_reconnect=False,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        max_reconnect_attempts=1,
        reconnect_time_wait=0,
        error_cb=on_error,
    )


def dead_letter_subject(subject: str) -> str:
    """Where a message of `subject` goes when it can never be accepted."""
    return subject + DEAD_LETTER_SUFFIX


def _without_body(message: SourceMessage, headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of a dead letter sent without its body: where the body is."""
    msg = message.handle
    assert isinstance(msg, Msg)
    where = f"message {msg.metadata.sequence.stream} of stream {msg.metadata.stream}"
    text = headers[ERROR_MESSAGE_HEADER]
    return {
        **headers,
        ERROR_MESSAGE_HEADER: (
            f"{text}; the body ({len(message.body)} bytes) does not fit in a dead letter "
            f"with these headers: it is {where}"
        ),
    }


def header_bytes(headers: Mapping[str, str]) -> int:
    """The size of `headers` in a NATS message (HPUB), which counts toward max_payload."""
    lines = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
    return len(b"NATS/1.0\r\n") + len(lines) + len(b"\r\n")


def _token_literals(pattern: Sequence[str], length: int) -> list[str | None] | None:
    """What each token of a subject of `length` tokens must be for the subject `pattern`
    (split into tokens) to match it (None: anything), or None when no such subject can."""
    if pattern[-1] == ">":
        head = pattern[:-1]
        if length <= len(head):
            return None
        return [None if t == "*" else t for t in head] + [None] * (length - len(head))
    if len(pattern) != length:
        return None
    return [None if t == "*" else t for t in pattern]


def _can_meet(*constraints: Sequence[str | None]) -> bool:
    """Whether one subject can satisfy every constraint of `_token_literals`."""
    columns = zip(*constraints, strict=True)  # one per token of the subject
    return all(len({t for t in tokens if t is not None}) <= 1 for tokens in columns)


def takes_own_dead_letters(filter_subject: str, stream_subjects: Sequence[str]) -> bool:
    """Whether a consumer filtering `filter_subject`, on a stream capturing
    `stream_subjects`, can be handed the dead letter of a message it consumed: a subject
    S that the filter matches and the stream captures, whose `S.dead` the stream captures
    and the filter matches too (only a filter ending in `>` matches both)."""
    wanted = filter_subject.split(".")
    patterns = [subject.split(".") for subject in stream_subjects]
    longest = max([len(wanted), *(len(p) for p in patterns)])
    for length in range(1, longest + 2):
        message = _token_literals(wanted, length)
        dead = _token_literals(wanted, length + 1)
        if message is None or dead is None or dead[-1] not in (None, "dead"):
            continue
        stored = [c for p in patterns if (c := _token_literals(p, length)) is not None]
        stored_dead = [
            c[:-1]
            for p in patterns
            if (c := _token_literals(p, length + 1)) is not None and c[-1] in (None, "dead")
        ]
        if any(_can_meet(message, dead[:-1], a, b) for a in stored for b in stored_dead):
            return True
    return False


class NatsSession:
    """One connection consuming one JetStream durable."""

    def __init__(
        self,
        connection: Client,
        jetstream: JetStreamContext,
        subscription: JetStreamContext.PullSubscription,
    ) -> None:
        self._connection = connection
        self._jetstream = jetstream
        self._subscription = subscription
        self._lag: int | None = None

    async def fetch(self) -> list[SourceMessage]:
        """Up to FETCH_BATCH_MESSAGES messages, waiting FETCH_WAIT_SECONDS for the first."""
        if self._connection.is_closed:
            raise BrokerLost("the NATS connection is closed")
        try:
            msgs = await self._subscription.fetch(FETCH_BATCH_MESSAGES, timeout=FETCH_WAIT_SECONDS)
        except nats.errors.TimeoutError:
            if self._connection.is_closed:
                raise BrokerLost("the NATS connection is closed") from None
            self._lag = None  # idle: ask the consumer itself
            return []
        if msgs:
            self._lag = msgs[-1].metadata.num_pending
        return [
            SourceMessage(m.data, m, m.subject, skip=m.subject.endswith(DEAD_LETTER_SUFFIX))
            for m in msgs
        ]

    async def dead_letter(self, message: SourceMessage, code: str, text: str) -> None:
        """Publish the body unchanged to `<subject>.dead`, stored by JetStream when a stream
        captures that subject, else as a plain NATS message.

        A body that leaves no room for the headers within the server's max_payload, or
        within the max_msg_size of the stream storing the dead letter, is not sent: the
        dead letter would be refused each time the message came back, so the message
        would never be acknowledged. That dead letter is empty, and its message header
        says which stream sequence holds the body.
        """
        headers = {ERROR_HEADER: code, ERROR_MESSAGE_HEADER: text}
        if header_bytes(headers) + len(message.body) > self._connection.max_payload:
            await self._publish_dead(message, b"", _without_body(message, headers))
            return
        try:
            await self._publish_dead(message, message.body, headers)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != STREAM_MESSAGE_TOO_LARGE:
                raise
            await self._publish_dead(message, b"", _without_body(message, headers))

    async def _publish_dead(
        self, message: SourceMessage, body: bytes, headers: dict[str, str]
    ) -> None:
        subject = dead_letter_subject(message.subject)
        try:
            await self._jetstream.publish(subject, body, headers=headers)
        except nats.js.errors.NoStreamResponseError:
            await self._connection.publish(subject, body, headers=headers)
            await self._connection.flush()

    async def ack(self, messages: Sequence[SourceMessage]) -> None:
        """Acknowledge each message, then flush so the acknowledgements are on their way."""
        for message in messages:
            msg = message.handle
            assert isinstance(msg, Msg)
            await msg.ack()
        await self._connection.flush()

    async def retry_later(self, message: SourceMessage) -> bool:
        """Negatively acknowledge with a delay, unless delivered UNKNOWN_ORDER_DELIVERIES
        times already."""
        msg = message.handle
        assert isinstance(msg, Msg)
        if msg.metadata.num_delivered >= UNKNOWN_ORDER_DELIVERIES:
            return False
        await msg.nak(delay=UNKNOWN_ORDER_RETRY_SECONDS)
        return True

    async def lag(self) -> int | None:
        """Messages of the consumer not yet delivered, as of the last fetch."""
        if self._lag is None:
            info = await self._subscription.consumer_info()
            self._lag = info.num_pending
        return self._lag

    async def close(self) -> None:
        """Close the connection; messages not acknowledged are delivered again later."""
        await self._connection.close()


class NatsBroker:
    """Opens `NatsSession`s for one source."""

    def __init__(self, source: SourceConfig) -> None:
        self._source = source

    async def connect(self) -> NatsSession:
        """Connect, create the durable pull consumer when missing, and bind to it."""
        connection = await connect_nats(self._source)
        try:
            jetstream = connection.jetstream()
            await self._check_existing_durable(jetstream)
            await self._check_dead_letters_stay(jetstream)
            config = ConsumerConfig(
                durable_name=self._source.durable,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=ACK_WAIT_SECONDS,
                max_ack_pending=MAX_ACK_PENDING,
            )
            subscription = await jetstream.pull_subscribe(
                self._source.subject,
                durable=self._source.durable,
                stream=self._source.stream,
                config=config,
            )
        except BaseException:
            await connection.close()
            raise
        return NatsSession(connection, jetstream, subscription)

    async def _check_existing_durable(self, jetstream: JetStreamContext) -> None:
        """BrokerLost when the durable exists but is not the one the source describes:
        the client would bind to it as it is, consuming another filter's messages, or
        acknowledging messages before they are stored (ack policy `none`, or `all`, which
        acknowledges every earlier message, handed-back ones included)."""
        source = self._source
        try:
            info = await jetstream.consumer_info(source.stream, source.durable)
        except nats.js.errors.NotFoundError:
            return  # created below
        existing = info.config
        filters = [f for f in existing.filter_subjects or [existing.filter_subject] if f]
        fix = (
            f"delete it (nats consumer rm {source.stream} {source.durable}) or name another "
            "durable in ORDERHOOKS_SOURCES"
        )
        if filters != [source.subject]:
            shown = ", ".join(repr(f) for f in filters) or "every subject"
            raise BrokerLost(
                f"JetStream durable {source.durable!r} of stream {source.stream!r} filters "
                f"{shown}, not {source.subject!r}: {fix}"
            )
        # The client hands the policy back as the enum or as its text.
        policy = str(getattr(existing.ack_policy, "value", existing.ack_policy))
        if policy != AckPolicy.EXPLICIT.value:
            raise BrokerLost(
                f"JetStream durable {source.durable!r} of stream {source.stream!r} "
                f"acknowledges {policy!r}, not 'explicit' (each message once stored): {fix}"
            )

    async def _check_dead_letters_stay(self, jetstream: JetStreamContext) -> None:
        """BrokerLost when the stream is a work queue that would hand the source its own
        dead letters: acknowledging one to skip it deletes it from a work queue (which
        lets no other consumer read it), so every dead letter would be lost."""
        source = self._source
        try:
            config = (await jetstream.stream_info(source.stream)).config
        except nats.js.errors.NotFoundError:
            raise
        except nats.errors.Error as exc:
            # A user allowed to consume but not to read the stream's configuration: the
            # durable works as before, unchecked.
            log.info(
                "stream configuration not readable: retention not checked",
                source=source.id,
                error=describe_error(exc, source.secrets),
            )
            return
        retention = str(getattr(config.retention, "value", config.retention))
        if retention != RetentionPolicy.WORK_QUEUE.value:
            return
        if takes_own_dead_letters(source.subject, config.subjects or []):
            raise BrokerLost(
                f"JetStream stream {source.stream!r} is a work queue and subject "
                f"{source.subject!r} matches its own dead letters (<subject>.dead), which "
                "skipping would delete: filter without '>' (such as 'orders.*') or use a "
                "stream with limits retention"
            )
