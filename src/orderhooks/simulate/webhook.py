"""The demo webhook of `orderhooks simulate --webhook-url`: one webhook on the simulated
accounts, made through the API before the first order, with the partner options a demo
wants to show (payload shaping, batches, operational events).

`webhook_body` is the request body, built from the options alone (pure); the server
validates it like any other create.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from orderhooks.domain.model import EventType
from orderhooks.domain.opevents import OperationalEventType

DEFAULT_BATCH_MAX_WAIT_MS = 1000
DEMO_DESCRIPTION = "orderhooks simulate"


class DemoWebhookError(Exception):
    """The server refused to make the demo webhook; the message says why."""


@dataclass(frozen=True, slots=True)
class DemoWebhook:
    """What `--webhook-url` and its companion flags ask for."""

    url: str
    personal_data: str | None = None  # `include` or `exclude`; None: the server's default
    fields: tuple[str, ...] = ()  # projection paths; empty: every field
    batch_max_events: int | None = None  # None: one event per request
    batch_max_wait_ms: int = DEFAULT_BATCH_MAX_WAIT_MS
    op_events: bool = False  # also the operational events of the accounts' webhooks
    secret: str | None = None  # the signing secret to set, so `receive` can verify


def webhook_body(demo: DemoWebhook, accounts: Sequence[str]) -> dict[str, Any]:
    """The `POST /v1/webhooks` body of the demo webhook for `accounts`."""
    event_types = [t.value for t in EventType]
    if demo.op_events:
        event_types += [t.value for t in OperationalEventType]
    body: dict[str, Any] = {
        "url": demo.url,
        "accounts": list(dict.fromkeys(accounts)),
        "eventTypes": event_types,
        "description": DEMO_DESCRIPTION,
    }
    if demo.personal_data is not None:
        body["personalData"] = demo.personal_data
    if demo.fields:
        body["fields"] = list(demo.fields)
    if demo.batch_max_events is not None:
        body["batch"] = {"maxEvents": demo.batch_max_events, "maxWaitMs": demo.batch_max_wait_ms}
    return body


async def _answer(response: aiohttp.ClientResponse, what: str) -> dict[str, Any]:
    if response.status >= 300:
        text = (await response.text())[:500]
        raise DemoWebhookError(f"{what} answered {response.status}: {text}")
    answer: dict[str, Any] = await response.json()
    return answer


async def create_demo_webhook(
    session: aiohttp.ClientSession, base_url: str, demo: DemoWebhook, accounts: Sequence[str]
) -> str:
    """Make the demo webhook (and set its secret when one was given); its id."""
    base = base_url.rstrip("/")
    async with session.post(f"{base}/v1/webhooks", json=webhook_body(demo, accounts)) as response:
        created = await _answer(response, "creating the webhook")
    webhook_id = str(created["id"])
    if demo.secret is not None:
        # No grace: the server-made secret was never shown, so nothing signs with it.
        body = {"secret": demo.secret, "gracePeriodSeconds": 0}
        path = f"{base}/v1/webhooks/{webhook_id}/secret/rotate"
        async with session.post(path, json=body) as response:
            await _answer(response, "setting the webhook's secret")
    return webhook_id
