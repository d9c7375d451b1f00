"""What only the PostgreSQL engine promises: many processes on one database (exact claims,
one order updated from two API processes, NOTIFY wake-ups, concurrent migrations) and
surviving the server going away and coming back.

Each store instance stands for one process; the server's going away is played by a
TCP relay in front of it, so the shared server of the test machine is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import orjson
import pytest

from orderhooks.cli.runner import ensure_admin_key
from orderhooks.clock import utc_now
from orderhooks.domain.ids import new_id
from orderhooks.domain.model import (
    AuditEntry,
    DeliveryState,
    EventType,
    OperationalEventType,
    Ordering,
    Scope,
    WebhookState,
)
from orderhooks.exceptions import NotFound, StoreUnavailable
from orderhooks.store.postgres import PING_TIMEOUT_SECONDS, PostgresStore
from orderhooks.store.sql import compile_queries
from tests.cluster.cluster import with_address
from tests.cluster.pgproxy import LOOPBACK, PgProxy
from tests.integration.api_support import api_settings
from tests.integration.store_support import (
    NOW,
    agreement,
    delivered,
    deliveries_of,
    failed,
    new_order,
    status,
    webhook,
)
from tests.integration.test_store_contract import ALL_MIGRATIONS

pytestmark = pytest.mark.postgres

# How long a change of ordering waits for the ordering lock (lock_ordering, postgres/queries.sql).
ORDERING_LOCK_SECONDS = 2.0


def pg_store(url: str, **options: Any) -> PostgresStore:
    """A store standing for one orderhooks process."""
    values: dict[str, Any] = {
        "require_agreement": False,
        "disable_after_seconds": 3600,
        "pool_size": 4,
    }
    values.update(options)
    return PostgresStore(url, **values)


@contextlib.asynccontextmanager
async def open_store(url: str, **options: Any) -> AsyncIterator[PostgresStore]:
    """A store standing for one orderhooks process, open; closed afterwards."""
    store = pg_store(url, **options)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def migrated_store(url: str, **options: Any) -> AsyncIterator[PostgresStore]:
    """A store standing for one orderhooks process, open on a migrated database."""
    async with open_store(url, **options) as store:
        await store.migrate()
        yield store


async def migrate(url: str) -> None:
    """Migrate the database, as a process that then stops would: for the tests that
    look at it through a connection of their own."""
    async with migrated_store(url, listen=False):
        pass


@contextlib.asynccontextmanager
async def side_connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own, to hold locks or look at the server's."""
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def two_stores(
    url: str, **options: Any
) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores standing for two processes on one database, migrated."""
    async with migrated_store(url, **options) as first, open_store(url, **options) as second:
        yield first, second


@pytest.fixture()
async def two_processes(pg_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one fresh database, migrated."""
    async with two_stores(pg_url) as stores:
        yield stores


async def test_concurrent_migrations_apply_once(pg_url: str) -> None:
    stores = [pg_store(pg_url, listen=False) for _ in range(3)]
    for store in stores:
        await store.open()
    try:
        applied = await asyncio.gather(*(store.migrate() for store in stores))
        assert sorted(applied) == [[], [], ALL_MIGRATIONS]
    finally:
        for store in stores:
            await store.close()


async def _wait_for_a_lock_request_on(conn: asyncpg.Connection, table: str) -> None:
    """Return once some session waits for a lock on `table`."""
    query = "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted AND relation = $1::regclass)"
    for _ in range(200):
        if await conn.fetchval(query, table):
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"nobody asked for a lock on {table} in 10 s")


async def test_a_migration_gives_way_to_queries_while_a_long_transaction_holds_its_table(
    pg_url: str,
) -> None:
    """docs/operations.md, "Migrations and upgrades": a migration waiting for a table's
    lock must not queue every other query of that table behind it for as long as some
    long transaction holds the table; it gives way and tries again."""
    await migrate(pg_url)
    undone = "0011_attempt_batches"  # adds attempts.batch_id
    assert undone in ALL_MIGRATIONS
    async with side_connection(pg_url) as setup:
        # Undo that migration, as if the database had not had it yet.
        await setup.execute("ALTER TABLE attempts DROP COLUMN batch_id")
        await setup.execute("DELETE FROM schema_migrations WHERE name = $1", undone)
    async with side_connection(pg_url) as holder, side_connection(pg_url) as reader:
        long_transaction = holder.transaction()
        await long_transaction.start()
        await holder.fetchval("SELECT count(*) FROM attempts")  # holds the table until commit
        async with open_store(pg_url, listen=False) as store:
            migrating = asyncio.create_task(store.migrate())
            try:
                await _wait_for_a_lock_request_on(reader, "attempts")
                # Queued behind the migration's lock request, this read would wait for the
                # long transaction; the migration gives way after its lock timeout instead.
                assert await reader.fetchval("SELECT count(*) FROM attempts", timeout=8) == 0
                assert not migrating.done()
                await long_transaction.commit()
                assert await asyncio.wait_for(migrating, timeout=15) == [undone]
            finally:
                migrating.cancel()
    async with side_connection(pg_url) as check:
        assert await check.fetchval(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'attempts' AND column_name = 'batch_id'"
        )


async def test_migrations_0012_and_0014_fill_their_columns_from_an_existing_database(
    pg_url: str,
) -> None:
    """As on SQLite (test_store_sqlite.py): 0012 marks the webhooks being probed as
    announced failing since their run began, 0014 records the accounts webhooks have."""
    async with migrated_store(pg_url, listen=False) as store:
        probed = await store.create_webhook(webhook(accounts=("acc1", "acc2")))
        calm = await store.create_webhook(webhook())
    async with side_connection(pg_url) as conn:
        await conn.execute(
            "UPDATE webhook_runtime SET probing = TRUE, failing_since = 7 WHERE webhook_id = $1",
            probed.id,
        )
        await conn.execute("ALTER TABLE webhook_runtime DROP COLUMN failing_reported_since")
        await conn.execute("DROP TABLE webhook_account_history")
        await conn.execute(
            "DELETE FROM schema_migrations WHERE name = ANY($1::text[])",
            ["0012_failing_reported", "0014_webhook_account_history"],
        )
    async with open_store(pg_url, listen=False) as store:
        assert await store.migrate() == ["0012_failing_reported", "0014_webhook_account_history"]
    async with side_connection(pg_url) as conn:
        rows = await conn.fetch("SELECT webhook_id, failing_reported_since FROM webhook_runtime")
        assert {r["webhook_id"]: r["failing_reported_since"] for r in rows} == {
            probed.id: 7,
            calm.id: None,
        }
        history = await conn.fetch("SELECT webhook_id, account FROM webhook_account_history")
        expected = sorted([(probed.id, "acc1"), (probed.id, "acc2"), (calm.id, "acc1")])
        assert sorted((r["webhook_id"], r["account"]) for r in history) == expected


async def test_two_claimers_never_share_a_delivery_or_exceed_concurrency(
    two_processes: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = two_processes
    hook = await first.create_webhook(webhook(max_concurrency=5))
    await first.ingest([new_order(f"o{i}") for i in range(40)], NOW)
    seen: list[str] = []
    for _ in range(12):
        rounds = await asyncio.gather(
            *(store.claim(NOW, 4, f"w{n}") for n, store in enumerate((first, second) * 3))
        )
        claimed = [c.delivery.id for claims in rounds for c in claims]
        assert len(claimed) <= 5  # together, never more than maxConcurrency in flight
        seen.extend(claimed)
        await second.record([delivered(d, hook.id) for d in claimed], NOW)
    assert len(seen) == len(set(seen)) == 40


async def test_one_order_updated_from_two_processes(
    two_processes: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = two_processes
    await first.create_webhook(webhook())
    item = new_order("o1")
    results = await asyncio.gather(first.ingest([item], NOW), second.ingest([item], NOW))
    assert sorted(r[0].created for r in results) == [False, True]
    updates = [status("o1", code) for code in (20, 40, 50, 60, 70, 80)]
    await asyncio.gather(
        *((first if n % 2 else second).ingest([update], NOW) for n, update in enumerate(updates))
    )
    view = await first.get_order("o1", Scope())
    assert [e.sequence for e in view.events] == list(range(1, 8))
    assert len(view.status_history) == 6


async def test_notify_wakes_workers_of_other_processes(
    two_processes: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = two_processes
    await first.create_webhook(webhook())
    await asyncio.sleep(0.5)  # both listeners connected
    await second.wait_for_work(0)  # forget wake-ups from start-up
    waiter = asyncio.create_task(second.wait_for_work(60))
    await asyncio.sleep(0.1)
    await first.ingest([new_order("o1")], NOW)
    await asyncio.wait_for(waiter, 10)  # long before its 60 s timeout


async def test_a_process_is_not_woken_again_by_its_own_notify(
    two_processes: tuple[PostgresStore, PostgresStore],
) -> None:
    """Its ingest wakes its own workers at once; its NOTIFY is for the other processes.
    Taking its own NOTIFY too ran one more claim per ingest for nothing."""
    first, second = two_processes
    await first.create_webhook(webhook())
    await asyncio.sleep(0.5)  # both listeners connected
    await first.wait_for_work(0)  # forget wake-ups from start-up
    await second.wait_for_work(0)
    await first.ingest([new_order("o1")], NOW)
    await asyncio.wait_for(first.wait_for_work(60), 1)  # woken in the process, at once
    await asyncio.wait_for(second.wait_for_work(60), 10)  # woken by the NOTIFY
    started = asyncio.get_running_loop().time()
    await first.wait_for_work(2)  # no second wake-up: the full wait
    assert asyncio.get_running_loop().time() - started >= 1.9


class Relay:
    """A TCP relay to the PostgreSQL server that can be cut and restored, as a server
    restart looks to its clients."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Accept connections (on the same port as before, after a cut)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()


R = TypeVar("R", bound=Relay)


@contextlib.asynccontextmanager
async def relayed(url: str, relay_type: type[R]) -> AsyncIterator[tuple[R, str]]:
    """A relay of `relay_type` started in front of the server of `url`, and the URL of the
    same database through it; the relay is cut afterwards."""
    base, database = url.rsplit("/", 1)
    host_port = base.rsplit("@", 1)[-1]
    relay = relay_type(int(host_port.rsplit(":", 1)[-1]))
    await relay.start()
    try:
        yield relay, f"{base.replace(host_port, f'127.0.0.1:{relay.port}')}/{database}"
    finally:
        with contextlib.suppress(Exception):
            await relay.cut()


async def test_survives_the_server_going_away(pg_url: str) -> None:
    async with (
        relayed(pg_url, Relay) as (relay, relayed_url),
        migrated_store(relayed_url) as store,
        open_store(pg_url) as other,
    ):
        hook = await store.create_webhook(webhook())
        await relay.cut()
        with pytest.raises(StoreUnavailable):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.ingest([new_order("lost")], NOW)
        await relay.start()
        await _eventually(store.ping)
        [result] = await store.ingest([new_order("o1")], NOW)  # the pool reconnected
        assert result.created
        [claim] = await store.claim(NOW + timedelta(seconds=1), 10, "w1")
        await store.record([delivered(claim.delivery.id, hook.id)], NOW)
        # The listener reconnected too: another process's ingest wakes this one.
        await _eventually(lambda: _woken_by(other, store))


async def _woken_by(source: PostgresStore, target: PostgresStore) -> None:
    await target.wait_for_work(0)
    waiter = asyncio.create_task(target.wait_for_work(60))
    await source.ingest([new_order(f"w{id(waiter)}")], NOW)
    await asyncio.wait_for(waiter, 2)  # TimeoutError (tried again) unless NOTIFY arrived


async def _eventually(check: Any, attempts: int = 40, pause: float = 0.25) -> Any:
    """What `check` returns once it stops failing (unavailable, an assertion, a timeout);
    its failure after `attempts` tries."""
    for _ in range(attempts - 1):
        try:
            return await check()
        except (StoreUnavailable, AssertionError, TimeoutError):
            await asyncio.sleep(pause)
    return await check()


async def test_open_fails_cleanly_when_the_server_is_unreachable() -> None:
    store = pg_store("postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(StoreUnavailable):
        await store.open()
    with pytest.raises(StoreUnavailable):
        await store.ping()
    await store.close()


# The claim path's queries, the record path's, and the busiest reads: the index each
# uses on an empty database when sequential scans are ruled out. The plan is the generic
# one, which is what a worker's prepared statements run with their own values.
POSTGRES_QUERY_INDEXES = {
    "due_heads": "deliveries_due",
    "due_unbatched": "deliveries_due",
    "due_unbatched_at": "deliveries_due",
    "due_operational_heads": "deliveries_due",
    "due_batches": "deliveries_batch_due",
    "batch_members": "deliveries_batch_due",
    "refresh_heads": "deliveries_queue",
    "in_flight": "deliveries_leases",
    "expire_leases": "deliveries_leases",
    "next_due_at": "deliveries_due",
    "busy_queues": "deliveries_order",
    "mark_delivering": "deliveries_pkey",
    "deliveries_for_record": "deliveries_pkey",
    "advance_delivery": "deliveries_pkey",
    "queues_of_webhook": "deliveries_queue",
    "finished_before": "deliveries_webhook_state",
    "delivery_counts": "deliveries_webhook_state",
    "list_deliveries_of_webhook": "deliveries_webhook",
    "recent_durations": "attempts_webhook",
    "any_failed_anywhere": "deliveries_webhook_state",
    "pending_of_accounts": "deliveries_due",  # pending rows only (a partial index)
}


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _plan_nodes(child))]


async def test_hot_queries_stay_on_their_indexes(pg_url: str) -> None:
    await migrate(pg_url)
    queries = compile_queries("postgres")
    async with side_connection(pg_url) as conn:
        # With sequential scans ruled out, a query no index can serve still shows one
        # (as a disabled plan): so each assertion says an index fits the query's shape.
        await conn.execute("SET enable_seqscan = off")
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        for name, index in POSTGRES_QUERY_INDEXES.items():
            query = queries[name]
            await conn.execute(f"PREPARE {name} AS {query.sql}")
            nulls = ", ".join(["NULL"] * len(query.parameters))
            execute = f"EXECUTE {name}({nulls})" if nulls else f"EXECUTE {name}"
            explained = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {execute}")
            nodes = _plan_nodes(orjson.loads(explained)[0]["Plan"])
            indexes = {node.get("Index Name") for node in nodes}
            scans = {node.get("Relation Name") for node in nodes if node["Node Type"] == "Seq Scan"}
            assert index in indexes, f"{name}: {nodes}"
            assert not scans, f"{name} scans {scans} whole: {nodes}"


async def test_retention_never_deletes_a_delivery_requeued_while_it_purges(
    two_processes: tuple[PostgresStore, PostgresStore], pg_url: str
) -> None:
    # A failed delivery of an old event, read as finished by a purge, and a retry now of
    # it from another process: the retry is either refused (the delivery is purged) or
    # answered with a pending delivery that stays and is sent, never both.
    api, worker = two_processes
    hook = await api.create_webhook(webhook())
    await api.ingest([new_order("old1")], NOW - timedelta(days=40))
    [claim] = await worker.claim(NOW, 10, "w1")
    await worker.record([failed(claim.delivery.id, hook.id)], NOW)
    async with side_connection(pg_url) as blocker:
        # Holds the purge between its read of the finished deliveries and its deletes.
        hold = blocker.transaction()
        await hold.start()
        await blocker.execute(
            "SELECT 1 FROM attempts WHERE delivery_id = $1 FOR UPDATE", claim.delivery.id
        )
        purge = asyncio.create_task(worker.purge(NOW - timedelta(days=30)))
        holder = blocker.get_server_pid()
        purging = await _eventually(lambda: _waiting(blocker, purge, holder))
        retry = asyncio.create_task(api.retry_delivery_now(claim.delivery.id, NOW))
        # The retry either commits now, or waits for the purge to commit.
        await _eventually(lambda: _waiting(blocker, retry, (holder, purging), may_end=True))
        await hold.rollback()
        await purge
        retried = await asyncio.gather(retry, return_exceptions=True)
    remaining = await deliveries_of(api, hook.id)
    if isinstance(retried[0], NotFound):
        assert remaining == []
    else:
        assert retried[0].state == DeliveryState.PENDING
        assert [(d.id, d.state) for d in remaining] == [(claim.delivery.id, DeliveryState.PENDING)]
        [again] = await worker.claim(NOW, 10, "w1")
        assert again.delivery.id == claim.delivery.id


class EndedEarly(Exception):
    """The operation a test waits to see blocked ended first; `__cause__` is its error."""


async def _waiting(
    conn: asyncpg.Connection,
    task: asyncio.Task[Any],
    behind: int | tuple[int, ...],
    *,
    lock: str | None = None,
    for_less_than: float | None = None,
    may_end: bool = False,
) -> int | None:
    """The pid of the session, not in `behind` (pids), waiting for a lock one of them holds
    or waits for first: the one running `task`. AssertionError while there is none yet.

    Raises EndedEarly at once if `task` ended (its error as the cause) instead of letting
    the test time out blindly, unless it `may_end` (then None). `lock`: the wait's kind
    (`advisory`, `transactionid`...). `for_less_than`: seconds the wait may have lasted,
    for a wait bounded by a lock_timeout that must not run out before the test acts.

    `conn` may be in a transaction (the one holding the lock): PostgreSQL reads
    pg_stat_activity once per transaction and shows the same sessions and queries until
    its end (only the wait columns are live), so a session connected after the first
    read (a pool opening a connection for the waiting operation, its others busy) was
    never seen. The snapshot is discarded before every look.
    """
    if task.done():
        if task.cancelled() or task.exception() is None:
            if may_end:
                return None
            raise EndedEarly(f"{task.get_name()} ended without waiting for a lock")
        raise EndedEarly(f"{task.get_name()} failed before it was seen waiting") from (
            task.exception()
        )
    holders = [behind] if isinstance(behind, int) else list(behind)
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = await conn.fetch(
        "SELECT pid, wait_event, left(query, 80) AS query,"
        " extract(epoch FROM clock_timestamp() - query_start)::float8 AS waited"
        " FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND pg_blocking_pids(pid) && $1::int[]",
        holders,
    )
    waiters = [
        r for r in rows if r["pid"] not in holders and (lock is None or r["wait_event"] == lock)
    ]
    assert waiters, f"nothing waits behind {holders} yet: {[dict(r) for r in rows]}"
    assert len(waiters) == 1, f"more than one waits behind {holders}: {waiters}"
    [waiter] = waiters
    if for_less_than is not None:
        assert waiter["waited"] < for_less_than, f"waiting too long already: {dict(waiter)}"
    return int(waiter["pid"])


async def _seen_waiting(
    conn: asyncpg.Connection,
    start: Any,
    behind: int,
    *,
    bound: float,
    lock: str,
    tries: int = 10,
) -> tuple[asyncio.Task[Any], int]:
    """Start `start()` (an operation waiting `bound` s at most for a lock, then failing as
    unavailable) until it is seen waiting behind `behind` for less than half its bound,
    so that the test, acting then, acts before the bound runs out; the task and the pid
    of its session. On a loaded machine the test may look only after the bound ran out:
    that try is given up and the operation started again."""
    for attempt in range(1, tries + 1):
        task = asyncio.create_task(start())
        look = functools.partial(_waiting, conn, task, behind, lock=lock, for_less_than=bound / 2)
        try:
            pid = await _eventually(look, attempts=int(bound * 20) + 20, pause=0.05)
        except EndedEarly as ended:
            # Given up at its bound before the test saw it waiting: tried again.
            if attempt == tries or not isinstance(ended.__cause__, StoreUnavailable):
                raise
            continue
        return task, pid
    raise AssertionError("unreachable")


# The server's CommandComplete of a COMMIT: the transaction is committed once it is sent.
COMMIT_COMPLETE = b"C\x00\x00\x00\x0bCOMMIT\x00"


class CommitCutter(Relay):
    """A relay that, once armed, closes the connection right after relaying a COMMIT's
    completion: the transaction is committed, and the connection breaks on its way back
    to the pool (asyncpg resets a connection it releases)."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.armed = False
        self.cuts = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers.update((writer, up_writer))

        async def down() -> None:
            with contextlib.suppress(OSError):
                while data := await up_reader.read(65536):
                    writer.write(data)
                    await writer.drain()
                    if self.armed and COMMIT_COMPLETE in data:
                        self.armed = False
                        self.cuts += 1
                        up_writer.close()
                        break
            writer.close()

        await asyncio.gather(self._pipe(reader, up_writer), down())


async def test_a_commit_whose_connection_breaks_on_release_still_answers(pg_url: str) -> None:
    async with (
        relayed(pg_url, CommitCutter) as (relay, relayed_url),
        migrated_store(relayed_url) as store,
    ):
        relay.armed = True
        # Committed: answering an error would make the client post it again.
        [result] = await store.ingest([new_order("o1")], NOW)
        assert relay.cuts == 1
        assert result.created
        view = await store.get_order("o1", Scope())  # on a fresh connection
        assert view.order.order_id == "o1"


async def test_a_start_applying_the_agreement_setting_never_undoes_a_disable(
    pg_url: str,
) -> None:
    # A process starting with ORDERHOOKS_REQUIRE_AGREEMENT=false activates the webhooks
    # awaiting their agreement; a worker disabling one of them meanwhile (a 410) wins.
    async with (
        migrated_store(pg_url, require_agreement=True) as first,
        open_store(pg_url, require_agreement=False, listen=False) as starting,
        side_connection(pg_url) as conn,
    ):
        waiting = await first.create_webhook(webhook())
        assert waiting.state == WebhookState.AWAITING_AGREEMENT
        async with conn.transaction():
            await conn.execute(
                "UPDATE webhooks SET state = 'disabled', disabled_reason = 'gone' WHERE id = $1",
                waiting.id,
            )
            applying = asyncio.create_task(starting.apply_agreement_requirement(NOW))
            # It read the webhook awaiting, and waits for the row.
            await _eventually(lambda: _waiting(conn, applying, conn.get_server_pid()))
        assert await applying == 0
        after = await first.get_webhook(waiting.id, Scope())
        assert (after.state, after.disabled_reason) == (WebhookState.DISABLED, "gone")


async def test_an_ingest_racing_a_change_of_ordering_marks_by_the_new_one(pg_url: str) -> None:
    # An ingest read the webhook under `per_order` and waits for its order's row; a PATCH
    # to `none` meanwhile makes every waiting delivery ready. The status update the
    # ingest then writes must be sent too: left not ready under `none`, nothing ever
    # made it ready, and the acknowledged event was never sent.
    async with (
        migrated_store(pg_url) as first,
        open_store(pg_url, listen=False) as ingesting,
        side_connection(pg_url) as conn,
    ):
        hook = await first.create_webhook(webhook())
        await first.ingest([new_order("o1")], NOW)
        await ingesting.ingest([new_order("o0")], NOW)  # it has read the webhooks once
        stored = await first.get_webhook(hook.id, Scope())
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM orders WHERE order_id = 'o1' FOR UPDATE")
            update = asyncio.create_task(ingesting.ingest([status("o1", 20)], NOW))
            # It read the webhooks (holding the ordering lock), and waits for the order's row.
            ingest = await _eventually(lambda: _waiting(conn, update, conn.get_server_pid()))
            change = dataclasses.replace(stored, ordering=Ordering.NONE)
            # The change waits for the ingest: released at once, within its 2 s bound.
            patch, _ = await _seen_waiting(
                conn,
                lambda: first.update_webhook(change),
                ingest,
                bound=ORDERING_LOCK_SECONDS,
                lock="advisory",
            )
        await update
        await patch
        claims = await first.claim(NOW, 100, "w1")
        assert sorted((c.event.order_id, c.event.sequence) for c in claims) == [
            ("o0", 1),
            ("o1", 1),
            ("o1", 2),
        ]


async def test_a_change_of_ordering_never_stalls_ingest_behind_a_silent_holder(
    pg_url: str,
) -> None:
    # A transaction marking heads (an ingest) in a process that stopped talking holds the
    # ordering lock: a change of ordering gives up (unavailable, may be sent again)
    # instead of waiting for it, and ingests queued behind that change go on.
    async with migrated_store(pg_url) as store, side_connection(pg_url) as silent:
        hook = await store.create_webhook(webhook())
        stored = await store.get_webhook(hook.id, Scope())
        async with silent.transaction():
            await silent.execute("SELECT pg_advisory_xact_lock_shared(7251004)")
            change = dataclasses.replace(stored, ordering=Ordering.NONE)
            # The change waits for the lock; the ingest then queues behind it.
            patch, _ = await _seen_waiting(
                silent,
                lambda: store.update_webhook(change),
                silent.get_server_pid(),
                bound=ORDERING_LOCK_SECONDS,
                lock="advisory",
            )
            ingest = asyncio.create_task(store.ingest([new_order("o1")], NOW))
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(patch, timeout=30)
            [result] = await asyncio.wait_for(ingest, timeout=30)
            assert result.created
        assert (await store.get_webhook(hook.id, Scope())).ordering == Ordering.PER_ORDER


async def test_usage_rows_are_in_the_same_order_whatever_the_database_collation(
    pg_url: str,
) -> None:
    """`GET /v1/usage` lists rows by account, month and type in code point order, as on
    SQLite and on the dashboard; a database created with a language's collation (the
    default of many PostgreSQL installations, such as en_US.UTF-8) sorted accounts by
    that language's rules instead (`alpha` before `Bravo`)."""
    async with migrated_store(pg_url) as store:
        async with side_connection(pg_url) as connection:
            # What a database whose default collation is a language's gives the column.
            await connection.execute(
                'ALTER TABLE usage ALTER COLUMN account TYPE TEXT COLLATE "en-US-x-icu"'
            )
            await connection.executemany(
                "INSERT INTO usage (account, month, event_type, delivered, replayed)"
                " VALUES ($1, '2026-11', 'order.new', 1, 0)",
                [("alpha",), ("Bravo",), ("acct-b",), ("acct_a",)],
            )
        rows = await store.usage(None, ["2026-11"])
        assert [row.account for row in rows] == sorted(["alpha", "Bravo", "acct-b", "acct_a"])


AGREEMENT_RACE_ROUNDS = 60


async def test_an_agreement_recorded_while_a_webhook_is_created_or_enabled_activates_it(
    pg_url: str,
) -> None:
    """One process records an account's agreement while another creates (or enables) a
    webhook on it: whichever commits last, the webhook ends up active. Before, the
    webhook's transaction could read "no agreement" while the agreement's could not yet
    see the webhook, leaving it awaiting an agreement that exists."""
    async with two_stores(pg_url, require_agreement=True) as (first, second):
        stuck = []
        for n in range(AGREEMENT_RACE_ROUNDS):
            account = f"race-{n}"
            pause = (n % 10) / 2000  # 0 to 4.5 ms, first one side, then the other
            if n % 2:
                hook = await first.create_webhook(
                    webhook(accounts=(account,), state=WebhookState.DISABLED)
                )
                change = first.set_webhook_state(hook.id, WebhookState.ACTIVE, None, NOW)
            else:
                hook = webhook(accounts=(account,))
                change = first.create_webhook(hook, max_per_account=100)
            await asyncio.gather(
                _after(pause if n % 3 else 0, change),
                _after(0 if n % 3 else pause, second.put_agreement(agreement(account), NOW)),
            )
            state = (await first.get_webhook(hook.id, Scope())).state
            if state != WebhookState.ACTIVE:
                stuck.append((n, state))
        assert stuck == []


async def _after(seconds: float, work: Any) -> Any:
    await asyncio.sleep(seconds)
    return await work


async def test_two_agreements_recorded_at_once_activate_the_webhook_needing_both(
    pg_url: str,
) -> None:
    """A webhook on two accounts awaits both agreements; recorded at the same time by two
    processes, neither may miss the other's: the webhook ends up active."""
    async with two_stores(pg_url, require_agreement=True) as (first, second):
        stuck = []
        for n in range(AGREEMENT_RACE_ROUNDS // 3):
            accounts = (f"left-{n}", f"right-{n}")
            hook = await first.create_webhook(webhook(accounts=accounts))
            pause = (n % 10) / 2000
            await asyncio.gather(
                _after(pause if n % 2 else 0, first.put_agreement(agreement(accounts[0]), NOW)),
                _after(0 if n % 2 else pause, second.put_agreement(agreement(accounts[1]), NOW)),
            )
            state = (await first.get_webhook(hook.id, Scope())).state
            if state != WebhookState.ACTIVE:
                stuck.append((n, state))
        assert stuck == []


DELETE_RACE_ROUNDS = 20


async def test_no_delivery_stays_pending_for_a_webhook_deleted_during_an_ingest(
    pg_url: str,
) -> None:
    """One process ingests orders while another deletes the webhook they go to: every
    delivery of the deleted webhook ends `cancelled` (docs/api.md, DELETE), none is left
    `pending` for a webhook nothing will ever send to."""
    async with two_stores(pg_url) as (first, second):
        left = []
        for n in range(DELETE_RACE_ROUNDS):
            hook = await first.create_webhook(webhook())
            await first.ingest([new_order(f"warm-{n}")], NOW)  # the catalog is loaded
            pause = (n % 10) / 2000
            await asyncio.gather(
                _after(0, first.ingest([new_order(f"race-{n}-{i}") for i in range(20)], NOW)),
                _after(pause, second.delete_webhook(hook.id, NOW)),
            )
            pending = [
                d.id
                for d in await deliveries_of(first, hook.id)
                if d.state in (DeliveryState.PENDING, DeliveryState.DELIVERING)
            ]
            if pending:
                left.append((n, len(pending)))
        assert left == []


async def _connected(store: PostgresStore, connections: int) -> None:
    """The store's pool holds that many connections: a transaction below that waits for
    one being opened may wait long when the server is busy (other databases created
    and dropped)."""
    await asyncio.gather(*(store.ping() for _ in range(connections)))


async def test_a_claim_never_leases_an_event_that_lost_its_place_meanwhile(pg_url: str) -> None:
    # The order's second event is its head, and a claim reads it so, while a retry of the
    # failed first event (still uncommitted) makes the first the head again. The claim
    # must not send the second: the retried first goes before it (docs/guarantees.md).
    async with migrated_store(pg_url) as store, side_connection(pg_url) as conn:
        await _connected(store, 3)
        hook = await store.create_webhook(webhook(retry_schedule=()))
        await store.ingest([new_order("o1"), status("o1", 20)], NOW)
        [first] = await store.claim(NOW, 10, "w1")
        await store.record([failed(first.delivery.id, hook.id)], NOW)
        entry = AuditEntry(new_id("aud"), NOW, "admin", "delivery.retried", "delivery", "d")
        async with conn.transaction():
            # The retry's last write, its audit entry, waits here: its changes are made.
            await conn.execute("LOCK TABLE audit IN EXCLUSIVE MODE")
            retry = asyncio.create_task(
                store.retry_delivery_now(first.delivery.id, NOW, audit=entry)
            )
            holder = conn.get_server_pid()
            retrying = await _eventually(lambda: _waiting(conn, retry, holder))
            claim = asyncio.create_task(store.claim(NOW, 10, "w2"))
            await _eventually(lambda: _waiting(conn, claim, (holder, retrying)))
        await retry
        # The claim that read the second event as the head leases nothing; the next one
        # leases the retried first, alone: never both in flight.
        leased = [c.delivery.id for c in await claim]
        leased += [c.delivery.id for c in await store.claim(NOW, 10, "w2")]
        assert leased == [first.delivery.id]


async def test_a_failed_delivery_retried_while_its_replay_is_being_claimed_waits_for_it(
    pg_url: str,
) -> None:
    # Found by test_store_order_model.py. A claim has marked the replay `delivering` and
    # not committed yet when a retry of the event's failed first delivery refreshes the
    # order's queue: read as of before the claim's commit, the replay was pending and the
    # first (created earlier) became the head beside the replay in flight. The refresh
    # must see the claim's mark: one event is never sent twice at once.
    async with migrated_store(pg_url) as store, side_connection(pg_url) as conn:
        await _connected(store, 3)
        # A rate limit makes the claim write the webhook's tokens after marking.
        hook = await store.create_webhook(webhook(rate_limit_per_second=10))
        await store.ingest([new_order("o1")], NOW)
        [first] = await store.claim(NOW, 10, "w1")
        await store.record([failed(first.delivery.id, hook.id)], NOW)
        assert await store.replay_events(hook, NOW, None, None, NOW) == 1
        async with conn.transaction():
            # The claim's last write, the tokens, waits here: the replay is marked.
            await conn.execute(
                "SELECT 1 FROM webhook_runtime WHERE webhook_id = $1 FOR UPDATE", hook.id
            )
            claim = asyncio.create_task(store.claim(NOW, 10, "w1"))
            holder = conn.get_server_pid()
            claiming = await _eventually(lambda: _waiting(conn, claim, holder))
            retry = asyncio.create_task(store.retry_delivery_now(first.delivery.id, NOW))
            await _eventually(lambda: _waiting(conn, retry, (holder, claiming)))
        [replayed] = await claim
        await retry
        assert replayed.delivery.replay is True
        assert [c.delivery.id for c in await store.claim(NOW, 10, "w2")] == []
        await store.record([delivered(replayed.delivery.id, hook.id)], NOW)
        assert [c.delivery.id for c in await store.claim(NOW, 10, "w2")] == [first.delivery.id]


async def _account_lock_held(conn: asyncpg.Connection, account: str) -> bool:
    """Whether another session holds the account's lock (`lock_account`)."""
    held = await conn.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = 7251003 AND objsubid = 2 AND pid <> pg_backend_pid()"
        " AND objid::text::bigint = (hashtext($1)::bigint & 4294967295)",
        account,
    )
    return bool(held)


async def test_an_agreement_takes_the_account_locks_in_their_sorted_order(pg_url: str) -> None:
    """Account locks are taken sorted (the lock order atop postgres/queries.sql). The
    agreement of `acct-b` for a webhook awaiting `acct-a` and `acct-b` must not hold
    `acct-b` while it waits for `acct-a`: an agreement of `acct-a` recorded at the same
    time, holding `acct-a` and waiting for `acct-b`, would deadlock with it."""
    async with (
        migrated_store(pg_url, require_agreement=True) as store,
        side_connection(pg_url) as holder,
    ):
        hook = await store.create_webhook(webhook(accounts=("acct-a", "acct-b")))
        async with holder.transaction():
            await holder.execute("SELECT pg_advisory_xact_lock(7251003, hashtext('acct-a'))")
            recording = asyncio.create_task(store.put_agreement(agreement("acct-b"), NOW))
            await _eventually(lambda: _waiting(holder, recording, holder.get_server_pid()))
            held_while_waiting = await _account_lock_held(holder, "acct-b")
        await recording
        assert not held_while_waiting
        assert (await store.get_webhook(hook.id, Scope())).state == WebhookState.AWAITING_AGREEMENT


async def test_a_change_adding_an_account_takes_the_account_locks_in_their_sorted_order(
    pg_url: str,
) -> None:
    """A change within the per-account cap that adds `acct-c` to a webhook on `acct-a`
    must not hold `acct-c` while it waits for `acct-a` (a creation on both accounts,
    holding `acct-a` and waiting for `acct-c`, would deadlock with it)."""
    async with migrated_store(pg_url) as store, side_connection(pg_url) as holder:
        hook = await store.create_webhook(webhook(accounts=("acct-a",)))
        stored = await store.get_webhook(hook.id, Scope())
        change = dataclasses.replace(stored, accounts=("acct-a", "acct-c"))
        async with holder.transaction():
            await holder.execute("SELECT pg_advisory_xact_lock(7251003, hashtext('acct-a'))")
            updating = asyncio.create_task(store.update_webhook(change, max_per_account=10))
            await _eventually(lambda: _waiting(holder, updating, holder.get_server_pid()))
            held_while_waiting = await _account_lock_held(holder, "acct-c")
        await updating
        assert not held_while_waiting
        assert (await store.get_webhook(hook.id, Scope())).accounts == ("acct-a", "acct-c")


async def _hold_webhook(conn: asyncpg.Connection, webhook_id: str) -> None:
    """What a delete of the webhook takes first (`hold_webhook`), in `conn`'s transaction."""
    hold = compile_queries("postgres")["hold_webhook"]
    await conn.execute(hold.sql, *hold.bind({"id": webhook_id}))


async def _row_locked(pg_url: str, sql: str, *args: Any) -> bool:
    """Whether another transaction holds a lock on the row `sql` (FOR UPDATE NOWAIT) reads."""
    async with side_connection(pg_url) as conn:
        try:
            async with conn.transaction():
                await conn.fetch(sql, *args)
        except asyncpg.LockNotAvailableError:
            return True
        return False


async def test_a_disable_waits_for_a_deleted_receiver_before_it_locks_anything(
    pg_url: str,
) -> None:
    """A disable's `webhook.disabled` goes to the operator's webhook: it takes that
    webhook's share lock before anything a delete of it goes on to lock (the lock order
    atop postgres/queries.sql). It took it last, holding the webhooks' version that the
    delete, holding the lock, then bumps: the two deadlocked."""
    async with migrated_store(pg_url) as store, side_connection(pg_url) as holder:
        operator = await store.create_webhook(
            webhook(accounts=("*",), event_types=(OperationalEventType.WEBHOOK_DISABLED,))
        )
        partner = await store.create_webhook(webhook())
        async with holder.transaction():
            await _hold_webhook(holder, operator.id)
            disabling = asyncio.create_task(
                store.set_webhook_state(partner.id, WebhookState.DISABLED, None, NOW)
            )
            await _eventually(lambda: _waiting(holder, disabling, holder.get_server_pid()))
            version_locked = await _row_locked(
                pg_url, "SELECT 1 FROM meta WHERE name = 'webhooks_version' FOR UPDATE NOWAIT"
            )
        assert (await disabling).state == WebhookState.DISABLED
        assert not version_locked
        [sent] = await deliveries_of(store, operator.id)
        assert sent.state == DeliveryState.PENDING


async def test_outcomes_wait_for_a_deleted_receiver_before_they_lock_deliveries(
    pg_url: str,
) -> None:
    """Outcomes whose `delivery.failed` goes to the operator's webhook, written beside an
    outcome of that webhook's own delivery, take its share lock before the delivery rows:
    a delete of it, holding the lock, goes on to cancel its deliveries. Taken last, the
    outcomes held the delivery the delete waited for: the two deadlocked."""
    async with migrated_store(pg_url) as store, side_connection(pg_url) as holder:
        operator = await store.create_webhook(
            webhook(
                accounts=("*",),
                event_types=(EventType.NEW, OperationalEventType.DELIVERY_FAILED),
            )
        )
        partner = await store.create_webhook(webhook())
        await store.ingest([new_order("o1")], NOW)
        claims = {c.delivery.webhook_id: c.delivery.id for c in await store.claim(NOW, 10, "w1")}
        outcomes = [
            delivered(claims[operator.id], operator.id),
            failed(claims[partner.id], partner.id),
        ]
        async with holder.transaction():
            await _hold_webhook(holder, operator.id)
            recording = asyncio.create_task(store.record(outcomes, NOW))
            await _eventually(lambda: _waiting(holder, recording, holder.get_server_pid()))
            delivery_locked = await _row_locked(
                pg_url,
                "SELECT 1 FROM deliveries WHERE id = $1 FOR UPDATE NOWAIT",
                claims[operator.id],
            )
        await recording
        assert not delivery_locked
        states = sorted((d.event_type, d.state) for d in await deliveries_of(store, operator.id))
        assert states == [
            (OperationalEventType.DELIVERY_FAILED, DeliveryState.PENDING),
            (EventType.NEW, DeliveryState.DELIVERED),
        ]


async def test_the_webhook_locks_of_a_wide_ingest_stay_few(pg_url: str) -> None:
    """Every transaction writing deliveries share-locks their webhooks: one lock per
    webhook let a batch going to thousands of webhooks (80 accounts with 100 each, within
    ORDERHOOKS_MAX_WEBHOOKS_PER_ACCOUNT) fill PostgreSQL's shared lock table, sized by
    max_locks_per_transaction (64) per connection: three such ingests at once failed "out of
    shared memory", and with them whatever else needed a lock. The locks are taken by
    bucket of webhook ids, 64 at most."""
    await migrate(pg_url)
    share = compile_queries("postgres")["share_webhooks"]
    async with side_connection(pg_url) as conn:
        async with conn.transaction():
            ids = [f"wh_{n:05d}" for n in range(2000)]
            await conn.fetch(share.sql, *share.bind({"ids": ids}))
            held = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                " AND classid = 7251005 AND pid = pg_backend_pid()"
            )
        assert held <= 64


async def test_processes_starting_together_on_a_new_database_make_one_admin_key(
    pg_url: str, tmp_path: Path
) -> None:
    """docs/api.md, authentication: the first start with no keys at all makes one admin
    key. Processes started together on a new database (an api and its workers) each saw no
    key and each made and printed its own, admin keys that nobody asked for."""
    await migrate(pg_url)
    count = 3
    async with contextlib.AsyncExitStack() as stack:
        stores = [await stack.enter_async_context(open_store(pg_url)) for _ in range(count)]
        settings = [api_settings(tmp_path / f"process-{n}") for n in range(count)]
        for each in settings:
            each.data_dir.mkdir()
        now = utc_now()
        made = await asyncio.gather(
            *(ensure_admin_key(store, s, now) for store, s in zip(stores, settings, strict=True))
        )
        assert len([key for key in made if key is not None]) == 1, made
        assert await stores[0].count_keys() == 1


async def test_ping_of_a_server_that_stops_answering_fails_within_its_timeout(
    pg_url: str,
) -> None:
    """docs/operations.md, "Health checks": `/readyz` of an api is 200 when "the database
    answers within 5 s". Against a server that stops answering (a frozen host: a proxy
    that forwards nothing more), the ping waited 5 s for the query and then up to 5 s more
    for asyncpg's cancellation of it, so `/readyz` answered 503 only after 10 s, past the
    load balancer's usual 5-s health-check timeout."""
    parts = urlsplit(pg_url)
    with PgProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        async with open_store(with_address(pg_url, LOOPBACK, proxy.port), listen=False) as store:
            await store.ping()
            proxy.freeze()
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await store.ping()
            waited = time.monotonic() - started
            assert waited < PING_TIMEOUT_SECONDS + 1, waited
            proxy.cut()  # so that closing the store does not wait on frozen connections
