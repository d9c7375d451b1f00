"""Another connection holding SQLite's write lock (a `sqlite3` shell left in a
transaction, a long `orderhooks keys` or backup step): the database is unavailable for
writing, so writes answer 503 `unavailable` as during any outage (docs/operations.md,
"Health checks"), never 500, nothing is stored, and everything resumes by itself once
the lock is released."""

from __future__ import annotations

import asyncio
import sqlite3

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.support.api import Api, expect
from tests.support.data import new_order


async def test_a_held_write_lock_answers_503_and_then_resumes(
    api: Api, server: ServerProcess, account: str, rx: Receiver
) -> None:
    await api.create_webhook(rx.url, [account])
    order = new_order(account)
    holder = sqlite3.connect(server.data_dir / "orderhooks.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # the write lock, held until rolled back
        # The server's writer waits out its busy timeout, then gives up on the request.
        answer = await api.call("POST", "/v1/orders", json_body=order)
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "unavailable"
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    # Nothing of the refused request was stored: the same body creates the order now.
    event_ids = expect(await api.call("POST", "/v1/orders", json_body=order), 202)["eventIds"]
    await rx.wait_for_delivered(set(event_ids))
    await asyncio.sleep(0)
