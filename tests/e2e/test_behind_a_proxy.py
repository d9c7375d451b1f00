"""Behind a TLS-terminating proxy (docs/operations.md, "Behind a load balancer"): the
server takes the scheme from `X-Forwarded-Proto` of the addresses in
`FORWARDED_ALLOW_IPS` only, and the dashboard's cookies are `Secure` when the client's
side of the proxy is HTTPS."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from orderhooks.testing.server import ServerProcess

PROXIED = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.7"}


def _session_cookie_after_sign_in(server: ServerProcess) -> str:
    """The Set-Cookie of the session a sign-in through the 'proxy' opens."""
    with httpx.Client(base_url=server.base_url, headers=PROXIED, timeout=10) as client:
        form = client.get("/ui")
        token = re.search(r'name="signin_token" value="([^"]+)"', form.text)
        nonce = re.search(r"orderhooks_signin=([^;]+)", form.headers.get("set-cookie", ""))
        assert token is not None and nonce is not None, form.text
        # Sent by hand: a client keeps a Secure cookie from a plain-HTTP connection.
        answer = client.post(
            "/ui/signin",
            data={"signin_token": token[1], "api_key": server.admin_key},
            headers={"cookie": f"orderhooks_signin={nonce[1]}"},
            follow_redirects=False,
        )
    assert answer.status_code == 303, answer.text
    [session] = [c for c in answer.headers.get_list("set-cookie") if "orderhooks_session=" in c]
    return session


@pytest.mark.parametrize(
    ("allowed", "secure"),
    [
        ("127.0.0.1", True),  # the proxy is the address connecting: its header is taken
        ("192.0.2.1", False),  # another address: the header is the client's word, ignored
    ],
)
def test_the_session_cookie_is_secure_only_behind_a_trusted_proxy(
    tmp_path: Path, allowed: str, secure: bool
) -> None:
    env = {"FORWARDED_ALLOW_IPS": allowed}
    with ServerProcess(tmp_path / "data", env=env) as server:
        cookie = _session_cookie_after_sign_in(server)
    assert ("secure" in cookie.lower().split("; ")) is secure, cookie
