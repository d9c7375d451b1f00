"""Fixtures of the cluster suite: the processes of a test, killed by pid at its end, with
their logs attached to the report of a failed test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.cluster import Cluster
from tests.support.processes import log_tails_on_failure

LOG_TAIL_ON_FAILURE_CHARS = 4000


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """An empty cluster; the test adds and starts its processes."""
    processes = Cluster(tmp_path)
    try:
        yield processes
    finally:
        processes.close()


# The end of every process log, in a failed test's report.
pytest_runtest_makereport = log_tails_on_failure(
    "cluster",
    Cluster,
    lambda processes: [
        (f"{name} (tail)", tail) for name, tail in processes.log_tails(LOG_TAIL_ON_FAILURE_CHARS)
    ],
)
