"""The fast receiver: Debian's nginx answering 200, or an aiohttp process when nginx is missing.

Either way the receiver runs in its own process and writes one line per request,
`<unix seconds with ms> <webhook-id> <path> <status>`, to an arrival log that the
harness joins with the load generator's acknowledgements. Run as a module
(`python -m bench.receiver --port P --log FILE`) it is the aiohttp fallback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.aio import run_async

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
LOG_FLUSH_SECONDS = 0.5
STOP_GRACE_SECONDS = 10.0

# One worker: the machine has two cores and the service under test needs the other.
# keepalive_requests is raised so pooled clients are never made to reconnect.
NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
worker_rlimit_nofile 16384;
events {{
    worker_connections 8192;
    multi_accept on;
}}
http {{
    access_log off;
    log_format arrivals '$msec $http_webhook_id $uri $status';
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_max_body_size 16m;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        access_log {log} arrivals buffer=256k flush=1s;
        location / {{
            return 200;
        }}
    }}
}}
"""


def find_nginx() -> str | None:
    """The nginx binary, if installed."""
    for candidate in NGINX_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("nginx")


@dataclass
class Arrival:
    """One request the receiver answered."""

    at: float
    webhook_id: str
    path: str
    status: int


class ArrivalLog:
    """Reads the arrival log as it grows, counting lines without rereading the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._lines = 0

    def count(self) -> int:
        """Lines written so far (only complete lines)."""
        if not self.path.exists():
            return self._lines
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        complete = chunk.rfind(b"\n") + 1
        self._lines += chunk.count(b"\n", 0, complete)
        self._offset += complete
        return self._lines

    def read(self) -> list[Arrival]:
        """Every arrival logged so far."""
        if not self.path.exists():
            return []
        arrivals = []
        with self.path.open("rb") as handle:
            for line in handle:
                parts = line.split()
                if len(parts) == 4:
                    at, webhook_id, path, status = parts
                    arrivals.append(
                        Arrival(float(at), webhook_id.decode(), path.decode(), int(status))
                    )
        return arrivals


@dataclass
class Receiver:
    """A running receiver process and its arrival log."""

    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log: ArrivalLog

    def url(self, path: str = "/") -> str:
        """The URL of `path` on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        """Stop gracefully, so that buffered arrival lines reach the log."""
        if self.process.poll() is not None:
            return
        # nginx flushes its access log buffer on a graceful shutdown (SIGQUIT).
        self.process.send_signal(signal.SIGQUIT if self.kind == "nginx" else signal.SIGTERM)
        try:
            self.process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"receiver exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"receiver did not listen on {port} within {timeout}s")


def start_receiver(workdir: Path, port: int, kind: str = "auto") -> Receiver:
    """Start a receiver on 127.0.0.1:`port`, logging arrivals under `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "arrivals.log"
    nginx = find_nginx() if kind in ("auto", "nginx") else None
    if kind == "nginx" and nginx is None:
        raise RuntimeError("nginx is not installed")
    if nginx is not None:
        conf = workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(workdir=workdir, port=port, log=log_path))
        command = [nginx, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)]
        chosen = "nginx"
    else:
        command = [
            sys.executable,
            "-m",
            "bench.receiver",
            "--port",
            str(port),
            "--log",
            str(log_path),
        ]
        chosen = "aiohttp"
    stderr = (workdir / "receiver.stderr").open("wb")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=_env())
    stderr.close()
    receiver = Receiver(chosen, port, process, ArrivalLog(log_path))
    try:
        _wait_listening(port, process, 10.0)
    except RuntimeError:
        receiver.stop()
        raise
    return receiver


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


# ---------------------------------------------------------------- the aiohttp fallback


async def _serve(port: int, log_path: Path) -> None:
    from aiohttp import web

    lines: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        webhook_id = request.headers.get("webhook-id", "-")
        lines.append(f"{time.time():.3f} {webhook_id} {request.path} 200\n")
        return web.Response(status=200)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with log_path.open("a") as log:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LOG_FLUSH_SECONDS)
            log.writelines(lines)
            lines.clear()
            log.flush()
    await runner.cleanup()


def main() -> None:
    """Run the aiohttp receiver until SIGTERM."""
    parser = argparse.ArgumentParser(description="orderhooks bench receiver (aiohttp)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    run_async(_serve(args.port, args.log))


if __name__ == "__main__":
    main()
