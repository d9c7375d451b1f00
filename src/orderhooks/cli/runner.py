"""The process runner: one `orderhooks serve`, `api` or `worker` process from start to exit.

Start: data dir, store, migrations, the admin key (docs/api.md, authentication), the
listening sockets (an address that cannot be had stops the start here), the delivery
workers (serve, worker), the HTTP server, the retention loop. Stop, on SIGTERM or SIGINT:
the HTTP server stops accepting and finishes the requests in flight, then the
dispatcher drains its attempts in flight (bounded) and records their outcomes, then
the store commits and closes, and the process exits 0. A second signal cuts the
waits short.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import uvicorn

from orderhooks.aio import until_done_or_set
from orderhooks.cli.listen import LISTEN_BACKLOG, close_listeners, open_listeners
from orderhooks.clock import utc_now
from orderhooks.config import Settings
from orderhooks.delivery.dispatcher import Dispatcher, in_flight_bound
from orderhooks.delivery.netguard import NetworkGuard
from orderhooks.delivery.senders import SenderPool, sender_config
from orderhooks.delivery.transport import AiohttpTransport, Transport
from orderhooks.domain.apikeys import hash_api_key, presented_key
from orderhooks.domain.model import Role
from orderhooks.exceptions import OrderhooksError, StartError
from orderhooks.logging import configure_logging, get_logger
from orderhooks.metrics import Metrics
from orderhooks.service import keys
from orderhooks.service.context import ServiceContext
from orderhooks.service.ingest import ingest_items
from orderhooks.sources.runtime import SourceSet, start_sources
from orderhooks.store import Store, make_data_dir, open_store
from orderhooks.store.base import IngestItem, IngestResult, MessageKey
from orderhooks.tracing import Tracing, configure_tracing
from orderhooks.web.app import ProcessRole, create_app
from orderhooks.web.context import ApiContext

DRAIN_TIMEOUT_SECONDS = 30.0  # bound on finishing delivery attempts in flight at shutdown
HTTP_GRACEFUL_SHUTDOWN_SECONDS = 30  # bound on finishing HTTP requests in flight
# How long an idle client connection stays open. uvicorn's default, 5 s, is also the
# idle timeout of httpx's pool: a client reusing a connection at that moment sends its
# request as the server closes it, and gets no answer (an ingest it must retry without
# knowing). Longer than the usual client pools and load balancers (60 s) keep theirs, so
# the client always gives up on an idle connection first.
HTTP_KEEP_ALIVE_SECONDS = 75
RETENTION_INTERVAL_SECONDS = 3600.0
ADMIN_KEY_FILE = "admin.key"
ENV_ADMIN_KEY_NAME = "admin (ORDERHOOKS_ADMIN_KEY)"
FIRST_ADMIN_KEY_NAME = "admin (first start)"

log = get_logger("orderhooks.runner")


def prepare_store_command(settings: Settings) -> None:
    """What a command working on the store (`migrate`, `keys`, `secrets`) sets up first:
    its log on standard error (left unconfigured, structlog prints on standard output,
    into the results a script reads there, `keys list --json`), and the data dir where
    the database lives in it. On PostgreSQL no data dir is made: such a command uses
    nothing in it (the admin key file and the dashboard's are the servers')."""
    configure_logging(settings.log_format)
    if not settings.is_postgres:
        make_data_dir(settings.data_dir)


async def open_migrated_store(settings: Settings) -> Store:
    """Open the configured store and bring its schema up to date."""
    store = open_store(settings)
    await store.open()
    try:
        await store.migrate()
    except BaseException:
        await store.close()
        raise
    return store


@contextlib.asynccontextmanager
async def migrated_store(settings: Settings) -> AsyncIterator[Store]:
    """The configured store, migrated, for one command's work (`prepare_store_command`
    done first); closed when the work ends."""
    prepare_store_command(settings)
    store = await open_migrated_store(settings)
    try:
        yield store
    finally:
        await store.close()


async def check_stored_secrets(store: Store) -> None:
    """Open every stored secret before serving: SecretUnreadable (a ConfigError naming
    ORDERHOOKS_ENCRYPTION_KEYS, so the process refuses to start) when one does not open;
    a warning when secrets are or will be stored unencrypted or under an older key."""
    report = await store.check_secrets()
    if not store.box.encrypts:
        log.warning(
            "ORDERHOOKS_ENCRYPTION_KEYS is not set: webhook secrets, header values and "
            "client keys are stored in plaintext (docs/security.md)"
        )
    elif report.plaintext or report.stale:
        log.warning(
            "stored secrets not sealed with the first key: run orderhooks secrets reencrypt",
            plaintext=report.plaintext,
            stale=report.stale,
            key_id=report.key_ids[0],
        )
    else:
        log.info("secrets at rest encrypted", key_ids=list(report.key_ids), values=report.values)


def write_admin_key_file(data_dir: Path, key: str) -> Path:
    """Write `key` and a newline to `<data dir>/admin.key`, readable by the owner only."""
    path = data_dir / ADMIN_KEY_FILE
    # Created with mode 0600 from the start, so the key is never readable by others,
    # not even for the moment between creating and chmod-ing the file.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older file may have had a wider mode
        os.write(fd, (key + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


async def ensure_admin_key(store: Store, settings: Settings, now: datetime) -> str | None:
    """Make sure an admin can sign in (docs/api.md, authentication); returns a key created now, if
    any.

    With `ORDERHOOKS_ADMIN_KEY`, that key is stored as admin, as a client can present it
    (without the whitespace around it, which HTTP drops). Without it, the
    first start with no keys at all creates one, prints it once on standard output on
    a line of its own and writes it to `<data dir>/admin.key`.
    """
    admin_key = presented_key(settings.admin_key or "")
    if admin_key:
        key_hash = hash_api_key(admin_key)
        existing = await store.key_by_hash(key_hash)
        if existing is None:
            await _create_env_admin_key(_at(store, settings, now), key_hash)
        elif existing.revoked_at is not None or existing.role is not Role.ADMIN:
            log.warning("ORDERHOOKS_ADMIN_KEY names a revoked or non-admin key", key_id=existing.id)
        return None
    if await store.count_keys() > 0:  # a read: the lock below only on a database without keys
        return None
    plaintext = await keys.create_first_admin_key(_at(store, settings, now), FIRST_ADMIN_KEY_NAME)
    if plaintext is None:  # another process made the first key meanwhile
        return None
    # The one time a key appears in any output (docs/api.md, authentication): a line of its own on
    # stdout, whatever the log format, so that it can be picked up by a script.
    print(plaintext, flush=True)
    try:
        path = write_admin_key_file(settings.data_dir, plaintext)
    except OSError as exc:
        log.error("could not write the admin key file", error=str(exc))
    else:
        log.info("first admin key created: printed on standard output and saved", path=str(path))
    return plaintext


def _at(store: Store, settings: Settings, now: datetime) -> ServiceContext:
    """A service context whose clock stands still at `now`."""
    return ServiceContext(store, settings, clock=lambda: now)


async def _create_env_admin_key(ctx: ServiceContext, key_hash: str) -> None:
    try:
        await keys.store_admin_key(ctx, key_hash, ENV_ADMIN_KEY_NAME)
    except OrderhooksError:
        # Another process sharing the database may have stored the same key just now.
        if await ctx.store.key_by_hash(key_hash) is None:
            raise
    else:
        log.info("admin key from ORDERHOOKS_ADMIN_KEY stored")


async def retention_loop(
    store: Store,
    retention_days: int,
    clock: Callable[[], datetime] = utc_now,
    interval_seconds: float = RETENTION_INTERVAL_SECONDS,
) -> None:
    """Purge finished deliveries and old events now, then every `interval_seconds`.

    Idempotent, so several workers sharing one PostgreSQL database may all run it.
    `retention_days` 0 keeps everything.
    """
    if retention_days <= 0:
        return
    while True:
        try:
            deleted = await store.purge(clock() - timedelta(days=retention_days))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the next round tries again; the service keeps running
            log.warning("retention purge failed", error=str(exc))
        else:
            if deleted:
                log.info("retention purge", rows_deleted=deleted, retention_days=retention_days)
        await asyncio.sleep(interval_seconds)


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling: the runner owns the signals,
    because it must drain the delivery workers after the HTTP server has stopped."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[str], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave SIGTERM and SIGINT to the runner."""
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start listening, then report the URL actually bound (port 0 picks one)."""
        await super().startup(sockets=sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self._on_started(listen_url(host, port))


class ShutdownSignals:
    """SIGTERM and SIGINT: the first asks for a graceful stop, the second cuts it short."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.forced = asyncio.Event()
        self.server: uvicorn.Server | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Handle SIGTERM and SIGINT on `loop`."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.handle, sig)

    def uninstall(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give SIGTERM and SIGINT back to their defaults."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

    def handle(self, sig: signal.Signals) -> None:
        """Record a signal and tell the HTTP server."""
        if self.requested.is_set():
            log.warning("second signal: stopping now", signal=sig.name)
            self.forced.set()
            if self.server is not None:
                self.server.force_exit = True
            return
        log.info("shutting down", signal=sig.name)
        self.requested.set()
        if self.server is not None:
            self.server.should_exit = True


def uvicorn_config(app: object, settings: Settings, access_log: bool = False) -> uvicorn.Config:
    """The uvicorn configuration: our logging, fast loop and parser when installed."""
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        log_config=None,  # logging is configured by orderhooks.logging
        access_log=access_log,
        lifespan="on",
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http=_http_protocol(),
        timeout_graceful_shutdown=HTTP_GRACEFUL_SHUTDOWN_SECONDS,
        timeout_keep_alive=HTTP_KEEP_ALIVE_SECONDS,
        backlog=LISTEN_BACKLOG,
        server_header=False,
    )


def _http_protocol() -> type[asyncio.Protocol] | str:
    """httptools when installed (as `uvicorn[standard]` installs it), with deadlines on
    each connection (`cli.connections`); else uvicorn's h11, without them."""
    if importlib.util.find_spec("httptools") is None:
        return "h11"
    from orderhooks.cli.connections import bounded_protocol  # needs httptools

    return bounded_protocol(HTTP_KEEP_ALIVE_SECONDS)


def listen_url(host: str, port: int) -> str:
    """The base URL of a listening address."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def run_process(settings: Settings, role: ProcessRole, *, access_log: bool = False) -> int:
    """Run one serve/api/worker process until SIGTERM or SIGINT; returns its exit code."""
    loop = asyncio.get_running_loop()
    signals = ShutdownSignals()
    signals.install(loop)
    try:
        # First: a bad OTEL_* value stops the start before anything is opened.
        tracing = configure_tracing()
        try:
            make_data_dir(settings.data_dir)  # the admin key file and the dashboard's, at least
            store = await open_migrated_store(settings)
            try:
                await check_stored_secrets(store)
            except BaseException:
                await store.close()
                raise
            exit_code = await _run_with_store(store, settings, role, signals, access_log, tracing)
        finally:
            # The last spans are exported within the exporter's short timeout, off the loop.
            await asyncio.to_thread(tracing.shutdown)
    finally:
        signals.uninstall(loop)
    log.info("stopped", role=role, exit_code=exit_code)
    return exit_code


async def _run_with_store(
    store: Store,
    settings: Settings,
    role: ProcessRole,
    signals: ShutdownSignals,
    access_log: bool,
    tracing: Tracing,
) -> int:
    metrics = Metrics()

    def count_operational(event_types: Sequence[str]) -> None:
        for event_type in event_types:
            metrics.operational_events.labels(type=event_type).inc()

    store.on_operational_events(count_operational)
    dispatcher: Dispatcher | None = None
    transport: Transport | None = None
    retention: asyncio.Task[None] | None = None
    sources: SourceSet | None = None
    listeners: list[socket.socket] = []
    try:
        await ensure_admin_key(store, settings, utc_now())
        # ORDERHOOKS_REQUIRE_AGREEMENT may have changed since the webhooks were written.
        await store.apply_agreement_requirement(utc_now())
        # Before anything runs: an address that cannot be had stops the start here, with
        # no sender, delivery worker or source started (they could have sent already).
        listeners = open_listeners(settings.host, settings.port)
        if role in ("serve", "worker"):
            transport = await open_transport(settings, role)
            dispatcher = Dispatcher(store, transport, settings, metrics=metrics, tracing=tracing)
        running = dispatcher
        app = create_app(
            settings,
            store,
            role=role,
            metrics=metrics,
            workers_running=(lambda: running.running) if running is not None else None,
            tracing=tracing,
        )
        # Frozen before anything runs: what deliveries and broker rounds have in flight
        # must stay within the collector's reach.
        freeze_startup_objects()
        if dispatcher is not None:
            await dispatcher.start()
            retention = asyncio.create_task(retention_loop(store, settings.retention_days))
        if role in ("serve", "worker") and settings.sources:
            sources = _start_sources(app.state.orderhooks, settings)
            app.state.sources = sources
        return await _serve_http(app, settings, role, signals, access_log, listeners)
    finally:
        close_listeners(listeners)  # uvicorn closed them if it served: no new connections
        await _shut_down(store, dispatcher, transport, retention, signals, sources)


def freeze_startup_objects() -> None:
    """Take what start-up made (modules, the app and its routes, the catalog) out of the
    cyclic garbage collector's reach: it lives as long as the process, and every full
    collection walked all of it again while the ingest and delivery objects churned
    (docs/benchmarks.md, issue 11: about 8 % of the serve process's CPU was the
    collector)."""
    gc.collect()
    gc.freeze()


async def open_transport(settings: Settings, role: ProcessRole) -> Transport:
    """This process's transport: `serve` with `ORDERHOOKS_WORKERS` above 1 sends through
    that many minus one sender processes, every other process sends itself. Its pool
    (each sender's) allows as many connections as the dispatcher may have attempts in
    flight, own slots included: a lower limit would queue the own slots' requests behind
    the slow ones again."""
    limit = in_flight_bound(settings.worker_concurrency)
    if role == "serve" and settings.workers > 1:
        config = sender_config(
            settings.allowed_networks,
            limit,
            settings.egress_proxy,
            settings.log_format,
        )
        pool = SenderPool(settings.workers - 1, config)
        try:
            await pool.start()
        except BaseException:
            await pool.close()
            raise
        return pool
    return AiohttpTransport(
        NetworkGuard(settings.allowed_networks),
        limit=limit,
        proxy=settings.egress_proxy,
    )


def _start_sources(ctx: ApiContext, settings: Settings) -> SourceSet:
    """Consume the broker sources through the same ingest call as `POST /v1/events`."""

    async def ingest(
        items: Sequence[IngestItem], message_keys: Sequence[MessageKey]
    ) -> list[IngestResult]:
        return await ingest_items(ctx.service, items, message_keys)

    return start_sources(
        settings.sources,
        ingest,
        ctx.metrics,
        settings.max_body_bytes,
        store_check=ctx.service.store.ping,
    )


async def _serve_http(
    app: object,
    settings: Settings,
    role: ProcessRole,
    signals: ShutdownSignals,
    access_log: bool,
    listeners: list[socket.socket],
) -> int:
    """Serve HTTP on the `listeners` until a signal stops the server; its exit code."""

    def started(url: str) -> None:
        engine = "postgresql" if settings.is_postgres else "sqlite"
        log.info("orderhooks started", role=role, url=url, database=engine)

    server = _Server(uvicorn_config(app, settings, access_log), started)
    signals.server = server
    if signals.requested.is_set():
        return 0
    try:
        await server.serve(sockets=listeners)
    except SystemExit:
        # uvicorn exits this way when the app fails to start (its log says why).
        raise StartError("the HTTP server could not start: see the log above") from None
    return 0


async def _shut_down(
    store: Store,
    dispatcher: Dispatcher | None,
    transport: Transport | None,
    retention: asyncio.Task[None] | None,
    signals: ShutdownSignals,
    sources: SourceSet | None = None,
) -> None:
    # A second signal, at any step, drops the store's connections: a transaction
    # cancelled on a database host that stopped answering goes back to its pool only
    # once the server has heard the cancel, which it never does, and every step below
    # (a source's round, the purge, the drain, the close) would wait on it.
    aborting = asyncio.ensure_future(_abort_when_forced(store, signals))
    # In this order: nothing may still use the transport or the store when they close.
    try:
        if sources is not None:
            # Before the store closes: a round in flight may finish.
            await sources.stop(cut_short=signals.forced)
        if retention is not None:
            retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retention
        if dispatcher is not None:
            await _drain(dispatcher, signals)
    finally:
        try:
            if transport is not None:
                await transport.close()
        finally:
            try:
                await store.close()
            finally:
                aborting.cancel()


async def _abort_when_forced(store: Store, signals: ShutdownSignals) -> None:
    """On the second signal (or at once, if it came already), stop waiting on the
    database server: the store's connections are dropped."""
    await signals.forced.wait()
    store.abort()


async def _drain(dispatcher: Dispatcher, signals: ShutdownSignals) -> None:
    """Let the attempts in flight finish and their outcomes be recorded (bounded); a
    second signal gives up on them: their leases expire and they are attempted again."""
    await until_done_or_set(dispatcher.stop(drain_timeout=DRAIN_TIMEOUT_SECONDS), signals.forced)
