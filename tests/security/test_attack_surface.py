"""Holes an attacker's probing of the real server found (docs/security.md), each pinned on
a real `orderhooks serve` process and real receivers on 127.0.0.1.

- A webhook's static header whose name ends in a line break passed the API's check (the
  name's pattern was `^…$`, and `$` matches before a final `\\n`) and failed in the store:
  500 `internal_error` and a traceback in the log, on create and on `PATCH`. A header
  value with a C1 control character was stored, though docs/api.md refuses control
  characters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.security.support import assert_error
from tests.support.api import Api, admin_api
from tests.support.data import ALL_TYPES, new_order, unique


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real server; killed by pid at the end."""
    base = tmp_path_factory.mktemp("attack-surface")
    with ServerProcess(base / "data", log_path=base / "server.log") as process:
        yield process


@pytest.fixture()
async def api(server: ServerProcess) -> AsyncIterator[Api]:
    """An admin API client of the server."""
    async with admin_api(server) as admin:
        yield admin


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Partner-Token\n": "t0k3n"},
        {"Authorization\n": "Bearer t0k3n"},
        {"Content-Type\n": "text/plain"},
        {"X-Control": "a\x85b"},
    ],
    ids=["name-newline", "authorization-newline", "reserved-newline", "c1-control-value"],
)
async def test_a_header_no_request_can_carry_is_refused(api: Api, headers: dict[str, str]) -> None:
    """A partner's webhook with a header name ending in a line break, or a value with a
    control character, is refused (422 naming `headers`) and nothing is stored."""
    account = unique("acct")
    partner = await api.make_key("partner", [account])
    async with Receiver() as rx:
        body = {"url": rx.url, "accounts": [account], "eventTypes": ALL_TYPES, "headers": headers}
        error = assert_error(await api.call("POST", "/v1/webhooks", partner, json_body=body), 422)
        assert [d["field"] for d in error["details"]] == ["headers"], error
        listed = await api.list_all("/v1/webhooks", account=account)
        assert listed == []

        # Changing a webhook to carry one is refused alike; the webhook keeps delivering.
        body["headers"] = {"X-Partner-Token": "t0k3n"}
        hook = await api.call("POST", "/v1/webhooks", partner, json_body=body)
        assert hook.status_code == 201, hook.text
        path = f"/v1/webhooks/{hook.json()['id']}"
        patched = await api.call("PATCH", path, partner, json_body={"headers": headers})
        assert_error(patched, 422)
        ids = await api.new_order(new_order(account))
        await rx.wait_for_delivered(set(ids))
        [request] = rx.requests
        assert request.headers["x-partner-token"] == "t0k3n"
        rx.verify_all(hook.json()["secret"])
