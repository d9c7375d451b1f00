"""Configuration: every setting of orderhooks, declared once, read in this package only.

Each field of `Settings` is one row of the configuration table: the attribute, its type and
default, its environment variable, the kind of value it holds (how text becomes a value and
what is valid) and its help text. Everything else is produced from that table:

- `load_settings` reads the environment (and the flags the command line passes in);
  a flag given wins over its variable. A value that is not valid is a `ConfigError` naming
  the variable or the flag, so the process refuses to start.
- `orderhooks.cli.options` gives `serve`, `api` and `worker` one flag per setting, named
  after the variable (`ORDERHOOKS_MAX_BODY_BYTES` is `--max-body-bytes`).
- The table of docs/configuration.md is made by `orderhooks.config.reference`; a unit test
  fails when the page and the table disagree.

Adding a setting is a one-row change:

1. Add a field to `Settings`::

       egress_proxy: str | None = setting(
           "ORDERHOOKS_EGRESS_PROXY", TEXT, default=None, help="Proxy for outgoing requests."
       )

   with a kind of `orderhooks.config.kinds` (`TEXT`, `DATABASE_URL`, `PATH`, `BOOLEAN`,
   `integer(minimum, maximum)`, `number(minimum, maximum)`, `choice(...)`, `SECONDS_LIST`,
   `NETWORKS`) or a new `Kind` there, and `default_text=` when the docs should state the
   default in words.
2. Regenerate the docs: `python -m orderhooks.config --update docs/configuration.md`.
3. Read it where it is needed as `settings.egress_proxy`. The variable, the flag on
   `serve`, `api` and `worker`, its validation, its `--help` and its docs row exist already;
   the tests in tests/unit/test_config*.py check every row (read from the environment,
   overridden by its flag, documented).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar, overload

from orderhooks.config.kinds import (
    ADMIN_KEY,
    BOOLEAN,
    DATABASE_URL,
    ENCRYPTION_KEYS,
    FRAME_ANCESTORS,
    NETWORKS,
    PATH,
    PROXY_URL,
    SECONDS_LIST,
    SOURCES,
    TEXT,
    Kind,
    Network,
    choice,
    integer,
    number,
    parse_egress_proxy,
    parse_network_list,
)
from orderhooks.exceptions import ConfigError
from orderhooks.secretbox import SealingKey
from orderhooks.sources.config import SourceConfig

T = TypeVar("T")

ENV_PREFIX = "ORDERHOOKS_"

DEFAULT_RETRY_SCHEDULE_SECONDS: tuple[int, ...] = (
    5,
    300,
    1800,
    7200,
    18000,
    36000,
    50400,
    72000,
    86400,
)
DEFAULT_RETRY_JITTER = 0.2
DEFAULT_DELIVERY_TIMEOUT_SECONDS = 15
MAX_DELIVERY_TIMEOUT_SECONDS = 30  # a webhook's `timeoutSeconds` is 1 to 30 (docs/api.md)
DEFAULT_DISABLE_AFTER_SECONDS = 432_000  # 5 days without a success while failing
# A century: longer spans than a timedelta holds failed every failed attempt's recording.
MAX_DISABLE_AFTER_SECONDS = 100 * 365 * 86_400
DEFAULT_MAX_BODY_BYTES = 1_048_576
DEFAULT_RETENTION_DAYS = 30
# A century, as for ORDERHOOKS_DISABLE_AFTER: millions of days reach before the first
# date a datetime holds, and every purge failed (0 is the way to keep everything).
MAX_RETENTION_DAYS = 100 * 365
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
MAX_PORT = 65535
DEFAULT_DATA_DIR = "./orderhooks-data"
DEFAULT_MAX_WEBHOOKS_PER_ACCOUNT = 100
MAX_WORKERS = 64  # processes of one `serve`
DEFAULT_WORKER_CONCURRENCY = 512  # requests in flight per worker process, shared
DEFAULT_DB_POOL_SIZE = 10


# --- The table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One row of the configuration table."""

    name: str  # the attribute of `Settings`
    env: str
    kind: Kind[Any]
    default: object
    help: str
    default_text: str | None = None  # markdown; the default in words when its value is not it
    # When neither the variable nor the flag is given: the value, decided at start-up.
    fallback: Callable[[], object] | None = None
    # False for values that must stay out of `ps` and shell history (keys): variable only.
    has_flag: bool = True

    @property
    def flag(self) -> str:
        """The command-line flag: the variable's name without the prefix, in lower case."""
        return "--" + self.env.removeprefix(ENV_PREFIX).lower().replace("_", "-")

    @property
    def is_switch(self) -> bool:
        """Whether the flag is an on/off pair (`--x/--no-x`) instead of taking a value."""
        return self.kind.flag_type is bool

    def default_markdown(self) -> str:
        """The default as the docs state it."""
        if self.default_text is not None:
            return self.default_text
        if self.default is None or self.default in ("", ()):
            return "none"
        return f"`{self.kind.show(self.default)}`"

    def read(self, text: str, source: str) -> object:
        """The value of `text`; a ConfigError names `source` (the variable or the flag)."""
        try:
            return self.kind.parse(text)
        except ValueError as exc:
            raise ConfigError(f"{source} {exc}") from None


_ROW = "orderhooks.setting"


@overload
def setting(
    env: str,
    kind: Kind[T],
    *,
    default: T,
    help: str,
    default_text: str | None = None,
    fallback: Callable[[], T] | None = None,
    has_flag: bool = True,
) -> T: ...


@overload
def setting(
    env: str,
    kind: Kind[T],
    *,
    default: None,
    help: str,
    default_text: str | None = None,
    fallback: Callable[[], T] | None = None,
    has_flag: bool = True,
) -> T | None: ...


def setting(
    env: str,
    kind: Kind[Any],
    *,
    default: object,
    help: str,
    default_text: str | None = None,
    fallback: Callable[[], object] | None = None,
    has_flag: bool = True,
) -> Any:
    """Declare a field of `Settings` as a row of the configuration table."""
    if not env.startswith(ENV_PREFIX):
        raise ValueError(f"{env} must start with {ENV_PREFIX}")
    row = Setting("", env, kind, default, help, default_text, fallback, has_flag)
    return field(default=default, metadata={_ROW: row})


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, else the machine's count)."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    return max(1, min(count, MAX_WORKERS))


def _log_format_for_stderr() -> str:
    return "console" if sys.stderr.isatty() else "json"


@dataclass(frozen=True)
class Settings:
    """Every tunable of a running orderhooks process; each field is one setting."""

    database_url: str = setting(
        "ORDERHOOKS_DATABASE_URL",
        DATABASE_URL,
        default="",
        default_text="`sqlite:///<data dir>/orderhooks.db`",
        help="The database: sqlite:///path or postgresql://user:password@host:5432/name.",
    )
    data_dir: Path = setting(
        "ORDERHOOKS_DATA_DIR",
        PATH,
        default=Path(DEFAULT_DATA_DIR),
        default_text=f"`{DEFAULT_DATA_DIR}`",
        help="Directory of the SQLite database and of the first admin key.",
    )
    host: str = setting(
        "ORDERHOOKS_HOST", TEXT, default=DEFAULT_HOST, help="Address the HTTP server listens on."
    )
    port: int = setting(
        "ORDERHOOKS_PORT",
        integer(maximum=MAX_PORT),
        default=DEFAULT_PORT,
        help="Port the HTTP server listens on.",
    )
    admin_key: str | None = setting(
        "ORDERHOOKS_ADMIN_KEY",
        ADMIN_KEY,
        default=None,
        help="Admin API key, used verbatim; without one a key is generated on the first start. "
        "Prefer the variable: other users of the machine can read command lines.",
    )
    retry_schedule: tuple[int, ...] = setting(
        "ORDERHOOKS_RETRY_SCHEDULE",
        SECONDS_LIST,
        default=DEFAULT_RETRY_SCHEDULE_SECONDS,
        help="Seconds between the attempts of a failing delivery.",
    )
    retry_jitter: float = setting(
        "ORDERHOOKS_RETRY_JITTER",
        number(maximum=1.0),
        default=DEFAULT_RETRY_JITTER,
        help="Fraction by which each retry delay varies at random.",
    )
    delivery_timeout_seconds: int = setting(
        "ORDERHOOKS_DELIVERY_TIMEOUT",
        integer(minimum=1, maximum=MAX_DELIVERY_TIMEOUT_SECONDS),
        default=DEFAULT_DELIVERY_TIMEOUT_SECONDS,
        help="Seconds a receiver has to answer; the default of new webhooks.",
    )
    disable_after_seconds: int = setting(
        "ORDERHOOKS_DISABLE_AFTER",
        integer(maximum=MAX_DISABLE_AFTER_SECONDS),
        default=DEFAULT_DISABLE_AFTER_SECONDS,
        help="Seconds without a success before a failing webhook is disabled.",
    )
    allowed_networks: tuple[Network, ...] = setting(
        "ORDERHOOKS_ALLOWED_NETWORKS",
        NETWORKS,
        default=(),
        help="Networks exempt from the network guard: webhooks may point into them.",
    )
    require_agreement: bool = setting(
        "ORDERHOOKS_REQUIRE_AGREEMENT",
        BOOLEAN,
        default=True,
        help="Deliver only for accounts that recorded an agreement.",
    )
    max_body_bytes: int = setting(
        "ORDERHOOKS_MAX_BODY_BYTES",
        integer(minimum=1),
        default=DEFAULT_MAX_BODY_BYTES,
        help="Largest request body the API accepts, in bytes.",
    )
    rate_limit_per_key: float = setting(
        "ORDERHOOKS_RATE_LIMIT_PER_KEY",
        number(),
        default=0.0,
        default_text="`0`",
        help="API requests per second per key; 0 = unlimited.",
    )
    log_format: str = setting(
        "ORDERHOOKS_LOG_FORMAT",
        choice("console", "json"),
        default="json",
        fallback=_log_format_for_stderr,
        default_text="`console` on a terminal, else `json`",
        help="Format of the log on standard error.",
    )
    retention_days: int = setting(
        "ORDERHOOKS_RETENTION_DAYS",
        integer(maximum=MAX_RETENTION_DAYS),
        default=DEFAULT_RETENTION_DAYS,
        help="Finished deliveries, their attempts and events older than this many days "
        "are purged; 0 keeps everything.",
    )
    max_webhooks_per_account: int = setting(
        "ORDERHOOKS_MAX_WEBHOOKS_PER_ACCOUNT",
        integer(minimum=1),
        default=DEFAULT_MAX_WEBHOOKS_PER_ACCOUNT,
        help="Most webhooks one account may have.",
    )
    worker_concurrency: int = setting(
        "ORDERHOOKS_WORKER_CONCURRENCY",
        integer(minimum=1),
        default=DEFAULT_WORKER_CONCURRENCY,
        help="Requests in flight per worker process, shared by all webhooks; a webhook with "
        "none in flight on it may have one more (at most twice this in all).",
    )
    workers: int = setting(
        "ORDERHOOKS_WORKERS",
        integer(minimum=1, maximum=MAX_WORKERS),
        default=1,
        fallback=_usable_cpus,
        default_text="the number of CPUs the process may use",
        help="Processes of `serve`: the one owning the store and the API, and this many "
        "minus one sending deliveries; 1 runs everything in one process.",
    )
    db_pool_size: int = setting(
        "ORDERHOOKS_DB_POOL_SIZE",
        integer(minimum=1),
        default=DEFAULT_DB_POOL_SIZE,
        help="Most PostgreSQL connections per process.",
    )
    egress_proxy: str | None = setting(
        "ORDERHOOKS_EGRESS_PROXY",
        PROXY_URL,
        default=None,
        help="Forward proxy every delivery goes through (CONNECT for https); see docs/security.md.",
    )
    sources: tuple[SourceConfig, ...] = setting(
        "ORDERHOOKS_SOURCES",
        SOURCES,
        default=(),
        default_text="none",
        help="Broker sources consumed by serve and worker; credentials are never shown "
        "(prefer the variable to the flag for URLs with a password).",
    )
    ui_frame_ancestors: str = setting(
        "ORDERHOOKS_UI_FRAME_ANCESTORS",
        FRAME_ANCESTORS,
        default="'none'",
        help="Which sites may frame the dashboard (CSP frame-ancestors); see docs/dashboard.md.",
    )
    trace_propagation: bool = setting(
        "ORDERHOOKS_TRACE_PROPAGATION",
        BOOLEAN,
        default=False,
        help="Send each delivery attempt's W3C `traceparent` header to the receiver; tracing "
        "itself is set up by the standard OTEL_* variables (docs/operations.md).",
    )
    encryption_keys: tuple[SealingKey, ...] = setting(
        "ORDERHOOKS_ENCRYPTION_KEYS",
        ENCRYPTION_KEYS,
        default=(),
        has_flag=False,
        help="Keys that encrypt webhook secrets, header values and client keys at rest, the "
        "first encrypting; no flag, so that keys stay out of `ps`. See docs/security.md.",
    )

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to SQLite in the data dir."""
        return self.database_url or f"sqlite:///{self.data_dir / 'orderhooks.db'}"

    @property
    def is_postgres(self) -> bool:
        """Whether the store is PostgreSQL."""
        return self.effective_database_url.startswith(("postgresql://", "postgres://"))

    def with_overrides(self, **overrides: object) -> Settings:
        """A copy with the given fields replaced; None values are ignored."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]


SETTINGS: tuple[Setting, ...] = tuple(
    replace(f.metadata[_ROW], name=f.name, default=f.default) for f in fields(Settings)
)
"""The configuration table, in the order of `Settings`."""

SETTINGS_BY_NAME: Mapping[str, Setting] = {row.name: row for row in SETTINGS}

FLAG_SETTINGS: tuple[Setting, ...] = tuple(row for row in SETTINGS if row.has_flag)
"""The settings the process commands take as flags as well as variables."""


# --- Reading ------------------------------------------------------------------------------


def load_settings(
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
    names: Iterable[str] | None = None,
) -> Settings:
    """Settings from the flags given, else the `ORDERHOOKS_*` variables, else the defaults.

    `flags` maps attribute names to what the command line gave (None or "" = not given;
    text, or the converted value of a `Path` or on/off flag). A given flag wins and its
    variable is not read. Empty variables count as unset.

    `names` are the settings to read (all when None); the others keep their defaults and
    their variables are not read, so that a bad value of a setting a command does not use
    cannot stop it (a broken ORDERHOOKS_ENCRYPTION_KEYS must not block a backup).
    """
    env = os.environ if env is None else env
    flags = flags or {}
    rows = SETTINGS if names is None else tuple(SETTINGS_BY_NAME[name] for name in names)
    unknown = set(flags) - {row.name for row in rows if row.has_flag}
    if unknown:
        raise TypeError(f"not settings read here: {sorted(unknown)}")
    values: dict[str, object] = {}
    for row in rows:
        given = flags.get(row.name)
        if isinstance(given, bool) and row.is_switch:
            values[row.name] = given
        elif given is not None and str(given) != "":
            values[row.name] = row.read(str(given), row.flag)
        elif env.get(row.env):
            values[row.name] = row.read(env[row.env], row.env)
        elif row.fallback is not None:
            values[row.name] = row.fallback()
    return Settings(**values)  # type: ignore[arg-type]


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs, as `ORDERHOOKS_ALLOWED_NETWORKS` takes them."""
    try:
        return parse_network_list(text)
    except ValueError as exc:
        raise ConfigError(f"networks {exc}") from None


__all__ = [
    "BOOLEAN",
    "DEFAULT_RETRY_SCHEDULE_SECONDS",
    "FLAG_SETTINGS",
    "NETWORKS",
    "PATH",
    "SECONDS_LIST",
    "SETTINGS",
    "SETTINGS_BY_NAME",
    "TEXT",
    "Kind",
    "Network",
    "Setting",
    "Settings",
    "choice",
    "integer",
    "load_settings",
    "number",
    "parse_egress_proxy",
    "parse_networks",
    "setting",
]
