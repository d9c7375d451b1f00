"""docs/configuration.md carries the table of orderhooks.config, row for row."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orderhooks.config import SETTINGS
from orderhooks.config.reference import (
    TABLE_BEGIN,
    TABLE_END,
    main,
    markdown_table,
    replace_markdown_table,
)

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_configuration_page_shows_the_current_table() -> None:
    page = PAGE.read_text(encoding="utf-8")
    begin, end = page.index(TABLE_BEGIN), page.index(TABLE_END) + len(TABLE_END) + 1
    assert page[begin:end] == markdown_table(), (
        "docs/configuration.md is stale: run "
        "`python -m orderhooks.config --update docs/configuration.md`"
    )


def test_the_table_has_a_row_per_setting_with_its_flag_and_default() -> None:
    rows = markdown_table().splitlines()[3:-1]
    assert len(rows) == len(SETTINGS)
    for line, setting in zip(rows, SETTINGS, strict=True):
        flag = f"`{setting.flag}" if setting.has_flag else "none: variable only"
        assert line.startswith(f"| `{setting.env}` | {flag}")
        assert setting.default_markdown() in line
        assert setting.help in line


def test_update_rewrites_only_the_table(tmp_path: Path) -> None:
    page = tmp_path / "configuration.md"
    page.write_text(f"# Title\n\n{TABLE_BEGIN}\n| stale |\n{TABLE_END}\n\nAfter.\n")
    main(["--update", str(page)])
    assert page.read_text() == f"# Title\n\n{markdown_table()}\nAfter.\n"


def test_a_page_without_the_table_is_refused() -> None:
    with pytest.raises(ValueError, match="no generated settings table"):
        replace_markdown_table("# Title\n")


PACKAGE = PAGE.parents[1] / "src" / "orderhooks"
# The package's test helpers (orderhooks.testing) have variables of their own, for the
# test suite only: docs/testing.md describes them.
TEST_HELPERS = PACKAGE / "testing"
TESTING_PAGE = PAGE.with_name("testing.md")


def _variables_named(paths: list[Path]) -> set[str]:
    return {
        name
        for path in paths
        for name in re.findall(r"ORDERHOOKS_[A-Z0-9_]*[A-Z0-9]", path.read_text(encoding="utf-8"))
    }


def test_every_variable_the_package_names_is_on_the_configuration_page() -> None:
    """`ORDERHOOKS_RECEIVE_SECRET` (read by `receive` and `simulate`) was on no page that
    lists variables: docs/configuration.md promises every `ORDERHOOKS_*` variable. The
    test helpers' own (`ORDERHOOKS_TEST_WORKERS`, on no page either) are on the testing
    page."""
    sources = list(PACKAGE.rglob("*.py"))
    service = _variables_named([p for p in sources if TEST_HELPERS not in p.parents])
    page = PAGE.read_text(encoding="utf-8")
    assert {name for name in service if f"`{name}`" not in page} == set()
    helpers = _variables_named([p for p in sources if TEST_HELPERS in p.parents]) - service
    testing = TESTING_PAGE.read_text(encoding="utf-8")
    assert {name for name in helpers if name not in testing} == set()


def test_the_readme_names_the_settings_that_have_no_flag() -> None:
    """README said every setting has a flag; `ORDERHOOKS_ENCRYPTION_KEYS` has none."""
    readme = PAGE.parents[1] / "README.md"
    section = readme.read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    assert [row.env for row in SETTINGS if not row.has_flag and row.env not in section] == []
