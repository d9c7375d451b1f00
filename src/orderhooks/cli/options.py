"""Options shared by the commands, and how flags become Settings.

Every setting of `orderhooks.config` has a flag named after its variable
(`ORDERHOOKS_MAX_BODY_BYTES` is `--max-body-bytes`); a flag given wins over the variable.
`with_settings` gives a command those flags and hands it the resulting `Settings`.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import inspect
import sys
from collections.abc import Callable, Coroutine, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from orderhooks import package_version
from orderhooks.config import SETTINGS, SETTINGS_BY_NAME, Setting, Settings, load_settings
from orderhooks.exceptions import ConfigError, OrderhooksError, StartError

T = TypeVar("T")

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

SETTINGS_PANEL = "Settings (a flag wins over its ORDERHOOKS_* variable)"


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


def setting_option(row: Setting) -> Any:
    """The typer option of one setting: its flag, help, variable and default in `--help`."""
    default = row.default_markdown().replace("`", "")
    options: dict[str, Any] = {
        "help": f"{row.help} (env {row.env}; default {default})",
        "show_default": False,
        "rich_help_panel": SETTINGS_PANEL,
    }
    if row.is_switch:
        return typer.Option(f"{row.flag}/--no-{row.flag.removeprefix('--')}", **options)
    return typer.Option(row.flag, metavar=row.kind.metavar, **options)


def setting_parameter(row: Setting) -> inspect.Parameter:
    """The keyword parameter of a command that takes `row`'s flag (None = not given)."""
    annotation = Annotated[row.kind.flag_type | None, setting_option(row)]  # type: ignore[name-defined]
    return inspect.Parameter(
        row.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
    )


DataDir = Annotated[Path | None, setting_option(SETTINGS_BY_NAME["data_dir"])]
# The settings of the commands that open the store without running the service: all
# they read (docs/configuration.md).
STORE_SETTINGS = ("database_url", "data_dir")


class LogLevelChoice(StrEnum):
    """The values of `--log-level`."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


LogLevel = Annotated[
    LogLevelChoice, typer.Option(case_sensitive=False, help="Lowest level logged.")
]


def build_settings(names: Sequence[str] | None = None, /, **flags: object) -> Settings:
    """The settings `names` (all when None) from the flags given (by attribute name; None =
    not given), else from the environment; the others keep their defaults unread. A bad
    value ends the command with a usage error naming the flag or variable."""
    try:
        return load_settings(flags=flags, names=names)
    except ConfigError as exc:
        raise fail(str(exc), EXIT_USAGE) from None


def with_settings(
    names: Sequence[str] | None = None,
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Give a command the settings `names` (all when None) in its `settings` parameter: the
    environment's, with the flags of those that have one laid over them. Only these are
    read (docs/configuration.md): a bad value of one ends the command with a usage error
    naming the flag or variable, a bad value of another setting does not concern it."""
    chosen = SETTINGS if names is None else tuple(SETTINGS_BY_NAME[name] for name in names)
    rows = tuple(row for row in chosen if row.has_flag)
    read = None if names is None else tuple(names)

    def decorate(command: Callable[..., T]) -> Callable[..., T]:
        own = inspect.signature(command, eval_str=True).parameters.values()
        parameters = [p for p in own if p.name != "settings"]
        parameters += [setting_parameter(row) for row in rows]

        @functools.wraps(command)
        def run(**arguments: Any) -> T:
            flags = {row.name: arguments.pop(row.name) for row in rows}
            settings = build_settings(read, **flags)
            return command(settings=settings, **arguments)

        # typer reads the parameters from the signature and the annotations.
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return run

    return decorate


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    """Print `orderhooks: message` to stderr; the caller raises the returned Exit."""
    typer.echo(f"orderhooks: {message}", err=True)
    return typer.Exit(code)


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
    except StartError as exc:
        raise fail(str(exc)) from None
    except OrderhooksError as exc:
        raise fail(f"{type(exc).__name__}: {exc}") from None
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        raise typer.Exit(EXIT_INTERRUPTED) from None
