"""`orderhooks receive` and `orderhooks simulate` as real processes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from orderhooks.testing.server import free_port
from tests.integration.cli_support import (
    REFUSAL_TIMEOUT_SECONDS,
    Spawner,
    assert_usage_error,
    cli_env,
    http_get,
    http_post,
    run_cli,
    start_serve,
    start_simulation_target,
)

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(1, 33))).decode()
ADMIN_KEY = "test-admin-key-for-tools"


def signed_headers(secret: str, event_id: str, body: bytes) -> dict[str, str]:
    """Headers as orderhooks sends them, made independently: standardwebhooks and hmac."""
    timestamp = int(time.time())
    signer = StandardWebhook(secret)
    signature = signer.sign(event_id, datetime.fromtimestamp(timestamp, UTC), body.decode())
    key = base64.b64decode(secret.removeprefix("whsec_"))
    return {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
        "x-server-authorization-hmac-sha256": hmac.new(key, body, hashlib.sha256).hexdigest(),
        "orderhooks-event-type": "order.status_update",
        "orderhooks-attempt": "2",
    }


def envelope_body(event_id: str) -> bytes:
    """An envelope like docs/events.md#the-envelope, created a moment ago."""
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(
        {"id": event_id, "type": "order.status_update", "timestamp": created,
         "account": "acc", "location": "loc", "orderId": "order-42", "sequence": 3,
         "test": False, "data": {"orderId": "order-42", "status": 20}}
    ).encode()  # fmt: skip


def test_receive_accepts_signed_requests_and_refuses_others(tmp_path: Path, spawn: Spawner) -> None:
    port = free_port()
    process = spawn(
        ["receive", "--secret", SECRET, "--port", str(port), "--status", "202"], cli_env(tmp_path)
    )
    process.wait_output("listening on")
    url = f"http://127.0.0.1:{port}/hooks"

    body = envelope_body("evt_good")
    good = http_post(url, data=body, headers=signed_headers(SECRET, "evt_good", body))
    assert good.status_code == 202

    wrong_secret = http_post(url, data=body, headers=signed_headers(OTHER_SECRET, "evt_bad", body))
    assert wrong_secret.status_code == 401
    assert "signature" in wrong_secret.json()["error"]

    tampered_headers = signed_headers(SECRET, "evt_tampered", body)
    tampered = http_post(url, data=body + b" ", headers=tampered_headers)
    assert tampered.status_code == 401

    unsigned = http_post(url, data=body, headers={"content-type": "application/json"})
    assert unsigned.status_code == 401
    assert "missing" in unsigned.json()["error"]

    out = process.wait_output("evt_tampered")
    assert process.stop() == 0
    accepted = [line for line in out.splitlines() if "evt_good" in line]
    assert len(accepted) == 1
    line = accepted[0]
    for part in ("order.status_update", "order-42", "seq 3", "status 20", "attempt 2"):
        assert part in line
    assert re.search(r"\+\d+ ms", line)
    assert sum("rejected (401)" in line for line in out.splitlines()) == 3
    assert SECRET not in out and SECRET not in process.stderr()


@pytest.mark.parametrize("status", ["100", "101", "199"])
def test_receive_refuses_an_interim_status(tmp_path: Path, status: str) -> None:
    """`--status 100` was taken, though a 1xx is no answer: a sender (orderhooks included)
    waited for the final status until its timeout, and 101 switched the connection to
    another protocol. docs/cli.md: a final status, 200 to 599."""
    args = ["receive", "--secret", SECRET, "--port", str(free_port()), "--status", status]
    done = run_cli(args, cli_env(tmp_path), timeout=REFUSAL_TIMEOUT_SECONDS)
    assert_usage_error(done, "--status")


def test_receive_refuses_a_timestamp_too_large_for_a_float(tmp_path: Path, spawn: Spawner) -> None:
    # `now - timestamp` turned the header's integer into a float: 400 digits overflowed it,
    # and the receiver answered 500 instead of refusing the request.
    port = free_port()
    process = spawn(["receive", "--secret", SECRET, "--port", str(port)], cli_env(tmp_path))
    process.wait_output("listening on")
    body = envelope_body("evt_far")
    headers = {**signed_headers(SECRET, "evt_far", body), "webhook-timestamp": "9" * 400}
    far = http_post(f"http://127.0.0.1:{port}/hooks", data=body, headers=headers)
    assert far.status_code == 401, far.text
    assert "tolerance" in far.json()["error"]
    process.wait_output("evt_far")
    assert process.stop() == 0


def test_receive_verifies_a_batch_once_and_prints_each_event(
    tmp_path: Path, spawn: Spawner
) -> None:
    port = free_port()
    process = spawn(["receive", "--secret", SECRET, "--port", str(port)], cli_env(tmp_path))
    process.wait_output("listening on")
    url = f"http://127.0.0.1:{port}/hooks"
    envelopes = [json.loads(envelope_body(event_id)) for event_id in ("evt_one", "evt_two")]
    envelopes[1]["sequence"] = 4
    body = json.dumps({"type": "batch", "id": "bat_demo", "events": envelopes}).encode()
    headers = {**signed_headers(SECRET, "bat_demo", body), "orderhooks-event-type": "batch"}
    assert http_post(url, data=body, headers=headers).status_code == 200
    tampered = body.replace(b"evt_two", b"evt_twp")
    assert http_post(url, data=tampered, headers=headers).status_code == 401

    out = process.wait_output("rejected (401)")
    assert process.stop() == 0
    lines = [line for line in out.splitlines() if "bat_demo" in line and "rejected" not in line]
    assert len(lines) == 2
    for line, event_id, sequence in zip(lines, ("evt_one", "evt_two"), (3, 4), strict=True):
        for part in ("order.status_update", "order-42", f"seq {sequence}", event_id):
            assert part in line
    assert "evt_twp" not in out


def test_receive_refuses_a_malformed_secret_naming_where_it_came_from(tmp_path: Path) -> None:
    """A bad ORDERHOOKS_RECEIVE_SECRET was reported as a bad `--secret`, an option the
    developer never gave: the message names the variable when it came from there."""
    result = run_cli(["receive", "--secret", "not-a-secret"], cli_env(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("orderhooks: --secret must be whsec_")
    env = cli_env(tmp_path, ORDERHOOKS_RECEIVE_SECRET="not-a-secret")
    from_env = run_cli(["receive"], env, timeout=REFUSAL_TIMEOUT_SECONDS)
    assert from_env.returncode == 2
    assert from_env.stderr.startswith("orderhooks: ORDERHOOKS_RECEIVE_SECRET must be whsec_")
    assert "not-a-secret" not in from_env.stderr


def test_receive_on_a_port_in_use_is_one_orderhooks_line(tmp_path: Path) -> None:
    # docs/cli.md: a failure is exit 1 with its message prefixed `orderhooks:`, as serve's
    # is; the receiver wrote `orderhooks receive:`.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = run_cli(["receive", "--secret", SECRET, "--port", str(port)], cli_env(tmp_path))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"orderhooks: cannot listen on 127.0.0.1:{port}"), line


def _events(base: str, account: str, key: str = ADMIN_KEY) -> list[dict[str, object]]:
    """Every stored event of `account`, following the cursor."""
    auth = {"authorization": f"Bearer {key}"}
    events: list[dict[str, object]] = []
    params: dict[str, str | int] = {"account": account, "limit": 500}
    while True:
        response = http_get(f"{base}/v1/events", params=params, headers=auth)
        assert response.status_code == 200, response.text
        page = response.json()
        events.extend(page["data"])
        if not page["nextCursor"]:
            return events
        params["cursor"] = page["nextCursor"]


def _simulated_accounts(output: str) -> list[str]:
    return sorted(set(re.findall(r"account ([0-9a-f]{24})", output)))


@pytest.mark.slow
def test_simulate_posts_events_the_server_accepts(tmp_path: Path, spawn: Spawner) -> None:
    data_dir = tmp_path / "data"
    server, base = start_simulation_target(spawn, data_dir, ADMIN_KEY)
    result = run_cli(
        ["simulate", "--url", base, "--key", ADMIN_KEY, "--rate", "10", "--duration", "3",
         "--speed", "8", "--accounts", "2", "--locations", "1", "--seed", "7"],
        cli_env(data_dir),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    accounts = _simulated_accounts(result.stdout)
    assert len(accounts) == 2
    events = [e for account in accounts for e in _events(base, account)]
    types = {e["type"] for e in events}
    assert "order.new" in types and "order.status_update" in types
    summary = result.stdout.split("summary", 1)[1]
    posted = int(re.search(r"events posted\s*[│|]?\s*(\d+)", summary).group(1))  # type: ignore[union-attr]
    assert posted == len(events)
    assert server.stop() == 0

    # The same seed gives the same accounts, so webhooks made for them keep working.
    again = run_cli(["simulate", "--key", "x", "--url", base, "--seed", "7", "--accounts", "2",
                     "--locations", "1", "--duration", "0.1"], cli_env(data_dir))  # fmt: skip
    assert _simulated_accounts(again.stdout) == accounts


@pytest.mark.slow
def test_simulate_batches_and_reads_the_saved_admin_key(tmp_path: Path, spawn: Spawner) -> None:
    data_dir = tmp_path / "data"
    server, base = start_serve(spawn, data_dir, ORDERHOOKS_REQUIRE_AGREEMENT="false")
    key = (data_dir / "admin.key").read_text().strip()
    result = run_cli(
        ["simulate", "--url", base, "--batch", "--rate", "10", "--duration", "2", "--speed", "8",
         "--accounts-list", "acct-a,acct-b"],
        cli_env(data_dir),  # no --key: the admin.key of the data dir is used
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    events = {a: _events(base, a, key) for a in ("acct-a", "acct-b")}
    assert sum(len(e) for e in events.values()) > 0
    assert all(e["account"] in ("acct-a", "acct-b") for es in events.values() for e in es)
    assert server.stop() == 0


def test_simulate_fails_when_most_requests_fail(tmp_path: Path, spawn: Spawner) -> None:
    server, base = start_serve(spawn, tmp_path / "data", ORDERHOOKS_ADMIN_KEY=ADMIN_KEY)
    result = run_cli(
        ["simulate", "--url", base, "--key", "wrong-key", "--rate", "10", "--duration", "1"],
        cli_env(tmp_path / "data"),
    )
    assert result.returncode == 1
    assert "401" in result.stdout
    assert server.stop() == 0


@pytest.mark.parametrize("url", ["notaurl", "ftp://127.0.0.1/", "http://", "127.0.0.1:8080"])
def test_simulate_refuses_a_url_that_is_no_http_address(tmp_path: Path, url: str) -> None:
    """A mistyped --url is a usage error before anything is posted, not a run of failed
    requests (docs/cli.md, simulate)."""
    result = run_cli(
        ["simulate", "--url", url, "--key", "k", "--duration", "1"], cli_env(tmp_path / "data")
    )
    assert_usage_error(result, "--url must be an http or https URL with a host")


@pytest.mark.parametrize(
    "to",
    [
        "amqp://guest:hunter2pw@127.0.0.1:{port}/?queue=orders",
        "nats://user:hunter2pw@127.0.0.1:{port}/ORDERS?subject=orders.>&durable=d",
    ],
)
def test_simulate_to_a_broker_that_is_not_there_says_so_in_one_line(
    tmp_path: Path, to: str
) -> None:
    url = to.format(port=free_port())
    result = run_cli(["simulate", "--to", url, "--duration", "1"], cli_env(tmp_path / "data"))
    assert result.returncode == 1, result.stderr
    # One line says why (docs/cli.md): aiormq's own error line came before it, and the
    # NATS client's debug lines went to standard output, into the display.
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("orderhooks: PublisherUnavailable: cannot publish to ")
    assert "127.0.0.1" in line
    assert "[debug" not in result.stdout and "client error" not in result.stdout, result.stdout
    assert "hunter2pw" not in result.stdout + result.stderr
