"""Tracing's set-up from the OTEL_* variables, the stored traceparent and its link, the
traceparent header, and the disk-full translation of both engines' errors."""

from __future__ import annotations

import errno
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util.re import parse_env_headers

from orderhooks.delivery.claims import Claim
from orderhooks.delivery.outbound import build_request
from orderhooks.exceptions import ConfigError, StorageFull, StoreUnavailable
from orderhooks.store import postgres_io, sqlite_io
from orderhooks.tracing import (
    TRACING_OFF,
    check_environment,
    configure_tracing,
    link_to,
    traceparent_of,
)
from tests.support.factories import NOW, delivery, event, webhook

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_SERVICE_NAME": "orders"},
        {**ENDPOINT, "OTEL_SDK_DISABLED": "true"},
        {**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "  "},
    ],
)
def test_tracing_is_off_without_an_endpoint(env: dict[str, str]) -> None:
    assert configure_tracing(env) is TRACING_OFF
    assert not TRACING_OFF.enabled


def test_tracing_off_never_loads_the_sdk() -> None:
    script = (
        "import sys, orderhooks.tracing as t, orderhooks.service.ingest, "
        "orderhooks.delivery.dispatcher, orderhooks.web.app\n"
        "assert t.configure_tracing({}) is t.TRACING_OFF\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://collector/v1/traces"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ("OTEL_TRACES_EXPORTER", "zipkin"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        check_environment({**ENDPOINT, name: value})


@pytest.mark.parametrize(
    "value",
    [
        "grpc://user:hunter2pw@collector:4317",
        "http://user:hunter2pw@:4318",
        "user:hunter2pw@collector:4318",
    ],
)
def test_a_bad_endpoint_is_refused_without_its_credentials(value: str) -> None:
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_ENDPOINT") as refused:
        check_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": value})
    assert "hunter2pw" not in str(refused.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # The SDK raised these from deep inside the start (a traceback, exit code 1), or
        # logged a traceback and went on with its default.
        ("OTEL_BSP_SCHEDULE_DELAY", "-5"),
        ("OTEL_BSP_SCHEDULE_DELAY", "0"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "lots"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5000"),  # more than the queue's 2048
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1.5"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "soon"),
        # The SDK took a timeout that is not a number for its own 10 s, and a negative one
        # failed every export; an unknown compression became none. Each with a warning
        # at most.
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "-1"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "nan"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "inf"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "zip"),
    ],
)
def test_a_bad_batch_processor_or_export_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name} must"):
        check_environment({**ENDPOINT, name: value})


@pytest.mark.parametrize(
    "value",
    [
        "x-honeycomb-team:hunter2secret",  # a colon for the `=`
        "authorization=Bearer hunter2secret,x-team",  # a second entry without `=`
        "=hunter2secret",  # no name
        'api-key="hunter2secret"',  # quotes are not allowed in a value
    ],
)
@pytest.mark.parametrize(
    "name", ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"]
)
def test_a_bad_header_list_names_its_variable_and_never_its_values(name: str, value: str) -> None:
    # The SDK dropped such an entry with a warning that quoted it, credential included,
    # into the log, and every export then went without it.
    with pytest.raises(ConfigError, match=f"^{name} must") as refused:
        check_environment({**ENDPOINT, name: value})
    assert "hunter2secret" not in str(refused.value)


@pytest.mark.parametrize("value", ["api-key=k\n", "api-key=k\r\n", "\tapi-key=k\t,a=b\n"])
def test_header_entries_the_sdk_strips_pass(value: str) -> None:
    # A header list read from a secret file ends with its newline; the SDK strips each
    # entry and sends the header, so the start must not be refused for it.
    assert parse_env_headers(value, liberal=True)["api-key"] == "k"
    check_environment({**ENDPOINT, "OTEL_EXPORTER_OTLP_HEADERS": value})


def test_good_export_values_pass() -> None:
    check_environment(
        {
            **ENDPOINT,
            "OTEL_EXPORTER_OTLP_TIMEOUT": "0.5",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "10",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "None",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-honeycomb-team=abc%20d, authorization=Bearer x==,",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": " api-key = k ",
        }
    )


def test_a_batch_as_large_as_a_larger_queue_is_fine() -> None:
    check_environment(
        {
            **ENDPOINT,
            "OTEL_BSP_MAX_QUEUE_SIZE": "8192",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4096",
            "OTEL_BSP_SCHEDULE_DELAY": "1000",
            "OTEL_BSP_EXPORT_TIMEOUT": "0",
        }
    )


@pytest.mark.parametrize("ratio", ["lots", "1.5", "-0.1"])
def test_a_sampler_ratio_must_be_a_fraction(ratio: str) -> None:
    env = {**ENDPOINT, "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": ratio}
    with pytest.raises(ConfigError, match="OTEL_TRACES_SAMPLER_ARG"):
        check_environment(env)


def test_good_values_pass() -> None:
    check_environment(
        {
            **ENDPOINT,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
        }
    )


def test_a_stored_traceparent_becomes_a_link() -> None:
    [link] = link_to(TRACEPARENT)
    assert f"{link.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{link.context.span_id:016x}" == "b7ad6b7169203331"
    assert link_to(None) == []
    assert link_to("00-not-a-traceparent") == []


def test_a_span_traceparent_round_trips_to_its_link() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("ingest") as span:
        stored = traceparent_of(span)
    assert stored is not None
    [link] = link_to(stored)
    assert link.context.trace_id == span.get_span_context().trace_id
    assert link.context.span_id == span.get_span_context().span_id


def claim(headers: dict[str, str] | None = None) -> Claim:
    """Attempt 1 of a delivery of the factories' event to their webhook."""
    return Claim(
        delivery(), webhook(headers=headers or {}), event(), 1, NOW, trace_parent=TRACEPARENT
    )


def test_the_traceparent_header_only_with_propagation() -> None:
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    assert "traceparent" not in build_request(claim(), b"{}", now).headers
    sent = build_request(claim(), b"{}", now, trace_parent=TRACEPARENT)
    assert sent.headers["traceparent"] == TRACEPARENT
    # A static header of the same name is replaced, never sent twice.
    static = claim({"TraceParent": "00-static"})
    headers = build_request(static, b"{}", now, trace_parent=TRACEPARENT).headers
    assert [v for k, v in headers.items() if k.lower() == "traceparent"] == [TRACEPARENT]


def test_sqlite_disk_full_is_storage_full() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # type: ignore[attr-defined]
    assert isinstance(sqlite_io.translate(full), StorageFull)
    assert sqlite_io.is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    other = sqlite3.OperationalError("disk I/O error")
    other.sqlite_errorcode = 10  # type: ignore[attr-defined]
    assert not isinstance(sqlite_io.translate(other), StoreUnavailable)


def test_postgres_disk_full_is_storage_full() -> None:
    error = asyncpg.DiskFullError("could not extend file: No space left on device")
    translated = postgres_io.translate(error)
    assert isinstance(translated, StorageFull)
    assert isinstance(translated, StoreUnavailable)  # a kind of outage: 503, retried
