"""`orderhooks keys create|list|revoke`: API keys, straight on the configured database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from orderhooks.cli.options import STORE_SETTINGS, VersionFlag, fail, run_async, with_settings
from orderhooks.config import Settings
from orderhooks.domain.model import ApiKey, Role
from orderhooks.exceptions import NotFound, ValidationError
from orderhooks.service import keys
from orderhooks.service.audit import CLI_ACTOR
from orderhooks.service.context import ServiceContext
from orderhooks.web.answer_json import key_json
from orderhooks.web.request_models import KeyCreate, validate_body

T = TypeVar("T")
LIST_PAGE_SIZE = 500

keys_app = typer.Typer(
    help="Create, list and revoke API keys.", no_args_is_help=True, add_completion=False
)

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@keys_app.callback()
def keys_callback(version: VersionFlag = False) -> None:
    """Create, list and revoke API keys."""


async def _with_service(settings: Settings, work: Callable[[ServiceContext], Awaitable[T]]) -> T:
    # Imported here so that `--help` does not load the storage engines.
    from orderhooks.cli.runner import migrated_store

    async with migrated_store(settings) as store:
        return await work(ServiceContext(store, settings))


@keys_app.command("create")
@with_settings([*STORE_SETTINGS, "log_format"])
def create(
    settings: Settings,
    role: Annotated[Role, typer.Option(case_sensitive=False, help="admin, ingest or partner")],
    name: Annotated[str, typer.Option(help="What the key is for.")],
    account: Annotated[
        list[str] | None, typer.Option(help="An account a partner key may see (repeatable).")
    ] = None,
    json_output: Json = False,
    version: VersionFlag = False,
) -> None:
    """Create a key and print it: the only time it is shown."""
    accounts = tuple(dict.fromkeys(a.strip() for a in account or () if a.strip()))
    if role is Role.PARTNER and not accounts:
        raise fail("a partner key needs at least one --account", 2)
    if not name.strip():
        raise fail("--name must not be empty", 2)
    # The rules of `POST /v1/keys` (no `*`, no accounts on admin and ingest keys, lengths):
    # a key made here can do no more than one the API would have made.
    try:
        validate_body(KeyCreate, {"role": role, "accounts": list(accounts), "name": name.strip()})
    except ValidationError as exc:
        reasons = "; ".join(f"{_flag(p.field)}: {p.message}" for p in exc.problems)
        raise fail(reasons, 2) from None

    async def create_key(ctx: ServiceContext) -> tuple[ApiKey, str]:
        return await keys.create_key(ctx, CLI_ACTOR, role, accounts, name.strip())

    stored, plaintext = run_async(lambda: _with_service(settings, create_key))
    if json_output:
        typer.echo(orjson.dumps({**key_json(stored), "key": plaintext}).decode())
    else:
        typer.echo(f"id:  {stored.id}")
        typer.echo(f"key: {plaintext}")
        typer.echo("Store the key now: it is not shown again.", err=True)


def _flag(field: str) -> str:
    """The option a field of `KeyCreate` comes from (`accounts[0]` from `--account`)."""
    return "--account" if field.startswith("accounts") else f"--{field}"


@keys_app.command("list")
@with_settings([*STORE_SETTINGS, "log_format"])
def list_keys(
    settings: Settings,
    json_output: Json = False,
    version: VersionFlag = False,
) -> None:
    """List keys (never their secrets)."""

    async def all_keys(ctx: ServiceContext) -> list[ApiKey]:
        found: list[ApiKey] = []
        cursor: str | None = None
        while True:
            page = await ctx.store.list_keys(LIST_PAGE_SIZE, cursor)
            found.extend(page.items)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    listed = run_async(lambda: _with_service(settings, all_keys))
    if json_output:
        typer.echo(orjson.dumps([key_json(k) for k in listed]).decode())
        return
    table = Table("id", "role", "accounts", "name", "created", "revoked")
    for k in listed:
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
@with_settings([*STORE_SETTINGS, "log_format"])
def revoke(
    settings: Settings,
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (key_…).")],
    version: VersionFlag = False,
) -> None:
    """Revoke a key: it stops working at once."""

    async def revoke_key(ctx: ServiceContext) -> bool:
        try:
            await keys.revoke_key(ctx, CLI_ACTOR, key_id)
        except NotFound:
            return False
        return True

    if not run_async(lambda: _with_service(settings, revoke_key)):
        raise fail(f"no key {key_id}")
    typer.echo(f"revoked {key_id}")
