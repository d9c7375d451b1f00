"""The files orderhooks creates hold the webhook secrets (without encryption keys, in
clear): the data dir it creates is 0700 and the SQLite database, its `-wal` and `-shm`
0600, whatever the umask (docs/operations.md); what the operator set up keeps its modes."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cli_support import Spawner, cli_env, run_cli, start_serve

# The usual umask, under which files are readable by every local user unless made otherwise.
WIDE_UMASK = 0o022


def mode(path: Path) -> int:
    """The permission bits of `path`."""
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _wide_umask() -> Iterator[None]:
    """The processes these tests start inherit the umask 022."""
    previous = os.umask(WIDE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_data_dir_and_database_are_kept_to_their_owner(
    tmp_path: Path, spawn: Spawner
) -> None:
    data_dir = tmp_path / "new" / "data"
    process, _ = start_serve(spawn, data_dir)
    process.wait_output("ohk_")
    database = data_dir / "orderhooks.db"
    assert mode(data_dir) == 0o700
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        assert mode(path) == 0o600, path
    assert mode(data_dir / "admin.key") == 0o600
    assert process.stop() == 0


def test_a_database_outside_the_data_dir_is_created_to_its_owner_too(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere" / "db" / "hooks.db"
    env = cli_env(tmp_path / "data", ORDERHOOKS_DATABASE_URL=f"sqlite:///{database}")
    done = run_cli(["migrate"], env)
    assert done.returncode == 0, done.stderr
    assert mode(database.parent) == 0o700
    assert mode(database) == 0o600


def test_what_the_operator_set_up_keeps_its_modes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o750)
    database = data_dir / "orderhooks.db"
    database.touch()  # an empty file is a new SQLite database
    database.chmod(0o640)
    done = run_cli(["migrate"], cli_env(data_dir))
    assert done.returncode == 0, done.stderr
    assert mode(data_dir) == 0o750
    assert mode(database) == 0o640
