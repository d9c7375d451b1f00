"""`orderhooks simulate --webhook-url`: the demo webhook is made on the simulated
accounts before the first order, with the secret `receive` verifies, and the simulated
orders reach a real receiver signed with it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from orderhooks.delivery.signing import generate_secret
from orderhooks.testing.receiver import Receiver
from orderhooks.testing.signatures import signature_problem
from tests.integration.cli_support import (
    Spawner,
    cli_env,
    run_cli,
    start_serve,
    start_simulation_target,
)
from tests.support.api import bearer, expect

ADMIN_KEY = "ohk_simulate_webhook_admin_key"
DELIVERY_WAIT_SECONDS = 20.0
SIMULATE = ["simulate", "--rate", "10", "--duration", "1", "--speed", "8", "--locations", "1"]


def test_simulate_makes_a_signed_demo_webhook(tmp_path: Path, spawn: Spawner) -> None:
    data_dir = tmp_path / "data"
    server, base = start_simulation_target(
        spawn, data_dir, ADMIN_KEY, ORDERHOOKS_ALLOWED_NETWORKS="127.0.0.0/8"
    )
    secret = generate_secret()
    with Receiver() as receiver:
        result = run_cli(
            [*SIMULATE, "--url", base, "--key", ADMIN_KEY, "--accounts-list", "acct-demo",
             "--webhook-url", receiver.url_for("/demo")],
            cli_env(data_dir, ORDERHOOKS_RECEIVE_SECRET=secret),
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert "webhook wh_" in result.stdout and secret not in result.stdout + result.stderr
        with httpx.Client(base_url=base, headers=bearer(ADMIN_KEY)) as api:
            hooks = expect(api.get("/v1/webhooks", params={"account": "acct-demo"}), 200)["data"]
            assert len(hooks) == 1
            hook = hooks[0]
            assert hook["url"] == receiver.url_for("/demo")
            assert (
                hook["accounts"] == ["acct-demo"] and hook["description"] == "orderhooks simulate"
            )
            assert expect(api.get(f"/v1/webhooks/{hook['id']}/secret"), 200)["secret"] == secret
        deadline = time.monotonic() + DELIVERY_WAIT_SECONDS
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.1)
        requests = receiver.requests
        assert requests, "the simulated orders reached the receiver"
        assert all(signature_problem(r, secret) is None for r in requests)
    assert server.stop() == 0


def test_simulate_refuses_webhook_options_it_cannot_use(tmp_path: Path, spawn: Spawner) -> None:
    env = cli_env(tmp_path / "data")
    alone = run_cli([*SIMULATE, "--key", "x", "--personal-data", "exclude"], env)
    assert alone.returncode == 2 and "need --webhook-url" in alone.stderr
    bad = run_cli(
        [*SIMULATE, "--key", "x", "--webhook-url", "http://127.0.0.1:9/", "--personal-data", "x"],
        env,
    )
    assert bad.returncode == 2 and "--personal-data must be include or exclude" in bad.stderr

    server, base = start_serve(spawn, tmp_path / "data", ORDERHOOKS_ADMIN_KEY=ADMIN_KEY)
    with httpx.Client(base_url=base, headers=bearer(ADMIN_KEY)) as api:
        ingest = expect(api.post("/v1/keys", json={"role": "ingest", "name": "pos"}), 201)["key"]
    refused = run_cli(
        [*SIMULATE, "--url", base, "--key", ingest, "--webhook-url", "https://r.example.com/"],
        env,
    )
    assert refused.returncode == 1
    assert "could not make the webhook" in refused.stdout and "403" in refused.stdout
    assert server.stop() == 0
