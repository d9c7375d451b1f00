"""The command line's settings flags, built from the table of orderhooks.config."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from orderhooks.cli import app
from orderhooks.cli.options import with_settings
from orderhooks.config import FLAG_SETTINGS, SETTINGS, Setting, Settings

# The flags the process commands had before the table; they must keep working.
FLAGS_BEFORE_THE_TABLE = [
    "--database-url",
    "--data-dir",
    "--host",
    "--port",
    "--log-format",
    "--admin-key",
    "--retry-schedule",
    "--retry-jitter",
    "--delivery-timeout",
    "--disable-after",
    "--allowed-networks",
    "--require-agreement",
    "--no-require-agreement",
    "--max-body-bytes",
    "--rate-limit-per-key",
    "--log-level",
    "--access-log",
]


def _options(*path: str) -> set[str]:
    command = typer.main.get_command(app)
    for name in path:
        assert isinstance(command, typer.core.TyperGroup)
        command = command.commands[name]
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


@pytest.mark.parametrize("role", ["serve", "api", "worker"])
def test_the_process_commands_have_a_flag_for_every_setting(role: str) -> None:
    options = _options(role)
    assert {row.flag for row in FLAG_SETTINGS} <= options
    assert "--encryption-keys" not in options
    assert set(FLAGS_BEFORE_THE_TABLE) <= options


def test_the_other_commands_keep_their_flags() -> None:
    assert {"--database-url", "--data-dir", "--log-format"} <= _options("migrate")
    assert {"--database-url", "--data-dir"} <= _options("keys", "list")
    assert "--data-dir" in _options("simulate")


def _probe() -> tuple[typer.Typer, list[Settings]]:
    """An app whose one command records the settings it is given."""
    seen: list[Settings] = []
    probe = typer.Typer()

    @probe.command()
    @with_settings()
    def record(settings: Settings, label: str = "") -> None:
        seen.append(settings)

    return probe, seen


def _arguments(row: Setting, text: str) -> list[str]:
    if row.is_switch:
        on = row.kind.parse(text)
        return [row.flag if on else f"--no-{row.flag.removeprefix('--')}"]
    return [row.flag, text]


def test_every_flag_wins_over_its_variable_on_the_command_line() -> None:
    probe, seen = _probe()
    env = {row.env: row.kind.samples[0] for row in SETTINGS}
    arguments = [arg for row in FLAG_SETTINGS for arg in _arguments(row, row.kind.samples[1])]
    result = CliRunner().invoke(probe, [*arguments, "--label", "x"], env=env)
    assert result.exit_code == 0, result.output
    [settings] = seen
    for row in FLAG_SETTINGS:
        assert getattr(settings, row.name) == row.kind.parse(row.kind.samples[1]), row.flag


def test_without_flags_the_variables_are_read() -> None:
    probe, seen = _probe()
    env = {row.env: row.kind.samples[0] for row in SETTINGS}
    result = CliRunner().invoke(probe, [], env=env)
    assert result.exit_code == 0, result.output
    [settings] = seen
    for row in SETTINGS:
        assert getattr(settings, row.name) == row.kind.parse(row.kind.samples[0]), row.env


@pytest.mark.parametrize(
    ("arguments", "env", "message"),
    [
        (["--port", "70000"], {}, "--port must be at most 65535"),
        (["--worker-concurrency", "0"], {}, "--worker-concurrency must be at least 1"),
        ([], {"ORDERHOOKS_DB_POOL_SIZE": "many"}, "ORDERHOOKS_DB_POOL_SIZE must be an integer"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_it(
    arguments: list[str], env: dict[str, str], message: str
) -> None:
    probe, seen = _probe()
    result = CliRunner().invoke(probe, arguments, env=env)
    assert result.exit_code == 2
    assert message in result.output
    assert seen == []
