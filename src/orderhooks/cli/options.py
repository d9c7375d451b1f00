"""Options shared by the commands, and how flags become Settings.

Every flag named after a variable of PRODUCT 9 wins over that variable: the
environment is read by `config.load_settings`, then the flags given are laid over it
with `Settings.with_overrides`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Callable, Coroutine
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from orderhooks import package_version
from orderhooks.config import Settings, load_settings, parse_networks, parse_retry_schedule
from orderhooks.exceptions import ConfigError, OrderhooksError

T = TypeVar("T")

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"orderhooks {package_version()}")
        raise typer.Exit()


VersionFlag = Annotated[
    bool,
    typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(help="sqlite:///path or postgresql://… (env ORDERHOOKS_DATABASE_URL)"),
]
DataDir = Annotated[
    Path | None, typer.Option(help="Data directory (env ORDERHOOKS_DATA_DIR; ./orderhooks-data)")
]
Host = Annotated[str | None, typer.Option(help="Address to listen on (env ORDERHOOKS_HOST)")]
Port = Annotated[
    int | None, typer.Option(min=0, max=65535, help="Port to listen on (env ORDERHOOKS_PORT)")
]


class LogFormatChoice(StrEnum):
    """The values of `--log-format`."""

    CONSOLE = "console"
    JSON = "json"


class LogLevelChoice(StrEnum):
    """The values of `--log-level`."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


LogFormat = Annotated[
    LogFormatChoice | None,
    typer.Option(help="Log format (env ORDERHOOKS_LOG_FORMAT; console on a terminal, else json)"),
]
LogLevel = Annotated[
    LogLevelChoice, typer.Option(case_sensitive=False, help="Lowest level logged.")
]
AdminKey = Annotated[
    str | None,
    typer.Option(
        help="Admin API key to ensure (env ORDERHOOKS_ADMIN_KEY; prefer the variable)",
        show_default=False,
    ),
]
RetrySchedule = Annotated[
    str | None,
    typer.Option(help="Comma-separated seconds between attempts (env ORDERHOOKS_RETRY_SCHEDULE)"),
]
RetryJitter = Annotated[
    float | None, typer.Option(min=0.0, help="Jitter fraction (env ORDERHOOKS_RETRY_JITTER)")
]
DeliveryTimeout = Annotated[
    int | None,
    typer.Option(min=1, help="Default webhook timeout, s (env ORDERHOOKS_DELIVERY_TIMEOUT)"),
]
DisableAfter = Annotated[
    int | None,
    typer.Option(min=0, help="Disable a failing webhook after, s (env ORDERHOOKS_DISABLE_AFTER)"),
]
AllowedNetworks = Annotated[
    str | None,
    typer.Option(help="CIDRs exempt from the network guard (env ORDERHOOKS_ALLOWED_NETWORKS)"),
]
RequireAgreement = Annotated[
    bool | None,
    typer.Option(
        "--require-agreement/--no-require-agreement",
        help="Send only to accounts with an agreement (env ORDERHOOKS_REQUIRE_AGREEMENT)",
        show_default=False,
    ),
]
MaxBodyBytes = Annotated[
    int | None, typer.Option(min=1, help="Largest request body (env ORDERHOOKS_MAX_BODY_BYTES)")
]
RateLimitPerKey = Annotated[
    float | None,
    typer.Option(
        min=0.0, help="API requests/s per key, 0 = off (env ORDERHOOKS_RATE_LIMIT_PER_KEY)"
    ),
]


def build_settings(
    *,
    database_url: str | None = None,
    data_dir: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    log_format: str | None = None,
    admin_key: str | None = None,
    retry_schedule: str | None = None,
    retry_jitter: float | None = None,
    delivery_timeout: int | None = None,
    disable_after: int | None = None,
    allowed_networks: str | None = None,
    require_agreement: bool | None = None,
    max_body_bytes: int | None = None,
    rate_limit_per_key: float | None = None,
) -> Settings:
    """The environment's settings with the given flags laid over them."""
    return load_settings().with_overrides(
        database_url=database_url,
        data_dir=data_dir,
        host=host,
        port=port,
        log_format=str(log_format) if log_format else None,
        admin_key=admin_key or None,
        retry_schedule=parse_retry_schedule(retry_schedule) if retry_schedule else None,
        retry_jitter=retry_jitter,
        delivery_timeout_seconds=delivery_timeout,
        disable_after_seconds=disable_after,
        allowed_networks=parse_networks(allowed_networks) if allowed_networks else None,
        require_agreement=require_agreement,
        max_body_bytes=max_body_bytes,
        rate_limit_per_key=rate_limit_per_key,
    )


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    """Print `orderhooks: message` to stderr; the caller raises the returned Exit."""
    typer.echo(f"orderhooks: {message}", err=True)
    return typer.Exit(code)


def settings_or_exit(factory: Callable[[], Settings]) -> Settings:
    """Build settings; a configuration error ends the command with a usage error."""
    try:
        return factory()
    except ConfigError as exc:
        raise fail(str(exc), EXIT_USAGE) from None


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    if importlib.util.find_spec("uvloop") is None:
        return None
    import uvloop

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_async(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a fresh event loop (uvloop when installed); errors of the
    orderhooks tree end the command with a message instead of a traceback."""
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(work())
    except ConfigError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except OrderhooksError as exc:
        raise fail(f"{type(exc).__name__}: {exc}") from None
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        raise typer.Exit(EXIT_INTERRUPTED) from None
