"""`orderhooks keys create|list|revoke`: API keys, straight on the configured database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from orderhooks.cli.options import (
    DatabaseUrl,
    DataDir,
    VersionFlag,
    build_settings,
    fail,
    run_async,
    settings_or_exit,
)
from orderhooks.config import Settings
from orderhooks.domain.apikeys import generate_api_key, hash_api_key
from orderhooks.domain.ids import new_id
from orderhooks.domain.model import ApiKey, Role
from orderhooks.exceptions import NotFound
from orderhooks.store import Store
from orderhooks.web.views import key_json

T = TypeVar("T")
LIST_PAGE_SIZE = 500

keys_app = typer.Typer(
    help="Create, list and revoke API keys.", no_args_is_help=True, add_completion=False
)

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@keys_app.callback()
def keys_callback(version: VersionFlag = False) -> None:
    """Create, list and revoke API keys."""


async def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    # Imported here so that `--help` does not load the storage engines.
    from orderhooks.runner import open_migrated_store

    store = await open_migrated_store(settings)
    try:
        return await work(store)
    finally:
        await store.close()


def _settings(database_url: str | None, data_dir: Any) -> Settings:
    return settings_or_exit(lambda: build_settings(database_url=database_url, data_dir=data_dir))


@keys_app.command("create")
def create(
    role: Annotated[Role, typer.Option(case_sensitive=False, help="admin, ingest or partner")],
    name: Annotated[str, typer.Option(help="What the key is for.")],
    account: Annotated[
        list[str] | None, typer.Option(help="An account a partner key may see (repeatable).")
    ] = None,
    json_output: Json = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    version: VersionFlag = False,
) -> None:
    """Create a key and print it: the only time it is shown."""
    accounts = tuple(dict.fromkeys(a.strip() for a in account or () if a.strip()))
    if role is Role.PARTNER and not accounts:
        raise fail("a partner key needs at least one --account", 2)
    if not name.strip():
        raise fail("--name must not be empty", 2)
    settings = _settings(database_url, data_dir)
    plaintext = generate_api_key()
    key = ApiKey(
        id=new_id("key"),
        role=role,
        accounts=accounts,
        name=name.strip(),
        key_hash=hash_api_key(plaintext),
        created_at=datetime.now(UTC),
    )
    stored = run_async(lambda: _with_store(settings, lambda store: store.create_key(key)))
    if json_output:
        typer.echo(orjson.dumps({**key_json(stored), "key": plaintext}).decode())
    else:
        typer.echo(f"id:  {stored.id}")
        typer.echo(f"key: {plaintext}")
        typer.echo("Store the key now: it is not shown again.", err=True)


@keys_app.command("list")
def list_keys(
    json_output: Json = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    version: VersionFlag = False,
) -> None:
    """List keys (never their secrets)."""
    settings = _settings(database_url, data_dir)

    async def all_keys(store: Store) -> list[ApiKey]:
        keys: list[ApiKey] = []
        cursor: str | None = None
        while True:
            page = await store.list_keys(LIST_PAGE_SIZE, cursor)
            keys.extend(page.items)
            if page.next_cursor is None:
                return keys
            cursor = page.next_cursor

    keys = run_async(lambda: _with_store(settings, all_keys))
    if json_output:
        typer.echo(orjson.dumps([key_json(k) for k in keys]).decode())
        return
    table = Table("id", "role", "accounts", "name", "created", "revoked")
    for k in keys:
        table.add_row(
            k.id,
            k.role.value,
            ",".join(k.accounts) or "-",
            k.name,
            k.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            k.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if k.revoked_at else "",
        )
    Console(width=200 if not typer.get_text_stream("stdout").isatty() else None).print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (key_…).")],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    version: VersionFlag = False,
) -> None:
    """Revoke a key: it stops working at once."""
    settings = _settings(database_url, data_dir)

    async def revoke_key(store: Store) -> bool:
        try:
            await store.revoke_key(key_id, datetime.now(UTC))
        except NotFound:
            return False
        return True

    if not run_async(lambda: _with_store(settings, revoke_key)):
        raise fail(f"no key {key_id}")
    typer.echo(f"revoked {key_id}")
