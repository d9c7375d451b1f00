"""`orderhooks.logging` in a fresh interpreter (it configures the process-wide logging)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

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
    """
)


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
    ]
    stored = records[0]
    assert stored["key_id"] == "key_01"
    assert stored["api_key"] == "[redacted]" and stored["secret"] == "[redacted]"
    assert records[1]["authorization"] == "[redacted]" and records[1]["count"] == 3
    assert records[2]["logger"] == "uvicorn.error" and records[2]["level"] == "info"
    assert "RuntimeError: boom" in records[3]["exception"]
    assert all("timestamp" in r for r in records)
    for secret in ("ohk_plaintext", "whsec_abc", "ohk_other", "ohk_in_a_local"):
        assert secret not in result.stderr


def test_console_logs_are_readable_lines_without_secrets() -> None:
    result = _run("console")
    assert result.returncode == 0, result.stderr
    assert "key stored" in result.stderr and "Uvicorn running on" in result.stderr
    assert "RuntimeError" in result.stderr
    for secret in ("ohk_plaintext", "whsec_abc", "ohk_other", "ohk_in_a_local"):
        assert secret not in result.stderr
