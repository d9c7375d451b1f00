"""The real orderhooks server as a subprocess, for end-to-end and fault tests.

::

    with ServerProcess(tmp_path / "data", log_path=tmp_path / "server.log") as server:
        with server.client() as api:
            api.post("/v1/webhooks", json={...})
        server.kill()      # SIGKILL, as a crash would
        server.start()     # same data dir, same port

The process is only ever stopped by its own pid, and always at exit of the `with`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Self

import httpx

from orderhooks.testing.lifecycle import Background

LOOPBACK = "127.0.0.1"
TEST_ADMIN_KEY = "ohk_test_admin_key_for_e2e_only"
READY_TIMEOUT_SECONDS = 60.0
READY_POLL_SECONDS = 0.1
EXIT_TIMEOUT_SECONDS = 15.0
CLIENT_TIMEOUT_SECONDS = 30.0
LOG_TAIL_CHARS = 4000

TEST_WORKERS_VARIABLE = "ORDERHOOKS_TEST_WORKERS"

# Test-friendly defaults; `env=` overrides any of them.
TEST_ENV: Mapping[str, str] = {
    "ORDERHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
    "ORDERHOOKS_RETRY_SCHEDULE": "1,1,1",
    "ORDERHOOKS_RETRY_JITTER": "0",
    "ORDERHOOKS_DELIVERY_TIMEOUT": "2",
    "ORDERHOOKS_REQUIRE_AGREEMENT": "false",
    "ORDERHOOKS_LOG_FORMAT": "json",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class ServerError(RuntimeError):
    """The server process did not start, or did not stop as asked."""


class ServerProcess(Background):
    """`python -m orderhooks <command>` on a data dir, with the admin key and a free port."""

    def __init__(
        self,
        data_dir: Path,
        *,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        admin_key: str = TEST_ADMIN_KEY,
        command: Sequence[str] = ("serve",),
        port: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.log_path = log_path or self.data_dir.parent / f"{self.data_dir.name}.log"
        self.admin_key = admin_key
        self.command = tuple(command)
        self.port = port or free_port()
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._run_starts_at = 0  # where the latest run's output begins in the log file

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://{LOOPBACK}:{self.port}"

    def environment(self) -> dict[str, str]:
        """The child's environment: ours without `ORDERHOOKS_*`, the test defaults, extras."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERHOOKS_")}
        env.update(TEST_ENV)
        # `ORDERHOOKS_TEST_WORKERS=1 pytest tests/e2e` runs the suites against a one-process
        # serve; without it, serve starts as many processes as it has CPUs, like in production.
        workers = os.environ.get(TEST_WORKERS_VARIABLE)
        if workers:
            env["ORDERHOOKS_WORKERS"] = workers
        env.update(
            ORDERHOOKS_DATA_DIR=str(self.data_dir),
            ORDERHOOKS_PORT=str(self.port),
            ORDERHOOKS_HOST=LOOPBACK,
            ORDERHOOKS_ADMIN_KEY=self.admin_key,
        )
        env.update(self.extra_env)
        return env

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = READY_TIMEOUT_SECONDS) -> Self:
        """Start the process and wait until `/readyz` answers 200."""
        if self.running:
            raise ServerError("the server is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._run_starts_at = self._log.tell()
        self._log.write(f"\n==== start {' '.join(self.command)} at {time.time():.3f}\n".encode())
        self._log.flush()
        # The command is this interpreter and the orderhooks module: no untrusted input.
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "orderhooks", *self.command],
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own session, so a terminal's Ctrl-C reaches the test runner only.
            start_new_session=True,
        )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Poll `/readyz` until 200; ServerError when the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise ServerError(f"the server exited with {code}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(READY_POLL_SECONDS)
        raise ServerError(f"/readyz did not answer 200 within {timeout} s:\n{self.log_tail()}")

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        """The pid of the current process, if any."""
        return None if self.process is None else self.process.pid

    def kill(self) -> int | None:
        """SIGKILL the process (a crash) and reap it; its exit code."""
        return self._signal_and_wait(signal.SIGKILL, EXIT_TIMEOUT_SECONDS)

    def terminate(self, timeout: float = EXIT_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM the process and wait for it to exit; its exit code.

        Raises ServerError (after a SIGKILL) when it does not exit within `timeout`.
        """
        return self._signal_and_wait(signal.SIGTERM, timeout)

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(EXIT_TIMEOUT_SECONDS)
                raise ServerError(f"pid {process.pid} ignored {sig.name} for {timeout} s") from None
        self._close_log()
        return process.returncode

    def restart(self, timeout: float = READY_TIMEOUT_SECONDS) -> Self:
        """SIGKILL the process if it runs, then start again on the same data dir and port."""
        self.kill()
        return self.start(timeout)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """The graceful stop: SIGTERM and wait (`terminate`, which also gives the exit code)."""
        self.terminate()

    def stop_at_exit(self) -> None:
        """The end of a `with` is a crash (SIGKILL): a test never waits for a drain it did
        not ask for, and what it checks must survive one."""
        self.kill()

    # ------------------------------------------------------------ clients and logs

    def headers(self, key: str | None = None) -> dict[str, str]:
        """The authorization header for `key` (default: the admin key)."""
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    def client(self, key: str | None = None) -> httpx.Client:
        """A synchronous API client authenticated with `key` (default: the admin key)."""
        return httpx.Client(
            base_url=self.base_url, headers=self.headers(key), timeout=CLIENT_TIMEOUT_SECONDS
        )

    def async_client(self, key: str | None = None) -> httpx.AsyncClient:
        """An asynchronous API client authenticated with `key` (default: the admin key)."""
        return httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers(key), timeout=CLIENT_TIMEOUT_SECONDS
        )

    def log_text(self) -> str:
        """Everything the process (and its earlier runs) wrote to stdout and stderr."""
        return self._read_log(0)

    def run_log_text(self) -> str:
        """What the latest run alone wrote: a line an earlier run wrote (its "shutting
        down", say) must not pass for this run's."""
        return self._read_log(self._run_starts_at)

    def _read_log(self, offset: int) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """The end of the log, for error messages."""
        return self.log_text()[-chars:]
