"""Settings at the largest values they accept still let deliveries fail and be retried
(docs/configuration.md): larger ones are refused at start (tests/integration/test_cli_basics.py)
rather than accepted and then failing every attempt's bookkeeping."""

from __future__ import annotations

from datetime import datetime, timedelta

from orderhooks.config import MAX_DISABLE_AFTER_SECONDS
from orderhooks.config.kinds import MAX_RETRY_DELAY_SECONDS
from orderhooks.testing.receiver import Receiver
from tests.e2e.support import states
from tests.support.api import Api
from tests.support.data import new_order

SERVER_ENV = {
    "ORDERHOOKS_RETRY_SCHEDULE": str(MAX_RETRY_DELAY_SECONDS),
    "ORDERHOOKS_DISABLE_AFTER": str(MAX_DISABLE_AFTER_SECONDS),
}


async def test_a_failed_attempt_is_scheduled_after_the_longest_retry_wait(
    api: Api, account: str, rx: Receiver
) -> None:
    rx.answer(500)
    hook = await api.create_webhook(rx.url, [account])
    await api.new_order(new_order(account))
    [delivery] = await api.wait_deliveries(
        hook["id"],
        lambda ds: len(ds) == 1 and ds[0]["attemptCount"] == 1 and ds[0]["state"] == "pending",
        what="one failed attempt, retry scheduled",
    )
    assert states([delivery]) == {"pending": 1}
    [attempt] = (await api.delivery(delivery["id"]))["attempts"]
    assert attempt["statusCode"] == 500
    started = datetime.fromisoformat(attempt["startedAt"])
    wait = datetime.fromisoformat(delivery["nextAttemptAt"]) - started
    assert timedelta(seconds=MAX_RETRY_DELAY_SECONDS - 60) < wait
    assert wait < timedelta(seconds=MAX_RETRY_DELAY_SECONDS + 60)
    assert (await api.webhook(hook["id"]))["state"] == "active"
