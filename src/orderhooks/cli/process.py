"""`serve`, `api`, `worker` and `migrate`: the commands that run orderhooks itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, cast

import typer

from orderhooks.cli.options import (
    STORE_SETTINGS,
    LogLevel,
    LogLevelChoice,
    VersionFlag,
    run_async,
    with_settings,
)
from orderhooks.config import Settings
from orderhooks.logging import configure_logging

ROLE_HELP = {
    "serve": "Run the API and the delivery workers (ORDERHOOKS_WORKERS processes, one store).",
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
    # Every setting has its flag here: the commands that run orderhooks take them all.
    @with_settings()
    def command(
        settings: Settings,
        log_level: LogLevel = LogLevelChoice.INFO,
        access_log: AccessLog = False,
        version: VersionFlag = False,
    ) -> None:
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


@with_settings([*STORE_SETTINGS, "log_format"])
def migrate(settings: Settings, version: VersionFlag = False) -> None:
    """Apply the database migrations not applied yet (idempotent; safe while running)."""
    from orderhooks.cli.runner import prepare_store_command
    from orderhooks.store import open_store

    async def apply() -> list[str]:
        prepare_store_command(settings)  # in here: a data dir in the way is a usage error
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
