"""Fixtures of the cluster suite: the processes of a test, killed by pid at its end, with
their logs attached to the report of a failed test."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.cluster import Cluster

LOG_TAIL_ON_FAILURE_CHARS = 4000


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """An empty cluster; the test adds and starts its processes."""
    processes = Cluster(tmp_path)
    try:
        yield processes
    finally:
        processes.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Attach the end of every process log to a failed test's report."""
    outcome = yield
    report = outcome.get_result()
    processes = getattr(item, "funcargs", {}).get("cluster")
    if report.failed and isinstance(processes, Cluster):
        for name, tail in processes.log_tails(LOG_TAIL_ON_FAILURE_CHARS):
            report.sections.append((f"{name} (tail)", tail))
