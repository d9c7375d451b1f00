"""Helpers for the command-line tests: real `python -m orderhooks` subprocesses on loopback.

Every process started through the `spawn` fixture (integration/conftest.py) is killed
by pid in its teardown, whatever the test did.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from orderhooks.testing.server import free_port

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 60.0
RUN_TIMEOUT_SECONDS = 120.0
HTTP_TIMEOUT_SECONDS = 30.0
# Seconds a refused start takes at most; a process that started instead is killed then.
REFUSAL_TIMEOUT_SECONDS = 20.0


def http_get(url: str, **kwargs: Any) -> requests.Response:
    """GET with a timeout, so a hung server fails the test instead of stalling it."""
    return requests.get(url, timeout=HTTP_TIMEOUT_SECONDS, **kwargs)


def http_post(url: str, **kwargs: Any) -> requests.Response:
    """POST with a timeout."""
    return requests.post(url, timeout=HTTP_TIMEOUT_SECONDS, **kwargs)


def cli_env(data_dir: Path, **variables: str) -> dict[str, str]:
    """The environment of a CLI process: no ORDERHOOKS_* of the caller, a tmp data dir,
    JSON logs, and the given variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERHOOKS_")}
    env.update(
        ORDERHOOKS_DATA_DIR=str(data_dir),
        ORDERHOOKS_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    env.update(variables)
    return env


def run_cli(
    args: list[str], env: Mapping[str, str], timeout: float = RUN_TIMEOUT_SECONDS
) -> subprocess.CompletedProcess[str]:
    """Run `python -m orderhooks ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "orderhooks", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_usage_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    """The command refused its arguments or configuration: exit 2, `message` on standard
    error, nothing on standard output."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert result.stdout == ""


@dataclass
class CliProcess:
    """A long-running orderhooks process whose output goes to files (pipes could fill up)."""

    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    def stdout(self) -> str:
        """Everything written to standard output so far."""
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        """Everything written to standard error so far."""
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait_http(self, url: str, timeout: float = START_TIMEOUT_SECONDS) -> requests.Response:
        """Poll `url` until it answers 200; fail with the process output when it never does."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                pytest.fail(
                    f"process exited with {self.popen.returncode}\n"
                    f"stdout:\n{self.stdout()}\nstderr:\n{self.stderr()}"
                )
            try:
                response = requests.get(url, timeout=2)
            except requests.RequestException as exc:
                last = exc
            else:
                if response.status_code == 200:
                    return response
                last = response.status_code
            time.sleep(0.1)
        pytest.fail(f"{url} never answered 200 (last: {last})\nstderr:\n{self.stderr()}")

    def wait_output(self, text: str, timeout: float = START_TIMEOUT_SECONDS) -> str:
        """Wait until standard output contains `text`; returns the output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.stdout()
            if text in out:
                return out
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"{text!r} never printed\nstdout:\n{self.stdout()}\nstderr:\n{self.stderr()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """Send `sig` and wait for the exit code."""
        self.popen.send_signal(sig)
        return self.popen.wait(timeout=timeout)


class Spawner:
    """Starts CLI processes and remembers them for the teardown."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._started: list[CliProcess] = []

    def __call__(self, args: list[str], env: Mapping[str, str]) -> CliProcess:
        """Start `python -m orderhooks ARGS` in the background."""
        n = len(self._started)
        out, err = self._workdir / f"proc{n}.out", self._workdir / f"proc{n}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            popen = subprocess.Popen(
                [sys.executable, "-m", "orderhooks", *args],
                env=dict(env),
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
            )
        process = CliProcess(popen, out, err)
        self._started.append(process)
        return process

    def kill_all(self) -> None:
        """Kill, by pid, every process still running."""
        for process in self._started:
            if process.popen.poll() is None:
                process.popen.kill()
                process.popen.wait(timeout=30)


def start_serve(
    spawn: Spawner,
    data_dir: Path,
    *,
    role: str = "serve",
    extra_args: tuple[str, ...] = (),
    **variables: str,
) -> tuple[CliProcess, str]:
    """Start `orderhooks ROLE` on a free port and wait for /healthz; returns it and its URL."""
    port = free_port()
    process = spawn(
        [role, "--host", "127.0.0.1", "--port", str(port), *extra_args],
        cli_env(data_dir, **variables),
    )
    base = f"http://127.0.0.1:{port}"
    process.wait_http(f"{base}/healthz")
    return process, base


def start_simulation_target(
    spawn: Spawner, data_dir: Path, admin_key: str, **variables: str
) -> tuple[CliProcess, str]:
    """A `serve` that `orderhooks simulate` can post to: `admin_key` as its admin key and
    no agreement required before ingest."""
    return start_serve(
        spawn,
        data_dir,
        ORDERHOOKS_ADMIN_KEY=admin_key,
        ORDERHOOKS_REQUIRE_AGREEMENT="false",
        **variables,
    )
