"""Rotating ORDERHOOKS_ENCRYPTION_KEYS as docs/security.md says, on both engines, with
real server processes and a real receiver checking every signature.

Key A seals; B is added first and `secrets reencrypt` runs while the server serves; A is
removed and the server restarted: deliveries are still signed with the webhook's secret.
A start with only the removed key, or with none, is refused with an error naming the
variable (and never a key); a start without keys on a database without sealed values
warns that secrets are stored in plaintext.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerError, ServerProcess, free_port
from tests.integration.cli_support import cli_env, run_cli
from tests.support.data import ALL_TYPES, new_order, unique
from tests.support.tls import new_encryption_key

DELIVERY_TIMEOUT = 30.0
VARIABLE = "ORDERHOOKS_ENCRYPTION_KEYS"


def deliver_one(api: httpx.Client, rx: Receiver, account: str) -> None:
    """Ingest an order and wait until the receiver accepted its event."""
    before = len(rx.accepted())
    answer = api.post("/v1/orders", json=new_order(account))
    assert answer.status_code == 202, answer.text
    rx.wait_for_sync(lambda: len(rx.accepted()) > before, DELIVERY_TIMEOUT, "a delivery")


def test_add_reencrypt_remove_keeps_delivering_signed(
    tmp_path: Path, database_env: dict[str, str]
) -> None:
    data_dir = tmp_path / "data"
    key_a, key_b = new_encryption_key(), new_encryption_key()
    account = unique("acct")
    rx = Receiver(port=free_port()).start()
    try:
        server = ServerProcess(data_dir, env={VARIABLE: key_a, **database_env})
        with server, server.client() as api:
            body = {
                "url": rx.url,
                "accounts": [account],
                "eventTypes": ALL_TYPES,
                "headers": {"X-Receiver-Token": "token-" + unique("t")},
            }
            created = api.post("/v1/webhooks", json=body)
            assert created.status_code == 201, created.text
            secret = created.json()["secret"]
            deliver_one(api, rx, account)
            server.terminate()

        # 1-2. B first, A still there; reencrypt while the server serves.
        both = {VARIABLE: f"{key_b},{key_a}", **database_env}
        server = ServerProcess(data_dir, env=both, port=server.port)
        with server, server.client() as api:
            result = run_cli(["secrets", "reencrypt", "--json"], cli_env(data_dir, **both))
            assert result.returncode == 0, result.stderr
            assert '"values":2' in result.stdout and '"webhooks":1' in result.stdout
            deliver_one(api, rx, account)
            server.terminate()
        again = run_cli(["secrets", "reencrypt"], cli_env(data_dir, **both))
        assert again.returncode == 0 and "resealed 0 values" in again.stdout, again.stdout

        # 3. A removed: the server starts and signs with the stored secret.
        server = ServerProcess(data_dir, env={VARIABLE: key_b, **database_env}, port=server.port)
        with server, server.client() as api:
            deliver_one(api, rx, account)
            server.terminate()
        assert "secrets at rest encrypted" in server.run_log_text()
        assert rx.verify_all(secret) == 3

        # Only the removed key, or no key: refused, naming the variable, never a key.
        for env in ({VARIABLE: key_a}, {}):
            refused = ServerProcess(data_dir, env={**env, **database_env}, port=server.port)
            refused.log_path = tmp_path / f"refused-{len(env)}.log"
            with pytest.raises(ServerError, match="exited with 2"):
                refused.start()
            log = refused.log_text()
            assert VARIABLE in log and "cannot be decrypted" in log, log[-2000:]
            assert key_a not in log and key_b not in log
            assert re.search(r"needed: [0-9a-f]{8} \(2 values\)", log), log[-2000:]
    finally:
        rx.stop()


def test_without_keys_a_start_warns_that_secrets_are_plaintext(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    with server:
        server.terminate()
    assert f"{VARIABLE} is not set" in server.log_text()


def test_reencrypt_without_keys_is_refused(tmp_path: Path) -> None:
    result = run_cli(["secrets", "reencrypt"], cli_env(tmp_path / "data"))
    assert result.returncode == 2
    assert f"{VARIABLE} is not set: there is no key to encrypt with" in result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("c2hvcnQ=", "key 1 is 5 bytes"),
        ("not base64!", "key 1 is not standard base64"),
    ],
)
@pytest.mark.parametrize("command", [["serve"], ["secrets", "reencrypt"]])
def test_a_bad_key_stops_the_start_naming_the_variable(
    tmp_path: Path, value: str, message: str, command: list[str]
) -> None:
    # The commands that read the keys (docs/configuration.md); migrate, keys and backup
    # do not, and run whatever the variable holds (tests/integration/test_cli_basics.py).
    env = cli_env(tmp_path / "data", ORDERHOOKS_PORT="0", **{VARIABLE: value})
    result = run_cli(command, env, timeout=60)
    assert result.returncode == 2
    assert f"{VARIABLE} {message}" in result.stderr
    assert value not in result.stderr
