"""OpenTelemetry tracing of one process, configured only by the standard `OTEL_*` variables.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set
(or when `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`). Off means free: the SDK
is not even imported, `Tracing.enabled` is False and every caller skips its spans, so
nothing is stored with events either.

On, spans go through the SDK's `BatchSpanProcessor` (a bounded queue, `OTEL_BSP_*`) to
the OTLP/HTTP exporter, on the processor's own thread: a slow or unreachable collector
drops spans, it never slows or fails an ingest or a delivery. The spans
(docs/architecture.md, "Tracing"):

- one per API request (`web/tracing.py`), continuing an incoming `traceparent`;
- `orderhooks.ingest` around the store's ingest transaction; its W3C traceparent is
  stored with every event it creates;
- `orderhooks.delivery.attempt` for every attempt, a new trace LINKED to the ingest
  span through that stored traceparent, whatever process or restart came between.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from orderhooks.domain.model import DeliveryState
from orderhooks.exceptions import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from orderhooks.delivery.claims import Claim, Outcome

DEFAULT_SERVICE_NAME = "orderhooks"
# The exporter's own default is 10 s per export, retried within it; a dead collector
# should cost the exporting thread (and a shutdown's last flush) little.
DEFAULT_EXPORT_TIMEOUT_SECONDS = 2.0
SUPPORTED_PROTOCOL = "http/protobuf"
KNOWN_SAMPLERS = frozenset(
    {
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    }
)
RATIO_SAMPLERS = frozenset({"traceidratio", "parentbased_traceidratio"})
# The batch span processor's defaults (the SDK's, as the specification sets them).
BSP_SCHEDULE_DELAY_MS = 5000
BSP_EXPORT_TIMEOUT_MS = 30000
# One entry of OTEL_EXPORTER_OTLP_HEADERS as the SDK takes it (its liberal form: a name of
# token characters, `=`, a value of printable ASCII without `"`, `,`, `;` or `\`).
_HEADER_ENTRY = re.compile(
    r"[ \t]*[\x21\x23-\x27\x2a\x2b\x2d\x2e\x30-\x39\x41-\x5a\x5e-\x7a\x7c\x7e]+[ \t]*="
    r"[\x20\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"
)
_HEADER_SEPARATOR = re.compile(r"[ \t]*,[ \t]*")
# What the OTLP/HTTP exporter compresses with (OTEL_EXPORTER_OTLP_COMPRESSION).
EXPORT_COMPRESSIONS = ("none", "gzip", "deflate")
BSP_MAX_QUEUE_SIZE = 2048
BSP_MAX_EXPORT_BATCH_SIZE = 512

SPAN_INGEST = "orderhooks.ingest"
SPAN_ATTEMPT = "orderhooks.delivery.attempt"
TRACEPARENT_HEADER = "traceparent"

_PROPAGATOR = TraceContextTextMapPropagator()


def traceparent_of(span: Span) -> str | None:
    """The W3C traceparent of `span` (`00-<trace id>-<span id>-<flags>`), if it is valid."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
    return carrier.get(TRACEPARENT_HEADER)


def link_to(trace_parent: str | None) -> list[Link]:
    """A link to the span a stored traceparent names; none for None or a malformed one."""
    if not trace_parent:
        return []
    context = _PROPAGATOR.extract({TRACEPARENT_HEADER: trace_parent})
    span_context = trace.get_current_span(context).get_span_context()
    return [Link(span_context)] if span_context.is_valid else []


class Tracing:
    """The tracer of this process, or nothing: callers check `enabled` first."""

    def __init__(
        self, tracer: Tracer | None = None, provider: TracerProvider | None = None
    ) -> None:
        self._tracer = tracer
        self._provider = provider

    @property
    def enabled(self) -> bool:
        """Whether spans are made and exported."""
        return self._tracer is not None

    @property
    def tracer(self) -> Tracer:
        """The tracer (only when enabled)."""
        assert self._tracer is not None, "tracing is off"
        return self._tracer

    @contextmanager
    def ingest_span(self) -> Iterator[Span]:
        """The `orderhooks.ingest` span, current for its block (a child of the request's)."""
        with self.tracer.start_as_current_span(SPAN_INGEST, kind=SpanKind.INTERNAL) as span:
            yield span

    @contextmanager
    def attempt_span(self, claim: Claim) -> Iterator[Span]:
        """The `orderhooks.delivery.attempt` span of a claim: a root of its own trace,
        linked to the ingest span that created the event."""
        attributes: dict[str, AttributeValue] = {
            "orderhooks.webhook.id": claim.webhook.id,
            "orderhooks.delivery.id": claim.delivery.id,
            "orderhooks.event.id": claim.event.id,
            "orderhooks.event.type": str(claim.event.type),
            "orderhooks.attempt": claim.attempt,
        }
        with self.tracer.start_as_current_span(
            SPAN_ATTEMPT,
            context=trace.set_span_in_context(trace.INVALID_SPAN),  # never a stray parent
            kind=SpanKind.CLIENT,
            links=link_to(claim.trace_parent),
            attributes=attributes,
        ) as span:
            yield span

    @contextmanager
    def batch_attempt_span(self, claims: Sequence[Claim]) -> Iterator[Span]:
        """The `orderhooks.delivery.attempt` span of one batch request: linked to the
        ingest span of each of its events; the ids of its deliveries and events as lists."""
        first = claims[0]
        attributes: dict[str, AttributeValue] = {
            "orderhooks.webhook.id": first.webhook.id,
            "orderhooks.batch.id": first.batch_id or first.delivery.id,
            "orderhooks.batch.size": len(claims),
            "orderhooks.delivery.ids": [c.delivery.id for c in claims],
            "orderhooks.event.ids": [c.event.id for c in claims],
            "orderhooks.event.types": [str(c.event.type) for c in claims],
            "orderhooks.attempt": max(c.attempt for c in claims),
        }
        parents = dict.fromkeys(c.trace_parent for c in claims if c.trace_parent)
        links = [link for parent in parents for link in link_to(parent)]
        with self.tracer.start_as_current_span(
            SPAN_ATTEMPT,
            context=trace.set_span_in_context(trace.INVALID_SPAN),
            kind=SpanKind.CLIENT,
            links=links,
            attributes=attributes,
        ) as span:
            yield span

    def shutdown(self) -> None:
        """Export what is queued (bounded by the export timeout) and stop."""
        if self._provider is not None:
            self._provider.shutdown()


TRACING_OFF = Tracing()


def describe_ingest(
    span: Span, order_ids: Sequence[str], event_ids: Sequence[str], event_types: Sequence[str]
) -> None:
    """The attributes of an `orderhooks.ingest` span, once the events are known."""
    distinct_orders = list(dict.fromkeys(order_ids))
    if len(distinct_orders) == 1:
        span.set_attribute("orderhooks.order.id", distinct_orders[0])
    span.set_attribute("orderhooks.order.ids", distinct_orders)
    span.set_attribute("orderhooks.event.ids", list(event_ids))
    span.set_attribute("orderhooks.event.types", list(event_types))


def describe_outcome(span: Span, outcome: Outcome, status_code: int | None) -> None:
    """The attributes of an attempt span once its outcome is decided."""
    if status_code is not None:
        span.set_attribute("http.response.status_code", status_code)
    if outcome.attempt.error is not None:
        span.set_attribute("error.type", str(outcome.attempt.error))
    span.set_attribute("orderhooks.outcome", outcome_name(outcome))
    if outcome.next_state is not DeliveryState.DELIVERED:
        span.set_status(trace.StatusCode.ERROR)


def outcome_name(outcome: Outcome) -> str:
    """`delivered`, `failed` (no attempt left) or `retry` (the metrics' outcome labels)."""
    if outcome.next_state in (DeliveryState.DELIVERED, DeliveryState.FAILED):
        return str(outcome.next_state)
    return "retry"


# --------------------------------------------------------------------- set-up


def _enabled_by(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    )


def check_environment(env: Mapping[str, str]) -> None:
    """ConfigError naming the variable when an `OTEL_*` value the SDK would guess at or
    ignore is wrong (only checked when tracing is on)."""
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        value = env.get(name, "").strip()
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                # Never the value itself: a URL may carry credentials (user:token@).
                shown = f"{parts.scheme}://"
                wrong = parts.scheme not in ("http", "https") and value.startswith(shown)
                got = f", not {shown}" if parts.scheme and wrong else ""
                raise ConfigError(f"{name} must be an http:// or https:// URL with a host{got}")
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = env.get(name, "").strip()
        if value and value != SUPPORTED_PROTOCOL:
            raise ConfigError(f"{name} must be {SUPPORTED_PROTOCOL} (the one protocol supported)")
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter and exporter != "otlp":
        raise ConfigError("OTEL_TRACES_EXPORTER must be otlp or none")
    sampler = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if sampler and sampler not in KNOWN_SAMPLERS:
        raise ConfigError("OTEL_TRACES_SAMPLER must be one of " + ", ".join(sorted(KNOWN_SAMPLERS)))
    _check_batch_processor(env)
    _check_exporter(env)
    argument = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if argument and sampler in RATIO_SAMPLERS:
        try:
            ratio = float(argument)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            raise ConfigError("OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1")


def _whole_number(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(f"{name} must be a whole number of at least {minimum}")
    return value


def _check_batch_processor(env: Mapping[str, str]) -> None:
    """The `OTEL_BSP_*` values the SDK would refuse from deep inside the start (a
    traceback) or log a traceback for and replace by its default."""
    _whole_number(env, "OTEL_BSP_SCHEDULE_DELAY", BSP_SCHEDULE_DELAY_MS, 1)
    _whole_number(env, "OTEL_BSP_EXPORT_TIMEOUT", BSP_EXPORT_TIMEOUT_MS, 0)
    queue = _whole_number(env, "OTEL_BSP_MAX_QUEUE_SIZE", BSP_MAX_QUEUE_SIZE, 1)
    batch = _whole_number(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", BSP_MAX_EXPORT_BATCH_SIZE, 1)
    if batch > queue:
        raise ConfigError(
            f"OTEL_BSP_MAX_EXPORT_BATCH_SIZE must be at most the queue size "
            f"(OTEL_BSP_MAX_QUEUE_SIZE, {queue}), not {batch}"
        )


def _check_exporter(env: Mapping[str, str]) -> None:
    """The export timeout, headers and compression, which the SDK would replace by its
    defaults (a timeout that is not a number, an unknown compression), drop (a header
    entry it cannot read) or use to fail every export (a timeout of 0 or less), with a
    warning at most."""
    for name in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        text = env.get(name, "").strip()
        if text:
            try:
                seconds = float(text)
            except ValueError:
                seconds = -1.0
            if not (0.0 < seconds < math.inf):
                raise ConfigError(f"{name} must be a number of seconds above 0")
    for name in ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"):
        entries = _HEADER_SEPARATOR.split(env.get(name, ""))
        for position, entry in enumerate(entries, start=1):
            # The SDK drops a bad entry with a warning that quotes it, credential and all.
            # It strips each entry first (a secret file's newline, a tab): so does this.
            entry = entry.strip()
            if entry and not _HEADER_ENTRY.fullmatch(entry):
                raise ConfigError(
                    f"{name} must be name=value entries separated by commas; entry "
                    f"{position} is not (values URL-encoded, without quotes)"
                )
    for name in ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"):
        text = env.get(name, "").strip().lower()
        if text and text not in EXPORT_COMPRESSIONS:
            raise ConfigError(f"{name} must be one of " + ", ".join(EXPORT_COMPRESSIONS))


def configure_tracing(env: Mapping[str, str] | None = None) -> Tracing:
    """The tracing of this process from the `OTEL_*` variables: TRACING_OFF without an
    endpoint; ConfigError naming a variable whose value is wrong."""
    env = os.environ if env is None else env
    if not _enabled_by(env):
        return TRACING_OFF
    check_environment(env)
    # Imported only when tracing is on: the SDK costs nothing to a process without it.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from orderhooks import package_version

    service_name = env.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME
    resource = Resource.create({SERVICE_NAME: service_name, "service.version": package_version()})
    # The sampler comes from OTEL_TRACES_SAMPLER(_ARG), the queue from OTEL_BSP_*.
    provider = TracerProvider(resource=resource)
    timed = env.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or env.get("OTEL_EXPORTER_OTLP_TIMEOUT")
    exporter_options: dict[str, Any] = {}
    if not timed:
        exporter_options["timeout"] = DEFAULT_EXPORT_TIMEOUT_SECONDS
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(**exporter_options)))
    # Not made the global provider: FastAPI's own telemetry (recent versions) would then
    # add a second span per request and spans of its internals; the request span here
    # is the one (web/tracing.py).
    return Tracing(provider.get_tracer("orderhooks", package_version()), provider)


__all__ = [
    "SPAN_ATTEMPT",
    "SPAN_INGEST",
    "TRACEPARENT_HEADER",
    "TRACING_OFF",
    "Tracing",
    "configure_tracing",
    "describe_ingest",
    "describe_outcome",
    "link_to",
    "traceparent_of",
]
