"""A small OTLP/HTTP trace collector on 127.0.0.1, for the tracing tests and the benchmark.

It takes what an OpenTelemetry exporter posts to `/v1/traces` (a protobuf
`ExportTraceServiceRequest`, plain or gzip), decodes it with `opentelemetry-proto` and
keeps every span as a plain `CollectedSpan`::

    with Collector() as collector:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        ...  # run the server with env, ingest, deliver
        [attempt] = collector.wait_for_spans("orderhooks.delivery.attempt", 1)

With `keep=False` it only counts spans (the benchmark's sink).
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from orderhooks.testing.lifecycle import Background

LOOPBACK = "127.0.0.1"
TRACES_PATH = "/v1/traces"
POLL_INTERVAL_SECONDS = 0.05


@dataclass(frozen=True)
class CollectedSpan:
    """One exported span: ids in lower-case hex, attributes as Python values."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: Mapping[str, Any]
    links: tuple[tuple[str, str], ...]  # (trace id, span id) of each linked span
    resource: Mapping[str, Any] = field(default_factory=dict)
    status_code: int = 0


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


def decode(body: bytes) -> list[CollectedSpan]:
    """The spans of an `ExportTraceServiceRequest`."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    CollectedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=int(span.kind),
                        attributes=_attributes(span.attributes),
                        links=tuple((ln.trace_id.hex(), ln.span_id.hex()) for ln in span.links),
                        resource=resource,
                        status_code=int(span.status.code),
                    )
                )
    return spans


class Collector(Background):
    """An OTLP/HTTP endpoint that records the spans posted to it (see module doc)."""

    def __init__(self, *, keep: bool = True) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._spans: list[CollectedSpan] = []
        self._count = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it."""
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Self:
        """Listen on a free loopback port."""
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != TRACES_PATH:
                    self.send_error(404)
                    return
                collector._add(decode(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests read spans, not access logs."""

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="otlp-collector", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; what was collected is kept."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _add(self, spans: list[CollectedSpan]) -> None:
        with self._lock:
            self._count += len(spans)
            if self._keep:
                self._spans.extend(spans)

    @property
    def count(self) -> int:
        """Spans received so far."""
        with self._lock:
            return self._count

    def spans(self, name: str | None = None) -> list[CollectedSpan]:
        """The spans received so far (of that name), in arrival order."""
        with self._lock:
            return [s for s in self._spans if name is None or s.name == name]

    def wait_for_spans(
        self, name: str, count: int, timeout: float = 15.0, **attributes: Any
    ) -> list[CollectedSpan]:
        """Wait until `count` spans named `name` (with these attributes, dots written as
        `__`) have arrived; AssertionError after `timeout` seconds."""
        wanted = {key.replace("__", "."): value for key, value in attributes.items()}
        deadline = time.monotonic() + timeout
        while True:
            found = [
                s
                for s in self.spans(name)
                if all(s.attributes.get(k) == v for k, v in wanted.items())
            ]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {count} {name} spans "
                    f"{wanted}; got {len(found)} of {len(self.spans())} spans"
                )
            time.sleep(POLL_INTERVAL_SECONDS)


__all__ = ["CollectedSpan", "Collector", "decode"]
