"""`orderhooks.logging` in a fresh interpreter (it configures the process-wide logging)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

from orderhooks.logging import REDACTED
from orderhooks.testing.server import ServerProcess

LOG_WAIT_SECONDS = 10.0

SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from orderhooks.logging import configure_logging, get_logger

    configure_logging(sys.argv[1], "info")
    log = get_logger("orderhooks.test")
    log.info("key stored", key_id="key_01", api_key="ohk_plaintext", secret="whsec_abc")
    log.info("authorization seen", authorization="Bearer ohk_other", count=3)
    log.debug("not shown at info")
    logging.getLogger("uvicorn.error").info("Uvicorn running on %s", "http://127.0.0.1:1")
    def fail(admin_key):
        raise RuntimeError("boom")
    try:
        fail("ohk_in_a_local")
    except RuntimeError:
        log.exception("it failed")
    try:
        raise LookupError("no portal link ohp_in_a_message")
    except LookupError:
        log.exception("lookup failed", tried=["ohk_in_a_list"], seen={"link": "ohp_in_a_map"})
    """
)
# Credentials that only the renderer spells out: a traceback's message, texts inside a
# list or a mapping.
RENDERED_ONLY = ("ohp_in_a_message", "ohk_in_a_list", "ohp_in_a_map")


def _run(log_format: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, log_format],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_json_logs_are_one_object_per_line_without_secrets() -> None:
    result = _run("json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # logs go to stderr only
    records = [json.loads(line) for line in result.stderr.splitlines()]
    events = [r["event"] for r in records]
    assert events == [
        "key stored",
        "authorization seen",
        "Uvicorn running on http://127.0.0.1:1",
        "it failed",
        "lookup failed",
    ]
    stored = records[0]
    assert stored["key_id"] == "key_01"
    assert stored["api_key"] == "[redacted]" and stored["secret"] == "[redacted]"
    assert records[1]["authorization"] == "[redacted]" and records[1]["count"] == 3
    assert records[2]["logger"] == "uvicorn.error" and records[2]["level"] == "info"
    assert "RuntimeError: boom" in records[3]["exception"]
    assert all("timestamp" in r for r in records)
    assert records[4]["tried"] == [f"ohk_{REDACTED}"]
    for secret in ("ohk_plaintext", "whsec_abc", "ohk_other", "ohk_in_a_local", *RENDERED_ONLY):
        assert secret not in result.stderr


def test_console_logs_are_readable_lines_without_secrets() -> None:
    result = _run("console")
    assert result.returncode == 0, result.stderr
    assert "key stored" in result.stderr and "Uvicorn running on" in result.stderr
    assert "RuntimeError" in result.stderr and f"LookupError: no portal link ohp_{REDACTED}" in (
        result.stderr
    )
    for secret in ("ohk_plaintext", "whsec_abc", "ohk_other", "ohk_in_a_local", *RENDERED_ONLY):
        assert secret not in result.stderr


def test_the_access_log_never_shows_a_portal_token_or_a_key(tmp_path: Path) -> None:
    # A portal link is a credential until it is used (opening it signs in as the partner),
    # and `GET /ui/portal/{token}` does not use it: the access log's request line must not
    # hand it to whoever reads the log. Keys and secrets pasted into a URL likewise.
    command = ("serve", "--access-log")
    with (
        ServerProcess(
            tmp_path / "data", log_path=tmp_path / "server.log", command=command
        ) as server,
        server.client() as api,
    ):
        link = api.post("/v1/portal-links", json={"accounts": ["acct-log"]}).json()["url"]
        token = link.rsplit("/", 1)[1]
        assert httpx.get(link).status_code == 200, "the link is still usable"
        hook = {"url": "http://127.0.0.1:9/", "accounts": ["acct-log"], "eventTypes": ["order.new"]}
        secret = api.post("/v1/webhooks", json=hook).json()["secret"]
        api.get("/v1/events", params={"key": server.admin_key, "secret": secret})
        api.get("/healthz")  # logged last: once it is in the log, so is every line before
        deadline = time.monotonic() + LOG_WAIT_SECONDS
        while "GET /healthz" not in server.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = server.log_text()
    assert f"GET /ui/portal/ohp_{REDACTED}" in log, "the request is logged, its token masked"
    for credential in (token, token[4:16], server.admin_key, secret, secret[6:30]):
        assert credential not in log
