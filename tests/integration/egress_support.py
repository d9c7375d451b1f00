"""Helpers of the egress proxy tests: Debian's tinyproxy as a process of the test, a
certificate authority made on the spot, and a recording HTTP(S) receiver on the test's
own event loop."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from orderhooks.testing.certificates import issue, make_ca
from orderhooks.testing.server import free_port
from tests.support.processes import terminate

LOOPBACK = "127.0.0.1"
START_TIMEOUT_SECONDS = 10.0
# A listener with a backlog of 0 holds one or two pending connections: a few more fill it.
BACKLOG_FILLERS = 4
BACKLOG_SETTLE_SECONDS = 0.2


# ---------------------------------------------------------------- tinyproxy


def tinyproxy_binary() -> str:
    """Debian's tinyproxy; the test fails (never skips) when it is missing."""
    found = shutil.which("tinyproxy") or shutil.which("tinyproxy", path="/usr/sbin")
    if found is None:
        pytest.fail("tinyproxy is not installed: run `make system-deps`")
    return found


class TinyProxy:
    """A tinyproxy process on a loopback port, configured in its own directory."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int,
        connect_ports: list[int],
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.port = port
        self.log_path = directory / "tinyproxy.log"
        self.config_path = directory / "tinyproxy.conf"
        lines = [
            f"Port {port}",
            f"Listen {LOOPBACK}",
            "Timeout 10",
            f"Allow {LOOPBACK}",
            "MaxClients 50",
            "LogLevel Info",
            f'LogFile "{self.log_path}"',
            f'PidFile "{directory / "tinyproxy.pid"}"',
            # Without a ConnectPort line tinyproxy tunnels to any port: name them.
            *(f"ConnectPort {p}" for p in connect_ports),
            *([f"BasicAuth {basic_auth[0]} {basic_auth[1]}"] if basic_auth else []),
        ]
        self.config_path.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> TinyProxy:
        """Start it in the foreground (-d) and wait until it accepts connections."""
        self.process = subprocess.Popen(
            [tinyproxy_binary(), "-d", "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=(self.directory / "stdout.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"tinyproxy exited: {self.log()}")
            try:
                socket.create_connection((LOOPBACK, self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"tinyproxy did not listen within {START_TIMEOUT_SECONDS} s")

    def stop(self) -> None:
        """SIGTERM the process started here, by its pid, and reap it."""
        if self.process is not None:
            terminate(self.process, START_TIMEOUT_SECONDS)
        self.process = None

    def log(self) -> str:
        """What tinyproxy logged (connections, requests, CONNECTs)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


# ---------------------------------------------------------------- a host that drops connections


@contextlib.contextmanager
def unanswering_port(port: int | None = None) -> Iterator[int]:
    """A loopback port whose connections never complete, as on a host that is down
    behind a firewall dropping packets: a listener that never accepts, its backlog
    filled, so the kernel drops every further SYN and a connect waits until it gives up."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind((LOOPBACK, port or 0))
        listener.listen(0)
        bound = int(listener.getsockname()[1])
        for _ in range(BACKLOG_FILLERS):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            fillers.append(filler)
            with contextlib.suppress(BlockingIOError):
                filler.connect((LOOPBACK, bound))
        time.sleep(BACKLOG_SETTLE_SECONDS)
        yield bound
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# ---------------------------------------------------------------- certificates


@dataclass
class CertificateAuthority:
    """A certificate authority of the test, and a server certificate it issued for
    127.0.0.1 and localhost."""

    ca_pem: bytes
    cert_path: Path
    key_path: Path

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this authority."""
        return ssl.create_default_context(cadata=self.ca_pem.decode())

    def server_context(self) -> ssl.SSLContext:
        """The HTTPS receiver's context."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def make_authority(directory: Path) -> CertificateAuthority:
    """A fresh CA and a server certificate for the loopback names, valid for a day."""
    ca = make_ca()
    server = issue(ca, "localhost", server_address=LOOPBACK, dns_names=("localhost",))
    cert_path, key_path = server.write(directory, "server")
    return CertificateAuthority(ca.cert_pem.encode(), cert_path, key_path)


# ---------------------------------------------------------------- receivers on this loop


@dataclass
class Recorder:
    """An HTTP or HTTPS server on this test's loop that answers 200 and records."""

    port: int
    scheme: str
    received: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    def url(self, host: str = LOOPBACK, path: str = "/hook") -> str:
        """The URL of `path` on this server, by `host`."""
        return f"{self.scheme}://{host}:{self.port}{path}"


@contextlib.asynccontextmanager
async def recorder(
    ssl_context: ssl.SSLContext | None = None, port: int | None = None
) -> AsyncIterator[Recorder]:
    """Serve a Recorder on a loopback port (free unless given) until the block ends."""
    rec = Recorder(port=port or free_port(), scheme="https" if ssl_context else "http")

    async def handle(request: web.Request) -> web.Response:
        rec.received.append((request.path, await request.read(), dict(request.headers)))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, rec.port, ssl_context=ssl_context).start()
    try:
        yield rec
    finally:
        await runner.cleanup()
