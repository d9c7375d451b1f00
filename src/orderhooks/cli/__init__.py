"""The command line (docs/cli.md): `orderhooks serve|api|worker|migrate|keys|secrets|
backup|receive|simulate`.

`main` is the console script. Each command lives in a small module: `process` (the
service itself and migrations), `keys`, `secrets` (re-encryption), `backup`, `tools` (the
local receiver and the simulator);
`options` holds the flags shared by all and how they become Settings.
"""

from __future__ import annotations

import typer

from orderhooks import package_version
from orderhooks.cli import backup, keys, process, secrets, tools
from orderhooks.cli.options import VersionFlag

app = typer.Typer(
    name="orderhooks",
    help="Self-hostable webhooks for restaurant order data.",
    no_args_is_help=True,
    add_completion=False,
    # Tracebacks with local variables could print a key or a secret.
    pretty_exceptions_enable=False,
)


@app.callback()
def root(version: VersionFlag = False) -> None:
    """Self-hostable webhooks for restaurant order data."""


process.register(app)
app.add_typer(keys.keys_app, name="keys")
tools.register(app)
backup.register(app)
app.add_typer(secrets.secrets_app, name="secrets")


def main() -> None:
    """The `orderhooks` console script."""
    app(prog_name="orderhooks")


__all__ = ["app", "main", "package_version"]
