"""Tracing against a real OTLP/HTTP endpoint: the collector of `orderhooks.testing.otlp`
decodes the protobuf requests the server's exporter posts (docs/operations.md, "Tracing").

Checked: the request, ingest and attempt spans and their attributes; every attempt span
linked to the ingest span that created its event, also when the server restarted in
between (on SQLite and PostgreSQL); the `traceparent` header only with
ORDERHOOKS_TRACE_PROPAGATION; delivery unharmed when the collector is down; a bad OTEL_*
value refusing the start.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from orderhooks.testing.otlp import CollectedSpan, Collector
from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerError, ServerProcess, free_port
from tests.support.api import Api, admin_api
from tests.support.data import new_order

INGEST = "orderhooks.ingest"
ATTEMPT = "orderhooks.delivery.attempt"
SPAN_KIND_SERVER = 2
SPAN_KIND_CLIENT = 3
SAMPLED_FLAG = 0x01  # of the traceparent's trace flags
# Spans leave the server within a tenth of a second of ending.
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
PROPAGATION = {"ORDERHOOKS_TRACE_PROPAGATION": "true"}


@pytest.fixture()
def collector() -> Iterator[Collector]:
    """A collector listening on loopback for this test."""
    with Collector() as running:
        yield running


@contextlib.asynccontextmanager
async def traced_server(
    tmp_path: Path, endpoint: str, **env: str
) -> AsyncIterator[tuple[ServerProcess, Api]]:
    """A running server exporting spans to `endpoint`, and an admin client of its API."""
    variables = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **FAST_EXPORT, **env}
    server = ServerProcess(tmp_path / "data", log_path=tmp_path / "server.log", env=variables)
    with server:
        async with admin_api(server) as api:
            yield server, api


def linked_to(span: CollectedSpan, target: CollectedSpan) -> bool:
    """Whether `span` links to `target` (same trace id and span id)."""
    return (target.trace_id, target.span_id) in span.links


async def test_attempts_link_to_their_ingest_across_a_restart(
    tmp_path: Path, collector: Collector, database_env: dict[str, str], account: str
) -> None:
    rx = Receiver().start()
    rx.stop()  # down first: the first attempts fail, and delivery waits for a restart
    async with traced_server(tmp_path, collector.url, **database_env) as (server, api):
        # Retries 2 s apart: the delivery waits in `pending` most of the time, for the crash.
        hook = await api.create_webhook(rx.url, [account], retrySchedule=[2] * 20)
        order = new_order(account)
        [event_id] = await api.new_order(order)
        [ingest] = collector.wait_for_spans(INGEST, 1, orderhooks__event__ids=[event_id])
        failed = collector.wait_for_spans(ATTEMPT, 1, orderhooks__event__id=event_id)
        # The span ends before the attempt's outcome is recorded: a crash in between would
        # leave the delivery leased (timeoutSeconds + 30 s) past the wait below. So crash
        # only once the failed attempt is recorded and the delivery waits for its retry.
        await api.wait_deliveries(
            hook["id"],
            lambda ds: [(d["state"], d["attemptCount"] >= 1) for d in ds] == [("pending", True)],
            what="the failed attempt recorded",
        )
        # A crash and a new process: the link comes from what the store kept.
        server.restart()
        with rx:
            await rx.wait_for_delivered({event_id}, timeout=20)
            [delivered] = collector.wait_for_spans(
                ATTEMPT, 1, orderhooks__event__id=event_id, orderhooks__outcome="delivered"
            )

    assert ingest.attributes["orderhooks.event.types"] == ["order.new"]
    assert ingest.attributes["orderhooks.order.id"] == order["_id"]
    assert ingest.resource["service.name"] == "orderhooks"
    # The ingest span is a child of the request's span.
    requests = collector.spans("POST /v1/orders")
    [request] = [s for s in requests if s.span_id == ingest.parent_span_id]
    assert request.trace_id == ingest.trace_id
    assert request.kind == SPAN_KIND_SERVER
    assert request.attributes["http.response.status_code"] == 202
    assert request.attributes["http.route"] == "/v1/orders"

    assert failed[0].attributes["orderhooks.outcome"] == "retry"
    assert "http.response.status_code" not in failed[0].attributes
    [delivery] = delivery_ids([*failed, delivered])
    attempts = collector.spans(ATTEMPT)
    assert attempts, "no attempt spans"
    for span in attempts:
        assert linked_to(span, ingest), f"{span} does not link to the ingest span"
        assert span.trace_id != ingest.trace_id  # a trace of its own, linked
        assert span.kind == SPAN_KIND_CLIENT
        assert span.attributes["orderhooks.webhook.id"] == hook["id"]
        assert span.attributes["orderhooks.delivery.id"] == delivery
        assert span.attributes["orderhooks.event.type"] == "order.new"
    assert delivered.attributes["http.response.status_code"] == 200
    assert delivered.attributes["orderhooks.attempt"] > failed[0].attributes["orderhooks.attempt"]
    # Without ORDERHOOKS_TRACE_PROPAGATION the receiver sees no trace header.
    assert all("traceparent" not in r.headers for r in rx.requests)


def delivery_ids(spans: list[CollectedSpan]) -> list[str]:
    """The distinct delivery ids of attempt spans."""
    return sorted({str(s.attributes["orderhooks.delivery.id"]) for s in spans})


async def test_traceparent_is_sent_with_propagation_on(
    tmp_path: Path, collector: Collector, rx: Receiver, account: str
) -> None:
    async with traced_server(tmp_path, collector.url, **PROPAGATION) as (_, api):
        await api.create_webhook(rx.url, [account])
        [event_id] = await api.new_order(new_order(account))
        await rx.wait_for_delivered({event_id})
        [attempt] = collector.wait_for_spans(ATTEMPT, 1, orderhooks__event__id=event_id)
    [request] = rx.requests
    version, trace_id, span_id, flags = request.headers["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", attempt.trace_id, attempt.span_id)
    assert int(flags, 16) & SAMPLED_FLAG


async def test_delivery_works_while_the_collector_is_down(
    tmp_path: Path, rx: Receiver, account: str
) -> None:
    nothing_listens = f"http://127.0.0.1:{free_port()}"
    async with traced_server(tmp_path, nothing_listens) as (server, api):
        await api.create_webhook(rx.url, [account])
        ids = await api.new_orders(account, 5)
        await rx.wait_for_delivered(set(ids))
        # The last export at shutdown gives up within its short timeout.
        assert server.terminate() == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "lots"),
    ],
)
def test_a_bad_otel_value_refuses_the_start(tmp_path: Path, name: str, value: str) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", name: value}
    if name == "OTEL_TRACES_SAMPLER_ARG":
        env["OTEL_TRACES_SAMPLER"] = "traceidratio"
    server = ServerProcess(tmp_path / "data", log_path=tmp_path / "server.log", env=env)
    with pytest.raises(ServerError, match="exited with 2"):
        server.start()
    assert name in server.log_text()


HOSTILE_TRACEPARENTS = (
    "00-00000000000000000000000000000000-0000000000000000-01",  # all-zero ids: invalid
    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # a forbidden version
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" + "x" * 10_000,
    "' OR 1=1 --",
)
PLATFORM_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_an_incoming_traceparent_is_continued_and_a_bad_one_ignored(
    tmp_path: Path, collector: Collector, rx: Receiver, account: str
) -> None:
    async with traced_server(tmp_path, collector.url) as (_, api):
        await api.create_webhook(rx.url, [account])
        ids: list[str] = []
        for value in HOSTILE_TRACEPARENTS:
            response = await api.call(
                "POST",
                "/v1/orders",
                json_body=new_order(account),
                headers={"traceparent": value},
            )
            assert response.status_code == 202, response.text
            ids += response.json()["eventIds"]
        platform = f"00-{PLATFORM_TRACE_ID}-00f067aa0ba902b7-01"
        response = await api.call(
            "POST",
            "/v1/orders",
            json_body=new_order(account),
            headers={"traceparent": platform},
        )
        [continued_id] = response.json()["eventIds"]
        await rx.wait_for_delivered({*ids, continued_id})
        ingests = collector.wait_for_spans(INGEST, len(ids) + 1)
    by_event = {span.attributes["orderhooks.event.ids"][0]: span for span in ingests}
    assert by_event[continued_id].trace_id == PLATFORM_TRACE_ID
    # A bad header starts a new trace; it never reaches the stored link.
    refused = {PLATFORM_TRACE_ID, "0af7651916cd43dd8448eb211c80319c", "0" * 32}
    assert all(by_event[event_id].trace_id not in refused for event_id in ids)
    assert len({by_event[event_id].trace_id for event_id in ids}) == len(ids)


async def test_a_batch_attempt_links_to_the_ingest_of_each_event(
    tmp_path: Path, collector: Collector, rx: Receiver, account: str
) -> None:
    async with traced_server(tmp_path, collector.url, **PROPAGATION) as (_, api):
        batch = {"maxEvents": 3, "maxWaitMs": 5000}
        await api.create_webhook(rx.url, [account], batch=batch)
        ids: list[str] = []
        for _ in range(3):  # three ingests, three ingest spans
            ids += await api.new_order(new_order(account))
        await rx.wait_for(lambda: len(rx.accepted()) >= 1, what="the batch request")
        [attempt] = collector.wait_for_spans(ATTEMPT, 1)
        ingests = collector.wait_for_spans(INGEST, 3)
    [request] = rx.requests
    sent = [event["id"] for event in request.json["events"]]
    assert sorted(sent) == sorted(ids)  # one request holds the three events
    assert attempt.attributes["orderhooks.batch.size"] == 3
    assert attempt.attributes["orderhooks.batch.id"] == request.json["id"]
    assert attempt.attributes["orderhooks.event.ids"] == sent
    assert attempt.attributes["orderhooks.outcome"] == "delivered"
    assert attempt.attributes["http.response.status_code"] == 200
    assert all(linked_to(attempt, ingest) for ingest in ingests)
    _, trace_id, span_id, _ = request.headers["traceparent"].split("-")
    assert (trace_id, span_id) == (attempt.trace_id, attempt.span_id)


async def test_a_portal_link_token_never_reaches_a_span(
    tmp_path: Path, collector: Collector, account: str
) -> None:
    async with traced_server(tmp_path, collector.url) as (_, api):
        created = await api.call("POST", "/v1/portal-links", json_body={"accounts": [account]})
        assert created.status_code == 201, created.text
        url = created.json()["url"]
        token = url.rsplit("/", 1)[1]
        path = url[url.index("/ui/portal/") :]
        looked = await api.call("GET", path)  # a link previewer fetching it: not used up
        assert looked.status_code == 200, looked.text
        # The dashboard's routes carry no template: the span is named by its method.
        [span] = collector.wait_for_spans("GET", 1, url__path="/ui/portal/{token}")
    assert span.attributes["http.response.status_code"] == 200
    assert all(token not in str(s.attributes) for s in collector.spans())
