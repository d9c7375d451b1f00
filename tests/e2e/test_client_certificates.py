"""Client certificates end to end (docs/security.md, "Client certificates"): a real server
process delivers to an HTTPS receiver on loopback that requires a client certificate of
its own CA (certificates made in the test), directly and through an egress proxy
(tinyproxy, CONNECT).

A webhook with the right certificate is delivered and the receiver sees it; one with a
certificate of another CA is refused by the receiver; one without `caCertificate` does
not trust the receiver (system roots only), and does once `caCertificate` is added with
a PATCH that keeps the key with `"<set>"`; one without `tls` never gets through.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess, free_port
from tests.integration.egress_support import TinyProxy
from tests.support.data import new_order, unique
from tests.support.tls import PARTNER_NAME, Pki, make_pki, mtls_receiver, tls_field

WAIT_SECONDS = 30.0


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture
def rx(pki: Pki) -> Iterator[Receiver]:
    with mtls_receiver(pki) as receiver:
        yield receiver


def _create(api: httpx.Client, url: str, account: str, tls: Any) -> dict[str, Any]:
    body = {"url": url, "accounts": [account], "eventTypes": ["order.new"], "tls": tls}
    created = api.post("/v1/webhooks", json=body)
    assert created.status_code == 201, created.text
    return dict(created.json())


def _errors(api: httpx.Client, webhook_id: str) -> list[str | None]:
    """The attempt errors of every delivery of the webhook."""
    errors: list[str | None] = []
    deliveries = api.get("/v1/deliveries", params={"webhookId": webhook_id}).json()["data"]
    for delivery in deliveries:
        view = api.get(f"/v1/deliveries/{delivery['id']}").json()
        errors += [attempt["error"] for attempt in view["attempts"]]
    return errors


def _wait_errors(api: httpx.Client, rx: Receiver, webhook_id: str) -> list[str | None]:
    rx.wait_for_sync(lambda: bool(_errors(api, webhook_id)), WAIT_SECONDS, "an attempt")
    return _errors(api, webhook_id)


def test_the_receiver_gets_only_the_webhook_with_its_certificate(
    tmp_path: Path, pki: Pki, rx: Receiver
) -> None:
    with ServerProcess(tmp_path / "data") as server, server.client() as api:
        account = unique("acct")
        right = _create(api, rx.url, account, tls_field(pki.client, pki.ca))
        stranger = _create(api, rx.url, account, tls_field(pki.stranger, pki.ca))
        roots_only = _create(api, rx.url, account, tls_field(pki.client, None))
        plain = _create(api, rx.url, account, None)
        assert right["tls"]["clientKey"] == "<set>" and plain["tls"] is None
        assert api.post("/v1/orders", json=new_order(account)).status_code == 202

        rx.wait_for_sync(lambda: len(rx.accepted()) == 1, WAIT_SECONDS, "the delivery")
        assert [r.client_name for r in rx.requests] == [PARTNER_NAME]
        # The receiver has answered; the attempt is recorded a moment later.
        assert _wait_errors(api, rx, right["id"]) == [None]
        for refused in (stranger, roots_only, plain):
            errors = _wait_errors(api, rx, refused["id"])
            assert set(errors) == {"connection_error"}, (refused["tls"], errors)

        # caCertificate added, the key kept with "<set>": now it trusts the receiver.
        kept = {**tls_field(pki.client, pki.ca), "clientKey": "<set>"}
        patched = api.patch(f"/v1/webhooks/{roots_only['id']}", json={"tls": kept})
        assert patched.status_code == 200, patched.text
        assert patched.json()["tls"]["clientKey"] == "<set>"
        assert api.post("/v1/orders", json=new_order(account)).status_code == 202
        rx.wait_for_sync(lambda: len(rx.accepted()) == 3, WAIT_SECONDS, "both deliveries")
        assert {r.client_name for r in rx.requests} == {PARTNER_NAME}

        def states() -> set[str]:
            answer = api.get("/v1/deliveries", params={"webhookId": roots_only["id"]})
            return {d["state"] for d in answer.json()["data"]}

        # The receiver has answered; the outcome is recorded a moment later.
        rx.wait_for_sync(lambda: "delivered" in states(), WAIT_SECONDS, "the outcome")


def test_client_certificates_work_through_the_egress_proxy(
    tmp_path: Path, pki: Pki, rx: Receiver
) -> None:
    proxy_dir = tmp_path / "proxy"
    proxy_dir.mkdir()
    proxy = TinyProxy(proxy_dir, port=free_port(), connect_ports=[rx.port]).start()
    try:
        env = {"ORDERHOOKS_EGRESS_PROXY": proxy.url}
        with ServerProcess(tmp_path / "data", env=env) as server, server.client() as api:
            account = unique("acct")
            _create(api, rx.url, account, tls_field(pki.client, pki.ca))
            assert api.post("/v1/orders", json=new_order(account)).status_code == 202
            rx.wait_for_sync(lambda: len(rx.accepted()) == 1, WAIT_SECONDS, "the delivery")
        assert [r.client_name for r in rx.requests] == [PARTNER_NAME]
        assert "CONNECT" in proxy.log(), proxy.log()[-2000:]
    finally:
        proxy.stop()


def test_sender_processes_present_the_certificate_too(
    tmp_path: Path, pki: Pki, rx: Receiver
) -> None:
    """With ORDERHOOKS_WORKERS=2 requests are sent by a sender process: the client
    certificate crosses the channel to it."""
    env = {"ORDERHOOKS_WORKERS": "2"}
    with ServerProcess(tmp_path / "data", env=env) as server, server.client() as api:
        account = unique("acct")
        _create(api, rx.url, account, tls_field(pki.client, pki.ca))
        for _ in range(3):
            assert api.post("/v1/orders", json=new_order(account)).status_code == 202
        rx.wait_for_sync(lambda: len(rx.accepted()) == 3, WAIT_SECONDS, "three deliveries")
    assert [r.client_name for r in rx.requests] == [PARTNER_NAME] * 3
