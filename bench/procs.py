"""Starting, sampling and stopping the processes of a benchmark run.

CPU time is read from the kernel (psutil over /proc) at the start and end of a
measurement window; resident memory is sampled by a background thread. Every
process the harness starts is stopped by its own pid, gracefully first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # type: ignore[import-untyped]  # psutil ships no type information
import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
RSS_SAMPLE_SECONDS = 0.2
STOP_GRACE_SECONDS = 20.0
MIB = 1024 * 1024


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: ours, the repository on the path, and `extra`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def start_process(
    command: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `command` with stdout and stderr going to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env(env),
            cwd=REPO_ROOT,
        )


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop one process we started, and its children, by pid: `sig` first, then SIGKILL."""
    if process.poll() is not None:
        return
    children = _children(process.pid)
    process.send_signal(sig)
    try:
        process.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.wait(2.0)
        with contextlib.suppress(psutil.Error):
            child.kill()


def _children(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def wait_http_ok(url: str, process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Wait until GET `url` answers 200; fail early if `process` exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} was ready")
        try:
            answer = requests.get(url, timeout=1.0)
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text[:200]}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout}s: {last}")


def _tree(pids: Sequence[int]) -> list[psutil.Process]:
    processes = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            processes.append(root)
            processes.extend(root.children(recursive=True))
    return processes


def cpu_snapshot(pids: Sequence[int]) -> dict[int, float]:
    """User + system CPU seconds of each process in the trees rooted at `pids`."""
    out: dict[int, float] = {}
    for proc in _tree(pids):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            out[proc.pid] = float(times.user + times.system)
    return out


def cpu_between(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    """CPU seconds spent between two snapshots (processes born meanwhile count from 0)."""
    return sum(max(0.0, spent - before.get(pid, 0.0)) for pid, spent in after.items())


def pids_named(name: str) -> list[int]:
    """Pids of processes whose name is `name` (to account for a shared server's CPU)."""
    found = []
    for proc in psutil.process_iter(["name"]):
        if proc.info.get("name") == name:
            found.append(int(proc.pid))
    return found


@dataclass
class RssSampler:
    """Samples the resident memory of process trees in a background thread.

    `peak_by_root` is the highest RSS of each root (with its children) in MiB,
    `peak_by_process` that of each process on its own;
    `timeline` is `(unix time, total MiB)` for judging whether memory stays flat.
    """

    pids: Sequence[int]
    interval: float = RSS_SAMPLE_SECONDS
    peak_by_root: dict[int, float] = field(default_factory=dict)
    peak_by_process: dict[int, float] = field(default_factory=dict)
    timeline: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RssSampler:
        """Begin sampling."""
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling (takes one last sample)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                self.sample()
                return

    def sample(self) -> None:
        """Record one sample of every tree."""
        total = 0.0
        for root in self.pids:
            rss = 0.0
            for proc in _tree([root]):
                with contextlib.suppress(psutil.Error):
                    own = proc.memory_info().rss / MIB
                    rss += own
                    self.peak_by_process[proc.pid] = max(
                        self.peak_by_process.get(proc.pid, 0.0), own
                    )
            total += rss
            self.peak_by_root[root] = max(self.peak_by_root.get(root, 0.0), rss)
        self.timeline.append((time.time(), total))

    def window(self, since: float, until: float) -> list[float]:
        """The total RSS samples (MiB) taken between two unix times."""
        return [mib for at, mib in self.timeline if since <= at <= until]


def python_command(*args: str) -> list[str]:
    """`python <args>` with the interpreter running the harness (the project's venv)."""
    return [sys.executable, *args]
