"""What only the SQLite engine promises: durability across a kill -9, group commit, reads
beside a busy writer, and claim queries that stay on their indexes."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from orderhooks.domain.model import Scope
from orderhooks.store.shared.tx import Tx
from orderhooks.store.sql import compile_queries, load_migrations, load_queries
from orderhooks.store.sqlite import SQLiteEngine, SQLiteStore, migration_statements
from orderhooks.store.sqlite_io import MAX_UNSYNCED_SECONDS, SQLiteTx, Writer
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


async def test_concurrent_ingests_share_commits(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    groups: list[int] = []
    original = Writer._commit_group

    def counting(self: Writer, conn: sqlite3.Connection, tx: SQLiteTx, group: list) -> None:  # type: ignore[type-arg]
        groups.append(len(group))
        original(self, conn, tx, group)

    monkeypatch.setattr(Writer, "_commit_group", counting)
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
        assert sum(groups) == 300 and len(groups) < 300  # many ingests per fsync
        view = await store.get_order("o299", Scope())
        assert view.events[0].sequence == 1
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


def test_hot_queries_stay_on_their_indexes() -> None:
    conn = sqlite3.connect(":memory:")
    for _, script in load_migrations("sqlite"):
        for statement in migration_statements(script):
            conn.execute(statement)
    queries = compile_queries("sqlite")
    expected = {
        "due_heads": "deliveries_due",
        "refresh_heads": "deliveries_queue",
        "in_flight": "deliveries_webhook_state",
        "expire_leases": "deliveries_leases",
        "busy_queues": "deliveries_order",
        "finished_before": "deliveries_webhook_state",
        "list_deliveries_of_webhook": "deliveries_webhook",
        "next_due_at": "deliveries_due",
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
    engine_only = {"notify_work", "lock_migrations", "unlock_migrations"}
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
