"""`orderhooks backup FILE`: a consistent copy of the SQLite database, while it serves.

The copy is made with SQLite's online backup API on a connection of its own, in one
step: that step reads one snapshot under a read transaction, what is still in the WAL
included, while the server's writer goes on committing (in WAL mode a reader never
blocks the writer). The copy is written next to FILE (with the database's permissions),
checked, fsynced, and only then renamed to FILE, so FILE is never a half-written
database. PostgreSQL has its own tools
(docs/operations.md).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path
from typing import Annotated

import typer

from orderhooks.cli.options import STORE_SETTINGS, VersionFlag, fail, with_settings
from orderhooks.config import Settings
from orderhooks.exceptions import OrderhooksError

BUSY_TIMEOUT_MS = 10_000  # the server's writer may hold the lock for one group commit
PARTIAL_SUFFIX = ".partial"
# The files SQLite keeps beside a database: overwriting one breaks the live database.
COMPANION_SUFFIXES = ("-wal", "-shm", "-journal")
POSTGRES_REFUSAL = (
    "backup copies SQLite databases only; back up PostgreSQL with pg_dump, or with "
    "base backups and WAL archiving for point-in-time recovery (see docs/operations.md)"
)


class BackupError(OrderhooksError):
    """The backup could not be made; nothing was written at the target."""


def backup_sqlite(source: Path, target: Path, *, force: bool = False) -> int:
    """Copy the database at `source` to `target` consistently; the copy's size in bytes.

    Refuses an existing `target` unless `force`, and a `target` that is the source or one
    of the files SQLite keeps beside it (its WAL, its shared-memory index, its journal).
    """
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    database = source.resolve()
    if target.resolve() == database:
        raise BackupError("the backup file must not be the database itself")
    companions = {database.with_name(database.name + suffix) for suffix in COMPANION_SUFFIXES}
    if target.resolve() in companions:
        raise BackupError(f"the backup file must not be the database's own {target.name}")
    if target.exists() and not force:
        raise BackupError(f"{target} exists; give --force to overwrite it")
    if target.is_dir():
        raise BackupError(f"{target} is a directory")
    if not target.parent.is_dir():
        raise BackupError(f"no directory {target.parent}")
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    try:
        _copy(source, partial, stat.S_IMODE(database.stat().st_mode))
        _fsync(partial)
        os.replace(partial, target)
        _fsync(target.parent)
    except (sqlite3.Error, OSError) as exc:
        raise BackupError(f"{type(exc).__name__}: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return target.stat().st_size


def _copy(source: Path, partial: Path, mode: int) -> None:
    """The online backup into `partial`, as one self-contained file, checked. `partial`
    is created with the database's permissions (never wider): the copy holds what the
    database holds, webhook secrets and header credentials included."""
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # exactly the database's, whatever the umask
    finally:
        os.close(fd)
    src = sqlite3.connect(source, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        src.execute("PRAGMA query_only = ON")
        dst = sqlite3.connect(partial, isolation_level=None)
        try:
            # pages=-1: all pages in one step, so the copy is one snapshot. Stepwise, a
            # commit by the server between steps would restart the copy, maybe forever.
            src.backup(dst, pages=-1)
            # A rollback-journal file needs no -wal beside it; the server turns WAL back on.
            dst.execute("PRAGMA journal_mode = DELETE")
            verdict = dst.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise BackupError(f"the copy failed its check: {verdict}")
        finally:
            dst.close()
    finally:
        src.close()


def _fsync(path: Path) -> None:
    """Flush a file or a directory entry to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@with_settings(STORE_SETTINGS)
def backup(
    settings: Settings,
    file: Annotated[Path, typer.Argument(help="Where to write the copy.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE if it exists.")] = False,
    version: VersionFlag = False,
) -> None:
    """Write a consistent copy of the SQLite database to FILE, while the server runs."""
    from orderhooks.store.sqlite import sqlite_path

    if settings.is_postgres:
        raise fail(POSTGRES_REFUSAL)
    url = settings.effective_database_url
    if not url.startswith("sqlite:///"):
        raise fail(f"unsupported database URL {url!r}: use sqlite:///… or postgresql://…", 2)
    source = sqlite_path(url)
    try:
        size = backup_sqlite(source, file, force=force)
    except BackupError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"backed up {source} to {file} ({size} bytes)")


def register(app: typer.Typer) -> None:
    """Add the backup command to `app`."""
    app.command("backup")(backup)


__all__ = ["BackupError", "backup_sqlite", "register"]
