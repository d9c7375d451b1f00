"""The scenario behind `test_secrets_never_leak`: a real server on a fresh data dir without
`ORDERHOOKS_ADMIN_KEY`, put through every path a key or a webhook secret travels.

It starts `python -m orderhooks serve` with stdout and stderr in separate files, creates
and revokes keys, creates webhooks, reads and rotates their secrets, delivers signed
events to a receiver on 127.0.0.1, provokes errors with bad keys and with bodies that
carry keys and secrets, and records every answer. It then copies the raw bytes of the
SQLite database and its WAL while the server runs, stops it with SIGTERM, copies the
database again, and starts it once more to see that no key is printed a second time.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from orderhooks.testing import ReceivedRequest, Receiver
from orderhooks.testing.server import free_port
from tests.support.data import ALL_TYPES, new_order
from tests.support.processes import terminate

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
DELIVERY_TIMEOUT_SECONDS = 20.0
LIST_LIMIT = 500
RECEIVER_TOKEN = "rcv-token-" + "7" * 24  # a static header value: a receiver's credential


@dataclass
class Run:
    """One run of the server process: where its output went, and the process."""

    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    def stdout(self) -> str:
        """What the process wrote to standard output."""
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        """What the process wrote to standard error (its log)."""
        return self.stderr_path.read_text(errors="replace")


@dataclass
class Observed:
    """Everything the scenario saw, for the tests to search."""

    data_dir: Path
    admin_key: str = ""
    keys: dict[str, str] = field(default_factory=dict)  # name -> plaintext
    secrets: dict[str, str] = field(default_factory=dict)  # name -> whsec_ string
    secret_answers: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    errors: list[tuple[str, int, str]] = field(default_factory=list)  # what, status, body
    listings: dict[str, str] = field(default_factory=dict)  # what -> answer text
    deliveries: list[ReceivedRequest] = field(default_factory=list)
    db_while_running: bytes = b""
    db_after_stop: bytes = b""
    first: Run | None = None
    second: Run | None = None


def server_env(data_dir: Path, port: int) -> dict[str, str]:
    """The child's environment: ours without any `ORDERHOOKS_*`, so no admin key is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERHOOKS_")}
    env.update(
        ORDERHOOKS_DATA_DIR=str(data_dir),
        ORDERHOOKS_HOST="127.0.0.1",
        ORDERHOOKS_PORT=str(port),
        ORDERHOOKS_LOG_FORMAT="json",
        ORDERHOOKS_ALLOWED_NETWORKS="127.0.0.0/8",
        ORDERHOOKS_RETRY_SCHEDULE="1,1",
        ORDERHOOKS_RETRY_JITTER="0",
        ORDERHOOKS_DELIVERY_TIMEOUT="2",
    )
    return env


def start(data_dir: Path, port: int, name: str) -> Run:
    """Start the server and wait for `/readyz`; stdout and stderr go to their own files."""
    out, err = data_dir.parent / f"{name}.stdout", data_dir.parent / f"{name}.stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        # The command is this interpreter and the orderhooks module: no untrusted input.
        process = subprocess.Popen(
            [sys.executable, "-m", "orderhooks", "serve"],
            env=server_env(data_dir, port),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    run = Run(process, out, err)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: {run.stderr()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return run
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop(run)
    raise RuntimeError(f"the server was not ready in time: {run.stderr()[-3000:]}")


def stop(run: Run) -> None:
    """SIGTERM the process by its pid and wait; SIGKILL it if it does not exit."""
    terminate(run.process, STOP_TIMEOUT_SECONDS)


def database_bytes(data_dir: Path) -> bytes:
    """The raw bytes of the SQLite database and its WAL and journal files, if present."""
    parts = []
    for suffix in ("", "-wal", "-journal", "-shm"):
        path = data_dir / f"orderhooks.db{suffix}"
        if path.exists():
            parts.append(path.read_bytes())
    return b"\n".join(parts)


def custom_secret() -> str:
    """A valid secret chosen by the client: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Scenario:
    """The steps of the scenario against one running server."""

    def __init__(self, base_url: str, seen: Observed) -> None:
        self.base_url = base_url
        self.seen = seen

    def client(self, key: str) -> httpx.Client:
        """An API client authenticated with `key`."""
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    def expect(self, response: httpx.Response, status: int) -> Any:
        """The JSON of an answer that must have `status`; errors are recorded."""
        assert response.status_code == status, (
            f"{response.request.method} {response.request.url}: {response.status_code} "
            f"{response.text[:500]}"
        )
        return response.json() if response.content else None

    def refused(self, what: str, response: httpx.Response) -> None:
        """Record an error answer (it must be one)."""
        assert response.status_code >= 400, (what, response.status_code, response.text[:300])
        self.seen.errors.append((what, response.status_code, response.text))

    def create_keys(self, admin: httpx.Client, account: str) -> None:
        """A partner, an ingest, a second admin key, and one that is revoked at once."""
        specs = {
            "partner": {"role": "partner", "accounts": [account], "name": "partner"},
            "ingest": {"role": "ingest", "name": "ingest"},
            "admin2": {"role": "admin", "name": "second admin"},
            "revoked": {"role": "ingest", "name": "to revoke"},
        }
        for name, body in specs.items():
            created = self.expect(admin.post("/v1/keys", json=body), 201)
            self.seen.keys[name] = created["key"]
            if name == "revoked":
                self.expect(admin.delete(f"/v1/keys/{created['id']}"), 204)

    def create_webhooks(
        self, admin: httpx.Client, partner: httpx.Client, url: str, account: str
    ) -> tuple[str, str]:
        """Two webhooks (one by the partner, with a credential in a static header)."""
        hook = {"url": url, "accounts": [account], "eventTypes": ALL_TYPES}
        mine = self.expect(
            partner.post(
                "/v1/webhooks", json={**hook, "headers": {"X-Receiver-Token": RECEIVER_TOKEN}}
            ),
            201,
        )
        other = self.expect(
            admin.post(
                "/v1/webhooks", json={**hook, "url": url + "/other", "description": "second"}
            ),
            201,
        )
        self.seen.secrets["created-1"] = mine["secret"]
        self.seen.secrets["created-2"] = other["secret"]
        self.seen.secret_answers += [("create", mine), ("create", other)]
        return mine["id"], other["id"]

    def rotate(self, partner: httpx.Client, admin: httpx.Client, first: str, second: str) -> None:
        """Read secrets, rotate to a generated one, to a chosen one, and with no grace."""
        read = self.expect(partner.get(f"/v1/webhooks/{first}/secret"), 200)
        self.seen.secret_answers.append(("get", read))
        generated = self.expect(partner.post(f"/v1/webhooks/{first}/secret/rotate"), 200)
        chosen = custom_secret()
        body = {"secret": chosen, "gracePeriodSeconds": 3600}
        answered = self.expect(partner.post(f"/v1/webhooks/{first}/secret/rotate", json=body), 200)
        no_grace = self.expect(
            admin.post(f"/v1/webhooks/{second}/secret/rotate", json={"gracePeriodSeconds": 0}), 200
        )
        self.seen.secrets.update(
            rotated=generated["secret"], chosen=chosen, rotated_no_grace=no_grace["secret"]
        )
        self.seen.secret_answers += [
            ("rotate", generated),
            ("rotate", answered),
            ("rotate", no_grace),
        ]
        current = self.expect(partner.get(f"/v1/webhooks/{first}/secret"), 200)
        self.seen.secret_answers.append(("get", current))
        self.expect(partner.patch(f"/v1/webhooks/{first}", json={"description": "changed"}), 200)
        self.expect(admin.post(f"/v1/webhooks/{second}/disable"), 200)
        self.expect(admin.post(f"/v1/webhooks/{second}/enable"), 200)

    def deliver(
        self,
        ingest: httpx.Client,
        partner: httpx.Client,
        rx: Receiver,
        webhook_id: str,
        account: str,
    ) -> None:
        """An order, a status update and a test event, delivered and signed."""
        order = new_order(account)
        self.expect(ingest.post("/v1/orders", json=order), 202)
        self.expect(ingest.post(f"/v1/orders/{order['_id']}/status", json={"status": 20}), 202)
        self.expect(partner.post(f"/v1/webhooks/{webhook_id}/test", json={}), 202)
        rx.wait_for_sync(
            lambda: len({r.webhook_id for r in rx.accepted("/hook")}) >= 3,
            DELIVERY_TIMEOUT_SECONDS,
            "3 events delivered to the first webhook",
        )
        self.seen.deliveries = rx.accepted("/hook")

        # The attempts are recorded a moment after the receiver answered: the deliveries
        # read back later must show them, or what they carry would go unchecked.
        def recorded() -> bool:
            answer = partner.get("/v1/deliveries", params={"webhookId": webhook_id})
            deliveries = answer.json()["data"]
            return len(deliveries) >= 3 and all(d["state"] == "delivered" for d in deliveries)

        rx.wait_for_sync(recorded, DELIVERY_TIMEOUT_SECONDS, "the 3 deliveries recorded")

    def provoke_errors(self, first: str) -> None:
        """Bad keys, and bodies carrying keys and secrets, each refused."""
        keys, found = self.seen.keys, self.seen.secrets
        bad_bearers = {
            "near-miss key": keys["partner"] + "x",
            "revoked key": keys["revoked"],
            "secret as key": found["chosen"],
            "truncated admin key": self.seen.admin_key[:-1],
        }
        for what, bearer in bad_bearers.items():
            with self.client(bearer) as client:
                self.refused(what, client.get("/v1/webhooks"))
        basic = base64.b64encode(f"admin:{self.seen.admin_key}".encode()).decode()
        self.refused(
            "basic auth",
            httpx.get(f"{self.base_url}/v1/webhooks", headers={"Authorization": f"Basic {basic}"}),
        )
        with self.client(keys["ingest"]) as ingest:
            spoiled = new_order("acct-leak", status="x", note=keys["partner"])
            self.refused("order carrying a key", ingest.post("/v1/orders", json=spoiled))
            raw = b'{"note": "' + keys["admin2"].encode() + b'", "status": '
            self.refused(
                "malformed body with a key",
                ingest.post(
                    "/v1/orders", content=raw, headers={"content-type": "application/json"}
                ),
            )
            self.refused("ingest key on admin endpoint", ingest.get("/v1/keys"))
        with self.client(keys["partner"]) as partner:
            rotate = f"/v1/webhooks/{first}/secret/rotate"
            weak = "whsec_" + base64.b64encode(b"short").decode()
            self.refused("weak chosen secret", partner.post(rotate, json={"secret": weak}))
            self.refused(
                "secret with bad grace",
                partner.post(
                    rotate, json={"secret": found["created-1"], "gracePeriodSeconds": "soon"}
                ),
            )
            self.refused(
                "secret on create",
                partner.post(
                    "/v1/webhooks",
                    json={
                        "url": "http://127.0.0.1:9/",
                        "accounts": ["acct-leak"],
                        "eventTypes": ALL_TYPES,
                        "secret": found["created-1"],
                    },
                ),
            )
            self.refused(
                "secret in a patch",
                partner.patch(
                    f"/v1/webhooks/{first}",
                    json={"url": "http://169.254.169.254/", "description": found["chosen"]},
                ),
            )
        with self.client(self.seen.admin_key) as admin:
            self.refused(
                "key as a key name",
                admin.post(
                    "/v1/keys", json={"role": "admin", "name": keys["partner"], "accounts": ["a"]}
                ),
            )

    def read_back(self, admin: httpx.Client, partner: httpx.Client, first: str) -> None:
        """Every list, read, audit and metrics answer the scenario can reach."""
        listings = self.seen.listings
        listings["webhooks (admin)"] = admin.get("/v1/webhooks").text
        listings["webhooks (partner)"] = partner.get("/v1/webhooks").text
        listings["webhook"] = partner.get(f"/v1/webhooks/{first}").text
        listings["webhook stats"] = partner.get(f"/v1/webhooks/{first}/stats").text
        listings["keys"] = admin.get("/v1/keys", params={"limit": LIST_LIMIT}).text
        listings["audit"] = admin.get("/v1/audit", params={"limit": LIST_LIMIT}).text
        listings["events"] = admin.get("/v1/events", params={"limit": LIST_LIMIT}).text
        deliveries = admin.get("/v1/deliveries", params={"webhookId": first})
        listings["deliveries"] = deliveries.text
        for delivery in deliveries.json()["data"]:
            listings[f"delivery {delivery['id']}"] = admin.get(
                f"/v1/deliveries/{delivery['id']}"
            ).text
        listings["metrics"] = httpx.get(f"{self.base_url}/metrics").text
        listings["openapi"] = httpx.get(f"{self.base_url}/openapi.json").text


def run_scenario(base: Path) -> Observed:
    """Run the whole scenario in `base`; the server is stopped (by pid) before returning."""
    data_dir = base / "data"
    data_dir.mkdir()
    port = free_port()
    seen = Observed(data_dir=data_dir)
    seen.first = start(data_dir, port, "first")
    try:
        seen.admin_key = (data_dir / "admin.key").read_text().strip()
        steps = Scenario(f"http://127.0.0.1:{port}", seen)
        account = "acct-leak"
        with Receiver() as rx, steps.client(seen.admin_key) as admin:
            steps.create_keys(admin, account)
            with (
                steps.client(seen.keys["partner"]) as partner,
                steps.client(seen.keys["ingest"]) as ingest,
            ):
                agreement = {
                    "signedBy": "Ops",
                    "signedAt": "2026-11-28T12:00:00Z",
                    "pricing": {"currency": "EUR", "perThousand": dict.fromkeys(ALL_TYPES, 100)},
                }
                steps.expect(admin.put(f"/v1/accounts/{account}/agreement", json=agreement), 200)
                first, second = steps.create_webhooks(admin, partner, rx.url, account)
                steps.rotate(partner, admin, first, second)
                steps.deliver(ingest, partner, rx, first, account)
                steps.provoke_errors(first)
                steps.read_back(admin, partner, first)
        seen.db_while_running = database_bytes(data_dir)
    finally:
        stop(seen.first)
    seen.db_after_stop = database_bytes(data_dir)
    seen.second = start(data_dir, port, "second")
    stop(seen.second)
    return seen
