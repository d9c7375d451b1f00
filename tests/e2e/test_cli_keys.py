"""`orderhooks keys create` on the live server's database keeps the rules of `POST /v1/keys`
(docs/cli.md, keys; docs/api.md, API keys): a key made on the command line can do no
more than one the API would have made."""

from __future__ import annotations

import json

import pytest

from orderhooks.testing.server import ServerProcess
from tests.integration.cli_support import assert_usage_error, cli_env, run_cli
from tests.support.api import Api, expect


@pytest.mark.parametrize(
    ("role", "account", "message"),
    [
        # `*` is how a webhook names every account: a partner key holding it saw the
        # admin's all-accounts webhooks, their signing secrets and every account's
        # deliveries through them.
        ("partner", "*", '"*" is not an account'),
        # An operator naming an account meant a scoped key, but admin and ingest keys see
        # every account whatever they carry.
        ("admin", "acct-1", "an admin key is not scoped to accounts"),
        ("ingest", "acct-1", "an ingest key is not scoped to accounts"),
    ],
)
async def test_keys_create_refuses_what_the_api_refuses(
    server: ServerProcess, api: Api, role: str, account: str, message: str
) -> None:
    all_accounts = await api.create_webhook("https://receiver.example.com/all", ["*"])
    through_api = await api.call(
        "POST", "/v1/keys", json_body={"role": role, "accounts": [account], "name": "scoped"}
    )
    assert message in expect(through_api, 422)["error"]["details"][0]["message"]
    before = await api.list_all("/v1/keys")

    created = run_cli(
        ["keys", "create", "--role", role, "--account", account, "--name", "scoped", "--json"],
        cli_env(server.data_dir),
    )

    if created.returncode == 0 and role == "partner":
        key = json.loads(created.stdout)["key"]
        seen = await api.call("GET", f"/v1/webhooks/{all_accounts['id']}/secret", key)
        pytest.fail(f"a partner key with {account!r} was made; its secret read: {seen.text}")
    assert_usage_error(created, message)
    assert await api.list_all("/v1/keys") == before
