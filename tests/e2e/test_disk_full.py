"""A full disk under the SQLite store: ingest answers 503 `storage_unavailable` and stores
nothing; nothing acknowledged is lost; ingest and delivery resume by themselves once space
returns (docs/operations.md, "Disk full").

The data dir is a small tmpfs mounted by the test (the tests run as root); a filler file
takes its free space. A mount that fails fails the test. On PostgreSQL the tmpfs holds a
tablespace that the test database's tables are created in.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import pwd
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.support.api import Api, admin_api, expect
from tests.support.data import new_order
from tests.support.pg import admin_sql

DISK_SIZE = "24m"
FILL_CHUNK_BYTES = 64 * 1024
# An order this large (30 notes of 9,000 characters, each under the string limit) needs
# new pages wherever it is written.
BIG_NOTES = ["x" * 9_000] * 30
MAX_BIG_INGESTS = 60  # the disk is full long before this many big orders
RETRY_DUE_WAIT_SECONDS = 5.0  # by then the retry due 5 s after its first attempt was due


@contextlib.contextmanager
def mounted_tmpfs(mount: Path, options: str) -> Iterator[Path]:
    """A tmpfs of DISK_SIZE on `mount` until the block ends."""
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},{options}", "tmpfs", str(mount)],
        check=True,
        capture_output=True,
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True, capture_output=True)


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs mounted for this test, unmounted at teardown."""
    mount = tmp_path / "disk"
    mount.mkdir()
    with mounted_tmpfs(mount, "mode=0700"):
        yield mount


@pytest.fixture()
def pg_small_disk() -> Iterator[tuple[Path, str]]:
    """A tmpfs owned by the PostgreSQL server's user, holding a tablespace: the mount and
    the tablespace's name. Set up before the test's database, so dropped after it."""
    owner = pwd.getpwnam("postgres")
    # Under /tmp (which every user may traverse): the server must reach the tablespace.
    mount = Path(tempfile.mkdtemp(prefix="orderhooks-pg-disk-"))
    mount.chmod(0o755)
    name = f"oh_small_{uuid.uuid4().hex[:10]}"
    try:
        with mounted_tmpfs(mount, f"mode=0700,uid={owner.pw_uid},gid={owner.pw_gid}"):
            location = mount / "tablespace"
            location.mkdir()
            os.chown(location, owner.pw_uid, owner.pw_gid)
            # Identifiers and a path the test made itself: nothing from outside.
            admin_sql(f"CREATE TABLESPACE \"{name}\" LOCATION '{location}'")
            try:
                yield mount, name
            finally:
                admin_sql(f'DROP TABLESPACE IF EXISTS "{name}"')
    finally:
        mount.rmdir()


@pytest.fixture()
def pg_disk_server(
    pg_small_disk: tuple[Path, str], pg_url: str, tmp_path: Path
) -> Iterator[ServerProcess]:
    """`orderhooks serve` on a fresh database whose tables live on the small disk."""
    _, tablespace = pg_small_disk
    database = pg_url.rsplit("/", 1)[-1]
    admin_sql(f'ALTER DATABASE "{database}" SET default_tablespace = "{tablespace}"')
    env = {"ORDERHOOKS_DATABASE_URL": pg_url}
    process = ServerProcess(tmp_path / "data", log_path=tmp_path / "server.log", env=env)
    with process:
        yield process


@pytest.fixture()
def disk_server(small_disk: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    """`orderhooks serve` with its data dir on the small disk (its log elsewhere)."""
    process = ServerProcess(small_disk / "data", log_path=tmp_path / "server.log")
    with process:
        yield process


def fill(disk: Path) -> Path:
    """Write a file until the disk has no space left; returns it."""
    filler = disk / "filler"
    chunk = b"\0" * FILL_CHUNK_BYTES
    with filler.open("wb", buffering=0) as out:
        while True:
            try:
                out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    # Whatever is left is smaller than a chunk: take it too, a byte at a time.
    with filler.open("ab", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 512)
    return filler


def big_order(account: str) -> dict[str, Any]:
    """A valid order whose unknown field makes it large (kept as sent)."""
    return new_order(account, notes=BIG_NOTES)


async def ingest_until_full(api: Api, account: str) -> tuple[list[str], dict[str, Any], str]:
    """Post big orders until one is refused; the event ids acknowledged before, the
    refusal's JSON and the refused order's id."""
    acknowledged: list[str] = []
    for _ in range(MAX_BIG_INGESTS):
        order = big_order(account)
        response = await api.call("POST", "/v1/orders", json_body=order)
        if response.status_code == 503:
            return acknowledged, response.json(), order["_id"]
        acknowledged += expect(response, 202)["eventIds"]
    raise AssertionError(f"{MAX_BIG_INGESTS} big orders were all stored on a full disk")


async def fill_until_refused(
    api: Api, rx: Receiver, account: str, disk: Path
) -> tuple[Path, list[str], str]:
    """A webhook delivering one order before `disk` is filled, then big orders until one is
    refused with `storage_unavailable`, nothing of it stored. Returns the filler file, the
    event ids acknowledged meanwhile and the id of the refused order."""
    # A short timeout keeps the lease short (timeout + 30 s): an attempt whose claim was
    # written before a SIGKILL is made again once its lease expires.
    hook = await api.create_webhook(rx.url, [account], retrySchedule=[1] * 20, timeoutSeconds=1)
    before = await api.new_order(new_order(account))
    await rx.wait_for_delivered(set(before))
    # Its outcome is recorded a moment after the receiver answered: the disk fills after.
    await api.wait_deliveries(hook["id"], lambda ds: _attempted(ds, "delivered", 1))
    filler = fill(disk)
    acknowledged, refusal, refused_id = await ingest_until_full(api, account)
    assert refusal["error"]["code"] == "storage_unavailable"
    expect(await api.call("GET", f"/v1/orders/{refused_id}"), 404)
    return filler, acknowledged, refused_id


async def test_full_disk_refuses_ingest_and_both_recover(
    disk_server: ServerProcess, small_disk: Path, rx: Receiver, account: str
) -> None:
    async with admin_api(disk_server) as api:
        filler, acknowledged, refused_id = await fill_until_refused(api, rx, account, small_disk)
        # Reads still work on a full disk.
        expect(await api.call("GET", "/readyz", key=None), 200)

        filler.unlink()
        after = await api.new_order(new_order(account))
        assert len(after) == 1

    # Every acknowledged event was on disk: it survives a crash and is delivered.
    disk_server.restart()
    async with admin_api(disk_server) as api:
        more = await api.new_order(new_order(account))
        # An attempt in flight at the SIGKILL is made again once its lease (31 s) expires.
        await rx.wait_for_delivered(set(acknowledged + after + more), timeout=75)
        expect(await api.call("GET", f"/v1/orders/{refused_id}"), 404)


async def test_outcomes_and_claims_wait_out_a_full_disk(
    disk_server: ServerProcess, small_disk: Path, rx: Receiver, account: str
) -> None:
    """An outcome that cannot be written stays queued; a due retry that cannot be claimed
    waits; both go through once space returns. No big ingest fills the database first, so
    its WAL has no room left over: the first write needing a new page fails."""
    retry_account = f"{account}-retry"
    async with admin_api(disk_server) as api, Receiver() as failing:
        retried = await api.create_webhook(failing.url, [retry_account], retrySchedule=[5] * 20)
        slow = await api.create_webhook(rx.url, [account], timeoutSeconds=10)
        failing.fail_first(1)
        [retried_event] = await api.new_order(new_order(retry_account))
        await api.wait_deliveries(retried["id"], lambda ds: _attempted(ds, "pending", 1))
        rx.slow(3.0)
        [slow_event] = await api.new_order(new_order(account))
        await rx.wait_for(lambda: rx.in_flight >= 1, what="the attempt in flight")

        filler = fill(small_disk)
        refusal = await api.call("POST", "/v1/orders", json_body=new_order(account))
        assert refusal.status_code == 503, refusal.text
        assert refusal.json()["error"]["code"] == "storage_unavailable"
        # The retry falls due 5 s after its first attempt, while the disk is full.
        assert _attempted(await api.deliveries(retried["id"]), "pending", 1)

        # The receiver accepts the slow event, yet its outcome cannot be written: it stays
        # queued in the recorder (the delivery stays `delivering`), never dropped.
        await rx.wait_for_delivered({slow_event}, timeout=10)
        [delivery] = await api.deliveries(slow["id"])
        assert delivery["state"] == "delivering"
        # The retry is due by now, but its claim cannot be written either.
        await asyncio.sleep(RETRY_DUE_WAIT_SECONDS)
        assert len(failing.requests) == 1
        assert _attempted(await api.deliveries(retried["id"]), "pending", 1)

        filler.unlink()
        await api.wait_deliveries(slow["id"], lambda ds: _attempted(ds, "delivered", 1))
        await failing.wait_for_delivered({retried_event}, timeout=20)
        await api.wait_deliveries(retried["id"], lambda ds: _attempted(ds, "delivered", 2))
        later = await api.new_order(new_order(account))
        await rx.wait_for_delivered(set(later), timeout=20)


def _attempted(deliveries: list[dict[str, Any]], state: str, attempts: int) -> bool:
    """Whether the one delivery is in `state` after `attempts` recorded attempts."""
    return [(d["state"], d["attemptCount"]) for d in deliveries] == [(state, attempts)]


@pytest.mark.postgres
async def test_full_disk_on_postgres_refuses_ingest_and_recovers(
    pg_small_disk: tuple[Path, str], pg_disk_server: ServerProcess, rx: Receiver, account: str
) -> None:
    disk, _ = pg_small_disk
    async with admin_api(pg_disk_server) as api:
        filler, acknowledged, _ = await fill_until_refused(api, rx, account, disk)

        filler.unlink()
        after = await api.new_order(new_order(account))
        await rx.wait_for_delivered(set(acknowledged + after), timeout=30)
