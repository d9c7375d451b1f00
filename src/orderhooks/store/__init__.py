"""Storage: one `Store` over two engines (SQLite and PostgreSQL).

`open_store(settings)` picks the engine from the database URL; the caller then awaits
`open()` (and `migrate()` where it owns the schema) before using the store.
"""

from __future__ import annotations

from pathlib import Path

from orderhooks.config import Settings
from orderhooks.exceptions import ConfigError
from orderhooks.private_files import make_private_dir
from orderhooks.secretbox import SecretBox
from orderhooks.store.store import Store


def make_data_dir(data_dir: Path) -> None:
    """Create the data dir if needed (0700: it holds the secrets); a ConfigError naming
    ORDERHOOKS_DATA_DIR when it cannot be (a file in the way, a read-only file system, no
    permission)."""
    try:
        make_private_dir(data_dir)
    except FileExistsError:
        raise ConfigError(f"ORDERHOOKS_DATA_DIR {data_dir} is a file, not a directory") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"ORDERHOOKS_DATA_DIR {data_dir} cannot be created: {reason}") from None


def open_store(settings: Settings) -> Store:
    """The Store for the configured database URL: SQLite for `sqlite:///path`,
    PostgreSQL for `postgresql://…`. Not yet opened."""
    url = settings.effective_database_url
    if settings.is_postgres:
        from orderhooks.store.postgres import PostgresStore

        return PostgresStore(
            url,
            require_agreement=settings.require_agreement,
            disable_after_seconds=settings.disable_after_seconds,
            pool_size=settings.db_pool_size,
            box=SecretBox(settings.encryption_keys),
        )
    if url.startswith("sqlite:///"):
        from orderhooks.store.sqlite import SQLiteStore, sqlite_path

        return SQLiteStore(
            sqlite_path(url),
            require_agreement=settings.require_agreement,
            disable_after_seconds=settings.disable_after_seconds,
            box=SecretBox(settings.encryption_keys),
        )
    raise ConfigError(f"unsupported database URL {url!r}: use sqlite:///… or postgresql://…")


__all__ = ["Store", "make_data_dir", "open_store"]
