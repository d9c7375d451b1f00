"""The child processes a test started itself: stopped by their pid, never by name, and
the end of their logs attached to the report of a failed test."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Generator, Iterable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
ReportHook = Callable[[pytest.Item, pytest.CallInfo[None]], Generator[None, Any, None]]


def terminate(process: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float) -> None:
    """SIGTERM `process` and reap it; SIGKILL it when it has not exited after `timeout`."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def log_tails_on_failure(
    fixture: str, kind: type[T], tails: Callable[[T], Iterable[tuple[str, str]]]
) -> ReportHook:
    """A `pytest_runtest_makereport` hook for a conftest: when a test fails, its fixture
    `fixture` (a `kind`) gives the report its `tails(value)`, (title, log tail) sections."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, None]:
        outcome = yield
        report = outcome.get_result()
        value = getattr(item, "funcargs", {}).get(fixture)
        if report.failed and isinstance(value, kind):
            report.sections.extend(tails(value))

    return pytest_runtest_makereport
