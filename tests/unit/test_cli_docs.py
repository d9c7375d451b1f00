"""docs/cli.md describes every command of the command line: each one is in the overview
at the top of the page and has a section of its own."""

from __future__ import annotations

import re
from pathlib import Path

import typer.core
import typer.main

from orderhooks.cli import app

PAGE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
# The serve, api and worker commands share one section.
SECTION_OF = {"serve": "serve, api and worker", "api": "serve, api and worker"}
SECTION_OF["worker"] = SECTION_OF["serve"]


def command_names() -> list[str]:
    """The top-level commands the `orderhooks` script has."""
    root = typer.main.get_command(app)
    assert isinstance(root, typer.core.TyperGroup)
    return sorted(root.commands)


def test_the_overview_names_every_command() -> None:
    page = PAGE.read_text(encoding="utf-8")
    overview = page.split("```", 2)[1]
    listed = set(re.findall(r"^orderhooks (\w+)", overview, flags=re.MULTILINE))
    assert listed == set(command_names())


def test_every_command_has_a_section() -> None:
    headings = set(re.findall(r"^## (.+)$", PAGE.read_text(encoding="utf-8"), re.MULTILINE))
    for name in command_names():
        section = SECTION_OF.get(name, name)
        assert any(h == section or h.startswith(f"{section} ") for h in headings), name


README = PAGE.parents[1] / "README.md"


def test_the_readme_command_list_names_every_command() -> None:
    """README's "Command line" overview left out `backup` and `secrets`, two commands an
    operator needs (a backup while serving, re-encrypting after a key rotation)."""
    section = README.read_text(encoding="utf-8").split("\n## Command line\n", 1)[1]
    overview = section.split("```", 2)[1]
    listed = set(re.findall(r"^orderhooks (\w+)", overview, flags=re.MULTILINE))
    assert listed == set(command_names())
