"""Configuration: environment variables (PRODUCT 9), read in this module only.

Command-line flags of the same names win; the CLI passes them in as overrides.
Everything else receives a `Settings` value explicitly.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from orderhooks.exceptions import ConfigError
from orderhooks.sources.config import SourceConfig, parse_sources

T = TypeVar("T")

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
DEFAULT_DISABLE_AFTER_SECONDS = 432_000  # 5 days without a success while failing
DEFAULT_MAX_BODY_BYTES = 1_048_576
DEFAULT_RETENTION_DAYS = 30
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
MAX_PORT = 65535
DEFAULT_DATA_DIR = "./orderhooks-data"
DEFAULT_MAX_WEBHOOKS_PER_ACCOUNT = 100
DEFAULT_WORKER_CONCURRENCY = 512  # requests in flight per worker process, all webhooks
DEFAULT_DB_POOL_SIZE = 10


@dataclass(frozen=True)
class Settings:
    """Every tunable of a running orderhooks process."""

    data_dir: Path = Path(DEFAULT_DATA_DIR)
    database_url: str = ""
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    admin_key: str | None = None
    retry_schedule: tuple[int, ...] = DEFAULT_RETRY_SCHEDULE_SECONDS
    retry_jitter: float = DEFAULT_RETRY_JITTER
    delivery_timeout_seconds: int = DEFAULT_DELIVERY_TIMEOUT_SECONDS
    disable_after_seconds: int = DEFAULT_DISABLE_AFTER_SECONDS
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    require_agreement: bool = True
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    rate_limit_per_key: float = 0.0
    log_format: str = "json"
    retention_days: int = DEFAULT_RETENTION_DAYS
    max_webhooks_per_account: int = DEFAULT_MAX_WEBHOOKS_PER_ACCOUNT
    worker_concurrency: int = DEFAULT_WORKER_CONCURRENCY
    db_pool_size: int = DEFAULT_DB_POOL_SIZE
    sources: tuple[SourceConfig, ...] = ()
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to SQLite in the data dir."""
        return self.database_url or f"sqlite:///{self.data_dir / 'orderhooks.db'}"

    @property
    def is_postgres(self) -> bool:
        """Whether the store is PostgreSQL."""
        return self.effective_database_url.startswith(("postgresql://", "postgres://"))

    def with_overrides(self, **overrides: object) -> Settings:
        """A copy with the given fields replaced (command-line flags); None values are ignored."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def parse_retry_schedule(raw: str) -> tuple[int, ...]:
    """Parse a comma-separated list of seconds."""
    try:
        values = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"retry schedule must be comma-separated seconds, got {raw!r}") from None
    if any(v < 0 for v in values):
        raise ConfigError("retry schedule entries must not be negative")
    return values


def parse_networks(
    raw: str,
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parse comma-separated CIDRs."""
    nets = []
    for part in raw.split(","):
        if part.strip():
            try:
                nets.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ConfigError(f"not a network: {part.strip()!r}") from None
    return tuple(nets)


def _named(name: str, parse: Callable[[str], T], raw: str) -> T:
    """`parse(raw)`, its ConfigError prefixed with the variable's name."""
    try:
        return parse(raw)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read `ORDERHOOKS_*` variables into Settings."""
    env = os.environ if env is None else env
    schedule_raw = env.get("ORDERHOOKS_RETRY_SCHEDULE")
    log_format = env.get("ORDERHOOKS_LOG_FORMAT") or ("console" if sys.stderr.isatty() else "json")
    jitter = _float(env, "ORDERHOOKS_RETRY_JITTER", DEFAULT_RETRY_JITTER)
    if jitter > 1:
        # Above 1 the lower bound of the jitter factor turns negative: retries at once.
        raise ConfigError("ORDERHOOKS_RETRY_JITTER must be a fraction between 0 and 1")
    port = _int(env, "ORDERHOOKS_PORT", DEFAULT_PORT)
    if port > MAX_PORT:
        raise ConfigError(f"ORDERHOOKS_PORT must be at most {MAX_PORT}")
    if log_format not in ("console", "json"):
        raise ConfigError("ORDERHOOKS_LOG_FORMAT must be console or json")
    return Settings(
        data_dir=Path(env.get("ORDERHOOKS_DATA_DIR") or DEFAULT_DATA_DIR),
        database_url=env.get("ORDERHOOKS_DATABASE_URL", ""),
        host=env.get("ORDERHOOKS_HOST") or DEFAULT_HOST,
        port=port,
        admin_key=env.get("ORDERHOOKS_ADMIN_KEY") or None,
        retry_schedule=(
            _named("ORDERHOOKS_RETRY_SCHEDULE", parse_retry_schedule, schedule_raw)
            if schedule_raw
            else DEFAULT_RETRY_SCHEDULE_SECONDS
        ),
        retry_jitter=jitter,
        delivery_timeout_seconds=_int(
            env, "ORDERHOOKS_DELIVERY_TIMEOUT", DEFAULT_DELIVERY_TIMEOUT_SECONDS, 1
        ),
        disable_after_seconds=_int(env, "ORDERHOOKS_DISABLE_AFTER", DEFAULT_DISABLE_AFTER_SECONDS),
        allowed_networks=_named(
            "ORDERHOOKS_ALLOWED_NETWORKS",
            parse_networks,
            env.get("ORDERHOOKS_ALLOWED_NETWORKS", ""),
        ),
        require_agreement=_bool(env, "ORDERHOOKS_REQUIRE_AGREEMENT", True),
        max_body_bytes=_int(env, "ORDERHOOKS_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1),
        rate_limit_per_key=_float(env, "ORDERHOOKS_RATE_LIMIT_PER_KEY", 0.0),
        log_format=log_format,
        retention_days=_int(env, "ORDERHOOKS_RETENTION_DAYS", DEFAULT_RETENTION_DAYS),
        max_webhooks_per_account=_int(
            env, "ORDERHOOKS_MAX_WEBHOOKS_PER_ACCOUNT", DEFAULT_MAX_WEBHOOKS_PER_ACCOUNT, 1
        ),
        worker_concurrency=_int(
            env, "ORDERHOOKS_WORKER_CONCURRENCY", DEFAULT_WORKER_CONCURRENCY, 1
        ),
        db_pool_size=_int(env, "ORDERHOOKS_DB_POOL_SIZE", DEFAULT_DB_POOL_SIZE, 1),
        sources=_named("ORDERHOOKS_SOURCES", parse_sources, env.get("ORDERHOOKS_SOURCES", "")),
    )
