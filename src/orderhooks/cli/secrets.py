"""`orderhooks secrets reencrypt`: seal every stored secret with the first key of
`ORDERHOOKS_ENCRYPTION_KEYS` (docs/security.md, "Rotating a key")."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer

from orderhooks.cli.options import (
    EXIT_USAGE,
    STORE_SETTINGS,
    VersionFlag,
    fail,
    run_async,
    with_settings,
)
from orderhooks.config import Settings
from orderhooks.secretbox import ENV_VAR
from orderhooks.store.shared.secrets import ResealReport

secrets_app = typer.Typer(
    help="Manage the encryption of stored secrets.", no_args_is_help=True, add_completion=False
)

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
DryRun = Annotated[
    bool,
    typer.Option("--dry-run", help="Check and count what would be re-encrypted; write nothing."),
]


@secrets_app.callback()
def secrets_callback(version: VersionFlag = False) -> None:
    """Manage the encryption of stored secrets."""


async def reencrypt_store(settings: Settings, *, dry_run: bool = False) -> ResealReport:
    """Check that every stored secret opens, reseal those not sealed with the first key,
    then (SQLite) rewrite the file and empty its WAL so that no older form remains. With
    `dry_run`, check and count only."""
    # Imported here so that `--help` does not load the storage engines.
    from orderhooks.cli.runner import migrated_store
    from orderhooks.store.sqlite import SQLiteStore

    async with migrated_store(settings) as store:
        checked = await store.check_secrets()
        if dry_run:  # what the check found is what a run would reseal
            values = checked.plaintext + checked.stale
            return ResealReport(checked.webhooks_to_reseal, values, checked.key_ids[0])
        report = await store.reseal_secrets()
        if isinstance(store, SQLiteStore):
            await store.compact()
        return report


@secrets_app.command("reencrypt")
@with_settings([*STORE_SETTINGS, "log_format", "encryption_keys"])
def reencrypt(
    settings: Settings,
    json_output: Json = False,
    dry_run: DryRun = False,
    version: VersionFlag = False,
) -> None:
    """Encrypt every stored webhook secret, header value and client key with the first
    key of ORDERHOOKS_ENCRYPTION_KEYS; safe to run again and while serving."""
    if not settings.encryption_keys:
        raise fail(f"{ENV_VAR} is not set: there is no key to encrypt with", EXIT_USAGE)
    report = run_async(lambda: reencrypt_store(settings, dry_run=dry_run))
    if json_output:
        answer = {"webhooks": report.webhooks, "values": report.values, "keyId": report.key_id}
        if dry_run:
            answer["dryRun"] = True
        typer.echo(orjson.dumps(answer).decode())
    elif dry_run:
        typer.echo(
            f"would reseal {report.values} values in {report.webhooks} webhooks with key "
            f"{report.key_id}; every stored secret decrypts; nothing written"
        )
    else:
        typer.echo(
            f"resealed {report.values} values in {report.webhooks} webhooks; every stored "
            f"secret is sealed with key {report.key_id}"
        )


__all__ = ["reencrypt_store", "secrets_app"]
