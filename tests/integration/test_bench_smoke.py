"""A smoke run of the benchmark harness: real receiver, real load generator, real orderhooks.

The harness is not part of `make test`; these few seconds of it are, so that it
keeps working as the service changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench.receiver import find_nginx

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_module(module: str, *args: str, timeout: float) -> str:
    """Run `python -m module args` from the repository; asserts it succeeded and returns
    what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def run_bench(tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run `python -m bench` with `args`; returns the results document it wrote."""
    results_dir = tmp_path / "results"
    printed = run_module("bench", "--quick", "--results-dir", str(results_dir), *args, timeout=240)
    written = sorted(results_dir.glob("bench-*.json"))
    assert len(written) == 1, printed
    document: dict[str, Any] = json.loads(written[0].read_text())
    return document


def assert_delivered(result: dict[str, Any]) -> None:
    """The scenario delivered every acknowledged event, and the receiver logged each one."""
    assert "error" not in result, result.get("trace")
    assert result["events_acknowledged"] > 0
    assert result["deliveries"] > 0
    assert result["deliveries"] == result["expected_deliveries"]
    assert result["undelivered"] == 0
    assert result["deliveries_per_s"] > 0
    assert result["latency_samples"] == result["deliveries"]
    assert 0 <= result["latency_ms_p50"] <= result["latency_ms_p99"]
    assert result["peak_rss_mb"] > 0


def test_single_order_scenario_delivers_through_orderhooks(tmp_path: Path) -> None:
    document = run_bench(tmp_path, "--scenario", "single", "--duration", "2")
    result = document["scenarios"]["single"]
    assert_delivered(result)
    assert result["ingest_events_per_s"] > 0
    assert result["cpu_s_per_1k"] > 0
    assert result["receiver_non_2xx"] == 0
    assert {t["target"] for t in document["targets"]} >= {
        "single: ≥ 0.25× the raw ceiling end to end"
    }
    # serve's default: one process per CPU (the one owning the store, and senders).
    processes = result["cpu_seconds_by_process"]
    assert len(processes) == len(os.sched_getaffinity(0)), processes


@pytest.mark.parametrize("receiver", ["nginx", "aiohttp"])
def test_raw_ceiling_reaches_the_receiver(tmp_path: Path, receiver: str) -> None:
    if receiver == "nginx" and find_nginx() is None:
        pytest.fail("nginx is not installed (Debian package nginx)")
    document = run_bench(tmp_path, "--scenario", "raw", "--duration", "1", "--receiver", receiver)
    assert_delivered(document["scenarios"]["raw"])
    assert document["scenarios"]["raw"]["of_raw_ceiling"] == 1.0


@pytest.mark.parametrize("broker", ["nats", "rabbitmq"])
def test_broker_scenario_consumes_and_delivers_everything(tmp_path: Path, broker: str) -> None:
    document = run_bench(tmp_path, "--scenario", broker, "--duration", "1")
    result = document["scenarios"][broker]
    assert "error" not in result, result.get("trace")
    assert result["messages_per_s_consumed"] > 0
    assert result["deliveries"] == result["expected_deliveries"] == result["messages"]
    assert result["undelivered"] == 0 and result["duplicates"] == 0
    assert result["deliveries_per_s"] > 0
    names = {t["target"] for t in document["targets"]}
    assert f"{broker}: a broker source ingests at least as fast as batch100" in names


def test_the_writer_benchmark_runs() -> None:
    """`python -m bench.writer` (the SQLite writer alone) runs and reports its figures."""
    printed = run_module("bench.writer", "--rounds", "2", timeout=120)
    assert "writer CPU" in printed and "write calls" in printed, printed
