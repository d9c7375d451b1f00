"""Configuration from the environment and the flags (docs/configuration.md)."""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import sys
from pathlib import Path

import pytest

from orderhooks.config import (
    DEFAULT_RETRY_SCHEDULE_SECONDS,
    FLAG_SETTINGS,
    SETTINGS,
    SETTINGS_BY_NAME,
    Setting,
    Settings,
    load_settings,
)
from orderhooks.exceptions import ConfigError


def test_defaults_are_those_of_the_documented_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: json logs
    settings = load_settings({})
    assert settings.data_dir == Path("./orderhooks-data")
    assert settings.effective_database_url == "sqlite:///orderhooks-data/orderhooks.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.retry_schedule == DEFAULT_RETRY_SCHEDULE_SECONDS
    assert settings.retry_schedule == (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert settings.retry_jitter == 0.2
    assert settings.delivery_timeout_seconds == 15
    assert settings.disable_after_seconds == 432_000
    assert settings.allowed_networks == ()
    assert settings.require_agreement is True
    assert settings.max_body_bytes == 1_048_576
    assert settings.rate_limit_per_key == 0
    assert settings.retention_days == 30
    assert settings.max_webhooks_per_account == 100
    assert settings.worker_concurrency == 512
    assert settings.db_pool_size == 10
    assert settings.admin_key is None
    assert settings.log_format == "json"
    assert not settings.is_postgres


def test_the_log_format_defaults_to_console_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert load_settings({}).log_format == "console"
    assert load_settings({"ORDERHOOKS_LOG_FORMAT": "json"}).log_format == "json"


def test_variables_and_flags_keep_their_names() -> None:
    variables = {row.env for row in SETTINGS}
    assert variables >= {
        f"ORDERHOOKS_{name}"
        for name in [
            "DATABASE_URL",
            "DATA_DIR",
            "HOST",
            "PORT",
            "ADMIN_KEY",
            "RETRY_SCHEDULE",
            "RETRY_JITTER",
            "DELIVERY_TIMEOUT",
            "DISABLE_AFTER",
            "ALLOWED_NETWORKS",
            "REQUIRE_AGREEMENT",
            "MAX_BODY_BYTES",
            "RATE_LIMIT_PER_KEY",
            "LOG_FORMAT",
            "RETENTION_DAYS",
            "MAX_WEBHOOKS_PER_ACCOUNT",
            "WORKER_CONCURRENCY",
            "DB_POOL_SIZE",
        ]
    }
    assert SETTINGS_BY_NAME["delivery_timeout_seconds"].flag == "--delivery-timeout"
    assert SETTINGS_BY_NAME["disable_after_seconds"].flag == "--disable-after"
    assert SETTINGS_BY_NAME["require_agreement"].is_switch
    assert [row.name for row in SETTINGS] == [f.name for f in dataclasses.fields(Settings)]


def _value(row: Setting, text: str) -> object:
    return row.kind.parse(text)


@pytest.mark.parametrize("row", SETTINGS, ids=lambda row: row.env)
def test_every_variable_is_read(row: Setting) -> None:
    first, second = row.kind.samples
    assert _value(row, first) != _value(row, second)
    for text in (first, second):
        assert getattr(load_settings({row.env: text}), row.name) == _value(row, text)


def _flag(row: Setting, text: str) -> object:
    """What the command line hands over for `text`: the converted value of typed flags."""
    return row.kind.parse(text) if row.is_switch else row.kind.flag_type(text)


@pytest.mark.parametrize("row", FLAG_SETTINGS, ids=lambda row: row.env)
def test_every_flag_wins_over_its_variable(row: Setting) -> None:
    first, second = row.kind.samples
    settings = load_settings({row.env: first}, {row.name: _flag(row, second)})
    assert getattr(settings, row.name) == _value(row, second)


def test_a_flag_not_given_leaves_the_variable() -> None:
    env = {"ORDERHOOKS_PORT": "9090", "ORDERHOOKS_REQUIRE_AGREEMENT": "false"}
    settings = load_settings(env, {"port": None, "require_agreement": None, "host": ""})
    assert (settings.port, settings.require_agreement, settings.host) == (9090, False, "127.0.0.1")


def test_the_variable_of_a_given_flag_is_not_read() -> None:
    settings = load_settings({"ORDERHOOKS_PORT": "eighty"}, {"port": "8081"})
    assert settings.port == 8081


def test_an_empty_variable_is_unset() -> None:
    settings = load_settings({row.env: "" for row in SETTINGS})
    assert settings == load_settings({"ORDERHOOKS_LOG_FORMAT": settings.log_format})


def test_a_bad_flag_is_refused_with_the_flag_named() -> None:
    with pytest.raises(ConfigError, match=r"^--port must be at most 65535"):
        load_settings({}, {"port": "70000"})
    with pytest.raises(ConfigError, match=r"^--retry-jitter must be at most 1"):
        load_settings({}, {"retry_jitter": "1.5"})


def test_only_settings_are_flags() -> None:
    with pytest.raises(TypeError, match="nonsense"):
        load_settings({}, {"nonsense": "1"})


def test_encryption_keys_have_no_flag() -> None:
    # A flag would show the keys to every user of the machine (`ps`) and in shell history.
    assert not SETTINGS_BY_NAME["encryption_keys"].has_flag
    with pytest.raises(TypeError, match="encryption_keys"):
        load_settings({}, {"encryption_keys": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("c2hvcnQ=", "key 1 is 5 bytes"),
        (
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,not base64!",
            "key 2 is not standard base64",
        ),
        ("   ", "is set but empty"),
    ],
)
def test_a_bad_encryption_key_names_the_variable_and_never_the_key(
    value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=f"^ORDERHOOKS_ENCRYPTION_KEYS {message}") as caught:
        load_settings({"ORDERHOOKS_ENCRYPTION_KEYS": value})
    assert "c2hvcnQ" not in str(caught.value) and "AAECAw" not in str(caught.value)
    assert str(caught.value).count("ORDERHOOKS_ENCRYPTION_KEYS") == 1, "named once"


def test_variables_are_read() -> None:
    settings = load_settings(
        {
            "ORDERHOOKS_DATABASE_URL": "postgresql://postgres@127.0.0.1/oh",
            "ORDERHOOKS_PORT": "9090",
            "ORDERHOOKS_RETRY_SCHEDULE": "1, 2,3",
            "ORDERHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8, ::1/128",
            "ORDERHOOKS_REQUIRE_AGREEMENT": "false",
            "ORDERHOOKS_LOG_FORMAT": "json",
        }
    )
    assert settings.is_postgres
    assert settings.port == 9090
    assert settings.retry_schedule == (1, 2, 3)
    assert settings.allowed_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert settings.require_agreement is False
    assert settings.log_format == "json"


def test_flags_override_and_none_keeps_the_environment() -> None:
    settings = load_settings({"ORDERHOOKS_PORT": "9090"}).with_overrides(port=None, host="0.0.0.0")
    assert (settings.host, settings.port) == ("0.0.0.0", 9090)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ORDERHOOKS_PORT", "http"),
        ("ORDERHOOKS_PORT", "70000"),
        ("ORDERHOOKS_RETRY_JITTER", "1.5"),
        ("ORDERHOOKS_RETRY_JITTER", "-0.1"),
        ("ORDERHOOKS_RETRY_SCHEDULE", "5,soon"),
        ("ORDERHOOKS_RETRY_SCHEDULE", "5,-1"),
        # A wait in every entry: the first three read as no retries at all.
        *(
            ("ORDERHOOKS_RETRY_SCHEDULE", schedule)
            for schedule in [",", " ", ",,", "5,,60", "5,60,", ",5", "5,1_000", "5,+60", "5,٦٠"]
        ),
        ("ORDERHOOKS_ALLOWED_NETWORKS", "10.0.0.0/33"),
        ("ORDERHOOKS_REQUIRE_AGREEMENT", "maybe"),
        ("ORDERHOOKS_DELIVERY_TIMEOUT", "0"),
        ("ORDERHOOKS_LOG_FORMAT", "xml"),
        ("ORDERHOOKS_RETRY_JITTER", "nan"),
        ("ORDERHOOKS_RATE_LIMIT_PER_KEY", "fast"),
        ("ORDERHOOKS_DISABLE_AFTER", "-1"),
        ("ORDERHOOKS_MAX_BODY_BYTES", "0"),
        ("ORDERHOOKS_RETENTION_DAYS", "-1"),
        ("ORDERHOOKS_MAX_WEBHOOKS_PER_ACCOUNT", "0"),
        ("ORDERHOOKS_WORKER_CONCURRENCY", "0"),
        ("ORDERHOOKS_DB_POOL_SIZE", "ten"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name} must") as refused:
        load_settings({name: value})
    assert value in str(refused.value)


# int() read these as numbers: underscores, a sign, surrounding whitespace, and the
# digits of other scripts (`٨٠٨٠` was port 8080).
NOT_PLAIN_DECIMAL = ["1_000", "+80", " 80", "80 ", "80\n", "\t80", "٨٠٨٠", "８０", "0x50"]


@pytest.mark.parametrize("value", NOT_PLAIN_DECIMAL)
@pytest.mark.parametrize(
    "name", ["ORDERHOOKS_PORT", "ORDERHOOKS_MAX_BODY_BYTES", "ORDERHOOKS_RETENTION_DAYS"]
)
def test_integers_take_plain_decimal_digits_only(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name} must be an integer") as refused:
        load_settings({name: value})
    assert repr(value) in str(refused.value)


@pytest.mark.parametrize("value", [*NOT_PLAIN_DECIMAL, "0.5_0", " 0.5", "٠.٥", "inf", "nan", "."])
@pytest.mark.parametrize("name", ["ORDERHOOKS_RETRY_JITTER", "ORDERHOOKS_RATE_LIMIT_PER_KEY"])
def test_numbers_take_plain_decimal_notation_only(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name} must be a number") as refused:
        load_settings({name: value})
    assert repr(value) in str(refused.value)


@pytest.mark.parametrize("value", ["0", "0.5", ".5", "1.", "5e-1", "1E0"])
def test_numbers_in_decimal_notation_are_read(value: str) -> None:
    assert load_settings({"ORDERHOOKS_RETRY_JITTER": value}).retry_jitter == float(value)


def test_an_integer_flag_takes_plain_decimal_digits_only() -> None:
    with pytest.raises(ConfigError, match=r"^--port must be an integer"):
        load_settings({}, {"port": "+80"})
    assert load_settings({}, {"port": "8081"}).port == 8081
    assert load_settings({"ORDERHOOKS_RETENTION_DAYS": "007"}).retention_days == 7
    with pytest.raises(ConfigError, match=r"^ORDERHOOKS_RETENTION_DAYS must be at least 0"):
        load_settings({"ORDERHOOKS_RETENTION_DAYS": "-1"})


@pytest.mark.parametrize(
    "value",
    [
        "postgresql://postgres:hunter2pw@127.0.0.1:notaport/oh",
        "postgresql://postgres:hunter2pw@127.0.0.1:99999/oh",
        "postgresql://postgres:hunter2pw@[::1/oh",
        "postgresql://postgres:hunter2pw@h1:5432,h2:x/oh",
        "mysql://root:hunter2pw@127.0.0.1/oh",
        "sqlite://hunter2pw.db",
        "sqlite:///",
    ],
)
def test_a_database_url_that_cannot_be_used_is_refused_without_its_password(value: str) -> None:
    # It used to pass, and then fail as a traceback (a bad port) or as an error quoting
    # the URL, password and all, without naming the variable.
    with pytest.raises(ConfigError, match=r"^ORDERHOOKS_DATABASE_URL must") as refused:
        load_settings({"ORDERHOOKS_DATABASE_URL": value})
    assert "hunter2pw" not in str(refused.value)


@pytest.mark.parametrize(
    "value",
    [
        "sqlite:///orderhooks.db",
        "sqlite:////var/lib/orderhooks/orderhooks.db",
        "postgresql://postgres@127.0.0.1/oh",
        "postgres://user:p%40ss@[::1]:5433/oh?sslmode=disable",
        "postgresql://user@h1:5432,h2:5433,[::1]/oh",
        "postgresql:///oh?host=/var/run/postgresql",
    ],
)
def test_database_urls_of_both_engines_are_taken_as_they_are(value: str) -> None:
    assert load_settings({"ORDERHOOKS_DATABASE_URL": value}).database_url == value


def test_a_retry_schedule_takes_waits_of_decimal_seconds() -> None:
    assert load_settings({"ORDERHOOKS_RETRY_SCHEDULE": "0"}).retry_schedule == (0,)
    assert load_settings({"ORDERHOOKS_RETRY_SCHEDULE": "5, 60"}).retry_schedule == (5, 60)
