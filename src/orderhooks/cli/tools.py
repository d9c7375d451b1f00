"""`receive` and `simulate`: the development tools around a running orderhooks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.console import Console

from orderhooks.cli.options import (
    DataDir,
    VersionFlag,
    build_settings,
    fail,
    run_async,
)

# The variable of the secret (docs/configuration.md).
RECEIVE_SECRET_ENV = "ORDERHOOKS_RECEIVE_SECRET"  # noqa: S105 - a variable name, not a secret
SIMULATE_LOG_LEVEL = "critical"  # the simulation shows its errors itself


def _is_http_address(url: str) -> bool:
    """Whether `url` names a server the simulation can post to: http(s) and a host."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def register(app: typer.Typer) -> None:
    """Add the tool commands to `app`."""
    app.command("receive")(receive)
    app.command("simulate")(simulate)


def receive(
    context: typer.Context,
    secret: Annotated[
        str,
        typer.Option(
            envvar=RECEIVE_SECRET_ENV,
            help="The webhook's signing secret, whsec_… (env ORDERHOOKS_RECEIVE_SECRET)",
            show_default=False,
        ),
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 9000,
    # A final status only: a 1xx is no answer (a sender waits on for the final one until
    # its timeout, and 101 would switch the connection to another protocol).
    status: Annotated[
        int, typer.Option(min=200, max=599, help="Status to answer signed requests with.")
    ] = 200,
    version: VersionFlag = False,
) -> None:
    """Receive webhooks locally: verify their signatures and print each event."""
    from orderhooks.cli.receive import run_receiver
    from orderhooks.delivery.signing import is_valid_secret

    if not is_valid_secret(secret):
        # Named where it came from, as a bad setting is: the variable, when that gave it.
        # By name: typer's Context is its own copy of click's, with its own enum.
        source = context.get_parameter_source("secret")
        from_env = getattr(source, "name", None) == "ENVIRONMENT"
        name = RECEIVE_SECRET_ENV if from_env else "--secret"
        raise fail(f"{name} must be whsec_ followed by base64 of 24-64 bytes", 2)
    console = Console(highlight=False, soft_wrap=True)
    raise typer.Exit(run_async(lambda: run_receiver(secret, host, port, status, console)))


def _default_key(data_dir: Path | None) -> str | None:
    """ORDERHOOKS_ADMIN_KEY, else the key saved by the first start in the data dir."""
    from orderhooks.cli.runner import ADMIN_KEY_FILE
    from orderhooks.domain.apikeys import presented_key

    settings = build_settings(("admin_key", "data_dir"), data_dir=data_dir)
    if settings.admin_key and presented_key(settings.admin_key):
        return presented_key(settings.admin_key)
    try:
        return (settings.data_dir / ADMIN_KEY_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def simulate(
    url: Annotated[str, typer.Option(help="Base URL of the orderhooks API.")] = (
        "http://127.0.0.1:8080"
    ),
    key: Annotated[
        str | None,
        typer.Option(
            help="Ingest or admin key (default: ORDERHOOKS_ADMIN_KEY, else <data dir>/admin.key)",
            show_default=False,
        ),
    ] = None,
    rate: Annotated[float, typer.Option(min=0.01, help="New orders per second.")] = 5.0,
    duration: Annotated[
        float, typer.Option(min=0.0, help="Seconds of new orders; 0 = until Ctrl-C.")
    ] = 60.0,
    accounts: Annotated[int, typer.Option(min=1, help="How many accounts.")] = 3,
    locations: Annotated[int, typer.Option(min=1, help="Locations per account.")] = 2,
    seed: Annotated[int, typer.Option(help="Same seed, same accounts and locations.")] = 0,
    batch: Annotated[bool, typer.Option(help="Post through POST /v1/events batches.")] = False,
    speed: Annotated[
        float, typer.Option(min=0.01, help="Time factor of each order's life (2 = twice as fast).")
    ] = 1.0,
    accounts_list: Annotated[
        str | None, typer.Option(help="Comma-separated account ids to use instead.")
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            help="Publish to a broker source instead: nats://host:4222/STREAM?subject=…&durable=…"
            " or amqp://user:pass@host:5672/vhost?queue=…",
            show_default=False,
        ),
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(
            help="First make a webhook on the simulated accounts that sends to this URL "
            "(needs an admin key).",
            show_default=False,
        ),
    ] = None,
    webhook_secret: Annotated[
        str | None,
        typer.Option(
            envvar=RECEIVE_SECRET_ENV,
            help="The demo webhook's signing secret, whsec_…, as `receive` verifies it "
            "(env ORDERHOOKS_RECEIVE_SECRET).",
            show_default=False,
        ),
    ] = None,
    personal_data: Annotated[
        str | None,
        typer.Option(
            help="The demo webhook's personalData: include or exclude.", show_default=False
        ),
    ] = None,
    fields: Annotated[
        str | None,
        typer.Option(
            help="The demo webhook's fields: comma-separated paths (items[].plu).",
            show_default=False,
        ),
    ] = None,
    batch_max_events: Annotated[
        int | None,
        typer.Option(
            min=1, help="Send the demo webhook batches of up to N events.", show_default=False
        ),
    ] = None,
    batch_max_wait_ms: Annotated[
        int, typer.Option(min=0, help="How long a demo webhook batch waits to fill up.")
    ] = 1000,
    op_events: Annotated[
        bool, typer.Option(help="The demo webhook also receives operational events.")
    ] = False,
    data_dir: DataDir = None,
    version: VersionFlag = False,
) -> None:
    """Post a realistic stream of orders, status and courier updates to a running server."""
    from orderhooks.exceptions import ConfigError
    from orderhooks.logging import configure_logging
    from orderhooks.simulate import SimulationPlan
    from orderhooks.simulate import simulate as run_simulation
    from orderhooks.simulate.webhook import DemoWebhook
    from orderhooks.sources.config import parse_source

    # The simulation reports what goes wrong itself (its display, its last line). Left
    # unconfigured, the broker clients' logs printed debug lines on standard output and
    # aiormq's own error line on standard error, into the live display.
    configure_logging("json", SIMULATE_LOG_LEVEL)
    if not _is_http_address(url):
        raise fail(f"--url must be an http or https URL with a host, not {url!r}", 2)
    if to:
        try:
            parse_source(to)
        except ConfigError as exc:
            raise fail(f"--to: {exc}", 2) from None
    api_key = key or ("" if to else _default_key(data_dir))
    if not api_key and not to:
        raise fail("give --key (no ORDERHOOKS_ADMIN_KEY and no admin.key found)", 2)
    chosen = tuple(a.strip() for a in (accounts_list or "").split(",") if a.strip())
    demo = None
    if webhook_url is not None:
        if personal_data not in (None, "include", "exclude"):
            raise fail("--personal-data must be include or exclude", 2)
        demo = DemoWebhook(
            url=webhook_url,
            personal_data=personal_data,
            fields=tuple(f.strip() for f in (fields or "").split(",") if f.strip()),
            batch_max_events=batch_max_events,
            batch_max_wait_ms=batch_max_wait_ms,
            op_events=op_events,
            secret=webhook_secret,
        )
    elif personal_data or fields or batch_max_events is not None or op_events:
        raise fail(
            "--personal-data, --fields, --batch-max-events and --op-events need --webhook-url", 2
        )
    plan = SimulationPlan(
        url=url,
        key=api_key or "",
        rate=rate,
        duration=duration,
        accounts=accounts,
        locations=locations,
        seed=seed,
        batch=batch,
        speed=speed,
        account_list=chosen,
        to=to or "",
        webhook=demo,
    )
    console = Console(highlight=False)
    raise typer.Exit(run_async(lambda: run_simulation(plan, console)))
