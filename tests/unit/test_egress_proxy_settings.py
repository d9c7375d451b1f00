"""ORDERHOOKS_EGRESS_PROXY: only `http://host:port` is accepted, and a proxy's failure is
not counted against the webhook's health."""

from __future__ import annotations

import pytest

from orderhooks.config import load_settings, parse_egress_proxy
from orderhooks.domain.health import counts_toward_health
from orderhooks.domain.model import AttemptError
from orderhooks.exceptions import ConfigError


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("http://127.0.0.1:8888", "http://127.0.0.1:8888"),
        ("http://egress.internal:3128/", "http://egress.internal:3128"),
        ("http://user:pass@egress.internal:3128", "http://user:pass@egress.internal:3128"),
        ("http://[::1]:3128", "http://[::1]:3128"),
        (" http://egress:3128 ", "http://egress:3128"),
    ],
)
def test_http_proxy_urls_are_accepted(raw: str, url: str) -> None:
    assert parse_egress_proxy(raw) == url


@pytest.mark.parametrize(
    "raw",
    [
        "https://egress:3128",
        "socks5://egress:1080",
        "egress:3128",
        "http://:3128",
        "http://egress:99999",
        "http://egress:0",  # nothing listens there: every delivery would fail
        # No port: not port 80 by default, which proxies seldom listen on (3128, 8888).
        "http://egress",
        "http://egress:",
        "http://user:pass@egress/",
        "http://egress:port",
        "http://egress:3128/path",
        "http://egress:3128?x=1",
        "http://egress:3128#top",
    ],
)
def test_anything_else_is_a_start_up_error_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"^ORDERHOOKS_EGRESS_PROXY must be "):
        load_settings({"ORDERHOOKS_EGRESS_PROXY": raw})


def test_no_proxy_by_default() -> None:
    assert load_settings({}).egress_proxy is None
    assert load_settings({"ORDERHOOKS_EGRESS_PROXY": ""}).egress_proxy is None
    assert load_settings({"ORDERHOOKS_EGRESS_PROXY": "http://e:1"}).egress_proxy == "http://e:1"


def test_only_proxy_errors_are_left_out_of_the_webhooks_health() -> None:
    assert not counts_toward_health(AttemptError.PROXY_ERROR)
    assert counts_toward_health(None)
    for error in AttemptError:
        if error is not AttemptError.PROXY_ERROR:
            assert counts_toward_health(error)
