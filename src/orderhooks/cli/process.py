"""`serve`, `api`, `worker` and `migrate`: the commands that run orderhooks itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, cast

import typer

from orderhooks.cli.options import (
    AdminKey,
    AllowedNetworks,
    DatabaseUrl,
    DataDir,
    DeliveryTimeout,
    DisableAfter,
    Host,
    LogFormat,
    LogLevel,
    LogLevelChoice,
    MaxBodyBytes,
    Port,
    RateLimitPerKey,
    RequireAgreement,
    RetryJitter,
    RetrySchedule,
    VersionFlag,
    build_settings,
    run_async,
    settings_or_exit,
)
from orderhooks.logging import configure_logging

ROLE_HELP = {
    "serve": "Run the API and the delivery workers in one process.",
    "api": "Run the HTTP API only (scale out with `worker` on PostgreSQL).",
    "worker": "Run delivery workers only; serves /healthz, /readyz and /metrics.",
}

AccessLog = Annotated[bool, typer.Option(help="Log every HTTP request.")]


def register(app: typer.Typer) -> None:
    """Add the process commands to `app`."""
    for role in ("serve", "api", "worker"):
        app.command(role, help=ROLE_HELP[role])(_process_command(role))
    app.command("migrate")(migrate)


def _process_command(role: str) -> Callable[..., None]:
    def command(
        database_url: DatabaseUrl = None,
        data_dir: DataDir = None,
        host: Host = None,
        port: Port = None,
        log_format: LogFormat = None,
        log_level: LogLevel = LogLevelChoice.INFO,
        admin_key: AdminKey = None,
        retry_schedule: RetrySchedule = None,
        retry_jitter: RetryJitter = None,
        delivery_timeout: DeliveryTimeout = None,
        disable_after: DisableAfter = None,
        allowed_networks: AllowedNetworks = None,
        require_agreement: RequireAgreement = None,
        max_body_bytes: MaxBodyBytes = None,
        rate_limit_per_key: RateLimitPerKey = None,
        access_log: AccessLog = False,
        version: VersionFlag = False,
    ) -> None:
        settings = settings_or_exit(
            lambda: build_settings(
                database_url=database_url,
                data_dir=data_dir,
                host=host,
                port=port,
                log_format=log_format,
                admin_key=admin_key,
                retry_schedule=retry_schedule,
                retry_jitter=retry_jitter,
                delivery_timeout=delivery_timeout,
                disable_after=disable_after,
                allowed_networks=allowed_networks,
                require_agreement=require_agreement,
                max_body_bytes=max_body_bytes,
                rate_limit_per_key=rate_limit_per_key,
            )
        )
        configure_logging(settings.log_format, log_level.value)
        # Imported here so that `--help` and `keys` need not load the web and delivery stack.
        from orderhooks.cli.runner import run_process
        from orderhooks.web.app import ProcessRole

        process_role = cast(ProcessRole, role)
        code = run_async(lambda: run_process(settings, process_role, access_log=access_log))
        raise typer.Exit(code)

    command.__name__ = role
    command.__doc__ = ROLE_HELP[role]
    return command


def migrate(
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    log_format: LogFormat = None,
    version: VersionFlag = False,
) -> None:
    """Apply the database migrations not applied yet (idempotent; safe while running)."""
    settings = settings_or_exit(
        lambda: build_settings(database_url=database_url, data_dir=data_dir, log_format=log_format)
    )
    configure_logging(settings.log_format)
    from orderhooks.store import open_store

    async def apply() -> list[str]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = open_store(settings)
        await store.open()
        try:
            return await store.migrate()
        finally:
            await store.close()

    applied = run_async(apply)
    for name in applied:
        typer.echo(name)
    typer.echo(f"{len(applied)} migration(s) applied", err=True)
