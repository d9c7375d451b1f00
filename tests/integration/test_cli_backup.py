"""`orderhooks backup FILE` against a real server: a consistent copy while it serves, and
a server started on that copy delivers everything the copy holds and had not delivered."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import stat
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess, free_port
from tests.integration.cli_support import cli_env, run_cli
from tests.support.data import new_order

ALL_TYPES = ["order.new", "order.status_update", "order.courier_update"]
# A failed attempt is retried every 2 s: deliveries stay pending while the receiver is
# down, and are due again soon after the restored server starts.
RETRY_SCHEDULE = [2] * 20
# An attempt in flight at the backup is `delivering` in the copy: it is attempted again
# when its lease expires (timeoutSeconds + 30 s), so the wait allows for that.
DELIVERED_TIMEOUT_SECONDS = 75.0
WAIT_SECONDS = 20.0


def _post_order(api: httpx.Client, account: str) -> list[str]:
    """A new order and one status update; the ids of the events they created."""
    order = new_order(account)
    answer = api.post("/v1/orders", json=order)
    assert answer.status_code == 202, answer.text
    status = {"status": 20, "timeStamp": "2026-12-04T12:00:00Z"}
    update = api.post(f"/v1/orders/{order['_id']}/status", json=status)
    assert update.status_code == 202, update.text
    return [*answer.json()["eventIds"], *update.json()["eventIds"]]


def _event_ids(api: httpx.Client, account: str) -> set[str]:
    ids: set[str] = set()
    params: dict[str, Any] = {"account": account, "limit": 500}
    while True:
        page = api.get("/v1/events", params=params).json()
        ids.update(event["id"] for event in page["data"])
        if not page["nextCursor"]:
            return ids
        params["cursor"] = page["nextCursor"]


def _delivery_states(api: httpx.Client, webhook_id: str) -> dict[str, int]:
    states: dict[str, int] = {}
    params: dict[str, Any] = {"webhookId": webhook_id, "limit": 500}
    while True:
        page = api.get("/v1/deliveries", params=params).json()
        for delivery in page["data"]:
            states[delivery["state"]] = states.get(delivery["state"], 0) + 1
        if not page["nextCursor"]:
            return states
        params["cursor"] = page["nextCursor"]


class IngestLoop:
    """Ingests orders on a thread of its own until stopped: the server keeps writing
    while the backup runs."""

    def __init__(self, server: ServerProcess, account: str) -> None:
        self._server = server
        self._account = account
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-loop")
        self.acknowledged: list[str] = []
        self.errors: list[BaseException] = []

    def _run(self) -> None:
        try:
            with self._server.client() as api:
                while not self._stop.is_set():
                    self.acknowledged += _post_order(api, self._account)
        except BaseException as exc:
            self.errors.append(exc)

    def __enter__(self) -> IngestLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(WAIT_SECONDS)


def test_a_server_on_a_backup_delivers_what_the_backup_had_not_delivered(
    tmp_path: Path,
) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    copy = tmp_path / "backups" / "orderhooks-copy.db"
    copy.parent.mkdir()
    rx = Receiver(port=free_port()).start()
    try:
        with (
            ServerProcess(tmp_path / "data", log_path=tmp_path / "server.log") as server,
            server.client() as api,
        ):
            body = {
                "url": rx.url,
                "accounts": [account],
                "eventTypes": ALL_TYPES,
                "retrySchedule": RETRY_SCHEDULE,
                "timeoutSeconds": 1,
            }
            hook = api.post("/v1/webhooks", json=body).json()
            delivered_before = _post_order(api, account) + _post_order(api, account)
            rx.wait_for_sync(
                lambda: set(delivered_before) <= rx.delivered_ids(), WAIT_SECONDS, "delivered"
            )
            # Recorded a moment after the receiver answered: stop it only then, so that
            # these four are delivered in the copy (and their answers were not cut short).
            rx.wait_for_sync(
                lambda: _delivery_states(api, hook["id"]) == {"delivered": len(delivered_before)},
                WAIT_SECONDS,
                "the first deliveries recorded",
            )

            rx.stop()  # the receiver is down: connections are refused
            pending = [event for _ in range(5) for event in _post_order(api, account)]
            server_attempts = 0

            def failed_attempts() -> bool:
                nonlocal server_attempts
                page = api.get("/v1/deliveries", params={"webhookId": hook["id"]}).json()
                server_attempts = sum(d["attemptCount"] for d in page["data"])
                return server_attempts >= len(delivered_before) + 3

            rx.wait_for_sync(failed_attempts, WAIT_SECONDS, "failed attempts recorded")
            wal = server.data_dir / "orderhooks.db-wal"
            assert wal.stat().st_size > 0, "recent commits are still in the WAL"

            with IngestLoop(server, account) as loop:
                rx.wait_for_sync(lambda: len(loop.acknowledged) >= 4, WAIT_SECONDS, "ingest")
                result = run_cli(["backup", str(copy)], cli_env(server.data_dir))
            assert not loop.errors, loop.errors
            assert result.returncode == 0, result.stdout + result.stderr
            assert f"to {copy}" in result.stdout
            after_backup = _post_order(api, account)
            assert server.terminate() == 0

        assert not list(copy.parent.glob("*.partial")), "no partial file is left behind"
        with contextlib.closing(sqlite3.connect(copy)) as check:
            assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert check.execute("PRAGMA journal_mode").fetchone()[0] == "delete"

        restored_dir = tmp_path / "restored"
        restored_dir.mkdir()
        shutil.copyfile(copy, restored_dir / "orderhooks.db")
        rx.start()  # the receiver is back
        with (
            ServerProcess(restored_dir, log_path=tmp_path / "restored.log") as restored,
            restored.client() as api,
        ):
            held = _event_ids(api, account)
            assert set(delivered_before + pending) <= held, "acknowledged before the backup"
            assert not set(after_backup) & held, "ingested after the backup"
            undelivered = held - set(delivered_before)
            assert set(pending) <= undelivered
            rx.wait_for_sync(
                lambda: held <= rx.delivered_ids(),
                DELIVERED_TIMEOUT_SECONDS,
                "every event of the copy delivered",
            )
            rx.wait_for_sync(
                lambda: set(_delivery_states(api, hook["id"])) == {"delivered"},
                WAIT_SECONDS,
                "every delivery of the copy recorded as delivered",
            )
        rx.verify_all(hook["secret"])
    finally:
        rx.stop()


def test_backup_refuses_an_existing_file_unless_forced(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with contextlib.closing(sqlite3.connect(data / "orderhooks.db")) as db, db:
        db.execute("CREATE TABLE marker (value TEXT)")
        db.execute("INSERT INTO marker VALUES ('from the database')")
    target = tmp_path / "existing.db"
    target.write_bytes(b"keep me")
    env = cli_env(data)

    refused = run_cli(["backup", str(target)], env)
    assert refused.returncode == 1
    assert "exists" in refused.stderr and "--force" in refused.stderr
    assert target.read_bytes() == b"keep me"

    forced = run_cli(["backup", "--force", str(target)], env)
    assert forced.returncode == 0, forced.stderr
    with contextlib.closing(sqlite3.connect(target)) as copy:
        assert copy.execute("SELECT value FROM marker").fetchall() == [("from the database",)]


def test_backup_refuses_postgresql_and_points_at_the_docs(tmp_path: Path) -> None:
    target = tmp_path / "copy.db"
    env = cli_env(
        tmp_path / "data",
        ORDERHOOKS_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/postgres",
    )
    result = run_cli(["backup", str(target)], env)
    assert result.returncode == 1
    assert "pg_dump" in result.stderr and "docs/operations.md" in result.stderr
    assert not target.exists()


def test_backup_refuses_a_missing_database_and_the_database_itself(tmp_path: Path) -> None:
    data = tmp_path / "data"
    missing = run_cli(["backup", str(tmp_path / "copy.db")], cli_env(data))
    assert missing.returncode == 1
    assert "no database at" in missing.stderr
    assert not (tmp_path / "copy.db").exists()

    data.mkdir()
    database = data / "orderhooks.db"
    sqlite3.connect(database).close()
    itself = run_cli(["backup", "--force", str(database)], cli_env(data))
    assert itself.returncode == 1
    assert "must not be the database itself" in itself.stderr
    # Nor the WAL beside it, which holds the latest commits of a running server.
    wal = data / "orderhooks.db-wal"
    wal.write_bytes(b"commits not yet checkpointed")
    companion = run_cli(["backup", "--force", str(wal)], cli_env(data))
    assert companion.returncode == 1
    assert "must not be the database's own orderhooks.db-wal" in companion.stderr
    assert wal.read_bytes() == b"commits not yet checkpointed"


def test_a_backup_is_no_more_readable_than_its_database(tmp_path: Path) -> None:
    # The copy holds what the database holds (webhook secrets, header credentials when
    # no encryption key is set): a database kept to its owner was copied readable by all.
    data = tmp_path / "data"
    data.mkdir()
    database = data / "orderhooks.db"
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.execute("CREATE TABLE marker (value TEXT)")
    database.chmod(0o600)
    target = tmp_path / "copy.db"
    result = run_cli(["backup", str(target)], cli_env(data))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
