"""Several orderhooks processes on one PostgreSQL database, started and stopped by pid.

Each process is an `orderhooks.testing.server.ServerProcess` with its own port and
data dir; they share only the database, as processes on different machines would.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from orderhooks.testing.server import ServerProcess

MIGRATE_TIMEOUT_SECONDS = 60.0
# Several processes share one server with the other tests: small pools keep the
# cluster well below PostgreSQL's default max_connections (100).
POOL_SIZE_PER_PROCESS = 4
# Ten quick retries: a receiver failing 20 % of requests is never exhausted (0.2 ** 11).
SHORT_RETRY_SCHEDULE = ",".join(["1"] * 10)


def cluster_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment every process of a test cluster shares."""
    env = {
        "ORDERHOOKS_DATABASE_URL": database_url,
        "ORDERHOOKS_REQUIRE_AGREEMENT": "false",
        "ORDERHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
        "ORDERHOOKS_RETRY_SCHEDULE": SHORT_RETRY_SCHEDULE,
        "ORDERHOOKS_RETRY_JITTER": "0",
        "ORDERHOOKS_DB_POOL_SIZE": str(POOL_SIZE_PER_PROCESS),
        "ORDERHOOKS_LOG_FORMAT": "json",
    }
    env.update(extra)
    return env


class Cluster:
    """The processes of one test; every one of them is killed by pid at `close`."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.processes: list[ServerProcess] = []

    def add(self, name: str, command: str, env: Mapping[str, str]) -> ServerProcess:
        """Declare a process (`serve`, `api` or `worker`) named `name`; not started yet."""
        process = ServerProcess(
            self.base / name,
            log_path=self.base / f"{name}.log",
            env=env,
            command=(command,),
        )
        self.processes.append(process)
        return process

    async def start(self, processes: Sequence[ServerProcess]) -> None:
        """Start processes side by side and wait until each answers `/readyz` with 200."""
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in processes))

    def close(self) -> None:
        """SIGKILL whatever still runs (by pid)."""
        for process in self.processes:
            process.kill()

    def log_tails(self, chars: int) -> list[tuple[str, str]]:
        """The end of every process's log, for a failed test's report."""
        return [(p.log_path.name, p.log_tail(chars)) for p in self.processes]


def run_migrate(env: Mapping[str, str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    """`orderhooks migrate` as its own process, with `env` on top of a clean environment."""
    # ServerProcess knows how to build a clean child environment; reuse it.
    template = ServerProcess(data_dir, env=env)
    data_dir.mkdir(parents=True, exist_ok=True)
    # The command is this interpreter and the orderhooks module: no untrusted input.
    return subprocess.run(
        [sys.executable, "-m", "orderhooks", "migrate"],
        env=template.environment(),
        capture_output=True,
        text=True,
        timeout=MIGRATE_TIMEOUT_SECONDS,
        check=False,
    )


def database_name(database_url: str) -> str:
    """The database named in a `postgresql://` URL."""
    return urlsplit(database_url).path.lstrip("/")


def with_address(database_url: str, host: str, port: int) -> str:
    """The same URL pointed at another host and port (a proxy in front of the server)."""
    parts = urlsplit(database_url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}{host}:{port}"))


async def terminate_backends(database_url: str) -> int:
    """Cut every connection to the test database but our own, as a server restart would;
    the number cut. Other databases on the shared server are left alone."""
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        cut = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database_name(database_url),
        )
    finally:
        await conn.close()
    return int(cut or 0)


async def leases_by_pid(database_url: str) -> dict[int, int]:
    """Deliveries in `delivering`, counted by the pid of the worker holding their lease."""
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT leased_by, count(*) AS n FROM deliveries WHERE state = 'delivering' "
            "GROUP BY leased_by"
        )
    finally:
        await conn.close()
    counts: dict[int, int] = {}
    for row in rows:
        # Worker ids are `<host>-<pid>-<6 hex>` (dispatcher.default_worker_id).
        parts = str(row["leased_by"]).rsplit("-", 2)
        if len(parts) == 3 and parts[1].isdigit():
            counts[int(parts[1])] = counts.get(int(parts[1]), 0) + int(row["n"])
    return counts


async def deliveries_leased_by_pid(database_url: str, pid: int) -> int:
    """Deliveries still `delivering` under a lease of the worker process `pid`.

    Read right after that worker was killed, this is what it could have had in flight
    (sent, or answered but not yet recorded): the most that may arrive twice.
    """
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        # Worker ids are `<host>-<pid>-<6 hex>` (dispatcher.default_worker_id).
        count = await conn.fetchval(
            "SELECT count(*) FROM deliveries WHERE state = 'delivering' AND leased_by LIKE $1",
            f"%-{pid}-______",
        )
    finally:
        await conn.close()
    return int(count or 0)


async def attempts_timed_out(database_url: str, webhook_ids: list[str]) -> int:
    """Attempts of these webhooks recorded as timeouts: the receiver may have answered
    2xx after the worker gave up, so each may arrive again, from a live worker too."""
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM attempts WHERE error = 'timeout' AND webhook_id = ANY($1)",
            webhook_ids,
        )
    finally:
        await conn.close()
    return int(count or 0)
