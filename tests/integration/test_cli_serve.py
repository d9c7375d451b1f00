"""`orderhooks serve|api|worker` as real processes: start, admin key, roles, signals."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import asyncpg
import pytest
import requests

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
)
from tests.support.data import new_order
from tests.support.tls import new_encryption_key

ENV_ADMIN_KEY = "test-admin-key-from-env"
IDLE_CONNECTION_SECONDS = 6.0  # past uvicorn's default keep-alive (5 s)


def _log_records(stderr: str) -> list[dict[str, object]]:
    """The JSON log lines of a process; every non-empty line must be one object."""
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


def test_first_start_prints_the_admin_key_once_and_saves_it(tmp_path: Path, spawn: Spawner) -> None:
    data_dir = tmp_path / "data"
    process, base = start_serve(spawn, data_dir)
    key_line = process.wait_output("ohk_").strip().splitlines()
    assert len(key_line) == 1 and key_line[0].startswith("ohk_"), key_line
    key = key_line[0]

    key_file = data_dir / "admin.key"
    assert key_file.read_text() == key + "\n"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    assert http_get(f"{base}/v1/keys", headers={"authorization": f"Bearer {key}"}).ok
    assert http_get(f"{base}/v1/keys").status_code == 401

    assert process.stop() == 0
    assert key not in process.stderr()
    records = _log_records(process.stderr())  # json logs: one object per line
    assert any(r.get("event") == "orderhooks started" for r in records)

    again, base = start_serve(spawn, data_dir)
    assert http_get(f"{base}/v1/keys", headers={"authorization": f"Bearer {key}"}).ok
    assert again.stop() == 0
    assert again.stdout() == ""
    assert key not in again.stderr()
    assert key_file.read_text() == key + "\n"


def test_admin_key_from_environment_is_stored_not_printed(tmp_path: Path, spawn: Spawner) -> None:
    data_dir = tmp_path / "data"
    process, base = start_serve(spawn, data_dir, ORDERHOOKS_ADMIN_KEY=ENV_ADMIN_KEY)
    auth = {"authorization": f"Bearer {ENV_ADMIN_KEY}"}
    keys = http_get(f"{base}/v1/keys", headers=auth)
    assert keys.status_code == 200
    assert [k["role"] for k in keys.json()["data"]] == ["admin"]
    assert process.stop() == 0
    assert process.stdout() == ""
    assert ENV_ADMIN_KEY not in process.stderr()
    assert not (data_dir / "admin.key").exists()


def test_key_created_by_the_cli_works_against_the_server(tmp_path: Path, spawn: Spawner) -> None:
    data_dir = tmp_path / "data"
    created = run_cli(
        ["keys", "create", "--role", "admin", "--name", "ops", "--json"], cli_env(data_dir)
    )
    key = json.loads(created.stdout)["key"]
    process, base = start_serve(spawn, data_dir)
    listed = http_get(f"{base}/v1/keys", headers={"authorization": f"Bearer {key}"})
    assert listed.status_code == 200
    assert process.stop() == 0
    assert process.stdout() == ""  # keys existed: no first-start key
    assert not (data_dir / "admin.key").exists()


def test_serve_is_ready_holds_its_port_and_stops_with_exit_0_on_sigterm(
    tmp_path: Path, spawn: Spawner
) -> None:
    process, base = start_serve(spawn, tmp_path / "data", ORDERHOOKS_ADMIN_KEY=ENV_ADMIN_KEY)
    assert process.wait_http(f"{base}/readyz").status_code == 200
    metrics = http_get(f"{base}/metrics")
    assert metrics.status_code == 200 and "orderhooks_" in metrics.text

    # An idle connection outlives the 5 s after which httpx's pool drops its own: a client
    # never reuses one that the server is closing at that moment.
    host, port = base.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        for pause in (0.0, IDLE_CONNECTION_SECONDS):
            time.sleep(pause)
            connection.request("GET", "/healthz")  # on the same socket: no reconnecting
            answer = connection.getresponse()
            assert answer.status == 200 and answer.read() == b'{"status":"ok"}'
    finally:
        connection.close()

    second = spawn(
        ["serve", "--port", port], cli_env(tmp_path / "other", ORDERHOOKS_ADMIN_KEY=ENV_ADMIN_KEY)
    )
    assert second.popen.wait(timeout=60) == 1  # the port is taken: a clean failure
    assert f"orderhooks: cannot listen on 127.0.0.1:{port}" in second.stderr()

    assert process.stop(signal.SIGTERM) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/healthz", timeout=2)


def test_flags_win_over_environment(tmp_path: Path, spawn: Spawner) -> None:
    env_dir, flag_dir = tmp_path / "env-dir", tmp_path / "flag-dir"
    process, _ = start_serve(
        spawn,
        env_dir,
        extra_args=("--data-dir", str(flag_dir), "--log-format", "json"),
        ORDERHOOKS_ADMIN_KEY=ENV_ADMIN_KEY,
        ORDERHOOKS_LOG_FORMAT="console",
        ORDERHOOKS_PORT=str(free_port()),  # the --port flag of start_serve wins
    )
    assert process.stop(signal.SIGINT) == 0  # Ctrl-C stops as cleanly as SIGTERM
    assert (flag_dir / "orderhooks.db").is_file()
    assert not env_dir.exists()
    assert _log_records(process.stderr())


def test_worker_serves_health_and_metrics_only(tmp_path: Path, spawn: Spawner) -> None:
    process, base = start_serve(
        spawn, tmp_path / "data", role="worker", ORDERHOOKS_ADMIN_KEY=ENV_ADMIN_KEY
    )
    auth = {"authorization": f"Bearer {ENV_ADMIN_KEY}"}
    assert process.wait_http(f"{base}/readyz").status_code == 200
    assert http_get(f"{base}/metrics").status_code == 200
    assert http_get(f"{base}/v1/webhooks", headers=auth).status_code == 404
    assert process.stop() == 0


def test_api_serves_the_api(tmp_path: Path, spawn: Spawner) -> None:
    process, base = start_serve(
        spawn, tmp_path / "data", role="api", ORDERHOOKS_ADMIN_KEY=ENV_ADMIN_KEY
    )
    auth = {"authorization": f"Bearer {ENV_ADMIN_KEY}"}
    assert process.wait_http(f"{base}/readyz").status_code == 200
    assert http_get(f"{base}/v1/webhooks", headers=auth).status_code == 200
    assert process.stop() == 0


@pytest.mark.postgres
def test_postgres_migrate_api_and_worker(tmp_path: Path, spawn: Spawner, pg_url: str) -> None:
    env = cli_env(tmp_path / "data", ORDERHOOKS_DATABASE_URL=pg_url)
    first = run_cli(["migrate"], env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split()
    again = run_cli(["migrate"], env)
    assert again.returncode == 0 and again.stdout == ""

    variables = {"ORDERHOOKS_DATABASE_URL": pg_url, "ORDERHOOKS_ADMIN_KEY": ENV_ADMIN_KEY}
    api, api_base = start_serve(spawn, tmp_path / "data", role="api", **variables)
    worker, worker_base = start_serve(spawn, tmp_path / "data", role="worker", **variables)
    assert api.wait_http(f"{api_base}/readyz").status_code == 200
    assert worker.wait_http(f"{worker_base}/readyz").status_code == 200
    keys = http_get(
        f"{api_base}/v1/keys", headers={"authorization": f"Bearer {ENV_ADMIN_KEY}"}
    ).json()["data"]
    assert len(keys) == 1  # both processes ensured the same key
    assert worker.stop() == 0
    assert api.stop() == 0


class _SlowReceiver:
    """An HTTP receiver on 127.0.0.1 that takes `delay` seconds to answer 200."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.requests: list[str] = []
        self.in_flight = threading.Event()
        self.answered = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["content-length"]))
                receiver.requests.append(self.headers["webhook-id"])
                receiver.in_flight.set()
                time.sleep(receiver.delay)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()
                receiver.answered.set()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_sigterm_drains_the_attempt_in_flight(tmp_path: Path, spawn: Spawner) -> None:
    receiver = _SlowReceiver(delay=2.0)
    data_dir = tmp_path / "data"
    variables = {
        "ORDERHOOKS_ADMIN_KEY": ENV_ADMIN_KEY,
        "ORDERHOOKS_REQUIRE_AGREEMENT": "false",
        "ORDERHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    auth = {"authorization": f"Bearer {ENV_ADMIN_KEY}"}
    try:
        process, base = start_serve(spawn, data_dir, **variables)
        webhook = http_post(
            f"{base}/v1/webhooks",
            json={"url": receiver.url, "accounts": ["acc"], "eventTypes": ["order.new"]},
            headers=auth,
        )
        assert webhook.status_code == 201, webhook.text
        order = new_order("acc", "drain-1")
        assert http_post(f"{base}/v1/orders", json=order, headers=auth).status_code == 202
        assert receiver.in_flight.wait(timeout=30), process.stderr()

        assert process.stop(signal.SIGTERM) == 0
        assert receiver.answered.is_set()  # the process waited for the answer

        again, base = start_serve(spawn, data_dir, **variables)
        deliveries = http_get(
            f"{base}/v1/deliveries", params={"webhookId": webhook.json()["id"]}, headers=auth
        ).json()["data"]
        assert [(d["state"], d["attemptCount"]) for d in deliveries] == [("delivered", 1)]
        assert len(receiver.requests) == 1  # recorded before exit: not sent again
        assert again.stop() == 0
    finally:
        receiver.close()


@pytest.mark.parametrize("command", ["serve", "worker", "migrate"])
def test_a_data_dir_that_cannot_be_made_is_a_clear_error(tmp_path: Path, command: str) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a directory\n")
    for data_dir in (in_the_way, in_the_way / "data"):
        env = cli_env(data_dir, ORDERHOOKS_ADMIN_KEY=ENV_ADMIN_KEY, ORDERHOOKS_PORT="0")
        done = run_cli([command], env)
        assert done.returncode == 2  # a configuration error (docs/cli.md)
        assert "Traceback" not in done.stderr, done.stderr
        assert "ORDERHOOKS_DATA_DIR" in done.stderr and str(data_dir) in done.stderr, done.stderr


def test_a_read_only_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    # A read-only file system (the tests run as root, whom modes do not stop): SQLite
    # cannot create its write-ahead log beside the database.
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=4m,ro", "tmpfs", str(data_dir)]
    subprocess.run(mount, check=True, capture_output=True)
    try:
        env = cli_env(data_dir, ORDERHOOKS_ADMIN_KEY=ENV_ADMIN_KEY, ORDERHOOKS_PORT="0")
        done = run_cli(["serve"], env)
    finally:
        subprocess.run(["umount", str(data_dir)], check=True, capture_output=True)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    assert "not writable" in done.stderr and str(data_dir) in done.stderr, done.stderr


@pytest.mark.parametrize(
    "admin_key",
    ["clé-d’accès ключ", "admin-key-from-a-secret-file\n", "  spaced admin key  "],
    ids=["non-ascii", "trailing-newline", "surrounding-spaces"],
)
def test_any_admin_key_from_the_environment_can_be_presented(
    tmp_path: Path, spawn: Spawner, admin_key: str
) -> None:
    """ORDERHOOKS_ADMIN_KEY may be any non-empty string (docs/cli.md): one with characters
    beyond ASCII works as a client sends it (UTF-8 in the header), and one with whitespace
    around it (a secret file's newline) as the header carries it, without that whitespace,
    which HTTP drops."""
    process, base = start_serve(spawn, tmp_path / "data", ORDERHOOKS_ADMIN_KEY=admin_key)
    header = b"Bearer " + admin_key.strip().encode("utf-8")
    keys = http_get(f"{base}/v1/keys", headers={"authorization": header})
    assert keys.status_code == 200, keys.text
    assert [k["role"] for k in keys.json()["data"]] == ["admin"]
    assert http_get(f"{base}/v1/keys", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert process.stop() == 0


@pytest.mark.parametrize(
    ("admin_key", "message"),
    [
        ("  \n", "must not be blank"),
        ("admin\x01key-1234", "must not hold control characters (character 6"),
        ("admin\nkey-1234", "must not hold control characters (character 6"),
        ("admin-key-1234\x7f", "must not hold control characters (character 15"),
    ],
    ids=["blank", "control-character", "inner-newline", "delete"],
)
def test_an_admin_key_no_request_can_present_is_refused_at_start(
    tmp_path: Path, admin_key: str, message: str
) -> None:
    """A blank ORDERHOOKS_ADMIN_KEY was taken as none (a key generated and printed
    instead), and one with a control character was stored as the admin key though no
    HTTP request can carry it (the server answers such a header 400): the operator locked
    out. Both are refused before anything is made, by the variable and by the flag, and
    the message never quotes the key."""
    data_dir = tmp_path / "data"
    base = {"ORDERHOOKS_PORT": "0", "ORDERHOOKS_WORKERS": "1"}
    for args, variables, name in (
        (["serve"], {**base, "ORDERHOOKS_ADMIN_KEY": admin_key}, "ORDERHOOKS_ADMIN_KEY"),
        (["serve", "--admin-key", admin_key], base, "--admin-key"),
    ):
        done = run_cli(args, cli_env(data_dir, **variables), timeout=REFUSAL_TIMEOUT_SECONDS)
        assert_usage_error(done, f"orderhooks: {name} {message}")
        assert not admin_key.strip() or admin_key.strip() not in done.stderr
        assert not data_dir.exists()


def _session_members(session_id: int) -> list[int]:
    """The live processes of a session (a process started with `start_new_session`)."""
    members = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        # After the command's name: state, ppid, pgrp, session. Zombies hold nothing.
        if fields[0] != "Z" and int(fields[3]) == session_id:
            members.append(int(stat_file.parent.name))
    return members


def _run_in_own_session(args: list[str], env: dict[str, str]) -> tuple[int, str, list[int]]:
    """Run `orderhooks ARGS` to its end in a session of its own; its exit code, its
    standard error and the processes of its session still alive after it exited."""
    process = subprocess.Popen(
        [sys.executable, "-m", "orderhooks", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    left = _session_members(process.pid)
    for pid in left:  # the test's own session: kill what the process left behind
        os.kill(pid, signal.SIGKILL)
    return process.returncode, stderr, left


@pytest.mark.parametrize("role", ["serve", "api", "worker"])
def test_a_port_in_use_is_a_clear_error_and_nothing_is_left_running(
    tmp_path: Path, role: str
) -> None:
    """A taken port ended the start with exit 1 and uvicorn's log line only, after the
    sender processes and the delivery worker had started (and could have sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = cli_env(tmp_path / "data", ORDERHOOKS_WORKERS="3")
        code, stderr, left = _run_in_own_session(
            [role, "--host", "127.0.0.1", "--port", str(port)], env
        )
    assert code == 1, stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("orderhooks: ")]
    assert line.startswith(f"orderhooks: cannot listen on 127.0.0.1:{port}"), line
    assert "in use" in line.lower()
    assert left == []
    assert "sender process started" not in stderr
    assert "delivery worker started" not in stderr


def test_a_host_that_does_not_resolve_is_a_clear_error(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data", ORDERHOOKS_WORKERS="2")
    args = ["serve", "--host", "no-such-host.invalid", "--port", str(free_port())]
    code, stderr, left = _run_in_own_session(args, env)
    assert code == 1, stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("orderhooks: ")]
    assert line.startswith("orderhooks: cannot listen on no-such-host.invalid:"), line
    assert "Traceback" not in stderr
    assert left == []


@pytest.mark.postgres
@pytest.mark.parametrize(
    "command", [["keys", "list", "--json"], ["secrets", "reencrypt", "--json"]]
)
def test_a_command_printing_results_logs_on_standard_error(
    tmp_path: Path, pg_url: str, command: list[str]
) -> None:
    """`keys list --json` and `secrets reencrypt --json` keep their standard output for
    the JSON they print: the warning of a migration waiting for a table lock
    (docs/operations.md, "Migrations and upgrades") goes to standard error, where a script
    reading the output does not parse it."""
    env = cli_env(
        tmp_path / "data",
        ORDERHOOKS_DATABASE_URL=pg_url,
        ORDERHOOKS_ENCRYPTION_KEYS=new_encryption_key(),
    )
    assert run_cli(["migrate"], env).returncode == 0
    undone = "0011_attempt_batches"  # adds attempts.batch_id

    async def hold_attempts_while(args: list[str]) -> subprocess.CompletedProcess[str]:
        setup = await asyncpg.connect(pg_url)
        try:
            # Undo that migration, as if the database had not had it yet.
            await setup.execute("ALTER TABLE attempts DROP COLUMN batch_id")
            await setup.execute("DELETE FROM schema_migrations WHERE name = $1", undone)
            holder = setup.transaction()
            await holder.start()
            await setup.fetchval("SELECT count(*) FROM attempts")  # held until commit
            command = asyncio.create_task(asyncio.to_thread(run_cli, args, env))
            # The migration gives way after its 2-s lock timeout and says so; then it may go.
            await asyncio.sleep(3.5)
            await holder.commit()
            return await command
        finally:
            await setup.close()

    printed = asyncio.run(hold_attempts_while(command))
    assert printed.returncode == 0, printed.stderr
    assert isinstance(json.loads(printed.stdout), (list, dict))
    assert "migration waits for a table lock" in printed.stderr
