"""The command line without a server: --version, --help, migrate, keys, configuration errors."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest

from tests.integration.cli_support import (
    REFUSAL_TIMEOUT_SECONDS,
    assert_usage_error,
    cli_env,
    run_cli,
)
from tests.support.tls import new_encryption_key

COMMANDS_WITH_HELP = [
    [],
    ["serve"],
    ["api"],
    ["worker"],
    ["migrate"],
    ["keys"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
    ["receive"],
    ["simulate"],
]


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    expected = f"orderhooks {importlib.metadata.version('orderhooks')}\n"
    for args in (["--version"], ["serve", "--version"], ["keys", "--version"]):
        result = run_cli(args, cli_env(tmp_path))
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected


@pytest.mark.parametrize("command", COMMANDS_WITH_HELP, ids=lambda c: " ".join(c) or "root")
def test_help_goes_to_stdout_and_exits_0(tmp_path: Path, command: list[str]) -> None:
    result = run_cli([*command, "--help"], cli_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Usage: orderhooks" in result.stdout
    assert result.stderr == ""
    assert not (tmp_path / "orderhooks.db").exists()  # help touches no database


def test_root_help_lists_every_command(tmp_path: Path) -> None:
    out = run_cli(["--help"], cli_env(tmp_path)).stdout
    for name in ("serve", "api", "worker", "migrate", "keys", "receive", "simulate"):
        assert name in out


def test_migrate_applies_once_then_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = run_cli(["migrate"], cli_env(data_dir))
    assert first.returncode == 0, first.stderr
    applied = first.stdout.split()
    assert applied, "a fresh database gets at least one migration"
    assert (data_dir / "orderhooks.db").is_file()

    second = run_cli(["migrate"], cli_env(data_dir))
    assert second.returncode == 0, second.stderr
    assert second.stdout == ""


@pytest.mark.postgres
def test_tools_on_postgresql_neither_need_nor_make_a_data_dir(tmp_path: Path, pg_url: str) -> None:
    """On PostgreSQL, `migrate`, `keys` and `secrets reencrypt` use nothing in the data dir
    (docs/operations.md: `orderhooks migrate` "once, from anywhere"). They made one all the
    same, `./orderhooks-data` in whatever directory they ran from, and stopped with exit 2
    where it could not be made (a read-only working directory, a file in the way)."""
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    unused = tmp_path / "unused"
    commands = [["migrate"], ["keys", "list", "--json"], ["secrets", "reencrypt", "--dry-run"]]
    for data_dir in (blocked / "data", unused):
        env = cli_env(
            data_dir,
            ORDERHOOKS_DATABASE_URL=pg_url,
            ORDERHOOKS_ENCRYPTION_KEYS=new_encryption_key(),
        )
        for command in commands:
            result = run_cli(command, env)
            assert result.returncode == 0, (command, result.stderr)
    assert not unused.exists()


def test_migrate_flag_wins_over_environment(tmp_path: Path) -> None:
    env_dir, flag_dir = tmp_path / "from-env", tmp_path / "from-flag"
    result = run_cli(["migrate", "--data-dir", str(flag_dir)], cli_env(env_dir))
    assert result.returncode == 0, result.stderr
    assert (flag_dir / "orderhooks.db").is_file()
    assert not (env_dir / "orderhooks.db").exists()


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    created = run_cli(
        ["keys", "create", "--role", "partner", "--account", "acc-1", "--account", "acc-2",
         "--name", "bi platform", "--json"],
        env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["id"].startswith("key_")
    assert key["key"].startswith("ohk_")
    assert key["role"] == "partner"
    assert key["accounts"] == ["acc-1", "acc-2"]
    assert key["name"] == "bi platform"

    text = run_cli(["keys", "create", "--role", "ingest", "--name", "platform"], env)
    assert text.returncode == 0, text.stderr
    lines = dict(line.split(":", 1) for line in text.stdout.strip().splitlines())
    ingest_id, ingest_key = lines["id"].strip(), lines["key"].strip()
    assert ingest_id.startswith("key_") and ingest_key.startswith("ohk_")

    listed = run_cli(["keys", "list", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    items = {item["id"]: item for item in json.loads(listed.stdout)}
    assert set(items) == {key["id"], ingest_id}
    assert all("key" not in item for item in items.values())
    assert items[ingest_id]["revokedAt"] is None
    table = run_cli(["keys", "list"], env)
    assert ingest_id in table.stdout and "bi platform" in table.stdout
    for output in (listed.stdout, listed.stderr, table.stdout, table.stderr):
        assert key["key"] not in output and ingest_key not in output

    revoked = run_cli(["keys", "revoke", ingest_id], env)
    assert revoked.returncode == 0, revoked.stderr
    items = {
        item["id"]: item for item in json.loads(run_cli(["keys", "list", "--json"], env).stdout)
    }
    assert items[ingest_id]["revokedAt"] is not None
    assert items[key["id"]]["revokedAt"] is None


def test_keys_revoke_unknown_id_fails(tmp_path: Path) -> None:
    result = run_cli(["keys", "revoke", "key_doesnotexist"], cli_env(tmp_path))
    assert result.returncode == 1
    assert "key_doesnotexist" in result.stderr


def test_partner_key_needs_an_account(tmp_path: Path) -> None:
    result = run_cli(["keys", "create", "--role", "partner", "--name", "x"], cli_env(tmp_path))
    assert result.returncode == 2
    assert "--account" in result.stderr


@pytest.mark.parametrize(
    ("args", "variables", "message"),
    [
        (["serve"], {"ORDERHOOKS_PORT": "eighty"}, "ORDERHOOKS_PORT"),
        (["serve"], {"ORDERHOOKS_REQUIRE_AGREEMENT": "maybe"}, "ORDERHOOKS_REQUIRE_AGREEMENT"),
        (["serve", "--allowed-networks", "not-a-net"], {}, "not-a-net"),
        (["serve", "--retry-schedule", "5,soon"], {}, "--retry-schedule"),
        (["serve", "--log-format", "xml"], {}, "xml"),
    ],
)
def test_bad_configuration_is_a_usage_error(
    tmp_path: Path, args: list[str], variables: dict[str, str], message: str
) -> None:
    assert_usage_error(run_cli(args, cli_env(tmp_path, **variables)), message)


@pytest.mark.parametrize(
    ("args", "variables", "message"),
    [
        # A wait past any date a datetime holds failed every retry decision: the server
        # started, and each failing delivery stayed in `delivering` for ever.
        (["serve"], {"ORDERHOOKS_RETRY_SCHEDULE": "5,1000000000000"}, "ORDERHOOKS_RETRY_SCHEDULE"),
        (["serve", "--retry-schedule", "604801"], {}, "--retry-schedule"),
        # A span past what a timedelta holds failed the recording of every failed attempt:
        # the claim loop retried it for ever and no delivery left `delivering`.
        (["serve"], {"ORDERHOOKS_DISABLE_AFTER": "100000000000000"}, "ORDERHOOKS_DISABLE_AFTER"),
        (["serve", "--disable-after", "3153600001"], {}, "--disable-after"),
        # Days past what a date holds failed every purge: the server started, then logged
        # "retention purge failed" at start and every hour.
        (["serve"], {"ORDERHOOKS_RETENTION_DAYS": "1000000"}, "ORDERHOOKS_RETENTION_DAYS"),
        (["serve", "--retention-days", "36501"], {}, "--retention-days"),
        # A webhook waits 30 s at most: more was taken silently, new webhooks got 30.
        (["serve"], {"ORDERHOOKS_DELIVERY_TIMEOUT": "60"}, "ORDERHOOKS_DELIVERY_TIMEOUT"),
        # int() took underscores, a sign, surrounding whitespace and other scripts' digits:
        # `ORDERHOOKS_PORT=٨٠٨٠` listened on 8080.
        (["serve"], {"ORDERHOOKS_PORT": "٨٠٨٠"}, "ORDERHOOKS_PORT must be an integer"),
        (["serve"], {"ORDERHOOKS_MAX_BODY_BYTES": "1_000"}, "ORDERHOOKS_MAX_BODY_BYTES must"),
        (["serve", "--port", " 0"], {}, "--port must be an integer"),
        (["serve"], {"ORDERHOOKS_PORT": "+0"}, "ORDERHOOKS_PORT must be an integer"),
    ],
)
def test_settings_past_their_bounds_or_not_plain_decimal_digits_are_refused_at_start(
    tmp_path: Path, args: list[str], variables: dict[str, str], message: str
) -> None:
    env = cli_env(tmp_path, ORDERHOOKS_HOST="127.0.0.1", **variables)
    assert_usage_error(run_cli(args, env, timeout=REFUSAL_TIMEOUT_SECONDS), message)


@pytest.mark.parametrize("value", [",", " ", "5,,60"])
def test_a_retry_schedule_with_an_empty_entry_is_refused_at_start(
    tmp_path: Path, value: str
) -> None:
    """`,` and spaces were read as a schedule of no waits: no retries at all, silently."""
    env = cli_env(
        tmp_path, ORDERHOOKS_HOST="127.0.0.1", ORDERHOOKS_PORT="0", ORDERHOOKS_RETRY_SCHEDULE=value
    )
    result = run_cli(["serve"], env, timeout=REFUSAL_TIMEOUT_SECONDS)
    assert_usage_error(result, "ORDERHOOKS_RETRY_SCHEDULE must")


@pytest.mark.parametrize("command", [["keys", "list"], ["migrate"], ["backup", "copy.db"]])
def test_a_database_url_with_a_bad_port_is_a_usage_error_without_its_password(
    tmp_path: Path, command: list[str]
) -> None:
    url = "postgresql://postgres:hunter2pw@127.0.0.1:notaport/oh"
    done = run_cli([*command, "--database-url", url], cli_env(tmp_path / "data"))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("orderhooks: --database-url must be")
    assert "hunter2pw" not in done.stdout + done.stderr


# Values of settings that migrate, keys, backup and secrets reencrypt do not use.
UNRELATED_BAD_SETTINGS = {
    "ORDERHOOKS_ENCRYPTION_KEYS": "not-a-key",
    "ORDERHOOKS_PORT": "eighty",
    "ORDERHOOKS_HOST": "",
    "ORDERHOOKS_RETRY_SCHEDULE": "5,soon",
    "ORDERHOOKS_REQUIRE_AGREEMENT": "maybe",
    "ORDERHOOKS_EGRESS_PROXY": "socks5://127.0.0.1:1080",
    "ORDERHOOKS_WORKERS": "0",
}
A_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def test_commands_that_do_not_use_a_setting_run_whatever_its_value(tmp_path: Path) -> None:
    """A broken ORDERHOOKS_ENCRYPTION_KEYS (or port, schedule…) stopped `backup`, `migrate`
    and `keys` with exit 2, though they never use it: an emergency backup was blocked by a
    setting of the server (docs/configuration.md: each command reads its own settings)."""
    data_dir = tmp_path / "data"
    env = cli_env(data_dir, **UNRELATED_BAD_SETTINGS)
    migrated = run_cli(["migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    created = run_cli(["keys", "create", "--role", "ingest", "--name", "x", "--json"], env)
    assert created.returncode == 0, created.stderr
    key_id = json.loads(created.stdout)["id"]
    listed = run_cli(["keys", "list", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    assert [k["id"] for k in json.loads(listed.stdout)] == [key_id]
    revoked = run_cli(["keys", "revoke", key_id], env)
    assert revoked.returncode == 0, revoked.stderr
    backed_up = run_cli(["backup", str(tmp_path / "copy.db")], env)
    assert backed_up.returncode == 0, backed_up.stderr
    assert (tmp_path / "copy.db").is_file()
    # secrets reencrypt uses the keys, but not the port.
    resealed = run_cli(
        ["secrets", "reencrypt"],
        {**env, "ORDERHOOKS_ENCRYPTION_KEYS": A_KEY},
    )
    assert resealed.returncode == 0, resealed.stderr


@pytest.mark.parametrize(
    ("args", "variables", "message"),
    [
        (["migrate"], {"ORDERHOOKS_LOG_FORMAT": "xml"}, "ORDERHOOKS_LOG_FORMAT"),
        (["migrate"], {"ORDERHOOKS_DATABASE_URL": "mysql://x"}, "ORDERHOOKS_DATABASE_URL"),
        (["keys", "list"], {"ORDERHOOKS_DATABASE_URL": "mysql://x"}, "ORDERHOOKS_DATABASE_URL"),
        (["backup", "copy.db"], {"ORDERHOOKS_DATABASE_URL": "x"}, "ORDERHOOKS_DATABASE_URL"),
        (["secrets", "reencrypt"], {"ORDERHOOKS_ENCRYPTION_KEYS": "x"}, "ORDERHOOKS_ENCRYP"),
    ],
)
def test_a_bad_value_of_a_setting_the_command_uses_is_still_a_usage_error(
    tmp_path: Path, args: list[str], variables: dict[str, str], message: str
) -> None:
    result = run_cli(args, cli_env(tmp_path / "data", **variables))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"orderhooks: {message}")
    assert not (tmp_path / "data").exists()  # refused before anything was made
