"""The reference page: the settings table of docs/configuration.md, made from `SETTINGS`.

`python -m orderhooks.config` prints it; `--update docs/configuration.md` rewrites the copy
between the page's markers.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from orderhooks.config import SETTINGS, Setting

TABLE_BEGIN = (
    "<!-- settings table: made by `python -m orderhooks.config` from src/orderhooks/config; "
    "edit the table there -->"
)
TABLE_END = "<!-- end of settings table -->"


def _flag_markdown(row: Setting) -> str:
    if not row.has_flag:
        return "none: variable only"
    if row.is_switch:
        return f"`{row.flag}`, `--no-{row.flag.removeprefix('--')}`"
    # A pipe, even in code, would end the table cell.
    return f"`{row.flag} {row.kind.metavar}`".replace("|", "\\|")


def markdown_table() -> str:
    """The table of docs/configuration.md, between its markers."""
    lines = [
        TABLE_BEGIN,
        "| variable | flag | values | default | meaning |",
        "|---|---|---|---|---|",
        *(
            f"| `{row.env}` | {_flag_markdown(row)} | {row.kind.values} "
            f"| {row.default_markdown()} | {row.help} |"
            for row in SETTINGS
        ),
        TABLE_END,
    ]
    return "\n".join(lines) + "\n"


def replace_markdown_table(page: str) -> str:
    """`page` with its generated table replaced by the current one."""
    pattern = re.compile(re.escape(TABLE_BEGIN) + r".*?" + re.escape(TABLE_END) + r"\n?", re.S)
    if not pattern.search(page):
        raise ValueError("the page has no generated settings table")
    return pattern.sub(lambda _: markdown_table(), page, count=1)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m orderhooks.config`: print the settings table, or update a page's copy."""
    parser = argparse.ArgumentParser(prog="python -m orderhooks.config", description=main.__doc__)
    parser.add_argument("--update", type=Path, metavar="PAGE", help="rewrite PAGE's table")
    parser.add_argument("--markdown", action="store_true", help="print the table (default)")
    options = parser.parse_args(argv)
    if options.update is None:
        sys.stdout.write(markdown_table())
        return
    page = options.update.read_text(encoding="utf-8")
    options.update.write_text(replace_markdown_table(page), encoding="utf-8")
