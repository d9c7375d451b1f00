"""A broker source URL that cannot be used stops `orderhooks serve` at start, naming
ORDERHOOKS_SOURCES and never repeating the password (docs/operations.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli_support import cli_env, run_cli


@pytest.mark.parametrize(
    "sources",
    [
        "kafka://user:hunter2pw@127.0.0.1:9092/orders",
        "amqp://user:hunter2pw@127.0.0.1:5672/",
        "nats://user:hunter2pw@127.0.0.1:4222/ORDERS?subject=orders.>",
    ],
)
@pytest.mark.parametrize("log_format", ["console", "json"])
def test_a_bad_source_stops_serve_at_start(tmp_path: Path, sources: str, log_format: str) -> None:
    env = cli_env(tmp_path / "data", ORDERHOOKS_SOURCES=sources, ORDERHOOKS_LOG_FORMAT=log_format)
    done = run_cli(["serve", "--port", "0"], env, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "ORDERHOOKS_SOURCES" in done.stderr
    assert "hunter2pw" not in done.stdout + done.stderr
