"""Configuration from the environment (PRODUCT 9)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from orderhooks.config import DEFAULT_RETRY_SCHEDULE_SECONDS, load_settings
from orderhooks.exceptions import ConfigError


def test_defaults_follow_the_product_table() -> None:
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
    assert not settings.is_postgres


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
        ("ORDERHOOKS_ALLOWED_NETWORKS", "10.0.0.0/33"),
        ("ORDERHOOKS_REQUIRE_AGREEMENT", "maybe"),
        ("ORDERHOOKS_DELIVERY_TIMEOUT", "0"),
        ("ORDERHOOKS_LOG_FORMAT", "xml"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name.removeprefix("ORDERHOOKS_").split("_")[0]):
        load_settings({name: value})
