"""`ORDERHOOKS_UI_FRAME_ANCESTORS` on the real app: the CSP and X-Frame-Options of every
dashboard page, the cookie a portal link sets when other sites may frame the dashboard,
and a process that refuses to start with a bad value."""

from __future__ import annotations

from pathlib import Path

import httpx

from orderhooks.web.dashboard.session import SESSION_COOKIE
from tests.integration.api_support import running_api
from tests.integration.cli_support import cli_env, run_cli
from tests.support.api import expect
from tests.support.data import unique

PAGES = ("/ui", "/ui/portal/ohp_unknown")


async def test_pages_are_not_framed_by_default(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        for path in PAGES:
            response = await api.client.get(path)
            assert "frame-ancestors 'none';" in response.headers["content-security-policy"]
            assert response.headers["x-frame-options"] == "DENY"


async def test_the_setting_is_the_csp_of_every_page(tmp_path: Path) -> None:
    ancestors = "'self' https://portal.example.com"
    async with running_api(tmp_path, ui_frame_ancestors=ancestors) as api:
        for path in PAGES:
            response = await api.client.get(path)
            csp = response.headers["content-security-policy"]
            assert f"frame-ancestors {ancestors};" in csp and csp.count("frame-ancestors") == 1
            assert "x-frame-options" not in response.headers

        # Framed by another site over HTTPS, the portal session cookie must come back
        # inside the frame: SameSite=None, Secure, partitioned.
        body = {"accounts": [unique("acct")]}
        token = expect(await api.call("POST", "/v1/portal-links", json_body=body), 201)["url"]
        transport = api.client._transport
        async with httpx.AsyncClient(transport=transport, base_url="https://ui.test") as browser:
            opened = await browser.post(
                "/ui/portal", data={"portal_token": token.rsplit("/", 1)[1]}
            )
            assert opened.status_code == 303
            cookie = opened.headers["set-cookie"]
            assert cookie.startswith(f"{SESSION_COOKIE}=")
            assert "SameSite=none" in cookie and "Secure" in cookie and "Partitioned" in cookie


async def test_self_alone_keeps_x_frame_options_sameorigin(tmp_path: Path) -> None:
    async with running_api(tmp_path, ui_frame_ancestors="'self'") as api:
        response = await api.client.get("/ui")
        assert "frame-ancestors 'self';" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "SAMEORIGIN"


def test_a_bad_value_stops_the_process_naming_the_variable(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data", ORDERHOOKS_UI_FRAME_ANCESTORS="'self'; sandbox")
    result = run_cli(["api", "--port", "0"], env)
    assert result.returncode != 0
    assert "ORDERHOOKS_UI_FRAME_ANCESTORS" in result.stderr, result.stderr
