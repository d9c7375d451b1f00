"""What only the SQLite engine promises: durability across a kill -9, group commit, reads
beside a busy writer, and claim queries that stay on their indexes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from orderhooks.domain.model import OperationalEventType, Scope, WebhookState
from orderhooks.store.base import DeliveryFilter
from orderhooks.store.shared.tx import Tx
from orderhooks.store.sql import compile_queries, load_migrations, load_queries
from orderhooks.store.sqlite import SQLiteEngine, SQLiteStore, migration_statements
from orderhooks.store.sqlite_io import MAX_UNSYNCED_SECONDS, PAGE_SIZE, SQLiteTx, Writer
from tests.integration.store_support import NOW, new_order, webhook

CRASHING_INGESTER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from orderhooks.store.sqlite import SQLiteStore
    from tests.integration.store_support import NOW, new_order, webhook

    async def main() -> None:
        store = SQLiteStore(Path(sys.argv[1]), require_agreement=False, disable_after_seconds=60)
        await store.open()
        await store.migrate()
        hook = await store.create_webhook(webhook())
        print("webhook", hook.id, flush=True)
        number = 0
        while True:
            batch = [new_order(f"o{number + i}") for i in range(20)]
            await asyncio.gather(*(store.ingest([item], NOW) for item in batch))
            for i in range(20):
                print("acked", f"o{number + i}", flush=True)  # only after the commit
            number += 20

    asyncio.run(main())
    """
)


def test_acknowledged_ingests_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "orderhooks.db"
    script = tmp_path / "ingester.py"
    script.write_text(CRASHING_INGESTER)
    root = Path(__file__).parents[2]
    process = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    acked: list[str] = []
    webhook_id = ""
    assert process.stdout is not None
    try:
        for line in process.stdout:
            kind, value = line.split()
            if kind == "webhook":
                webhook_id = value
            else:
                acked.append(value)
            if len(acked) >= 200:
                break
        process.send_signal(signal.SIGKILL)  # no clean shutdown, mid-stream
    finally:
        process.kill()
        process.wait()
    assert len(acked) >= 200

    async def check() -> None:
        store = SQLiteStore(path, require_agreement=False, disable_after_seconds=60)
        await store.open()
        try:
            assert await store.migrate() == []
            for order_id in acked:
                view = await store.get_order(order_id, Scope())
                assert len(view.events) == 1
            claims = await store.claim(NOW, 500, "after-crash")
            claimed = {c.event.order_id for c in claims if c.webhook.id == webhook_id}
            assert set(acked[:8]) <= claimed  # deliveries are there and claimable
        finally:
            await store.close()

    asyncio.run(check())


@pytest.fixture()
def committed_groups(monkeypatch: pytest.MonkeyPatch) -> list[list[bool]]:
    """Each transaction the writer commits from now on, as its jobs' `durable` flags."""
    groups: list[list[bool]] = []
    original = Writer._commit_group

    def noting(self: Writer, conn: sqlite3.Connection, tx: SQLiteTx, group: list) -> None:  # type: ignore[type-arg]
        groups.append([item.durable for item in group])
        original(self, conn, tx, group)

    monkeypatch.setattr(Writer, "_commit_group", noting)
    return groups


async def test_concurrent_ingests_share_commits(
    tmp_path: Path, committed_groups: list[list[bool]]
) -> None:
    groups = committed_groups
    store = SQLiteStore(tmp_path / "oh.db", require_agreement=False, disable_after_seconds=60)
    await store.open()
    try:
        await store.migrate()
        await store.create_webhook(webhook())
        groups.clear()
        results = await asyncio.gather(
            *(store.ingest([new_order(f"o{i}")], NOW) for i in range(300))
        )
        assert all(r[0].created for r in results)
        assert sum(map(len, groups)) == 300 and len(groups) < 300  # many ingests per fsync
        view = await store.get_order("o299", Scope())
        assert view.events[0].sequence == 1
    finally:
        await store.close()


async def test_claims_queued_beside_ingests_commit_first_on_their_own(
    tmp_path: Path, committed_groups: list[list[bool]]
) -> None:
    """Jobs that queue up together are committed bookkeeping first (claims, outcomes: no
    fsync), then the durable ones, so a delivery worker never waits for the ingests
    queued beside its claim."""
    groups = committed_groups
    store = SQLiteStore(tmp_path / "oh.db", require_agreement=False, disable_after_seconds=60)
    await store.open()
    try:
        await store.migrate()
        await store.create_webhook(webhook(max_concurrency=64))
        await store.ingest([new_order(f"early{i}") for i in range(10)], NOW)
        started = threading.Event()

        async def hold_the_writer(tx: Tx) -> None:
            started.set()
            time.sleep(0.3)  # everything below queues up meanwhile

        holding = asyncio.create_task(store._write(hold_the_writer))
        await asyncio.to_thread(started.wait)
        groups.clear()
        ingests = [store.ingest([new_order(f"o{i}")], NOW) for i in range(5)]
        claims = [store.claim(NOW, 2, f"w{i}") for i in range(3)]
        _, claimed = await asyncio.gather(asyncio.gather(*ingests), asyncio.gather(*claims))
        await holding
        assert groups[0] == [False, False, False]  # the claims, alone and first
        assert groups[1] == [True] * 5  # then the ingests, in one durable commit
        assert sum(map(len, claimed)) == 6
    finally:
        await store.close()


async def test_pragmas_and_reads_beside_a_busy_writer(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "oh.db", require_agreement=False, disable_after_seconds=60)
    await store.open()
    try:
        await store.migrate()
        hook = await store.create_webhook(webhook())

        async def pragmas(tx: Tx) -> tuple[str, int, int]:
            assert isinstance(tx, SQLiteTx)
            conn = tx.connection
            return (
                conn.execute("PRAGMA journal_mode").fetchone()[0],
                conn.execute("PRAGMA synchronous").fetchone()[0],
                conn.execute("PRAGMA foreign_keys").fetchone()[0],
            )

        assert await store._write(pragmas) == ("wal", 2, 1)  # 2: FULL

        async def slow_write(tx: Tx) -> None:
            time.sleep(2.0)  # holds the writer thread, as a huge transaction would

        writing = asyncio.create_task(store._write(slow_write))
        await asyncio.sleep(0.1)
        assert (await store.get_webhook(hook.id, Scope())).id == hook.id
        assert not writing.done()  # the read did not queue behind the write
        await writing
    finally:
        await store.close()


async def test_a_new_file_has_large_pages_and_an_existing_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    """New files get PAGE_SIZE pages; a file made with SQLite's default keeps them (the
    pragma is a no-op once the file exists) and works as before."""
    old = tmp_path / "old.db"
    with closing(sqlite3.connect(old)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (x)")
        [default] = conn.execute("PRAGMA page_size").fetchone()
    assert default != PAGE_SIZE
    for path, expected in ((tmp_path / "new.db", PAGE_SIZE), (old, default)):
        store = SQLiteStore(path, require_agreement=False, disable_after_seconds=60)
        await store.open()
        try:
            await store.migrate()
            await store.create_webhook(webhook())
            await store.ingest([new_order("o1")], NOW)
        finally:
            await store.close()
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA page_size").fetchone() == (expected,)
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_hot_queries_stay_on_their_indexes() -> None:
    conn = sqlite3.connect(":memory:")
    for _, script in load_migrations("sqlite"):
        for statement in migration_statements(script):
            conn.execute(statement)
    queries = compile_queries("sqlite")
    expected = {
        "due_heads": "deliveries_due",
        "refresh_heads": "deliveries_order",
        "in_flight": "deliveries_webhook_state",
        "expire_leases": "deliveries_leases",
        "expiring_queues": "deliveries_leases",
        "busy_queues": "deliveries_order",
        "finished_before": "deliveries_webhook_state",
        "list_deliveries_of_webhook": "deliveries_webhook",
        "next_due_at": "deliveries_due",
        "any_failed_anywhere": "deliveries_webhook_state",
        "pending_of_accounts": "deliveries_webhook_state",
    }
    for name, index in expected.items():
        query = queries[name]
        count = len(query.parameters)
        plan = " | ".join(
            row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + query.sql, [None] * count)
        )
        assert index in plan, f"{name}: {plan}"
        assert "SCAN deliveries" not in plan or index == "deliveries_leases", f"{name}: {plan}"


def test_both_engines_define_the_same_queries() -> None:
    sqlite_names = set(load_queries("sqlite"))
    postgres_names = set(load_queries("postgres"))
    engine_only = {"notify_work", "lock_migrations", "unlock_migrations", "migration_lock_timeout"}
    assert sqlite_names == postgres_names - engine_only
    assert [name for name, _ in load_migrations("sqlite")] == [
        name for name, _ in load_migrations("postgres")
    ]


async def test_bookkeeping_commits_relaxed_and_durable_writes_stay_full(tmp_path: Path) -> None:
    """Claims run synchronous=NORMAL and are fsynced within MAX_UNSYNCED_SECONDS; any
    durable job (an ingest, an API write) runs with synchronous=FULL again."""
    store = SQLiteStore(tmp_path / "oh.db", require_agreement=False, disable_after_seconds=60)
    await store.open()
    try:
        await store.migrate()

        async def synchronous(tx: Tx) -> int:
            assert isinstance(tx, SQLiteTx)
            return int(tx.connection.execute("PRAGMA synchronous").fetchone()[0])

        assert await store._write(synchronous, durable=False) == 1  # 1: NORMAL
        assert isinstance(store.engine, SQLiteEngine)
        writer = store.engine.writer
        assert writer is not None and writer._unsynced_since is not None
        await asyncio.sleep(MAX_UNSYNCED_SECONDS + 0.3)
        assert writer._unsynced_since is None  # the writer fsynced the relaxed tail
        assert await store._write(synchronous) == 2  # 2: FULL for a durable job
        await store.create_webhook(webhook())
        await store.ingest([new_order("o1")], NOW)
        assert await store.claim(NOW, 10, "w1")
        assert await store._write(synchronous) == 2
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def opened(path: Path) -> AsyncIterator[SQLiteStore]:
    """The store of the SQLite file `path`, open (not migrated) until the block ends."""
    store = SQLiteStore(path, require_agreement=False, disable_after_seconds=3600)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_the_operational_events_migration_keeps_an_existing_database(
    tmp_path: Path,
) -> None:
    """0004 edits the NOT NULL constraints of `events` and `deliveries` in place: a
    database made before it keeps its rows, passes the integrity check, and takes
    events and deliveries without an order afterwards."""
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in migration_statements(dict(load_migrations("sqlite"))["0001_initial"]):
            conn.execute(statement)
        conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT)")
        conn.execute("INSERT INTO schema_migrations VALUES ('0001_initial', 0)")
        conn.execute(
            "INSERT INTO events VALUES ('evt_old', 'order.new', 'o0', 'acc1', 'loc1', 'cl1', 7,"
            " 1, 0, '{\"kept\": true}', 10, 0)"
        )
    async with opened(path) as store:
        await store.migrate()  # 0001 is there; 0002 ... apply only what is new
        hook = await store.create_webhook(webhook())
        ops = await store.create_webhook(webhook(event_types=tuple(OperationalEventType)))
        await store.ingest([new_order("o1")], NOW)
        await store.set_webhook_state(hook.id, WebhookState.DISABLED, None, NOW)
        page = await store.list_deliveries(DeliveryFilter(webhook_id=ops.id), 10, None)
        [delivery] = page.items
        assert delivery.order_id is None and delivery.sequence is None
        old = await store.get_event("evt_old", Scope())
        assert (old.order_id, old.sequence, old.data) == ("o0", 1, {"kept": True})
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        nulls = conn.execute("SELECT COUNT(*) FROM events WHERE order_id IS NULL").fetchone()
        assert nulls == (1,)


async def test_migrations_0012_and_0014_fill_their_columns_from_an_existing_database(
    tmp_path: Path,
) -> None:
    """A database from before them: 0012 marks the webhooks being probed as announced
    failing since their run of failures began, 0014 records the accounts webhooks have."""
    path = tmp_path / "oh.db"
    async with opened(path) as store:
        await store.migrate()
        probed = await store.create_webhook(webhook(accounts=("acc1", "acc2")))
        calm = await store.create_webhook(webhook())
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        # Back to the schema before 0012 and 0014, one webhook being probed.
        conn.execute(
            "UPDATE webhook_runtime SET probing = 1, failing_since = 7 WHERE webhook_id = ?",
            (probed.id,),
        )
        conn.execute("ALTER TABLE webhook_runtime DROP COLUMN failing_reported_since")
        conn.execute("DROP TABLE webhook_account_history")
        conn.execute(
            "DELETE FROM schema_migrations WHERE name IN "
            "('0012_failing_reported', '0014_webhook_account_history')"
        )
    async with opened(path) as store:
        assert await store.migrate() == ["0012_failing_reported", "0014_webhook_account_history"]
    with closing(sqlite3.connect(path)) as conn:
        reported = dict(
            conn.execute("SELECT webhook_id, failing_reported_since FROM webhook_runtime")
        )
        assert reported == {probed.id: 7, calm.id: None}
        history = conn.execute(
            "SELECT webhook_id, account FROM webhook_account_history ORDER BY 1, 2"
        ).fetchall()
        expected = sorted([(probed.id, "acc1"), (probed.id, "acc2"), (calm.id, "acc1")])
        assert sorted(history) == expected
