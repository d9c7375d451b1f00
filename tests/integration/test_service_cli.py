"""The command line creates and revokes keys through the service: audited like the API."""

from __future__ import annotations

import json
from pathlib import Path

from orderhooks.config import Settings
from orderhooks.store import open_store
from tests.integration.cli_support import cli_env, run_cli


async def test_keys_made_and_revoked_on_the_command_line_are_audited(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    created = run_cli(
        ["keys", "create", "--role", "partner", "--account", "acc-1", "--name", "bi", "--json"],
        env,
    )
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    revoked = run_cli(["keys", "revoke", key["id"]], env)
    assert revoked.returncode == 0, revoked.stderr

    store = open_store(Settings(data_dir=tmp_path))
    await store.open()
    try:
        entries = (await store.list_audit(10, None)).items
    finally:
        await store.close()
    mine = [
        (e.action, e.actor, dict(e.details)) for e in reversed(entries) if e.target_id == key["id"]
    ]
    assert mine == [
        (
            "key.created",
            "cli",
            {"via": "cli", "role": "partner", "accounts": ["acc-1"], "name": "bi"},
        ),
        ("key.revoked", "cli", {"via": "cli"}),
    ]
    assert all(key["key"] not in json.dumps(details) for _, _, details in mine)
