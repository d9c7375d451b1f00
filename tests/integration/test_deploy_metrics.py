"""Every metric that deploy/'s alerts and dashboard read is exported by a real server.

The server gets traffic of every kind the queries look at (ingest on every endpoint,
answered 2xx and 4xx, deliveries that succeed and that fail); then `/metrics` must
declare every metric named in an alert expression or a dashboard query, and carry
samples of each one this traffic produces.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.integration.deploy_queries import PROMETHEUS_METRICS, referenced_metrics
from tests.support.data import new_order

# Read by deploy/ but not exported yet by any process.
EXPECTED_LATER: frozenset[str] = frozenset()
# Declared by every process, but no traffic of this test makes a sample of them: the
# server of this test consumes no broker source (the lag has a sample per source).
DECLARED_WITHOUT_SAMPLES = frozenset({"orderhooks_source_lag"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
WAIT_SECONDS = 20.0


def _traffic(api: httpx.Client, ok: Receiver, failing: Receiver) -> list[str]:
    """Ingest on every endpoint (2xx and 4xx); one webhook delivering, one failing (their
    ids)."""
    account = f"acct-{uuid.uuid4().hex[:8]}"
    hooks = []
    # The failing webhook's next attempt is a minute away: its deliveries wait `pending`,
    # which the queue gauges sample, from their first recorded failure to the scrape.
    for rx, fields in ((ok, {}), (failing, {"retrySchedule": [60]})):
        body = {"url": rx.url, "accounts": [account], "eventTypes": ["order.new"], **fields}
        created = api.post("/v1/webhooks", json=body)
        assert created.status_code == 201, created.text
        hooks.append(created.json()["id"])
    order = new_order(account)
    assert api.post("/v1/orders", json=order).status_code == 202
    status = {"status": 20, "timeStamp": "2026-12-04T12:00:00Z"}
    assert api.post(f"/v1/orders/{order['_id']}/status", json=status).status_code == 202
    courier = {"status": 83, "courier": {"firstName": "Ann", "status": 83}}
    assert api.post(f"/v1/orders/{order['_id']}/courier", json=courier).status_code == 202
    batch = [{"type": "order.new", "data": new_order(account)}]
    assert api.post("/v1/events", json=batch).status_code == 202
    assert api.post("/v1/orders", json={"_id": 5}).status_code == 422
    ok.wait_for_sync(lambda: len(ok.accepted()) >= 2, WAIT_SECONDS, "two deliveries")
    failing.wait_for_sync(lambda: len(failing.requests) >= 2, WAIT_SECONDS, "failed attempts")
    # The attempt metrics count an answer once the server has it, and the queue gauges
    # read the recorded states: both lag the receiver. Wait until the attempts are
    # recorded, which is later still.
    ok.wait_for_sync(
        lambda: _recorded_attempts(api, hooks[0]) >= 2, WAIT_SECONDS, "deliveries recorded"
    )
    failing.wait_for_sync(
        lambda: _recorded_attempts(api, hooks[1]) >= 2, WAIT_SECONDS, "failures recorded"
    )
    # Disabling a webhook by hand emits an operational event (`webhook.disabled`).
    body = {"url": ok.url, "accounts": [account], "eventTypes": ["order.new"]}
    disabled = api.post("/v1/webhooks", json=body).json()["id"]
    assert api.post(f"/v1/webhooks/{disabled}/disable").status_code == 200
    return hooks


def _recorded_attempts(api: httpx.Client, webhook_id: str) -> int:
    """The attempts recorded for a webhook's deliveries (an attempt count moves only when
    an outcome is recorded)."""
    answer = api.get("/v1/deliveries", params={"webhookId": webhook_id})
    assert answer.status_code == 200, answer.text
    return sum(int(d["attemptCount"]) for d in answer.json()["data"])


def _attempts_of(text: str, webhook_id: str) -> bool:
    """Whether the exposition has a sample of the webhook's attempt series."""
    return any(
        sample.labels.get("webhook_id") == webhook_id
        for family in text_string_to_metric_families(text)
        if family.name == "orderhooks_webhook_attempts"
        for sample in family.samples
    )


def _exported(text: str) -> tuple[set[str], set[str]]:
    """The metric names `/metrics` declares, and those it has samples of."""
    declared: set[str] = set()
    sampled: set[str] = set()
    for family in text_string_to_metric_families(text):
        if family.type == "counter":
            declared.add(f"{family.name}_total")
        elif family.type == "histogram":
            declared.update(family.name + suffix for suffix in HISTOGRAM_SUFFIXES)
        else:
            declared.add(family.name)
        sampled.update(sample.name for sample in family.samples)
    return declared, sampled


def test_every_metric_deploy_reads_is_exported(tmp_path: Path) -> None:
    with (
        Receiver() as ok,
        Receiver() as failing,
        ServerProcess(tmp_path / "data", log_path=tmp_path / "server.log") as server,
        server.client() as api,
    ):
        failing.answer(500)
        delivering, deleted = _traffic(api, ok, failing)
        scrape = httpx.get(f"{server.base_url}/metrics", timeout=10)
        # A deleted webhook's attempt series go at the next scrape; the others stay.
        assert api.delete(f"/v1/webhooks/{deleted}").status_code == 204
        after = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    assert scrape.status_code == 200
    assert {_attempts_of(scrape.text, hook) for hook in (delivering, deleted)} == {True}
    assert _attempts_of(after, delivering) and not _attempts_of(after, deleted)
    declared, sampled = _exported(scrape.text)

    referenced = referenced_metrics()
    assert referenced.keys() >= EXPECTED_LATER, "EXPECTED_LATER lists a metric nothing reads"
    assert referenced.keys() >= DECLARED_WITHOUT_SAMPLES
    from_orderhooks = {n: w for n, w in referenced.items() if n not in PROMETHEUS_METRICS}
    unknown = {
        name: sorted(where)
        for name, where in from_orderhooks.items()
        if name not in declared and name not in EXPECTED_LATER
    }
    assert unknown == {}, "metrics read by deploy/ that the server does not export"
    without_samples = {
        name: sorted(where)
        for name, where in from_orderhooks.items()
        if name in declared and name not in sampled and name not in DECLARED_WITHOUT_SAMPLES
    }
    assert without_samples == {}, "metrics read by deploy/ that this traffic did not produce"

    # The new histogram is labelled by endpoint and status class, as the queries group it.
    latency = [
        line
        for line in scrape.text.splitlines()
        if line.startswith("orderhooks_ingest_request_duration_seconds_count{")
    ]
    for endpoint in (
        "/v1/orders",
        "/v1/orders/{orderId}/status",
        "/v1/orders/{orderId}/courier",
        "/v1/events",
    ):
        assert any(f'endpoint="{endpoint}",status_class="2xx"' in line for line in latency)
    assert any('endpoint="/v1/orders",status_class="4xx"' in line for line in latency)
    assert "orderhooks_ready 1.0" in scrape.text
