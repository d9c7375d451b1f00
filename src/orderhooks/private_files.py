"""Folders and files that hold secrets, created readable by their owner only.

Without `ORDERHOOKS_ENCRYPTION_KEYS` the SQLite database holds the webhook secrets in
clear, so the data dir and the database are kept from other local users whatever the
umask. Only what orderhooks creates is given these modes: a folder or file that is
already there (the operator's) keeps its own.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Create the folder `path` (and its missing parents) when absent, itself 0700; an
    existing folder is left as it is. FileExistsError when `path` is not a folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE)
    except FileExistsError:
        if path.is_dir():
            return
        raise
    path.chmod(PRIVATE_DIR_MODE)  # exactly, whatever the umask took away


def create_private_file(path: Path) -> None:
    """Create `path` empty and 0600 when it does not exist; an existing file is left
    as it is."""
    try:
        # O_EXCL: never takes over a file another process created meanwhile.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # exactly, whatever the umask took away
    finally:
        os.close(fd)
