"""Stopping a child process a test started itself: by its pid, never by name."""

from __future__ import annotations

import signal
import subprocess


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
