"""`ORDERHOOKS_UI_FRAME_ANCESTORS` on the real app: the CSP and X-Frame-Options of every
dashboard page, the cookie a portal link sets when other sites may frame the dashboard,
and a process that refuses to start with a bad value."""

from __future__ import annotations

import re
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

            # Signing out deletes that cookie: a browser keeps a partitioned cookie apart,
            # and deletes it only with the same attributes.
            page = await browser.get("/ui")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert page.status_code == 200 and csrf is not None, page.text
            out = await browser.post("/ui/signout", data={"csrf_token": csrf.group(1)})
            assert out.status_code == 303
            deleted = [c for c in out.headers.get_list("set-cookie") if "Max-Age=0" in c]
            assert any("Partitioned" in c and "SameSite=none" in c for c in deleted), deleted
            assert any("Partitioned" not in c for c in deleted), deleted  # a key's session


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
