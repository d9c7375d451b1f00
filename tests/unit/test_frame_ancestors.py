"""`ORDERHOOKS_UI_FRAME_ANCESTORS`: which CSP source lists are accepted, how they are
written back, and the headers of dashboard pages they make."""

from __future__ import annotations

import pytest

from orderhooks.config import load_settings
from orderhooks.config.kinds import parse_frame_ancestors
from orderhooks.exceptions import ConfigError
from orderhooks.web.dashboard.context import framed_by_other_sites, security_headers

VARIABLE = "ORDERHOOKS_UI_FRAME_ANCESTORS"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("'none'", "'none'"),
        ("'NONE'", "'none'"),
        ("'self'", "'self'"),
        ("  'self'   https:  ", "'self' https:"),
        ("https://portal.example.com", "https://portal.example.com"),
        ("https://*.example.com:443", "https://*.example.com:443"),
        ("'self' http://127.0.0.1:8000 https://example.com/embed/", None),
        ("portal.example.com *.example.org:*", None),
        ("*", "*"),
    ],
)
def test_valid_source_lists_are_kept(text: str, value: str | None) -> None:
    assert parse_frame_ancestors(text) == (value if value is not None else text)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("'self'; script-src *", "';'"),
        ("'self', https://a.example.com", "','"),
        ("'self'\nhttps://a.example.com", "line break"),
        ("'self'\rX-Injected: 1", "printable ASCII"),
        ("https://exämple.com", "printable ASCII"),
        ("   ", "at least one source"),
        ("'none' 'self'", "'none' must be the only source"),
        ("'unsafe-inline'", "not a frame-ancestors source"),
        ("'nonce-abc'", "not a frame-ancestors source"),
        ("https://a.example.com/<script>", "not a frame-ancestors source"),
        ("https://a.example.com:99999999", "not a frame-ancestors source"),
        ("https://", "not a frame-ancestors source"),
        ("self", None),  # a host named "self" is valid CSP, if surprising
    ],
)
def test_invalid_source_lists_are_refused(text: str, complaint: str | None) -> None:
    if complaint is None:
        assert parse_frame_ancestors(text) == text
        return
    with pytest.raises(ValueError, match=complaint):
        parse_frame_ancestors(text)


def test_a_bad_value_stops_the_start_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=f"^{VARIABLE} must be a space-separated"):
        load_settings({VARIABLE: "'self'; report-uri https://evil.example.com"})
    with pytest.raises(ConfigError, match=r"^--ui-frame-ancestors .*not a frame-ancestors"):
        load_settings({}, {"ui_frame_ancestors": "'unsafe-eval'"})
    assert load_settings({}).ui_frame_ancestors == "'none'"


def test_headers_follow_the_setting() -> None:
    default = security_headers("'none'")
    assert "frame-ancestors 'none';" in default["Content-Security-Policy"]
    assert default["X-Frame-Options"] == "DENY"
    same = security_headers("'self'")
    assert "frame-ancestors 'self';" in same["Content-Security-Policy"]
    assert same["X-Frame-Options"] == "SAMEORIGIN"
    other = security_headers("'self' https://portal.example.com")
    csp = other["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://portal.example.com;" in csp
    assert "X-Frame-Options" not in other
    assert csp.count("frame-ancestors") == 1 and "script-src 'self'" in csp
    assert not framed_by_other_sites("'none'") and not framed_by_other_sites("'self'")
    assert framed_by_other_sites("https://portal.example.com")
