"""orderhooks under test: `serve` on SQLite, or 1 `api` + N `worker` on PostgreSQL.

The processes run from the project's own command line (`python -m orderhooks ...`),
with a temporary data dir, no agreement required, loopback allowed by the network
guard, and a known admin key. `--profile` wraps each in `bench.stackprof`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.procs import (
    child_env,
    free_port,
    python_command,
    start_process,
    stop_process,
    wait_http_ok,
)
from orderhooks.testing import databases

ADMIN_KEY = "bench-admin-" + uuid.uuid4().hex
READY_TIMEOUT_SECONDS = 90.0
# Another server (e.g. a private cluster with pg_stat_statements) through BENCH_PG_ADMIN_URL.
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ALL_EVENT_TYPES = ["order.new", "order.status_update", "order.courier_update"]
WEBHOOK_MAX_CONCURRENCY = 64  # the API's ceiling; the default 8 would cap one receiver


@dataclass
class Orderhooks:
    """Running orderhooks processes; the first one serves the API."""

    base_url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    admin_key: str = ADMIN_KEY

    @property
    def pids(self) -> list[int]:
        """Pids of every orderhooks process."""
        return [p.pid for p in self.processes]

    def create_webhook(self, url: str) -> str:
        """Create an active webhook for every account and event type; returns its id."""
        body: dict[str, Any] = {
            "url": url,
            "accounts": ["*"],
            "eventTypes": ALL_EVENT_TYPES,
            "maxConcurrency": WEBHOOK_MAX_CONCURRENCY,
            "description": "bench",
        }
        answer = requests.post(
            f"{self.base_url}/v1/webhooks",
            json=body,
            headers={"authorization": f"Bearer {self.admin_key}"},
            timeout=10,
        )
        if answer.status_code != 201:
            raise RuntimeError(f"creating a webhook failed: {answer.status_code} {answer.text}")
        webhook_id: str = answer.json()["id"]
        return webhook_id

    def stop(self) -> None:
        """Stop every process (SIGTERM, so profiles and pending writes are flushed)."""
        for process in reversed(self.processes):
            stop_process(process)


def _command(role: str, workdir: Path, profile: bool) -> list[str]:
    if profile:
        out = workdir / f"profile-{role}-{len(list(workdir.glob('profile-*')))}.txt"
        return python_command("-m", "bench.stackprof", str(out), "orderhooks", role)
    return python_command("-m", "orderhooks", role)


def _env(data_dir: Path, port: int, extra: Mapping[str, str]) -> dict[str, str]:
    return {
        "ORDERHOOKS_DATA_DIR": str(data_dir),
        "ORDERHOOKS_HOST": "127.0.0.1",
        "ORDERHOOKS_PORT": str(port),
        "ORDERHOOKS_ADMIN_KEY": ADMIN_KEY,
        "ORDERHOOKS_REQUIRE_AGREEMENT": "false",
        "ORDERHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
        "ORDERHOOKS_LOG_FORMAT": "json",
        **extra,
    }


def start_serve(
    workdir: Path, extra: Mapping[str, str] | None = None, profile: bool = False
) -> Orderhooks:
    """`orderhooks serve` on SQLite in `workdir`, ready to take requests."""
    port = free_port()
    env = _env(workdir / "data", port, extra or {})
    service = Orderhooks(f"http://127.0.0.1:{port}")
    process = start_process(_command("serve", workdir, profile), workdir / "orderhooks.log", env)
    service.processes.append(process)
    try:
        wait_http_ok(f"{service.base_url}/readyz", process, READY_TIMEOUT_SECONDS)
    except RuntimeError:
        service.stop()
        raise
    return service


def start_cluster(
    workdir: Path, database_url: str, workers: int, profile: bool = False
) -> Orderhooks:
    """`orderhooks migrate`, then 1 `api` and `workers` `worker` processes on PostgreSQL."""
    extra = {"ORDERHOOKS_DATABASE_URL": database_url}
    migrate = subprocess.run(
        python_command("-m", "orderhooks", "migrate"),
        env={**child_env(), **_env(workdir / "data", free_port(), extra)},
        capture_output=True,
        timeout=120,
        check=False,
    )
    if migrate.returncode != 0:
        raise RuntimeError(f"orderhooks migrate failed: {migrate.stderr.decode()[-2000:]}")
    api_port = free_port()
    service = Orderhooks(f"http://127.0.0.1:{api_port}")
    try:
        roles = [("api", api_port)] + [("worker", free_port()) for _ in range(workers)]
        for index, (role, port) in enumerate(roles):
            env = _env(workdir / "data", port, extra)
            log = workdir / f"orderhooks-{role}-{index}.log"
            service.processes.append(start_process(_command(role, workdir, profile), log, env))
        for process, (_, port) in zip(service.processes, roles, strict=True):
            wait_http_ok(f"http://127.0.0.1:{port}/readyz", process, READY_TIMEOUT_SECONDS)
    except RuntimeError:
        service.stop()
        raise
    return service


async def _server_pids() -> list[int]:
    import asyncpg
    import psutil

    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        backend = psutil.Process(int(await conn.fetchval("SELECT pg_backend_pid()")))
        postmaster = backend.parent()
    finally:
        await conn.close()
    return [] if postmaster is None else [postmaster.pid]


def server_pids() -> list[int]:
    """The postmaster of the PostgreSQL server the run uses: its process tree (every
    backend, those born during the window too) is that server's CPU alone, not that of
    another cluster on the machine."""
    return asyncio.run(_server_pids())


def create_database() -> str:
    """A fresh PostgreSQL database for one run; returns its URL."""
    return asyncio.run(databases.create_database(PG_ADMIN_URL, "oh_bench"))


def drop_database(url: str) -> None:
    """Drop a database made by `create_database`."""
    asyncio.run(databases.drop_database(PG_ADMIN_URL, url))
