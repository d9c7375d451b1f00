"""The command line of the harness: `python -m bench [--quick] [--scenario NAME] [--duration S]`."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import tempfile
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.drivers import run_scenario
from bench.procs import REPO_ROOT
from bench.receiver import find_nginx
from bench.report import add_ratios, evaluate_targets, render_table, render_targets, write_results
from bench.scenarios import (
    DRAIN_LIMIT_SECONDS,
    SCENARIOS,
    STALL_SECONDS,
    RunContext,
    paced_by_raw,
)

FULL_DURATION_SECONDS = 60.0
QUICK_DURATION_SECONDS = 5.0
FULL_BACKLOG = 1_000_000
QUICK_BACKLOG = 20_000
QUICK_STALL_SECONDS = 15.0
QUICK_DRAIN_LIMIT_SECONDS = 20.0
TABLE_WIDTH = 160
DEFAULT_RESULTS_DIR = REPO_ROOT / "bench" / "results"
# Baselines first: they need nothing from orderhooks, and the table reads them first.
DEFAULT_ORDER = (
    "raw",
    "celery",
    "single",
    "traced",
    "batch100",
    "single-1p",
    "batch100-1p",
    "nats",
    "rabbitmq",
    "fanout5",
    "steady500",
    "steady10",
    "postgres",
    "backlog",
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The harness's options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmark orderhooks against its baselines (issue 6)."
    )
    parser.add_argument("--quick", action="store_true", help="5 s loads and a 20,000 backlog")
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        help=f"run only these (repeat or comma-separate): {', '.join(DEFAULT_ORDER)}",
    )
    parser.add_argument("--duration", type=float, help="seconds of load per scenario")
    parser.add_argument(
        "--backlog", type=int, help="pending deliveries the backlog scenario builds"
    )
    parser.add_argument("--receiver", choices=("auto", "nginx", "aiohttp"), default="auto")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    parser.add_argument(
        "--profile", action="store_true", help="sample orderhooks' stacks (bench.stackprof)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the working folder (logs, data)")
    return parser.parse_args(argv)


def chosen_scenarios(requested: Sequence[str]) -> list[str]:
    """Scenario names in run order; every one when none is requested."""
    names = [n.strip() for item in requested for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(
            f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(DEFAULT_ORDER)}"
        )
    return [n for n in DEFAULT_ORDER if not names or n in names]


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kib = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")), 0)
    nginx = find_nginx()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(total_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": _version([nginx, "-v"]) if nginx else None,
        "commit": _version(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"]),
    }


def _version(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, timeout=10, check=False)
    except OSError:
        return None
    return (done.stdout or done.stderr).decode().strip() or None


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Run the chosen scenarios; returns the results document (also written as JSON)."""
    duration = args.duration or (QUICK_DURATION_SECONDS if args.quick else FULL_DURATION_SECONDS)
    backlog = args.backlog or (QUICK_BACKLOG if args.quick else FULL_BACKLOG)
    workdir = Path(tempfile.mkdtemp(prefix="orderhooks-bench-"))
    ctx = RunContext(
        workdir=workdir,
        duration=duration,
        backlog_size=backlog,
        receiver_kind=args.receiver,
        profile=args.profile,
        run_id=datetime.now(UTC).strftime("%H%M%S"),
        stall_seconds=QUICK_STALL_SECONDS if args.quick else STALL_SECONDS,
        drain_limit_seconds=max(QUICK_DRAIN_LIMIT_SECONDS, duration)
        if args.quick
        else max(DRAIN_LIMIT_SECONDS, duration),
    )
    results: dict[str, dict[str, Any]] = {}
    try:
        for name in chosen_scenarios(args.scenario):
            console.print(f"[bold]{name}[/bold]: {SCENARIOS[name].description} …")
            started = time.monotonic()
            load_before = os.getloadavg()[0]
            try:
                results[name] = run_scenario(ctx, paced_by_raw(SCENARIOS[name], results.get("raw")))
            except Exception as exc:  # one failed scenario must not lose the others' figures
                results[name] = {
                    "error": f"{type(exc).__name__}: {exc}",
                    "trace": traceback.format_exc(),
                }
                console.print(f"  [red]failed[/red]: {exc}")
            results[name]["wall_seconds"] = time.monotonic() - started
            # Other work on the machine skews every figure: keep the evidence beside them.
            results[name]["load_average_1m_after"] = os.getloadavg()[0]
            results[name]["load_average_1m_before"] = load_before
    finally:
        if args.profile or args.keep:
            console.print(f"working folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    add_ratios(results)
    _compare_backlog_ingest(results)
    document = {
        "started_at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "options": {
            "duration": duration,
            "backlog": backlog,
            "quick": args.quick,
            "receiver": args.receiver,
            "profile": args.profile,
        },
        "scenarios": results,
        "targets": evaluate_targets(results, duration),
    }
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.results_dir / f"bench-{stamp}.json"
    write_results(path, document)
    document["results_path"] = str(path)
    return document


def _compare_backlog_ingest(results: dict[str, dict[str, Any]]) -> None:
    """Judge ingest during the drain against batch100's normal ingest rate when it ran."""
    backlog, batch = results.get("backlog"), results.get("batch100")
    if not backlog or not batch or "error" in backlog or "error" in batch:
        return
    normal = batch.get("ingest_events_per_s")
    during = backlog.get("ingest_during_drain_events_per_s")
    if normal and during is not None:
        backlog["ingest_during_drain_share"] = during / normal
        backlog["ingest_normal_reference"] = "batch100"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the harness and print the table."""
    args = parse_args(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=TABLE_WIDTH)  # logs and CI: do not squeeze the table to 80
    document = run(args, console)
    render_table(document["scenarios"], console)
    render_targets(document["targets"], console)
    console.print(f"results: {document['results_path']}")
