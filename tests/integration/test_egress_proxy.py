"""Deliveries through an egress proxy: Debian's tinyproxy, started by these tests on a
loopback port, in front of an HTTP receiver and an HTTPS receiver (CONNECT).

The HTTPS receiver's certificate is issued by a certificate authority made here. The
webhook-level `caCertificate` setting does not exist yet, so the HTTPS tunnel is tested
at the transport, with an SSL context that trusts that authority; the server-level
tests use the HTTP receiver.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from orderhooks.delivery.netguard import NetworkGuard
from orderhooks.delivery.transport import AiohttpTransport, OutboundRequest, TransportResult
from orderhooks.domain.model import AttemptError
from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess, free_port
from tests.integration.cli_support import cli_env, run_cli
from tests.integration.egress_support import (
    LOOPBACK,
    CertificateAuthority,
    TinyProxy,
    make_authority,
    recorder,
    unanswering_port,
)
from tests.support.data import new_order

LOOPBACK_ALLOWED = (ipaddress.ip_network("127.0.0.0/8"),)
WAIT_SECONDS = 20.0
ATTEMPT_TIMEOUT_SECONDS = 5.0
SHORT_TIMEOUT = 1.0  # for attempts that are meant to run out of time
ALL_TYPES = ["order.new", "order.status_update", "order.courier_update"]


def post(url: str) -> OutboundRequest:
    """A small webhook POST to `url`."""
    return OutboundRequest(
        url=url,
        body=b'{"id":"evt_1"}',
        headers={"content-type": "application/json"},
        timeout_seconds=ATTEMPT_TIMEOUT_SECONDS,
    )


async def send(
    request: OutboundRequest,
    *,
    proxy: str | None,
    allowed: tuple[ipaddress.IPv4Network, ...] = LOOPBACK_ALLOWED,
    ssl_context: ssl.SSLContext | None = None,
) -> TransportResult:
    """One attempt through a fresh transport."""
    transport = AiohttpTransport(
        NetworkGuard(allowed), limit=10, proxy=proxy, ssl_context=ssl_context
    )
    try:
        return await transport.send(request)
    finally:
        await transport.close()


# ---------------------------------------------------------------- fixtures


@pytest.fixture()
def authority(tmp_path: Path) -> CertificateAuthority:
    """A fresh test certificate authority and server certificate."""
    directory = tmp_path / "tls"
    directory.mkdir()
    return make_authority(directory)


@pytest.fixture()
def allowed_connect_port() -> int:
    """The port tinyproxy tunnels to (the HTTPS receiver's)."""
    return free_port()


@pytest.fixture()
def proxy(tmp_path: Path, allowed_connect_port: int) -> Iterator[TinyProxy]:
    """tinyproxy on a free loopback port, stopped by pid afterwards."""
    directory = tmp_path / "tinyproxy"
    directory.mkdir()
    started = TinyProxy(directory, port=free_port(), connect_ports=[allowed_connect_port])
    started.start()
    try:
        yield started
    finally:
        started.stop()


# ---------------------------------------------------------------- the transport


async def test_an_http_delivery_goes_through_the_proxy(proxy: TinyProxy) -> None:
    async with recorder() as rx:
        result = await send(post(rx.url()), proxy=proxy.url)
    assert result.error is None and result.status_code == 200, result.detail
    [(path, body, headers)] = rx.received
    assert (path, body) == ("/hook", b'{"id":"evt_1"}')
    assert "tinyproxy" in headers.get("Via", ""), "the request came through the proxy"
    assert f"POST {rx.url()}" in proxy.log()


async def test_an_https_delivery_goes_through_a_connect_tunnel(
    proxy: TinyProxy, authority: CertificateAuthority, allowed_connect_port: int
) -> None:
    # The receiver listens on the one port tinyproxy tunnels to.
    async with recorder(authority.server_context(), allowed_connect_port) as rx:
        result = await send(post(rx.url()), proxy=proxy.url, ssl_context=authority.client_context())
    assert result.error is None and result.status_code == 200, result.detail
    [(path, body, headers)] = rx.received
    assert (path, body) == ("/hook", b'{"id":"evt_1"}')
    assert "Via" not in headers, "TLS end to end: the proxy only relayed a tunnel"
    assert f"CONNECT {LOOPBACK}:{allowed_connect_port}" in proxy.log()


async def test_the_tunnelled_certificate_is_still_verified(
    proxy: TinyProxy, authority: CertificateAuthority, allowed_connect_port: int
) -> None:
    async with recorder(authority.server_context(), allowed_connect_port) as rx:
        # The system roots do not know the test authority: the handshake fails.
        result = await send(post(rx.url()), proxy=proxy.url)
    assert result.error is AttemptError.CONNECTION_ERROR
    assert "certificate" in result.detail.lower()
    assert rx.received == []


async def test_a_connect_the_proxy_refuses_is_a_connection_error(
    proxy: TinyProxy, authority: CertificateAuthority
) -> None:
    # A port that is not a ConnectPort: tinyproxy's policy refuses the tunnel. That is
    # about the receiver, so it counts against the webhook like any connection error.
    async with recorder(authority.server_context()) as rx:
        result = await send(post(rx.url()), proxy=proxy.url, ssl_context=authority.client_context())
    assert result.error is AttemptError.CONNECTION_ERROR
    assert "CONNECT with 403" in result.detail
    assert rx.received == []


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_an_unreachable_proxy_is_a_proxy_error(scheme: str) -> None:
    nobody = f"http://{LOOPBACK}:{free_port()}"
    result = await send(post(f"{scheme}://{LOOPBACK}:{free_port()}/hook"), proxy=nobody)
    assert result.error is AttemptError.PROXY_ERROR
    assert result.status_code is None
    assert "egress proxy" in result.detail


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_proxy_name_that_does_not_resolve_is_a_proxy_error(scheme: str) -> None:
    # The proxy's own name (the operator's) failing to resolve means the proxy cannot be
    # reached: the operator's failure, which must not count against the webhook.
    unresolvable = f"http://egress-proxy.invalid:{free_port()}"  # RFC 6761: never resolves
    result = await send(post(f"{scheme}://{LOOPBACK}:{free_port()}/hook"), proxy=unresolvable)
    assert result.error is AttemptError.PROXY_ERROR, result.detail
    assert result.status_code is None
    assert "egress proxy" in result.detail


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_proxy_that_never_accepts_the_connection_is_a_proxy_error(scheme: str) -> None:
    # A proxy host that is down behind a firewall: connecting hangs until the attempt's
    # timeout. That is the operator's failure as much as a refused connection is, and must
    # not be a `timeout` counted against the webhook (docs/security.md, "The egress proxy").
    with unanswering_port() as port:
        request = dataclasses.replace(
            post(f"{scheme}://{LOOPBACK}:{free_port()}/hook"), timeout_seconds=SHORT_TIMEOUT
        )
        result = await send(request, proxy=f"http://{LOOPBACK}:{port}")
    assert result.error is AttemptError.PROXY_ERROR, result.detail
    assert result.status_code is None
    assert "egress proxy" in result.detail


async def test_a_receiver_that_never_accepts_behind_the_proxy_is_a_timeout(
    proxy: TinyProxy,
) -> None:
    # The proxy is there and takes the request; the receiver behind it does not answer:
    # that is the receiver's timeout, counted against its webhook as without a proxy.
    with unanswering_port() as port:
        request = dataclasses.replace(
            post(f"http://{LOOPBACK}:{port}/hook"), timeout_seconds=SHORT_TIMEOUT
        )
        result = await send(request, proxy=proxy.url)
    assert result.error is AttemptError.TIMEOUT, result.detail


async def test_names_are_left_to_the_proxy_to_resolve(proxy: TinyProxy) -> None:
    # With no allowed networks, `localhost` resolves only to blocked addresses: without a
    # proxy the guard refuses it; through the proxy, the proxy's policy decides (this
    # one allows it).
    async with recorder() as rx:
        direct = await send(post(rx.url("localhost")), proxy=None, allowed=())
        proxied = await send(post(rx.url("localhost")), proxy=proxy.url, allowed=())
    assert direct.error is AttemptError.BLOCKED_ADDRESS
    assert proxied.error is None and proxied.status_code == 200, proxied.detail
    assert len(rx.received) == 1


async def test_literal_blocked_addresses_never_reach_the_proxy(proxy: TinyProxy) -> None:
    async with recorder() as rx:
        result = await send(post(rx.url()), proxy=proxy.url, allowed=())
    assert result.error is AttemptError.BLOCKED_ADDRESS
    assert rx.received == []
    assert "Request" not in proxy.log(), "nothing was sent to the proxy"


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_proxy_credentials_go_in_the_url_and_a_407_is_a_proxy_error(
    tmp_path: Path, authority: CertificateAuthority, scheme: str
) -> None:
    rx_port = free_port()
    directory = tmp_path / "tinyproxy-auth"
    directory.mkdir()
    guarded = TinyProxy(
        directory, port=free_port(), connect_ports=[rx_port], basic_auth=("ops", "s3cret")
    ).start()
    rx_context = authority.server_context() if scheme == "https" else None
    try:
        async with recorder(rx_context, rx_port) as rx:
            with_credentials = guarded.url.replace("http://", "http://ops:s3cret@")
            accepted = await send(
                post(rx.url()), proxy=with_credentials, ssl_context=authority.client_context()
            )
            refused = await send(
                post(rx.url()), proxy=guarded.url, ssl_context=authority.client_context()
            )
    finally:
        guarded.stop()
    assert accepted.error is None and accepted.status_code == 200, accepted.detail
    assert refused.error is AttemptError.PROXY_ERROR, refused
    assert "s3cret" not in refused.detail
    assert len(rx.received) == 1


# ---------------------------------------------------------------- the server


def _webhook(api: httpx.Client, url: str, account: str) -> dict[str, Any]:
    body = {
        "url": url,
        "accounts": [account],
        "eventTypes": ALL_TYPES,
        "retrySchedule": [1] * 20,
    }
    answer = api.post("/v1/webhooks", json=body)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _order(api: httpx.Client, account: str) -> list[str]:
    order = new_order(account)
    answer = api.post("/v1/orders", json=order)
    assert answer.status_code == 202, answer.text
    return list(answer.json()["eventIds"])


def _attempt_errors(api: httpx.Client, webhook_id: str) -> list[str | None]:
    errors: list[str | None] = []
    page = api.get("/v1/deliveries", params={"webhookId": webhook_id, "limit": 500}).json()
    for delivery in page["data"]:
        one = api.get(f"/v1/deliveries/{delivery['id']}").json()
        errors += [a["error"] for a in one["attempts"]]
    return errors


def _samples(exposition: str, name: str) -> list[Sample]:
    """The samples called `name` in a Prometheus text exposition."""
    return [
        sample
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    ]


def test_the_server_delivers_through_the_proxy_and_waits_out_its_outage(
    tmp_path: Path, database_env: dict[str, str]
) -> None:
    """The proxy is down at first: attempts fail with proxy_error, for longer than
    ORDERHOOKS_DISABLE_AFTER, and the webhook stays active; once the proxy is up,
    everything is delivered through it."""
    disable_after_seconds = 2
    proxy_dir = tmp_path / "tinyproxy"
    proxy_dir.mkdir()
    later_proxy = TinyProxy(proxy_dir, port=free_port(), connect_ports=[])
    env = {
        **database_env,
        "ORDERHOOKS_EGRESS_PROXY": later_proxy.url,
        "ORDERHOOKS_DISABLE_AFTER": str(disable_after_seconds),
    }
    account = f"acct-{time.monotonic_ns()}"
    with (
        Receiver() as rx,
        ServerProcess(tmp_path / "data", log_path=tmp_path / "server.log", env=env) as server,
        server.client() as api,
    ):
        hook = _webhook(api, rx.url, account)
        events = _order(api, account) + _order(api, account)
        first_failure = time.monotonic()
        rx.wait_for_sync(
            lambda: (
                len(_attempt_errors(api, hook["id"])) >= 6
                and time.monotonic() - first_failure > disable_after_seconds + 1
            ),
            WAIT_SECONDS,
            "attempts failing for longer than ORDERHOOKS_DISABLE_AFTER",
        )
        errors = _attempt_errors(api, hook["id"])
        assert set(errors) == {"proxy_error"}, errors
        state = api.get(f"/v1/webhooks/{hook['id']}").json()
        assert state["state"] == "active", state
        assert rx.requests == []
        # Failed attempts all the same: the stats say so (lastFailureAt stayed null).
        stats = api.get(f"/v1/webhooks/{hook['id']}/stats").json()
        assert stats["lastFailureAt"] is not None, stats
        assert stats["lastSuccessAt"] is None, stats
        metrics = httpx.get(f"{server.base_url}/metrics", timeout=10).text
        [proxy_errors] = _samples(metrics, "orderhooks_egress_proxy_errors_total")
        assert proxy_errors.value >= len(errors)
        per_webhook = _samples(metrics, "orderhooks_webhook_attempts_total")
        assert [s for s in per_webhook if s.labels["webhook_id"] == hook["id"]] == []

        later_proxy.start()
        try:
            rx.wait_for_sync(lambda: set(events) <= rx.delivered_ids(), WAIT_SECONDS, "delivered")
        finally:
            later_proxy.stop()
        stats = api.get(f"/v1/webhooks/{hook['id']}/stats").json()
        assert stats["lastSuccessAt"] is not None, stats
        assert all("tinyproxy" in r.headers.get("via", "") for r in rx.requests)
        rx.verify_all(hook["secret"])
        assert f"POST {rx.url}" in later_proxy.log()


@pytest.mark.parametrize(
    "value", ["socks5://127.0.0.1:1080", "https://proxy.example:3128", "http://proxy:3128/x"]
)
def test_a_proxy_url_that_is_not_http_host_port_stops_the_start(tmp_path: Path, value: str) -> None:
    env = cli_env(tmp_path / "data", ORDERHOOKS_EGRESS_PROXY=value)
    result = run_cli(["serve", "--port", str(free_port())], env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "ORDERHOOKS_EGRESS_PROXY" in result.stderr
